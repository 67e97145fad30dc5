// The browser demo: load a BLIP-2 folder (URL or dropped files), pick an image, caption it and chat about it
// with streamed tokens. Plain DOM; everything the engine does runs in this tab on WebGPU.
import { adapterLabel, Blip2, getGpu, markTrainable, ModelStorageError, modelStorageInfo, setShaderBaseUrl, Trainer, type ChatTurn, type DownloadProgress, type Gpu, type ImageInput, type LoadProgress, type ParameterSelection, type SingleResult, type TextOptions } from '../src/index.js';
import { $ } from './dom.js';
import { DROPPED_FOLDER, filesFromDrop, installDroppedFilesPlatform, setDroppedFiles } from './dropped-files.js';
import { formatBytes, formatGeneration, formatMs } from './format.js';
import { storedModelsView } from './stored-models.js';

// The build copies wgsl/ next to main.js.
setShaderBaseUrl(new URL('./wgsl/', import.meta.url));
installDroppedFilesPlatform();

const ui = {
  adapter: $('adapter'),
  shaderF16: $('shader-f16'),
  weights: $('weights'),
  gpuMemory: $('gpu-memory'),
  modelForm: $<HTMLFormElement>('model-form'),
  modelUrl: $<HTMLInputElement>('model-url'),
  modelList: $<HTMLDataListElement>('model-list'),
  dtype: $<HTMLSelectElement>('dtype'),
  quantize: $<HTMLSelectElement>('quantize'),
  storeModel: $<HTMLInputElement>('store-model'),
  storeModelLabel: $('store-model-label'),
  load: $<HTMLButtonElement>('load'),
  modelDrop: $('model-drop'),
  modelFiles: $<HTMLInputElement>('model-files'),
  modelFolder: $<HTMLInputElement>('model-folder'),
  progress: $('progress'),
  progressBar: $<HTMLProgressElement>('progress-bar'),
  progressText: $('progress-text'),
  modelStatus: $('model-status'),
  stored: $('stored'),
  storedEmpty: $('stored-empty'),
  storedTable: $<HTMLTableElement>('stored-table'),
  storedList: $<HTMLTableSectionElement>('stored-list'),
  storageUsage: $('storage-usage'),
  deleteAll: $<HTMLButtonElement>('delete-all'),
  imageDrop: $('image-drop'),
  imageFile: $<HTMLInputElement>('image-file'),
  preview: $<HTMLImageElement>('preview'),
  imageHint: $('image-hint'),
  sample: $<HTMLButtonElement>('sample'),
  imageStatus: $('image-status'),
  captionPrefix: $<HTMLInputElement>('caption-prefix'),
  caption: $<HTMLButtonElement>('caption'),
  messages: $<HTMLOListElement>('messages'),
  askForm: $<HTMLFormElement>('ask-form'),
  question: $<HTMLInputElement>('question'),
  ask: $<HTMLButtonElement>('ask'),
  newChat: $<HTMLButtonElement>('new-chat'),
  maxNewTokens: $<HTMLInputElement>('max-new-tokens'),
  decoding: $<HTMLSelectElement>('decoding'),
  temperature: $<HTMLInputElement>('temperature'),
  topP: $<HTMLInputElement>('top-p'),
  timing: $('timing'),
  trainDrop: $('train-drop'),
  trainFiles: $<HTMLInputElement>('train-files'),
  trainExamples: $<HTMLOListElement>('train-examples'),
  trainSteps: $<HTMLInputElement>('train-steps'),
  trainLr: $<HTMLInputElement>('train-lr'),
  trainSelection: $<HTMLSelectElement>('train-selection'),
  train: $<HTMLButtonElement>('train'),
  trainStop: $<HTMLButtonElement>('train-stop'),
  lossChart: $('loss-chart'),
  lossLine: $('loss-line'),
  trainStatus: $('train-status'),
  error: $('error'),
};

const state = {
  gpu: null as Gpu | null,
  blip2: null as Blip2 | null,
  image: null as ImageInput | null,
  previewUrl: null as string | null,
  turns: [] as ChatTurn[],
  busy: false,
  /** Training images with the captions typed next to them. */
  training: [] as { file: File; caption: HTMLInputElement; url: string }[],
  stopTraining: false,
  trainer: null as Trainer | null,
};

