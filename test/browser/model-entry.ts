// Runs in the browser page: the whole BLIP-2 pipeline from the same source as in Node, bundled by esbuild.
import { getGpu } from '../../src/gpu/gpu.js';
import { setShaderBaseUrl } from '../../src/gpu/shader-sources.js';
import { Blip2 } from '../../src/pipeline.js';
import { Blip2Processor } from '../../src/processing/processor.js';

export interface ModelTestOptions {
  /** The model folder's URL. */
  model: string;
  /** The caption image's URL. */
  image: string;
  /** The image the question is asked about (default: `image`). */
  questionImage?: string;
  /** Images run through the processor alone (URLs), to compare the browser's decoding with PIL's. */
  pixelImages: string[];
  /** Where the .wgsl files are served. */
  shaders: string;
  question: string;
  maxNewTokens: number;
  dtypes: ('f16' | 'f32')[];
}

export interface DtypeRun {
  dtype: 'f16' | 'f32';
  /** How many loaded parameters are stored in each dtype. */
  storage: Record<string, number>;
  captionTokens: number[];
  captionText: string;
  answerTokens: number[];
  answerText: string;
  /** Streamed token ids of the caption, in order. */
  streamedCaption: number[];
  liveBytesLoaded: number;
  liveBytesAfterDispose: number;
  loadMs: number;
  generateMs: number;
}

export interface ModelTestResult {
  adapter: string;
  shaderF16: boolean;
  /** The processor's pixel_values of each of `pixelImages`, as the browser decoded them. */
  pixels: { values: number[]; shape: number[] }[];
  runs: DtypeRun[];
  error?: string;
}

async function runDtype(options: ModelTestOptions, dtype: 'f16' | 'f32'): Promise<DtypeRun> {
  const gpu = await getGpu();
  const t0 = performance.now();
  // cache: false: this test is about reading over HTTP ranges (model-store.test.ts covers the stored path).
  const blip2 = await Blip2.fromPretrained(options.model, { dtype, cache: false });
  const loadMs = performance.now() - t0;
  let run: Omit<DtypeRun, 'liveBytesAfterDispose'>;
  try {
    const storage: Record<string, number> = {};
    for (const [, p] of blip2.model.namedParameters()) storage[p.value.dtype] = (storage[p.value.dtype] ?? 0) + 1;
    const liveBytesLoaded = gpu.stats().liveBytes;
    const streamedCaption: number[] = [];
    const t1 = performance.now();
    const caption = await blip2.caption(options.image, { max_new_tokens: options.maxNewTokens, onToken: (e) => streamedCaption.push(e.token) });
    const answer = await blip2.ask(options.questionImage ?? options.image, options.question, { max_new_tokens: options.maxNewTokens });
    run = {
      dtype,
      storage,
      captionTokens: caption.token_ids,
      captionText: caption.text,
      answerTokens: answer.token_ids,
      answerText: answer.text,
      streamedCaption,
      liveBytesLoaded,
      loadMs,
      generateMs: performance.now() - t1,
    };
  } finally {
    blip2.dispose();
  }
  await gpu.sync();
  return { ...run, liveBytesAfterDispose: gpu.stats().liveBytes };
}

async function run(options: ModelTestOptions): Promise<ModelTestResult> {
  setShaderBaseUrl(options.shaders);
  const gpu = await getGpu();
  const runs: DtypeRun[] = [];
  for (const dtype of options.dtypes) runs.push(await runDtype(options, dtype));
  // The processor alone, to compare the browser decoder's pixels with PIL's.
  const processor = await Blip2Processor.fromPretrained(options.model, { cache: false });
  const pixels: ModelTestResult['pixels'] = [];
  for (const image of options.pixelImages) {
    const batch = await processor.process({ images: image });
    pixels.push({ values: Array.from(batch.pixelValues), shape: [...batch.pixelShape] });
  }
  return {
    adapter: `${gpu.caps.adapter.vendor} ${gpu.caps.adapter.architecture}`,
    shaderF16: gpu.caps.f16,
    pixels,
    runs,
  };
}

(globalThis as { blip2ModelTest?: (o: ModelTestOptions) => Promise<ModelTestResult> }).blip2ModelTest = (o) =>
  run(o).catch((e: unknown) => ({ adapter: '', shaderF16: false, pixels: [], runs: [], error: String((e as Error)?.stack ?? e) }));
