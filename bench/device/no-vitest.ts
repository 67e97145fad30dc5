// The device kit bundles test/support's parity helpers (bench/device/parity.ts), whose modules also hold the
// suite's assertions; the GPU machine has no vitest, so build.mjs resolves 'vitest' here. The kit never asserts
// through it, and a call that did would say so instead of failing at import.
export function expect(): never {
  throw new Error("vitest's expect is not available in the device kit (bench/device/parity.ts reports through its own checks)");
}
