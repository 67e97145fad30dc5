/**
 * Which parameters train. BLIP-2's second stage trains the Q-Former, its query tokens and the language
 * projection, with the vision tower and the language model frozen; a researcher may train less (some Q-Former
 * layers, only the query tokens) or a module of their own.
 */
import type { Module, Parameter } from '../model/module.js';

export type ParameterSelection =
  /** qformer.*, query_tokens and language_projection.* (BLIP-2 stage 2, the fixtures' setting). */
  | 'qformer'
  /** Only the learned query tokens. */
  | 'query_tokens'
  /** Some Q-Former layers (by index), optionally with the query tokens and the projection. */
  | { qformerLayers: readonly number[]; queryTokens?: boolean; projection?: boolean }
  /** State-dict keys or key prefixes ending in '.' ("qformer.encoder.layer.11.", "language_projection."). */
  | readonly string[]
  | ((name: string) => boolean);

const STAGE2 = ['query_tokens', 'qformer.', 'language_projection.'];

/** The selection as a predicate over state-dict keys. */
export function selectionFilter(selection: ParameterSelection): (name: string) => boolean {
  if (typeof selection === 'function') return selection;
  const prefixes = (list: readonly string[]) => (name: string) => list.some((p) => (p.endsWith('.') ? name.startsWith(p) : name === p));
  if (selection === 'qformer') return prefixes(STAGE2);
  if (selection === 'query_tokens') return (name) => name === 'query_tokens';
  if (Array.isArray(selection)) return prefixes(selection as readonly string[]);
  const s = selection as { qformerLayers: readonly number[]; queryTokens?: boolean; projection?: boolean };
  const list = s.qformerLayers.map((i) => `qformer.encoder.layer.${i}.`);
  if (s.queryTokens) list.push('query_tokens');
  if (s.projection) list.push('language_projection.');
  return prefixes(list);
}

/**
 * Marks the selected parameters of `model` trainable and every other one frozen (f16 weights among the selected
 * are widened to f32); returns the trainable ones by key. Throws when the selection matches nothing.
 */
export function markTrainable(model: Module, selection: ParameterSelection): [string, Parameter][] {
  const keep = selectionFilter(selection);
  const chosen: [string, Parameter][] = [];
  for (const [name, p] of model.namedParameters()) {
    const on = keep(name);
    p.requires_grad = on;
    if (on) chosen.push([name, p]);
  }
  if (chosen.length === 0) throw new Error(`the trainable selection ${JSON.stringify(selection)} matches no parameter of the model`);
  return chosen;
}