function refreshControls(): void {
  const ready = state.blip2 !== null && state.image !== null && !state.busy;
  ui.load.disabled = state.busy;
  ui.caption.disabled = !ready;
  ui.ask.disabled = !ready;
  ui.newChat.disabled = state.busy || state.turns.length === 0;
  ui.train.disabled = state.busy || state.blip2 === null || state.training.length === 0;
  ui.trainStop.disabled = !state.busy || state.trainer === null;
  ui.modelDrop.classList.toggle('disabled', state.busy);
  ui.stored.querySelectorAll('button').forEach((b) => (b.disabled = state.busy));
}

function showError(e: unknown): void {
  const message = e instanceof Error ? e.message : String(e);
  ui.error.textContent = message;
  ui.error.hidden = false;
  console.error(e);
}

function clearError(): void {
  ui.error.hidden = true;
  ui.error.textContent = '';
}

/** Runs one action at a time; errors end up on the page, never as an unhandled rejection. */
async function exclusive(action: () => Promise<void>): Promise<void> {
  if (state.busy) return;
  state.busy = true;
  clearError();
  refreshControls();
  try {
    await action();
  } catch (e) {
    showError(e);
  } finally {
    state.busy = false;
    refreshControls();
  }
}

function showMemory(): void {
  if (!state.gpu) return;
  const s = state.gpu.stats();
  ui.gpuMemory.textContent = `${formatBytes(s.liveBytes)} in use, ${formatBytes(s.pooledBytes)} pooled, peak ${formatBytes(s.peakLiveBytes)}`;
}

async function device(): Promise<Gpu> {
  if (state.gpu && !state.gpu.isLost) return state.gpu;
  const gpu = await getGpu();
  state.gpu = gpu;
  ui.adapter.textContent = adapterLabel(gpu.caps.adapter);
  ui.shaderF16.textContent = gpu.caps.f16 ? 'yes' : 'no (f16 weights are read as packed pairs)';
  showMemory();
  return gpu;
}

// ---------------------------------------------------------------- model

/** What a load read from where: bytes downloaded into browser storage per file (resumed bytes not counted). */
function downloadTally(): { onDownload: (p: DownloadProgress) => void; bytes(): number; files(): number } {
  const seen = new Map<string, { first: number; last: number }>();
  return {
    onDownload: (p) => {
      const f = seen.get(p.file);
      if (f) f.last = p.loadedBytes;
      else seen.set(p.file, { first: p.loadedBytes, last: p.loadedBytes });
    },
    bytes: () => [...seen.values()].reduce((n, f) => n + f.last - f.first, 0),
    files: () => seen.size,
  };
}

async function loadModel(location: string, label: string, fromUrl: boolean): Promise<void> {
  const gpu = await device();
  const dtype = ui.dtype.value === 'f32' ? 'f32' : 'f16';
  const quantize = ui.quantize.value === 'q8' || ui.quantize.value === 'q4' ? ui.quantize.value : undefined;
  if (state.blip2) {
    state.trainer?.dispose();
    state.trainer = null;
    state.blip2.dispose();
    state.blip2 = null;
    ui.weights.textContent = 'not loaded';
    showMemory();
  }
  state.turns = [];
  ui.progress.hidden = false;
  ui.progressBar.removeAttribute('value');
  ui.progressText.textContent = 'reading config, tokenizer and checkpoint header…';
  ui.modelStatus.textContent = `Loading ${label}…`;
  const t0 = performance.now();
  let lastPaint = 0;
  const onProgress = (p: LoadProgress) => {
    const now = performance.now();
    if (now - lastPaint < 100 && p.loadedBytes < p.totalBytes) return;
    lastPaint = now;
    ui.progressBar.value = p.totalBytes > 0 ? p.loadedBytes / p.totalBytes : 1;
    ui.progressText.textContent = `${formatBytes(p.loadedBytes)} of ${formatBytes(p.totalBytes)} · ${p.key}`;
  };
  const store = fromUrl && ui.storeModel.checked;
  const downloads = downloadTally();
  const onDownload = (p: DownloadProgress) => {
    downloads.onDownload(p);
    const now = performance.now();
    if (now - lastPaint < 100 && p.loadedBytes !== p.totalBytes) return;
    lastPaint = now;
    if (p.totalBytes) ui.progressBar.value = p.loadedBytes / p.totalBytes;
    else ui.progressBar.removeAttribute('value');
    ui.progressText.textContent = `downloading ${p.file} into browser storage: ${formatBytes(p.loadedBytes)}${p.totalBytes ? ` of ${formatBytes(p.totalBytes)}` : ''}`;
  };
  try {
    state.blip2 = await Blip2.fromPretrained(location, { dtype, quantize, gpu, onProgress, cache: store, onDownload });
  } catch (e) {
    // The library's advice names its options; say what they are on this page.
    if (e instanceof ModelStorageError && (e.code === 'quota' || e.code === 'unavailable')) {
      throw new Error(`${e.message}\nOn this page: delete stored models below, or untick "keep in this browser" to load without storing.`, { cause: e });
    }
    throw e;
  } finally {
    ui.progress.hidden = true;
    if (fromUrl) void stored.refresh().catch(showError);
  }
  const ms = performance.now() - t0;
  const cfg = state.blip2.model.config;
  const params = state.blip2.model.namedParameters().reduce((n, [, p]) => n + p.shape.reduce((a, b) => a * b, 1), 0);
  const floats = dtype === 'f16' ? (gpu.caps.f16 ? 'f16' : 'f16 (packed pairs, no shader-f16)') : 'f32';
  // The scheme actually loaded: a converted folder brings its own.
  const scheme = state.blip2.model.namedParameters().find(([, p]) => p.quantized)?.[1].quantized?.scheme;
  ui.weights.textContent = scheme ? `${scheme} (vision encoder and OPT layers), ${floats} elsewhere` : floats;
  ui.modelStatus.textContent =
    `${label}: ${(params / 1e6).toFixed(params < 1e6 ? 3 : 1)} M parameters (OPT ${cfg.text_config.num_hidden_layers} layers, ` +
    `hidden ${cfg.text_config.hidden_size}; ${cfg.num_query_tokens} query tokens) loaded in ${formatMs(ms)}` +
    (!fromUrl ? '.' : !store ? ', read over the network (not stored).' : downloads.files() === 0 ? ', read from browser storage: nothing downloaded.' : `; downloaded ${formatBytes(downloads.bytes())} into browser storage.`);
  showMemory();
}

