import { Tokenizer } from '@huggingface/tokenizers';
import { ProcessorConfigError, readOptionalJson, readRequiredJson } from './config.js';

type Json = Record<string, unknown>;

function isObject(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** A special-token entry of tokenizer_config.json / special_tokens_map.json: a string or {content: ...}. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  return null;
}

export interface TokenizerFiles {
  /** tokenizer.json (required). */
  readonly tokenizer: unknown;
  readonly tokenizerConfig?: unknown;
  /** added_tokens.json: {"<image>": 50265} */
  readonly addedTokens?: unknown;
  readonly specialTokensMap?: unknown;
}

export interface DecodeOptions {
  /** Drop special tokens (`</s>`, `<pad>`, `<image>`, ...), like HF's `skip_special_tokens=True`. */
  readonly skipSpecialTokens?: boolean;
}

export const IMAGE_TOKEN = '<image>';

interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/**
 * The OPT / BLIP-2 tokenizer (byte-level BPE) on @huggingface/tokenizers, set up as transformers' GPT2Tokenizer
 * for OPT: `encode` prepends BOS `</s>` (the TemplateProcessing post-processor of tokenizer.json),
 * `<image>` is an added special token, pad is `<pad>`.
 */
export class Blip2Tokenizer {
  private constructor(
    private readonly tok: Tokenizer,
    private readonly specialIds: ReadonlySet<number>,
    readonly bosToken: string,
    readonly eosToken: string,
    readonly padToken: string,
    readonly unkToken: string,
    readonly imageToken: string,
    /** len(tokenizer) in HF terms: base vocab plus added tokens. */
    readonly size: number,
    private readonly cleanUpSpaces: boolean,
  ) {}

  /**
   * Builds the tokenizer from the parsed files. Added tokens named in added_tokens.json or in
   * tokenizer_config.json's added_tokens_decoder but missing from tokenizer.json are added (as HF does when it
   * loads such a folder); `<image>` is added with the next free id when the files lack it, as Blip2Processor does.
   */
  static fromFiles(files: TokenizerFiles): Blip2Tokenizer {
    if (!isObject(files.tokenizer) || !isObject(files.tokenizer.model)) {
      throw new ProcessorConfigError('tokenizer.json: not a tokenizers JSON file (no model)');
    }
    const tokenizerJson = structuredClone(files.tokenizer);
    const config: Json = isObject(files.tokenizerConfig) ? structuredClone(files.tokenizerConfig) : {};
    const specialMap: Json = isObject(files.specialTokensMap) ? files.specialTokensMap : {};
    const added: AddedTokenJson[] = Array.isArray(tokenizerJson.added_tokens) ? (tokenizerJson.added_tokens as AddedTokenJson[]) : [];
    tokenizerJson.added_tokens = added;
    const vocab = (tokenizerJson.model as Json).vocab;
    const vocabIds = isObject(vocab) ? Object.values(vocab).filter((v): v is number => typeof v === 'number') : [];
    const known = new Map<string, number>(added.map((t) => [t.content, t.id]));
    const maxId = () => Math.max(-1, ...vocabIds, ...added.map((t) => t.id));

    const addToken = (content: string, id: number, special: boolean, normalized: boolean) => {
      if (known.has(content)) return;
      added.push({ id, content, single_word: false, lstrip: false, rstrip: false, normalized, special });
      known.set(content, id);
    };
    if (isObject(config.added_tokens_decoder)) {
      for (const [id, v] of Object.entries(config.added_tokens_decoder)) {
        const content = tokenContent(v);
        if (content === null) continue;
        const entry = isObject(v) ? v : {};
        addToken(content, Number(id), entry.special !== false, entry.normalized === true);
      }
    }
    if (isObject(files.addedTokens)) {
      for (const [content, id] of Object.entries(files.addedTokens)) {
        if (typeof id === 'number') addToken(content, id, true, false);
      }
    }
    const pick = (key: string, fallback: string) => tokenContent(config[key]) ?? tokenContent(specialMap[key]) ?? fallback;
    const bosToken = pick('bos_token', '</s>');
    const eosToken = pick('eos_token', '</s>');
    const padToken = pick('pad_token', '<pad>');
    const unkToken = pick('unk_token', '</s>');
    const imageToken = tokenContent(config.image_token) ?? IMAGE_TOKEN;
    if (!known.has(imageToken) && !(isObject(vocab) && imageToken in vocab)) addToken(imageToken, maxId() + 1, true, false);
    // The library reads the special tokens from the config it is given.
    for (const [k, v] of [['bos_token', bosToken], ['eos_token', eosToken], ['pad_token', padToken], ['unk_token', unkToken]] as const) config[k] ??= v;
    delete config.added_tokens_decoder;

    const tok = new Tokenizer(tokenizerJson, config);
    const specialIds = new Set(added.filter((t) => t.special).map((t) => t.id));
    for (const t of [bosToken, eosToken, padToken, unkToken]) {
      const id = tok.token_to_id(t);
      if (id !== undefined) specialIds.add(id);
    }
    const cleanUp = config.clean_up_tokenization_spaces === true;
    return new Blip2Tokenizer(tok, specialIds, bosToken, eosToken, padToken, unkToken, imageToken, maxId() + 1, cleanUp);
  }

  /** Loads tokenizer.json (+ tokenizer_config.json, added_tokens.json, special_tokens_map.json) from a folder or URL. */
  static async fromPretrained(dir: string | URL): Promise<Blip2Tokenizer> {
    const [tokenizer, tokenizerConfig, addedTokens, specialTokensMap] = await Promise.all([
      readRequiredJson(dir, 'tokenizer.json'),
      readOptionalJson(dir, 'tokenizer_config.json'),
      readOptionalJson(dir, 'added_tokens.json'),
      readOptionalJson(dir, 'special_tokens_map.json'),
    ]);
    return Blip2Tokenizer.fromFiles({ tokenizer, tokenizerConfig, addedTokens, specialTokensMap });
  }

  private requireId(token: string): number {
    const id = this.tok.token_to_id(token);
    if (id === undefined) throw new ProcessorConfigError(`the tokenizer has no token ${JSON.stringify(token)}`);
    return id;
  }

  get bosTokenId(): number {
    return this.requireId(this.bosToken);
  }
  get eosTokenId(): number {
    return this.requireId(this.eosToken);
  }
  get padTokenId(): number {
    return this.requireId(this.padToken);
  }
  get imageTokenId(): number {
    return this.requireId(this.imageToken);
  }

  /** Token ids of `text`; with special tokens (the default) BOS comes first, as HF's `tokenizer(text)`. */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tok.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  /** The token strings of `text` (with BOS unless `addSpecialTokens` is false). */
  tokenize(text: string, options: { addSpecialTokens?: boolean } = {}): string[] {
    return this.tok.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).tokens;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0) throw new RangeError(`decode: invalid token id ${id}`);
    }
    // Ids past the tokenizer (e.g. the padding rows 50266..50303 of OPT's embedding) decode to nothing, as in HF.
    const known = ids.filter((id) => this.tok.id_to_token(id) !== undefined);
    const kept = (options.skipSpecialTokens ?? false) ? known.filter((id) => !this.specialIds.has(id)) : known;
    if (kept.length === 0) return ''; // the library refuses an empty list
    return this.tok.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: this.cleanUpSpaces });
  }

  /** HF's `batch_decode`. */
  batchDecode(batch: readonly (readonly number[])[], options: DecodeOptions = {}): string[] {
    return batch.map((ids) => this.decode(ids, options));
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }
}
