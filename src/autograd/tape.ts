/**
 * Reverse-mode automatic differentiation over the engine's kernels, in the manner of PyTorch's autograd: while
 * grad mode is on, every differentiable op (src/autograd/functional.ts) whose input depends on a trainable
 * Parameter records a node (its inputs, outputs, what it saved, and how to turn its outputs' gradients into its
 * inputs'); views of recorded tensors (reshape, rows) are followed through a hook in tensor.ts. `backward()`
 * walks the nodes in reverse order of recording, adds each Parameter's gradient into `param.grad`, and frees
 * what the nodes saved. Inference never records: nothing requires a gradient until a Parameter asks for one.
 *
 * Saved tensors are extra handles on the same GPU storage (tidy() frees the forward's own handles as usual), so
 * a recorded graph holds exactly the activations its backward pass reads; `freeGraph()` drops a graph that will
 * not be differentiated. `checkpoint()` trades memory for time by recomputing a block in the backward pass.
 */
import { add } from '../kernels/elementwise.js';
import { copy } from '../kernels/copy.js';
import { zeros } from '../kernels/fill.js';
import { keep, setAutogradHooks, Tensor, tidy } from '../tensor.js';
import { getRngState, setRngState } from './random.js';

/** A trainable leaf (a Parameter registers its tensor while requires_grad is on). */
export interface GradLeaf {
  grad: Tensor | null;
  readonly requires_grad: boolean;
  /** For error messages. */
  readonly shape: readonly number[];
}

/** Turns the gradients of a node's outputs (null: none reached it) into those of its inputs (null: none). */
export type BackwardFn = (gradOutputs: (Tensor | null)[]) => (Tensor | null)[];

interface Node {
  seq: number;
  name: string;
  inputs: Tensor[];
  outputs: Tensor[];
  backward: BackwardFn;
  saved: Tensor[];
  freed: boolean;
}

const leaves = new WeakMap<Tensor, GradLeaf>();
const producer = new WeakMap<Tensor, Node>();
/** Inputs of a recomputed block (checkpoint): their gradients are collected here, not passed on. */
const sinks = new Map<Tensor, { grad: Tensor | null }>();
const live = new Set<Node>();
let nextSeq = 0;
let gradEnabled = true;
let paused = 0;

export function registerLeaf(t: Tensor, leaf: GradLeaf): void {
  leaves.set(t, leaf);
}

export function unregisterLeaf(t: Tensor): void {
  leaves.delete(t);
}