async function loadFromUrl(): Promise<void> {
  const text = ui.modelUrl.value.trim();
  if (text === '') throw new Error('enter the URL of a BLIP-2 folder (config.json, tokenizer, processor config, safetensors)');
  const url = new URL(text.endsWith('/') ? text : `${text}/`, location.href);
  await loadModel(url.href.replace(/\/$/, ''), url.pathname.split('/').filter(Boolean).pop() ?? url.href, true);
}

async function loadFromFiles(files: readonly File[]): Promise<void> {
  if (files.length === 0) return;
  const names = setDroppedFiles(files);
  if (!names.includes('config.json')) throw new Error(`the dropped files have no config.json (got ${names.slice(0, 8).join(', ')}${names.length > 8 ? ', …' : ''})`);
  const folder = files[0]!.webkitRelativePath.split('/')[0] || 'dropped files';
  await loadModel(DROPPED_FOLDER, `${folder} (${names.length} files, ${formatBytes(files.reduce((n, f) => n + f.size, 0))})`, false);
}

async function listServedModels(): Promise<void> {
  // The demo server writes models.json; a plain static host has none, and the default URL stays.
  try {
    const res = await fetch('./models.json');
    if (!res.ok) return;
    const models = (await res.json()) as unknown;
    if (!Array.isArray(models)) return;
    for (const m of models) {
      if (typeof m !== 'string') continue;
      const option = document.createElement('option');
      option.value = m;
      ui.modelList.append(option);
    }
    if (typeof models[0] === 'string') ui.modelUrl.value = models[0];
  } catch {
    // no list: keep the default
  }
}

// ---------------------------------------------------------------- image

function setImage(image: ImageInput, previewSrc: string, label: string, ownsUrl: boolean): void {
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = ownsUrl ? previewSrc : null;
  state.image = image;
  state.turns = [];
  ui.messages.replaceChildren();
  ui.preview.src = previewSrc;
  ui.preview.hidden = false;
  ui.imageHint.classList.add('small');
  ui.imageStatus.textContent = label;
  refreshControls();
}

function setImageFile(file: File): void {
  if (!file.type.startsWith('image/') && file.type !== '') throw new Error(`${file.name} is not an image (${file.type})`);
  setImage(file, URL.createObjectURL(file), `${file.name} (${formatBytes(file.size)})`, true);
}

// ---------------------------------------------------------------- generation

function generationOptions(): TextOptions {
  const max = Number(ui.maxNewTokens.value);
  if (!Number.isInteger(max) || max < 1) throw new Error('max new tokens must be a positive integer');
  const mode = ui.decoding.value;
  if (mode === 'beam') return { max_new_tokens: max, num_beams: 5 };
  if (mode === 'sample') return { max_new_tokens: max, do_sample: true, temperature: Number(ui.temperature.value), top_p: Number(ui.topP.value) };
  return { max_new_tokens: max };
}

