import { readOptionalJson, ProcessorConfigError } from './config.js';
import type { RawImage } from './image-decode.js';
import { loadImage, type ImageInput, type ImageLoadOptions } from './image-input.js';
import { BlipImageProcessor } from './image-processor.js';
import { Blip2Tokenizer, type DecodeOptions } from './tokenizer.js';
import type { AlphaMode } from './convert-rgb.js';
import { withModelStorage } from '../platform/model-store/scope.js';
import type { ModelStorageOptions } from '../platform/model-store/types.js';

export interface ProcessInput {
  /** One image or one per batch row. */
  readonly images: ImageInput | readonly ImageInput[];
  /** Prompt(s): none (captioning), one for a single image, or one per image. */
  readonly text?: string | readonly string[];
}

export interface ProcessedBatch {
  readonly pixelValues: Float32Array;
  readonly pixelShape: readonly [number, number, number, number];
  /** Left-padded with the pad id, one row per image. */
  readonly inputIds: number[][];
  readonly attentionMask: number[][];
}

export interface ProcessorOptions extends ImageLoadOptions, ModelStorageOptions {
  readonly alpha?: AlphaMode;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * transformers' Blip2Processor: BlipImageProcessor for the pixels, the OPT tokenizer for the text, and
 * `num_query_tokens` x `<image>` placed before BOS when the checkpoint's processor config names
 * `num_query_tokens` (the current blip2-opt-2.7b revision). Older checkpoints without it get plain
 * `[BOS] + prompt` ids: the model then prepends the projected queries itself.
 *
 * Batches are padded on the left with the pad id (`<pad>` = 1): OPT generates after the last position, so
 * every row must end with its last real token. Positions come from cumsum(attention_mask), so a left-padded
 * row computes exactly what it would alone. (HF pads the text before prepending the image tokens; that
 * layout gives the same positions and attention, the pads merely sit after the image tokens.)
 */
export class Blip2Processor {
  constructor(
    readonly imageProcessor: BlipImageProcessor,
    readonly tokenizer: Blip2Tokenizer,
    /** null for legacy checkpoints that do not expand image tokens in the processor. */
    readonly numQueryTokens: number | null,
    private readonly loadOptions: ImageLoadOptions = {},
  ) {
    if (numQueryTokens !== null && (!Number.isInteger(numQueryTokens) || numQueryTokens < 1)) {
      throw new ProcessorConfigError(`num_query_tokens must be a positive integer (got ${numQueryTokens})`);
    }
  }

  /**
   * Loads processor_config.json (transformers 5: image processor nested, `num_query_tokens`) and/or
   * preprocessor_config.json (classic image processor settings) plus the tokenizer files from a folder path
   * or URL, all through the platform's byte sources.
   */
  static async fromPretrained(dir: string | URL, options: ProcessorOptions = {}): Promise<Blip2Processor> {
    return withModelStorage(dir, options, () => Blip2Processor.load(dir, options));
  }

  private static async load(dir: string | URL, options: ProcessorOptions): Promise<Blip2Processor> {
    const [processorConfig, preprocessorConfig, tokenizer] = await Promise.all([
      readOptionalJson(dir, 'processor_config.json'),
      readOptionalJson(dir, 'preprocessor_config.json'),
      Blip2Tokenizer.fromPretrained(dir),
    ]);
    let imageJson: unknown = null;
    if (isObject(processorConfig) && isObject(processorConfig.image_processor)) imageJson = processorConfig.image_processor;
    else if (preprocessorConfig !== null) imageJson = preprocessorConfig;
    if (imageJson === null) throw new ProcessorConfigError(`${String(dir)}: neither processor_config.json (with image_processor) nor preprocessor_config.json found`);
    let numQueryTokens: number | null = null;
    for (const cfg of [processorConfig, preprocessorConfig]) {
      if (isObject(cfg) && cfg.num_query_tokens !== undefined && cfg.num_query_tokens !== null) {
        if (typeof cfg.num_query_tokens !== 'number') throw new ProcessorConfigError('num_query_tokens must be a number');
        numQueryTokens = cfg.num_query_tokens;
        break;
      }
    }
    const imageProcessor = BlipImageProcessor.fromJson(imageJson, options.alpha ?? 'drop');
    return new Blip2Processor(imageProcessor, tokenizer, numQueryTokens, options);
  }

  get imageTokenIndex(): number {
    return this.tokenizer.imageTokenId;
  }

  /** The ids one image and prompt become: `<image>` x num_query_tokens, BOS, prompt tokens. */
  encodePrompt(text = ''): number[] {
    const textIds = this.tokenizer.encode(text);
    if (this.numQueryTokens === null) return textIds;
    return [...new Array<number>(this.numQueryTokens).fill(this.imageTokenIndex), ...textIds];
  }

  /** Left-pads rows to one length with the pad id; the mask marks the real tokens. */
  padLeft(rows: readonly (readonly number[])[]): { inputIds: number[][]; attentionMask: number[][] } {
    const len = Math.max(0, ...rows.map((r) => r.length));
    const pad = this.tokenizer.padTokenId;
    return {
      inputIds: rows.map((r) => [...new Array<number>(len - r.length).fill(pad), ...r]),
      attentionMask: rows.map((r) => [...new Array<number>(len - r.length).fill(0), ...new Array<number>(r.length).fill(1)]),
    };
  }

  /** Images (any ImageInput) and prompts to model inputs. */
  async process(input: ProcessInput): Promise<ProcessedBatch> {
    const images = Array.isArray(input.images) ? (input.images as readonly ImageInput[]) : [input.images as ImageInput];
    if (images.length === 0) throw new RangeError('process: no images given');
    const texts = input.text === undefined ? images.map(() => '') : typeof input.text === 'string' ? [input.text] : [...input.text];
    if (texts.length !== images.length) {
      throw new RangeError(`process: ${images.length} image(s) but ${texts.length} prompt(s); give one prompt per image`);
    }
    const decoded: RawImage[] = await Promise.all(images.map((im) => loadImage(im, this.loadOptions)));
    const { pixelValues, pixelShape } = this.imageProcessor.preprocess(decoded);
    const { inputIds, attentionMask } = this.padLeft(texts.map((t) => this.encodePrompt(t)));
    return { pixelValues, pixelShape, inputIds, attentionMask };
  }

  /** HF's `batch_decode`. */
  batchDecode(batch: readonly (readonly number[])[], options: DecodeOptions = {}): string[] {
    return this.tokenizer.batchDecode(batch, options);
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    return this.tokenizer.decode(ids, options);
  }
}
