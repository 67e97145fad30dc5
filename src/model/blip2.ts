/**
 * Blip2ForConditionalGeneration, mirroring transformers: vision_model -> query_tokens + qformer ->
 * language_projection -> the projected queries written into the `<image>` token rows of the OPT input
 * embeddings (or, for checkpoints without image_token_index, prepended to them) -> language_model.
 */
import { causalLMLoss, concatRows, scatterRows } from '../autograd/functional.js';
import { noGradAsync } from '../autograd/tape.js';
import { generateBlip2, type Blip2GenerateArgs, type GenerateOutput } from '../generation/generate.js';
import { IGNORE_INDEX } from '../kernels/cross-entropy.js';
import { selectionFilter, type ParameterSelection } from '../training/select.js';
import { getGpu, type Gpu } from '../gpu/gpu.js';
import { joinPath, openCheckpoint } from '../io/checkpoint.js';
import { readJsonFile } from '../io/text-file.js';
import { withModelStorage } from '../platform/model-store/scope.js';
import type { ModelStorageOptions } from '../platform/model-store/types.js';
import { Tensor, tidy } from '../tensor.js';
import { expandBatch, Blip2VisionModel, type VisionModelOutput } from './blip2-vision.js';
import { Blip2QFormerModel, type QFormerEncoderOutput } from './blip2-qformer.js';
import { parseBlip2Config, type Blip2Config } from './config.js';
import { loadWeights, type LoadProgress } from './loader.js';
import { isQuantScheme, type QuantScheme } from '../quant/format.js';
import { parseQuantizationConfig, QuantizationConfigError } from '../quant/config.js';
import { Module, Parameter } from './module.js';
import { Linear } from './nn.js';
import { OPTForCausalLM, type CausalLMOutput } from './opt.js';
import type { OPTKVCache } from './opt-cache.js';

export interface ImageFeatures {
  vision_outputs: VisionModelOutput;
  qformer_outputs: QFormerEncoderOutput;
  /** language_projection(query outputs): [B, Q, text hidden]. */
  language_model_inputs: Tensor;
}

export interface Blip2ForwardArgs {
  /** [B, 3, H, W]; may be left out when image_embeds are given. */
  pixel_values?: Tensor;
  /**
   * The vision model's last_hidden_state for these images, computed earlier: the vision tower is frozen while
   * the Q-Former trains, so its features can be cached per image (Trainer does).
   */
  image_embeds?: Tensor;
  /**
   * Language-modelling labels [B, L] (HF's convention: the input ids, -100 where no loss is taken: image
   * tokens, padding). Each position is scored on the next label; `loss` is their mean cross-entropy.
   */
  labels?: readonly (readonly number[])[];
  /** Token ids on the host, [B, L] (left-padded for batches). */
  input_ids: readonly (readonly number[])[];
  /** [B, L] of 0/1; all ones when omitted. */
  attention_mask?: readonly (readonly number[])[];
  output_hidden_states?: boolean;
  output_attentions?: boolean;
  /** Appends to this cache (created by the caller) so generation can continue from here. */
  past_key_values?: OPTKVCache | null;
  logits_to_keep?: number;
  /** Replaces the learned query_tokens ([1|B, Q, hidden], any Q): input_ids must then hold Q `<image>` tokens per row. */
  query_embeds?: Tensor;
}

export interface Blip2Output extends ImageFeatures {
  /** What the language model was fed: token embeddings with the image rows replaced (no positions yet). */
  inputs_embeds: Tensor;
  /** The attention mask the language model saw (longer than the input's in the legacy layout). */
  attention_mask: number[][];
  language_model_outputs: CausalLMOutput;
  logits: Tensor;
  /** Mean next-token cross-entropy over the labels that count ([1] f32), when labels were given. */
  loss: Tensor | null;
}

export interface MergedInputs {
  inputs_embeds: Tensor;
  attention_mask: number[][];
}

export interface FromPretrainedOptions extends ModelStorageOptions {
  /** The device (default: the process-wide one). */
  gpu?: Gpu;
  /** Storage of the large weights: f16 (default; read as packed pairs where the device lacks shader-f16) or f32. */
  dtype?: 'f16' | 'f32';
  /**
   * Quantize the Linear weights of the vision encoder and OPT decoder layers to q8 or q4 (docs/quantization.md)
   * while loading; everything else follows `dtype`. A folder made by `blip2 convert` loads in its own scheme
   * without this (and rejects a different one).
   */
  quantize?: QuantScheme;
  onProgress?: (p: LoadProgress) => void;
  /**
   * Parameters to train: loaded as f32 master copies from the checkpoint whatever `dtype` says, and marked
   * requires_grad; every other one is frozen. See training/select.ts ('qformer' is BLIP-2's stage 2).
   */
  trainable?: ParameterSelection;
}