function addMessage(kind: 'question' | 'answer' | 'caption', text: string): HTMLLIElement {
  const li = document.createElement('li');
  li.className = kind;
  li.textContent = text;
  ui.messages.append(li);
  li.scrollIntoView({ block: 'nearest' });
  return li;
}

/** Runs one generation, streaming into `target` when the decoding allows it, and reports the timings. */
async function generateInto(target: HTMLLIElement, run: (options: TextOptions) => Promise<SingleResult>, lead = ''): Promise<SingleResult> {
  const options = generationOptions();
  const streamed = options.num_beams === undefined;
  let firstTokenMs: number | null = null;
  let text = '';
  target.classList.add('pending');
  target.textContent = '…';
  const t0 = performance.now();
  let result: SingleResult;
  try {
    result = await run(
      streamed
        ? {
            ...options,
            onToken: (e) => {
              firstTokenMs ??= performance.now() - t0;
              text += e.text;
              target.textContent = `${lead}${text.trimStart()}` || '…';
            },
          }
        : options,
    );
  } catch (e) {
    target.classList.replace('pending', 'failed');
    target.textContent = `${lead}${text.trimStart()} (failed, see below)`;
    throw e;
  }
  const totalMs = performance.now() - t0;
  target.classList.remove('pending');
  target.textContent = `${lead}${result.text}` || '(empty)';
  target.title = `token ids: ${result.token_ids.join(' ')} · finished by ${result.finish_reason}`;
  ui.timing.textContent = `${formatGeneration({ firstTokenMs, totalMs, tokens: result.token_ids.length })} · ${streamed ? ui.decoding.value : '5 beams'} · finished by ${result.finish_reason}`;
  showMemory();
  return result;
}

async function caption(): Promise<void> {
  const { blip2, image } = state;
  if (!blip2 || !image) return;
  const prefix = ui.captionPrefix.value.trim();
  const target = addMessage('caption', '');
  await generateInto(target, (o) => blip2.caption(image, { ...o, prompt: prefix }), prefix ? `${prefix} ` : '');
}

async function ask(): Promise<void> {
  const { blip2, image } = state;
  const question = ui.question.value.trim();
  if (!blip2 || !image || question === '') return;
  ui.question.value = '';
  addMessage('question', question);
  const target = addMessage('answer', '');
  const turns = [...state.turns];
  const result = await generateInto(target, (o) => (turns.length === 0 ? blip2.ask(image, question, o) : blip2.chat(image, turns, question, o)));
  state.turns.push({ question, answer: result.text });
}

// ---------------------------------------------------------------- fine-tuning

function addTrainingImages(files: readonly File[]): void {
  for (const file of files) {
    if (!file.type.startsWith('image/') && file.type !== '') throw new Error(`${file.name} is not an image (${file.type})`);
    const li = document.createElement('li');
    const img = document.createElement('img');
    const url = URL.createObjectURL(file);
    img.src = url;
    img.alt = file.name;
    const caption = document.createElement('input');
    caption.type = 'text';
    caption.placeholder = `what ${file.name} shows`;
    li.append(img, caption);
    ui.trainExamples.append(li);
    state.training.push({ file, caption, url });
  }
  refreshControls();
}

function plotLoss(losses: readonly number[]): void {
  const max = Math.max(...losses);
  const n = Math.max(2, losses.length);
  ui.lossLine.setAttribute('points', losses.map((l, i) => `${((i / (n - 1)) * 300).toFixed(1)},${(78 - (l / max) * 76).toFixed(1)}`).join(' '));
  ui.lossChart.removeAttribute('hidden'); // an SVG element has no hidden property
}

