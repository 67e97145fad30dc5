/**
 * Waiting for a WebGPU promise of Dawn's Node binding without its busy loop (Node only).
 *
 * dawn.node settles WebGPU promises (mapAsync, onSubmittedWorkDone) by processing the device's events from a
 * `setImmediate` callback that queues itself again for as long as any promise is pending: while the GPU works,
 * the JavaScript thread polls in a busy loop. On a software adapter the GPU *is* the CPU, and the loop competes
 * with the driver's workers: on the 2-core lavapipe machine it took 25 % of a core over a wait for matmuls
 * (6 % with this function; test/gpu/quiet-wait.test.ts), and the full-size decode step replayed interleaved went
 * from 606 to 499 ms with q4 weights and from 953 to 914 ms with f16 (docs/quantization.md): more than the CPU
 * the loop takes would explain (each poll calls into the driver; which part costs was not isolated).
 *
 * `quietWait` sleeps the thread in short `Atomics.wait` slices between event-loop turns, so every turn still runs
 * one of Dawn's polls (the promise settles at most one slice late) but the thread no longer burns a core. The
 * slices start at 50 µs and double up to 1 ms: short waits stay short, a one-second decode step costs about a
 * thousand polls instead of millions. The event loop is blocked during a slice (at most 1 ms at a time).
 */

/** Slices of sleep between polls, in ms: from the first to the longest. */
const FIRST_SLICE_MS = 0.05;
const LONGEST_SLICE_MS = 1;

const cell = new Int32Array(new SharedArrayBuffer(4));

export async function quietWait<T>(promise: Promise<T>): Promise<T> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let slice = FIRST_SLICE_MS; !settled; slice = Math.min(slice * 2, LONGEST_SLICE_MS)) {
    // Nothing ever notifies the cell: this is a sleep that keeps the thread off the CPU.
    Atomics.wait(cell, 0, 0, slice);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return promise;
}
