/**
 * Runs a synchronous call with file descriptor 2 pointed at /dev/null, for native code that writes to stderr
 * directly: Dawn's Vulkan backend prints "maxDynamicUniformBuffersPerPipelineLayout artificially reduced from
 * 1000000 to 16 ..." (and the storage-buffer twin) with fprintf while it first enumerates adapters. Measured with
 * webgpu 0.6.2 on lavapipe: the lines come from inside the first `requestAdapter()` call of a process,
 * synchronously, before any device or limit is requested, so asking for fewer limits cannot avoid them, and no
 * Dawn toggle or callback reaches them. The first call is made in here; later calls print nothing.
 *
 * Node cannot dup2, so fd 2 is closed and reopened: /dev/null takes the lowest free descriptor (2) and the
 * original is reopened through /proc/self/fd afterwards. That is only done where it is safe:
 * - Linux only (/proc/self/fd), and only when fd 2 is a terminal or a pipe. A regular file is left alone: a
 *   reopened description would have its own offset and overwrite what stdout writes to the same file (`>log 2>&1`);
 *   sockets cannot be reopened through /proc.
 * - The caller runs it while it has no other I/O in flight (the CLI, before the model load starts): another
 *   thread that opened a file in the microseconds between a close and the next open would get descriptor 2.
 *   The descriptors are checked, so that nothing that is not ours is ever closed.
 * Anything unexpected (no /proc, no /dev/null) falls back to running the call with stderr as it is.
 */
import { closeSync, constants, fstatSync, openSync } from 'node:fs';

function redirectable(): boolean {
  if (process.platform !== 'linux') return false;
  try {
    const st = fstatSync(2);
    return st.isCharacterDevice() || st.isFIFO();
  } catch {
    return false;
  }
}

export function withNativeStderrSilenced<T>(call: () => T): T {
  if (!redirectable()) return call();
  let saved: number;
  try {
    // Non-blocking, so that a pipe whose reader is gone fails (ENXIO) instead of blocking the open.
    saved = openSync('/proc/self/fd/2', constants.O_WRONLY | constants.O_NONBLOCK);
  } catch {
    return call();
  }
  let silenced = false;
  try {
    closeSync(2);
    const devNull = openSync('/dev/null', constants.O_WRONLY);
    silenced = devNull === 2;
    if (!silenced) closeSync(devNull);
    return call();
  } finally {
    if (silenced) closeSync(2);
    // The original again, blocking as stderr was: the lowest free descriptor is 2 again.
    const restored = openSync(`/proc/self/fd/${saved}`, constants.O_WRONLY);
    if (restored !== 2) closeSync(restored);
    closeSync(saved);
  }
}