async function train(): Promise<void> {
  const blip2 = state.blip2;
  if (!blip2) return;
  const examples = state.training.map((t, i) => {
    const text = t.caption.value.trim();
    if (text === '') throw new Error(`write a caption for training image ${i + 1} (${t.file.name})`);
    return { image: t.file as ImageInput, text, source: t.file.name };
  });
  const steps = Number(ui.trainSteps.value);
  const lr = Number(ui.trainLr.value);
  if (!Number.isInteger(steps) || steps < 1) throw new Error('steps must be a positive integer');
  if (!(lr > 0)) throw new Error('the learning rate must be positive');
  const chosen = ui.trainSelection.value;
  const selection: ParameterSelection = chosen === 'all-but-vision' ? (n: string) => !n.startsWith('vision_model.') : chosen === 'query_tokens' ? 'query_tokens' : 'qformer';
  // A new selection (or the first run) starts a new optimizer; another run continues the last one.
  if (!state.trainer || state.trainer.options.totalSteps !== steps || ui.trainSelection.dataset.last !== ui.trainSelection.value) {
    state.trainer?.dispose();
    markTrainable(blip2.model, selection);
    ui.trainSelection.dataset.last = ui.trainSelection.value;
    state.trainer = new Trainer(blip2.model, blip2.processor, { lr, batchSize: examples.length, schedule: 'constant', warmupSteps: Math.min(5, steps - 1), weightDecay: 0, totalSteps: steps });
  }
  const trainer = state.trainer;
  trainer.optimizer.lr = lr;
  const items = trainer.prepare(examples);
  const losses: number[] = [];
  state.stopTraining = false;
  refreshControls();
  const t0 = performance.now();
  try {
    for (let s = 0; s < steps && !state.stopTraining; s++) {
      const r = await trainer.trainStep(items);
      losses.push(r.loss);
      plotLoss(losses);
      const rate = (s + 1) / ((performance.now() - t0) / 1000);
      ui.trainStatus.textContent = `step ${s + 1}/${steps}: loss ${r.loss.toFixed(4)} (first ${losses[0]!.toFixed(4)}) · ${rate.toFixed(2)} steps/s`;
      ui.trainStatus.dataset.losses = losses.map((l) => l.toFixed(5)).join(' ');
      showMemory();
    }
  } finally {
    blip2.model.eval();
  }
  ui.trainStatus.textContent += state.stopTraining ? ' · stopped' : ' · done: caption an image above to see what changed';
}

// ---------------------------------------------------------------- wiring

function dropZone(zone: HTMLElement, onDrop: (data: DataTransfer) => Promise<void>): void {
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    if (e.dataTransfer) void exclusive(() => onDrop(e.dataTransfer!));
  });
}

ui.modelForm.addEventListener('submit', (e) => {
  e.preventDefault();
  void exclusive(loadFromUrl);
});
dropZone(ui.modelDrop, async (data) => loadFromFiles(await filesFromDrop(data)));
for (const input of [ui.modelFiles, ui.modelFolder]) {
  input.addEventListener('change', () => void exclusive(() => loadFromFiles(Array.from(input.files ?? []))).finally(() => (input.value = '')));
}
dropZone(ui.imageDrop, async (data) => {
  const file = Array.from(data.files).find((f) => f.type.startsWith('image/')) ?? data.files[0];
  if (!file) throw new Error('nothing to use as an image was dropped');
  setImageFile(file);
});
ui.imageFile.addEventListener('change', () => {
  const file = ui.imageFile.files?.[0];
  if (file) void exclusive(async () => setImageFile(file));
});
ui.sample.addEventListener('click', () => {
  const url = new URL('./samples/chelsea.png', location.href).href;
  void exclusive(async () => setImage(url, url, 'sample: chelsea.png (451×300, scikit-image sample data)', false));
});
ui.caption.addEventListener('click', () => void exclusive(caption));
ui.askForm.addEventListener('submit', (e) => {
  e.preventDefault();
  void exclusive(ask);
});
ui.newChat.addEventListener('click', () => {
  if (state.busy) return;
  state.turns = [];
  ui.messages.replaceChildren();
  ui.timing.textContent = '';
  refreshControls();
});
dropZone(ui.trainDrop, async (data) => addTrainingImages(Array.from(data.files)));
ui.trainFiles.addEventListener('change', () => {
  const files = Array.from(ui.trainFiles.files ?? []);
  ui.trainFiles.value = '';
  void exclusive(async () => addTrainingImages(files));
});
ui.train.addEventListener('click', () => void exclusive(train));
ui.trainStop.addEventListener('click', () => {
  state.stopTraining = true;
});
window.addEventListener('unhandledrejection', (e) => showError(e.reason));

const stored = storedModelsView(
  { empty: ui.storedEmpty, table: ui.storedTable, list: ui.storedList, usage: ui.storageUsage, deleteAll: ui.deleteAll },
  {
    load: (url) => {
      ui.modelUrl.value = `${url}/`;
      void exclusive(loadFromUrl);
    },
    run: (action) => void exclusive(action),
  },
);

async function showStorage(): Promise<void> {
  const info = await modelStorageInfo();
  if (!info.available) {
    ui.storeModel.checked = false;
    ui.storeModel.disabled = true;
    ui.storeModelLabel.title = `This browser cannot store models: ${info.reason}`;
  }
  await stored.refresh();
}

refreshControls();
void exclusive(async () => {
  await Promise.all([device(), listServedModels(), showStorage()]);
});
