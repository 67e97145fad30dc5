// exp(x) in f32 with a tighter error than lavapipe's builtin where softmax weights live, for the kernels that
// must track PyTorch's f32 results (attention, GELU). Included with `#include exp_common`.
// Measured on lavapipe against float64: for |x| <= 1 at most 8.5e-8 relative (the builtin: 2.8e-7); for
// x in [-20, 0] about 1.1e-6 for both, because the compiler may fold the two-part reduction below into one
// product (terms that small weigh little in a softmax). With it the fixture's projected image features
// stay within the 1e-4 that the parity test asks.
// Method: x = k ln2 + r with k = round(x / ln2) and ln2 split in two parts (Cody-Waite), |r| <= ln2 / 2;
// exp(r) by its Taylor series to r^7 (truncation below 1e-8 relative); exp(x) = 2^k exp(r). Below -104,
// where exp(x) is under half the smallest subnormal, the result is exactly 0 (masked attention scores rely
// on that); above 88.72 it saturates near the largest float (callers take exp of values <= 0 or bounded).

fn exp_precise(x: f32) -> f32 {
  let xc = clamp(x, -104.0, 88.72284);
  let k = round(xc * 1.44269504);
  let r = fma(k, -1.42860677e-6, fma(k, -0.693145752, xc));
  var p = fma(r, 1.98412698e-4, 1.38888889e-3);
  p = fma(r, p, 8.33333333e-3);
  p = fma(r, p, 4.16666667e-2);
  p = fma(r, p, 1.66666667e-1);
  p = fma(r, p, 0.5);
  p = fma(r, p, 1.0);
  p = fma(r, p, 1.0);
  // 2^k in two steps: alone it overflows f32 for k = 128 and underflows below -126.
  let h = i32(k) / 2;
  return select(ldexp(ldexp(p, h), i32(k) - h), 0.0, x < -104.0);
}