export class Blip2ForConditionalGeneration extends Module<[Blip2ForwardArgs], Blip2Output> {
  /**
   * Loads a HF BLIP-2 folder (path or URL): config.json and model.safetensors or a sharded
   * model.safetensors.index.json. Weights stream to the GPU one chunk at a time. In browsers, a folder URL is
   * kept in the origin's private file system (`cache`, docs/browser.md).
   */
  static async fromPretrained(dir: string, options: FromPretrainedOptions = {}): Promise<Blip2ForConditionalGeneration> {
    return withModelStorage(dir, options, () => Blip2ForConditionalGeneration.load(dir, options));
  }

  private static async load(dir: string, options: FromPretrainedOptions): Promise<Blip2ForConditionalGeneration> {
    const json = await readJsonFile(joinPath(dir, 'config.json'));
    const config = parseBlip2Config(json);
    const stored = parseQuantizationConfig((json as { quantization_config?: unknown } | null)?.quantization_config, joinPath(dir, 'config.json'));
    if (options.quantize !== undefined && !isQuantScheme(options.quantize)) throw new RangeError(`quantize must be 'q8' or 'q4', got ${JSON.stringify(options.quantize)}`);
    if (stored && options.quantize && options.quantize !== stored) {
      throw new QuantizationConfigError(`${dir} holds ${stored} weights (made by blip2 convert); quantize '${options.quantize}' contradicts it: leave it out, or convert the float checkpoint to ${options.quantize}`);
    }
    const gpu = options.gpu ?? (await getGpu());
    const model = new Blip2ForConditionalGeneration(config);
    const train = options.trainable ? selectionFilter(options.trainable) : null;
    const selected = train ? model.namedParameters().filter(([name]) => train(name)) : [];
    if (train && selected.length === 0) throw new Error(`the trainable selection ${JSON.stringify(options.trainable)} matches no parameter of the model`);
    for (const [, p] of selected) p.role = 'fp32';
    const source = await openCheckpoint(dir);
    try {
      await loadWeights(model, source, gpu, { dtype: options.dtype ?? 'f16', quantize: stored ?? options.quantize ?? null, stored, onProgress: options.onProgress });
    } catch (e) {
      model.dispose();
      throw e;
    } finally {
      await source.close();
    }
    model.language_model.fuse_qkv();
    for (const [, p] of selected) p.requires_grad = true;
    return model;
  }

  vision_model: Blip2VisionModel;
  query_tokens: Parameter;
  qformer: Blip2QFormerModel;
  language_projection: Linear;
  language_model: OPTForCausalLM;

  constructor(readonly config: Blip2Config) {
    super();
    this.vision_model = new Blip2VisionModel(config.vision_config);
    this.query_tokens = new Parameter([1, config.num_query_tokens, config.qformer_config.hidden_size], 'fp32');
    this.qformer = new Blip2QFormerModel(config.qformer_config);
    this.language_projection = new Linear(config.qformer_config.hidden_size, config.text_config.hidden_size);
    this.language_model = new OPTForCausalLM(config.text_config);
  }

  get gpu(): Gpu {
    return this.query_tokens.value.gpu;
  }

  /** The scheme its quantized Linear weights are held in (quantize on load, or a converted folder), or null. */
  get quantization(): QuantScheme | null {
    return this.namedParameters().find(([, p]) => p.quantized)?.[1].quantized?.scheme ?? null;
  }

  /**
   * Vision tower (or its cached output `image_embeds`), Q-Former over the learned query tokens (or `query_embeds`
   * [1|B, Q, hidden]), projection.
   */
  get_image_features(
    pixel_values: Tensor | null,
    options: { output_hidden_states?: boolean; output_attentions?: boolean; query_embeds?: Tensor; image_embeds?: Tensor } = {},
  ): ImageFeatures {
    return tidy(() => {
      let vision_outputs: VisionModelOutput;
      if (options.image_embeds) vision_outputs = this.vision_model.outputsFromFeatures(options.image_embeds);
      else if (pixel_values) vision_outputs = this.vision_model.call(pixel_values, options);
      else throw new Error('get_image_features needs pixel_values or image_embeds');
      const image_embeds = vision_outputs.last_hidden_state;
      const B = image_embeds.dim(0);
      const q = options.query_embeds ?? this.query_tokens.value;
      const query_tokens = q.dim(0) === B ? q.ref() : q.dim(0) === 1 ? expandBatch(q, B) : null;
      if (!query_tokens) throw new Error(`query_embeds batch ${q.dim(0)} does not match ${B} images`);
      const qformer_outputs = this.qformer.call(query_tokens, image_embeds, options);
      const language_model_inputs = this.language_projection.call(qformer_outputs.last_hidden_state);
      return { vision_outputs, qformer_outputs, language_model_inputs };
    });
  }