/** Whether `t` depends on a trainable parameter through recorded ops (or is one). */
export function requiresGrad(t: Tensor): boolean {
  return producer.has(t) || sinks.has(t) || (leaves.get(t)?.requires_grad ?? false);
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

function withMode<T>(enabled: boolean, fn: () => T): T {
  const before = gradEnabled;
  gradEnabled = enabled;
  try {
    const r = fn();
    if (r instanceof Promise) throw new Error('noGrad/enableGrad take a synchronous function');
    return r;
  } finally {
    gradEnabled = before;
  }
}

/** Runs `fn` without recording anything (torch.no_grad): evaluation, generation. */
export function noGrad<T>(fn: () => T): T {
  return withMode(false, fn);
}

/**
 * noGrad for an async function: nothing records until its promise settles (generation awaits between steps,
 * where a synchronous scope would already have ended). Other work that runs meanwhile does not record either.
 */
export async function noGradAsync<T>(fn: () => Promise<T>): Promise<T> {
  asyncHolds++;
  try {
    return await fn();
  } finally {
    asyncHolds--;
  }
}
let asyncHolds = 0;

/** Runs `fn` with recording on (torch.enable_grad), e.g. inside a noGrad region. */
export function enableGrad<T>(fn: () => T): T {
  return withMode(true, fn);
}

/** Whether an op on these inputs must record itself. */
export function recording(...inputs: (Tensor | null | undefined)[]): boolean {
  if (!gradEnabled || paused > 0 || asyncHolds > 0) return false;
  return inputs.some((t) => t instanceof Tensor && requiresGrad(t));
}

/** Runs an op's own kernels: the views they make of its inputs are not recorded. */
export function untracked<T>(fn: () => T): T {
  paused++;
  try {
    return fn();
  } finally {
    paused--;
  }
}

/** A handle on `t` that outlives the forward's tidy() scopes, for a node to read in the backward pass. */
export function save(t: Tensor): Tensor {
  return keep(untracked(() => t.ref()));
}

/**
 * Records a node. `saved` are handles from save(), freed with the node. An output that already has a producer
 * would be an in-place change of a recorded tensor, which this engine (like torch) refuses.
 */
export function record(name: string, inputs: Tensor[], outputs: Tensor[], backward: BackwardFn, saved: Tensor[] = []): void {
  const node: Node = { seq: nextSeq++, name, inputs, outputs, backward, saved, freed: false };
  for (const o of outputs) {
    if (producer.has(o) || leaves.get(o)?.requires_grad) {
      for (const s of saved) s.dispose();
      throw new Error(`${name}: cannot write in place into a tensor that requires a gradient`);
    }
    producer.set(o, node);
  }
  live.add(node);
}

function freeNode(n: Node): void {
  if (n.freed) return;
  n.freed = true;
  for (const s of n.saved) s.dispose();
  n.saved = [];
  live.delete(n);
}

/** Frees every recorded graph (what its nodes saved): after a forward pass that will not be differentiated. */
export function freeGraph(): void {
  for (const n of [...live]) freeNode(n);
}

/** Nodes recorded and not yet freed, and the bytes their saved tensors hold (tests look for leaks). */
export function graphStats(): { nodes: number; savedTensors: number } {
  let saved = 0;
  for (const n of live) saved += n.saved.length;
  return { nodes: live.size, savedTensors: saved };
}

/** A view on which a sub-graph starts, whose gradient is collected (checkpoint). */
function detach(t: Tensor): Tensor {
  const d = keep(untracked(() => t.ref()));
  sinks.set(d, { grad: null });
  return d;
}

/** Adds g into `slot` (a grad that may be null), consuming g. Gradients are f32 and shaped like their tensor. */
function accumulated(slot: Tensor | null, g: Tensor, like: readonly number[]): Tensor {
  const shaped = g.shape.length === like.length && g.shape.every((d, i) => d === like[i]) ? g : untracked(() => g.reshape(like));
  if (shaped !== g) g.dispose();
  if (!slot) return keep(shaped);
  const sum = keep(untracked(() => add(slot, shaped)));
  slot.dispose();
  shaped.dispose();
  return sum;
}

function reachable(roots: Tensor[]): Node[] {
  const seen = new Set<Node>();
  const stack = roots.map((r) => producer.get(r)).filter((n): n is Node => n !== undefined);
  while (stack.length) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    if (n.freed) {
      throw new Error(
        `backward: the graph through '${n.name}' was already freed (by an earlier backward() or freeGraph()); run the forward pass again`,
      );
    }
    seen.add(n);
    for (const i of n.inputs) {
      const p = producer.get(i);
      if (p && !seen.has(p)) stack.push(p);
    }
  }
  return [...seen].sort((a, b) => b.seq - a.seq);
}

