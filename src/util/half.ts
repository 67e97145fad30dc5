/**
 * Bulk float conversions for weight loading (billions of values, so no per-element allocations).
 * Scalar reference behaviour is that of @petamoriken/float16; tests compare the two on every edge case.
 */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits of `x`, rounded to nearest even; NaN stays NaN (quiet), overflow gives Inf. */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  return bitsToHalf(u32[0]!);
}

function bitsToHalf(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  let u = bits & 0x7fffffff;
  if (u >= 0x47800000) {
    // |x| >= 65536, Inf or NaN: anything this large rounds to Inf.
    return u > 0x7f800000 ? sign | 0x7e00 | ((u >>> 13) & 0x3ff) : sign | 0x7c00;
  }
  if (u < 0x38800000) {
    // Subnormal half (or zero): let the FPU round by adding 0.5, whose ulp is the half subnormal step.
    u32[0] = u;
    f32[0] = f32[0]! + 0.5;
    return sign | (u32[0]! - 0x3f000000);
  }
  const mantOdd = (u >>> 13) & 1;
  // Rebias the exponent (127 -> 15) and round to nearest even on the 13 dropped bits.
  u = u - 0x37fff001 + mantOdd;
  return sign | (u >>> 13);
}

let halfTable: Float32Array | null = null;

function table(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) t[h] = s * m * 2 ** -24;
    else if (e === 31) t[h] = m ? NaN : s * Infinity;
    else t[h] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  halfTable = t;
  return t;
}

export function f16BitsToF32(h: number): number {
  return table()[h & 0xffff]!;
}

/** Float32 values to binary16 bits. */
export function f32ArrayToF16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) dst[i] = bitsToHalf(bits[i]!);
  return dst;
}

/** Binary16 bits to float32 values. */
export function f16ArrayToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const t = table();
  for (let i = 0; i < src.length; i++) dst[i] = t[src[i]!]!;
  return dst;
}

/** bfloat16 bits to float32 (exact: bf16 is the top half of an f32). */
export function bf16ArrayToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
  return dst;
}

/** bfloat16 bits straight to binary16 bits (one rounding, as f32 -> f16 would do). */
export function bf16ArrayToF16(src: Uint16Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) dst[i] = bitsToHalf(src[i]! << 16);
  return dst;
}
