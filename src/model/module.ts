import { registerLeaf, unregisterLeaf } from '../autograd/tape.js';
import { cast } from '../kernels/copy.js';
import { QuantizedTensor, type Weight } from '../quant/quantized-tensor.js';
import { keep, type Tensor } from '../tensor.js';

/**
 * How a parameter is stored on the GPU: `matmul` weights (linear, conv, embedding tables) follow the model's
 * dtype (f16 by default); `fp32` ones (biases, LayerNorms, positions, query tokens, and everything HF keeps
 * in fp32 such as the Q-Former) stay float32.
 */
export type ParameterRole = 'matmul' | 'fp32';

/**
 * A named slot for a weight; filled by the loader. It holds a float tensor, or for the Linear weights of a
 * quantized model (src/quant/) a QuantizedTensor: `data` gives either, `value` only a float tensor. Like
 * torch's nn.Parameter a float one can be trainable: with `requires_grad` on, `backward()` adds its gradient
 * (f32, of its shape) into `grad`.
 */
export class Parameter {
  #data: Weight | null = null;
  #requiresGrad = false;
  /** The accumulated gradient (f32), or null; zero_grad() (or the optimizer's zeroGrad) clears it. */
  grad: Tensor | null = null;

  constructor(
    readonly shape: readonly number[],
    public role: ParameterRole = 'fp32',
  ) {}