/** The engine: from `roots` with gradients `seeds` (consumed) back to the leaves and sinks. */
function runBackward(roots: Tensor[], seeds: Tensor[]): void {
  const nodes = reachable(roots);
  const grads = new Map<Tensor, Tensor>();
  const give = (t: Tensor, g: Tensor): void => {
    const leaf = leaves.get(t);
    if (leaf?.requires_grad) {
      leaf.grad = accumulated(leaf.grad, g, leaf.shape);
      return;
    }
    const sink = sinks.get(t);
    if (sink) {
      sink.grad = accumulated(sink.grad, g, t.shape);
      return;
    }
    if (!producer.has(t)) {
      g.dispose();
      return;
    }
    grads.set(t, accumulated(grads.get(t) ?? null, g, t.shape));
  };
  roots.forEach((r, i) => give(r, seeds[i]!));
  try {
    noGrad(() => {
      for (const n of nodes) {
        const gouts = n.outputs.map((o) => {
          const g = grads.get(o) ?? null;
          grads.delete(o);
          return g;
        });
        if (gouts.every((g) => g === null)) {
          freeNode(n);
          continue;
        }
        let gins: (Tensor | null)[];
        try {
          gins = tidy(() => n.backward(gouts));
        } catch (e) {
          for (const g of gouts) g?.dispose();
          throw e;
        }
        // A backward may pass an output's gradient straight through, or give one tensor to two inputs: every
        // input gets its own handle before the outputs' handles go.
        const taken = new Set<Tensor>(gouts.filter((g): g is Tensor => g !== null));
        gins = gins.map((g) => {
          if (!g) return null;
          if (taken.has(g)) return keep(g.ref());
          taken.add(g);
          return g;
        });
        for (const g of gouts) g?.dispose();
        n.inputs.forEach((input, i) => {
          const g = gins[i];
          if (g) give(input, g);
        });
        freeNode(n);
      }
    });
  } finally {
    for (const g of grads.values()) g.dispose();
  }
}

function backwardFrom(root: Tensor, grad?: Tensor): void {
  if (!requiresGrad(root)) {
    throw new Error('backward: this tensor does not depend on any parameter with requires_grad (mark some trainable, and do not run the forward pass under noGrad)');
  }
  let seed: Tensor;
  if (grad) {
    if (grad.size !== root.size) throw new RangeError(`backward: grad ${grad} does not match ${root}`);
    seed = keep(untracked(() => grad.ref()));
  } else {
    if (root.size !== 1) throw new RangeError(`backward: ${root} is not a single value; pass its gradient`);
    seed = keep(untracked(() => zeros(root.gpu, [1])));
    untracked(() => seed.write([1]));
  }
  runBackward([root], [seed]);
}

function onView(source: Tensor, view: Tensor, elementOffset: number): void {
  if (!gradEnabled || paused > 0 || asyncHolds > 0 || !requiresGrad(source)) return;
  const sourceShape = [...source.shape];
  const whole = elementOffset === 0 && view.size === source.size;
  record(`view(${source})`, [source], [view], ([g]) => {
    if (whole) return [g!.reshape(sourceShape)];
    const z = zeros(g!.gpu, sourceShape);
    copy(g!, z.reshape([z.size]).rows(elementOffset, view.size));
    return [z];
  });
}

setAutogradHooks({ onView, backward: backwardFrom });

/**
 * Runs fn(...inputs) without keeping its activations, and runs it again during backward() to differentiate it
 * (torch.utils.checkpoint): memory for time. fn must be deterministic (dropout takes its seed from outside)
 * and return one tensor.
 */
export function checkpoint(fn: (...xs: Tensor[]) => Tensor, ...inputs: Tensor[]): Tensor {
  if (!gradEnabled || paused > 0 || asyncHolds > 0) return fn(...inputs);
  // The recomputation replays the dropout stream from where this forward pass took it.
  const rng = getRngState();
  const out = noGrad(() => fn(...inputs));
  const needs = inputs.map(requiresGrad);
  const saved = inputs.map(save);
  const node = (gouts: (Tensor | null)[]): (Tensor | null)[] => {
    const mark = nextSeq;
    const detached = saved.map((t, i) => (needs[i] ? detach(t) : keep(untracked(() => t.ref()))));
    const rngNow = getRngState();
    setRngState(rng);
    try {
      enableGrad(() => {
        const again = tidy(() => keep(fn(...detached)));
        if (requiresGrad(again)) runBackward([again], [keep(gouts[0]!.ref())]);
        again.dispose();
      });
      return detached.map((d) => {
        const g = sinks.get(d)?.grad ?? null;
        return g;
      });
    } finally {
      setRngState(rngNow);
      for (const d of detached) {
        sinks.delete(d);
        d.dispose();
      }
      // Nodes of the recomputation that the gradient did not reach (nothing to read them later).
      for (const n of [...live]) if (n.seq >= mark) freeNode(n);
    }
  };
  record('checkpoint', inputs, [out], node, saved);
  return out;
}
