/**
 * The one-call API: load a BLIP-2 folder (processor, model, generation config) and caption, answer
 * questions or chat about images.
 *
 *   const blip2 = await Blip2.fromPretrained('/models/blip2-opt-2.7b', { dtype: 'f16' });
 *   const { text } = await blip2.caption('cat.jpg');
 *   const { text: answer } = await blip2.ask(image, 'what is the cat doing?', { num_beams: 5 });
 *
 * Prompts follow BLIP-2's formats: captioning has none, VQA is "Question: {q} Answer:", chat joins the past
 * turns as "Question: {q1} Answer: {a1}. Question: {q2} Answer:".
 */
import { HF_GENERATION_DEFAULTS, generationConfigFromJson, readGenerationConfigJson, type GenerationConfig, type GenerationOptions } from './generation/config.js';
import { resolveGenerationConfig } from './generation/generate.js';
import { StoppingCriteria } from './generation/stopping.js';
import type { FinishReason, OnToken } from './generation/types.js';
import { Blip2ForConditionalGeneration, type FromPretrainedOptions } from './model/blip2.js';
import type { ImageInput } from './processing/image-input.js';
import { Blip2Processor, type ProcessorOptions } from './processing/processor.js';
import { withModelStorage } from './platform/model-store/scope.js';
import { captionPrompt, chatPrompt, vqaPrompt, type ChatTurn } from './processing/prompts.js';
import { Tensor } from './tensor.js';

/**
 * New tokens at most when neither the call nor the checkpoint sets a length: HF's default max_length of 20
 * counts the prompt, which leaves a VQA prompt (43 ids for blip2-opt-2.7b) a single token.
 */
export const DEFAULT_MAX_NEW_TOKENS = 30;

export interface Blip2LoadOptions extends FromPretrainedOptions, ProcessorOptions {}

export interface TextOptions extends GenerationOptions {
  /** Called for every generated token with its text delta (greedy and sampling). */
  onToken?: OnToken;
}

export interface GenerationResult {
  /** The generated text: special tokens and the final eos dropped, cut before a stop string, trimmed. */
  text: string;
  /** The generated token ids (eos included when it ended the sequence). */
  token_ids: number[];
  finish_reason: FinishReason;
  /** Index of the image/prompt this result belongs to. */
  input: number;
  /** Beam search: the hypothesis score (sum of log-probs / length ** length_penalty). */
  score?: number;
}

export interface SingleResult extends GenerationResult {
  /** With num_return_sequences > 1: every returned sequence, best first (this result included). */
  alternatives?: GenerationResult[];
}

export interface BatchRequest extends TextOptions {
  /** One image or several. */
  images: ImageInput | readonly ImageInput[];
  /** Raw prompts (no template applied): none, one per image. Rows are left-padded. */
  prompts?: string | readonly string[];
}

export class Blip2 {
  constructor(
    readonly model: Blip2ForConditionalGeneration,
    readonly processor: Blip2Processor,
    /** The checkpoint's generation settings (generation_config.json over the model config). */
    readonly generationConfig: GenerationConfig,
  ) {}

  /**
   * Loads processor, weights (f16 by default where the device supports it) and generation config from a folder or
   * URL. In browsers a folder URL is kept in the origin's private file system, so the next load reads nothing
   * over the network (`cache`, docs/browser.md).
   */
  static async fromPretrained(dir: string, options: Blip2LoadOptions = {}): Promise<Blip2> {
    return withModelStorage(dir, options, async () => {
      const [processor, json] = await Promise.all([Blip2Processor.fromPretrained(dir, options), readGenerationConfigJson(dir)]);
      const model = await Blip2ForConditionalGeneration.fromPretrained(dir, options);
      return new Blip2(model, processor, generationConfigFromJson(json, model.config.text_config));
    });
  }

  /** A caption; `prompt` may start it ("a photo of"). */
  async caption(image: ImageInput, options: TextOptions & { prompt?: string } = {}): Promise<SingleResult> {
    const { prompt, ...rest } = options;
    return this.single(image, captionPrompt(prompt), rest);
  }

  /** Visual question answering with "Question: {q} Answer:". */
  async ask(image: ImageInput, question: string, options: TextOptions = {}): Promise<SingleResult> {
    return this.single(image, vqaPrompt(question), options);
  }

  /** A follow-up question, with the earlier turns in the prompt. */
  async chat(image: ImageInput, turns: readonly ChatTurn[], question: string, options: TextOptions = {}): Promise<SingleResult> {
    return this.single(image, chatPrompt(turns, question), options);
  }

  /** Several images (and prompts) at once; one result per image and returned sequence, in order. */
  async generate(request: BatchRequest): Promise<GenerationResult[]> {
    const { images, prompts, onToken, ...options } = request;
    const config = resolveGenerationConfig(this.generationConfig, withDefaultLength(options, this.generationConfig));
    const batch = await this.processor.process({ images, text: prompts });
    const pixel_values = Tensor.from(this.model.gpu, batch.pixelValues, batch.pixelShape);
    try {
      const out = await this.model.generate({
        pixel_values,
        input_ids: batch.inputIds,
        attention_mask: batch.attentionMask,
        generation_config: config,
        tokenizer: this.processor,
        onToken,
      });
      const texts = new StoppingCriteria(Infinity, config.eos_token_id, config.stop, this.processor);
      const perInput = out.new_tokens.length / batch.inputIds.length;
      return out.new_tokens.map((ids, row) => ({
        text: texts.text(ids).text.trim(),
        token_ids: ids,
        finish_reason: out.finish_reasons[row]!,
        input: Math.floor(row / perInput),
        ...(out.sequences_scores ? { score: out.sequences_scores[row]! } : {}),
      }));
    } finally {
      pixel_values.dispose();
    }
  }

  private async single(image: ImageInput, prompt: string, options: TextOptions): Promise<SingleResult> {
    const results = await this.generate({ ...options, images: [image], prompts: [prompt] });
    const best = results[0]!;
    return results.length > 1 ? { ...best, alternatives: results } : best;
  }

  /** Frees the weights. */
  dispose(): void {
    this.model.dispose();
  }
}

/** DEFAULT_MAX_NEW_TOKENS unless the call or the checkpoint's generation config sets a length. */
function withDefaultLength(options: GenerationOptions, checkpoint: GenerationConfig): GenerationOptions {
  const callSets = options.max_new_tokens !== undefined || options.max_length !== undefined;
  const checkpointSets = checkpoint.max_new_tokens !== null || checkpoint.max_length !== HF_GENERATION_DEFAULTS.max_length;
  return callSets || checkpointSets ? options : { ...options, max_new_tokens: DEFAULT_MAX_NEW_TOKENS };
}
