/**
 * Waiting for a WebGPU promise of Dawn's Node binding without its busy loop (Node only).
 *
 * dawn.node settles WebGPU promises (mapAsync, onSubmittedWorkDone) by processing the device's events from a
 * `setImmediate` callback that queues itself again for as long as any promise is pending: while the GPU works,
 * the JavaScript thread spins at 100 % of a core. On a software adapter the GPU *is* the CPU: on a 2-core machine
 * (lavapipe) `top -H` showed the main thread at 99.9 % during a replayed decode step, beside lavapipe's workers,
 * which therefore had one core's worth between them, not two.
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