  /** The float tensor (null when not loaded or quantized). Assigning replaces whatever was held (without disposing it). */
  get tensor(): Tensor | null {
    return this.#data instanceof QuantizedTensor ? null : this.#data;
  }
  set tensor(t: Tensor | null) {
    const held = this.tensor;
    if (held) unregisterLeaf(held);
    this.#data = t;
    if (t && this.#requiresGrad) registerLeaf(t, this);
  }

  /** The quantized weight (null when not loaded or float). Assigning replaces whatever was held. */
  get quantized(): QuantizedTensor | null {
    return this.#data instanceof QuantizedTensor ? this.#data : null;
  }
  set quantized(q: QuantizedTensor | null) {
    if (q && this.#requiresGrad) throw new Error(`parameter of shape [${this.shape.join(', ')}] is trainable: it cannot hold quantized weights`);
    const held = this.tensor;
    if (held) unregisterLeaf(held);
    this.#data = q;
  }

  /** What is held, float or quantized, or null. */
  get loaded(): Weight | null {
    return this.#data;
  }

  /** What is held, float or quantized (what `linear` takes). */
  get data(): Weight {
    if (!this.#data) throw new Error(`parameter of shape [${this.shape.join(', ')}] is not loaded`);
    return this.#data;
  }

  /** The float tensor; a quantized parameter throws (read `data`, or load the model without quantization). */
  get value(): Tensor {
    const d = this.data;
    if (d instanceof QuantizedTensor) throw new Error(`parameter of shape [${this.shape.join(', ')}] is quantized (${d}); its float values are not kept`);
    return d;
  }

  get requires_grad(): boolean {
    return this.#requiresGrad;
  }

  /**
   * Trainable parameters are kept in f32 (master copies): an f16 weight is widened when marked (load it with
   * `fromPretrained(dir, { trainable })` to start from the checkpoint's own f32 values instead). Quantized
   * weights cannot train: they stay frozen (load the model with those weights trainable to get f32 copies).
   */
  set requires_grad(on: boolean) {
    if (on && this.#data instanceof QuantizedTensor) {
      throw new Error(`parameter of shape [${this.shape.join(', ')}] is quantized (${this.#data}): it can only be frozen (list it in fromPretrained's trainable selection to load it as f32)`);
    }
    this.#requiresGrad = on;
    const t = this.tensor;
    if (on && t && t.dtype === 'f16') {
      this.role = 'fp32';
      const wide = keep(cast(t, 'f32'));
      t.dispose();
      this.tensor = wide;
      return;
    }
    if (t) {
      if (on) registerLeaf(t, this);
      else unregisterLeaf(t);
    }
  }

  /** Drops the gradient (torch's zero_grad(set_to_none=True)). */
  zero_grad(): void {
    this.grad?.dispose();
    this.grad = null;
  }

  dispose(): void {
    this.zero_grad();
    const held = this.#data;
    this.tensor = null;
    held?.dispose();
  }
}

export type ForwardHook<A extends unknown[], O> = (module: Module<A, O>, args: A, output: O) => O | void;
export type ForwardPreHook<A extends unknown[], O> = (module: Module<A, O>, args: A) => A | void;

export interface HookHandle {
  remove(): void;
}

/**
 * The counterpart of torch.nn.Module. Submodules and parameters are the object's own properties, so their
 * dotted attribute paths are the state-dict keys (`qformer.encoder.layer.0.attention.attention.query.weight`)
 * and can never drift from the checkpoint. Properties set to null (a layer without cross-attention) are skipped.
 * Call modules with `call(...)`, which runs the forward hooks around `forward(...)`.
 */
export abstract class Module<A extends unknown[] = unknown[], O = unknown> {
  // Stored type-erased so that Module<A, O> stays assignable to Module (hooks are typed at registration).
  #preHooks = new Map<number, (m: unknown, a: unknown) => unknown>();
  #hooks = new Map<number, (m: unknown, a: unknown, o: unknown) => unknown>();
  static #nextHookId = 0;

  abstract forward(...args: A): O;

  call(...args: A): O {
    let a = args;
    for (const h of this.#preHooks.values()) {
      const r = h(this, a);
      if (r !== undefined) a = r as A;
    }
    let out = this.forward(...a);
    for (const h of this.#hooks.values()) {
      const r = h(this, a, out);
      if (r !== undefined) out = r as O;
    }
    return out;
  }

  /** `hook(module, args, output)` runs after forward; returning a value replaces the output. */
  registerForwardHook(hook: ForwardHook<A, O>): HookHandle {
    const id = Module.#nextHookId++;
    this.#hooks.set(id, hook as (m: unknown, a: unknown, o: unknown) => unknown);
    return { remove: () => this.#hooks.delete(id) };
  }

  /** `hook(module, args)` runs before forward; returning an array replaces the arguments. */
  registerForwardPreHook(hook: ForwardPreHook<A, O>): HookHandle {
    const id = Module.#nextHookId++;
    this.#preHooks.set(id, hook as (m: unknown, a: unknown) => unknown);
    return { remove: () => this.#preHooks.delete(id) };
  }

  /** Whether this module or any submodule has a forward hook or pre-hook (decoding then runs every step anew). */
  hasForwardHooks(): boolean {
    for (const [, m] of this.namedModules()) if (m.#hooks.size > 0 || m.#preHooks.size > 0) return true;
    return false;
  }

  namedChildren(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [k, v] of Object.entries(this)) if (v instanceof Module) out.push([k, v]);
    return out;
  }

  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [k, m] of this.namedChildren()) yield* m.namedModules(prefix ? `${prefix}.${k}` : k);
  }

  /** Every parameter with its state-dict key; a parameter shared by two modules (tied weights) appears once. */
  namedParameters(prefix = ''): [string, Parameter][] {
    const seen = new Set<Parameter>();
    const out: [string, Parameter][] = [];
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [k, v] of Object.entries(m)) {
        if (v instanceof Parameter && !seen.has(v)) {
          seen.add(v);
          out.push([path ? `${path}.${k}` : k, v]);
        }
      }
    }
    return out;
  }

  /** The submodule at a dotted path (`encoder.layer.3`). */
  getSubmodule(path: string): Module {
    let m: Module = this;
    for (const part of path.split('.').filter((p) => p.length)) {
      const next = (m as unknown as Record<string, unknown>)[part];
      if (!(next instanceof Module)) throw new Error(`no submodule '${part}' in '${path}'`);
      m = next;
    }
    return m;
  }

  /** Replaces the submodule at a dotted path (swap a layer for an experiment). */
  setSubmodule(path: string, module: Module): void {
    const parts = path.split('.');
    const last = parts.pop()!;
    const parent = this.getSubmodule(parts.join('.')) as unknown as Record<string, unknown>;
    if (!(parent[last] instanceof Module)) throw new Error(`no submodule at '${path}'`);
    parent[last] = module;
  }

  /** Dropout and other train-only behaviour (torch's module.training); HF models load in eval mode. */
  training = false;

  /** Sets training mode here and in every submodule (torch's train()); returns this. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  /** train(false). */
  eval(): this {
    return this.train(false);
  }

  /** Marks every parameter of this module (and its submodules) trainable or frozen; returns this. */
  requires_grad_(on = true): this {
    for (const [, p] of this.namedParameters()) p.requires_grad = on;
    return this;
  }

  /** The parameters with requires_grad on, by state-dict key. */
  trainableParameters(prefix = ''): [string, Parameter][] {
    return this.namedParameters(prefix).filter(([, p]) => p.requires_grad);
  }

  /** Drops every parameter's gradient. */
  zero_grad(): void {
    for (const [, p] of this.namedParameters()) p.zero_grad();
  }

  /** Frees every parameter's GPU memory (and whatever a submodule holds besides, through its own dispose()). */
  dispose(): void {
    for (const [, m] of this.namedChildren()) m.dispose();
    for (const v of Object.values(this)) if (v instanceof Parameter) v.dispose();
  }
}

/** A list of modules whose keys are their indices (`layers.0`, `layers.1`, ...), like nn.ModuleList. */
export class ModuleList<M extends Module> extends Module<never[], never> {
  constructor(items: M[]) {
    super();
    items.forEach((m, i) => {
      (this as unknown as Record<string, M>)[String(i)] = m;
    });
    Object.defineProperty(this, 'length', { value: items.length, enumerable: false, writable: true });
  }
  declare readonly length: number;

  at(i: number): M {
    const m = (this as unknown as Record<string, M | undefined>)[String(i)];
    if (!m) throw new RangeError(`ModuleList index ${i} out of range (${this.length})`);
    return m;
  }

  set(i: number, m: M): void {
    if (i < 0 || i >= this.length) throw new RangeError(`ModuleList index ${i} out of range (${this.length})`);
    (this as unknown as Record<string, M>)[String(i)] = m;
  }

  *[Symbol.iterator](): Iterator<M> {
    for (let i = 0; i < this.length; i++) yield this.at(i);
  }

  forward(): never {
    throw new Error('ModuleList is a container; call its items');
  }
}