  /**
   * Token embeddings with the projected queries merged in: written into the `<image>` rows (masked_scatter) when
   * the config has image_token_index, else prepended (older checkpoints), extending the attention mask.
   */
  merge_image_features(language_model_inputs: Tensor, input_ids: readonly (readonly number[])[], attention_mask?: readonly (readonly number[])[]): MergedInputs {
    const B = input_ids.length;
    const L = input_ids[0]?.length ?? 0;
    if (B === 0 || input_ids.some((r) => r.length !== L)) throw new Error('input_ids must be a non-empty rectangular [B, L] array');
    if (language_model_inputs.dim(0) !== B) throw new Error(`${language_model_inputs.dim(0)} images for ${B} token sequences`);
    const mask = attention_mask ? attention_mask.map((r) => [...r]) : input_ids.map((r) => r.map(() => 1));
    if (mask.length !== B || mask.some((r) => r.length !== L)) throw new Error('attention_mask must have the shape of input_ids');
    const vocab = this.config.text_config.vocab_size;
    const flat = new Int32Array(B * L);
    input_ids.forEach((row, b) =>
      row.forEach((id, t) => {
        if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new Error(`token id ${id} outside the vocabulary (${vocab})`);
        flat[b * L + t] = id;
      }),
    );
    return tidy(() => {
      const gpu = language_model_inputs.gpu;
      const ids = Tensor.from(gpu, flat, [B, L], 'i32');
      const embeds = this.language_model.get_input_embeddings().call(ids);
      const [, Q, D] = language_model_inputs.shape as [number, number, number];
      const token = this.config.image_token_index;
      if (token === null) {
        const inputs_embeds = concatRows(language_model_inputs, embeds);
        return { inputs_embeds, attention_mask: mask.map((r) => [...new Array<number>(Q).fill(1), ...r]) };
      }
      const rows: number[] = [];
      flat.forEach((id, i) => id === token && rows.push(i));
      if (rows.length !== B * Q) {
        throw new Error(`input_ids hold ${rows.length} <image> tokens (id ${token}) but the Q-Former produced ${B * Q} query embeddings (${B} x ${Q})`);
      }
      // masked_scatter fills the image rows in order, batch by batch: exactly Q per sequence in HF's layout.
      const idx = Tensor.from(gpu, Int32Array.from(rows), [rows.length], 'i32');
      const dst = embeds.reshape([B * L, D]);
      const merged = scatterRows(dst, language_model_inputs.reshape([B * Q, D]), idx);
      return { inputs_embeds: merged.reshape([B, L, D]), attention_mask: mask };
    });
  }

  /**
   * HF's generate (greedy, beam search, sampling): returns prompt + new ids per output row. Without
   * input_ids it captions from `[<image>] * num_query_tokens + [bos]`. See src/generation/generate.ts.
   */
  generate(args: Blip2GenerateArgs): Promise<GenerateOutput> {
    // Generation never records a graph, even with trainable parameters.
    return noGradAsync(() => generateBlip2(this, args));
  }

  forward(args: Blip2ForwardArgs): Blip2Output {
    return tidy(() => {
      const features = this.get_image_features(args.pixel_values ?? null, {
        output_hidden_states: args.output_hidden_states,
        output_attentions: args.output_attentions,
        query_embeds: args.query_embeds,
        image_embeds: args.image_embeds,
      });
      const { inputs_embeds, attention_mask } = this.merge_image_features(features.language_model_inputs, args.input_ids, args.attention_mask);
      const language_model_outputs = this.language_model.call({
        inputs_embeds,
        attention_mask,
        past_key_values: args.past_key_values,
        output_hidden_states: args.output_hidden_states,
        output_attentions: args.output_attentions,
        logits_to_keep: args.logits_to_keep,
      });
      const logits = language_model_outputs.logits;
      let loss: Tensor | null = null;
      if (args.labels) {
        if (args.logits_to_keep) throw new Error('labels need the logits of every position (leave logits_to_keep out)');
        let labels = args.labels;
        const extra = logits.dim(1) - (labels[0]?.length ?? 0);
        // Checkpoints without image_token_index prepend the queries: like HF (which scores only the text
        // positions' logits), no loss there, and the first text label is not a target.
        if (extra > 0) labels = labels.map((r) => [...new Array<number>(extra).fill(IGNORE_INDEX), IGNORE_INDEX, ...r.slice(1)]);
        loss = causalLMLoss(logits, labels).loss;
      }
      return { ...features, inputs_embeds, attention_mask, language_model_outputs, logits, loss };
    });
  }
}
