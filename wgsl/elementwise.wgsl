// Elementwise ops: y = a + b, a * b (b same size as a, or broadcast with period b_len), a * scalar, gelu(a),
// relu(a), and the gradients of the last two: b * gelu'(a) (a the pre-activation) and b * [a > 0] (a the
// ReLU's output, as torch's threshold_backward). Math in f32 whatever the storage type.
// Defines: OP_ADD | OP_MUL | OP_MUL_SCALAR | OP_GELU | OP_RELU | OP_GELU_BACKWARD | OP_RELU_BACKWARD; HAS_B (a second tensor operand);
// A, B, Y (storage types, e.g. f32, vec4<f16>); F (f32 or vec4<f32>, the compute type matching the width).
// With vec4 types every index, offset and length below counts vec4s.

struct Params {
  n: u32,
  a_off: u32,
  b_off: u32,
  y_off: u32,
  b_len: u32,
  row_stride: u32,
  scalar: f32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<${A}>;
#if HAS_B
@group(0) @binding(2) var<storage, read> b: array<${B}>;
@group(0) @binding(3) var<storage, read_write> y: array<${Y}>;
#else
@group(0) @binding(2) var<storage, read_write> y: array<${Y}>;
#endif

// erf to about 1e-7 absolute (WGSL has none). Coefficients are our own least-squares fits (relative error):
// |x| < 0.8: x * P(x^2); above: 1 - exp(-x^2) * Q(t), t = 1 / (1 + x/2), with x clamped at 4 where
// erf is 1 to within f32 rounding. Both branches are computed so that vec4 lanes need no divergence.
fn erf_approx(v: ${F}) -> ${F} {
  let x = abs(v);
  let x2 = x * x;
  var s = ${F}(9.18752849e-05);
  s = s * x2 + ${F}(-0.000831108016);
  s = s * x2 + ${F}(0.00521404902);
  s = s * x2 + ${F}(-0.0268640369);
  s = s * x2 + ${F}(0.112837702);
  s = s * x2 + ${F}(-0.376126379);
  s = s * x2 + ${F}(1.12837923);
  let small = x * s;
  let c = min(x, ${F}(4.0));
  let t = ${F}(1.0) / (${F}(1.0) + ${F}(0.5) * c);
  var q = ${F}(0.00238903053);
  q = q * t + ${F}(0.109811872);
  q = q * t + ${F}(-0.454733729);
  q = q * t + ${F}(0.547207236);
  q = q * t + ${F}(-0.0939287096);
  q = q * t + ${F}(0.344106436);
  q = q * t + ${F}(0.26056084);
  q = q * t + ${F}(0.284795731);
  q = q * t + ${F}(-0.000147404353);
  let large = ${F}(1.0) - exp(-c * c) * q;
  return sign(v) * select(large, small, x < ${F}(0.8));
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * p.row_stride;
  if (i >= p.n) { return; }
  let x = ${F}(a[p.a_off + i]);
#if OP_ADD
  let r = x + ${F}(b[p.b_off + i % p.b_len]);
#elif OP_MUL
  let r = x * ${F}(b[p.b_off + i % p.b_len]);
#elif OP_MUL_SCALAR
  let r = x * p.scalar;
#elif OP_GELU
  let r = ${F}(0.5) * x * (${F}(1.0) + erf_approx(x * ${F}(0.7071067811865476)));
#elif OP_RELU
  // select keeps NaN (x < 0 is false), as torch.relu does.
  let r = select(x, ${F}(0.0), x < ${F}(0.0));
#elif OP_GELU_BACKWARD
  // torch's gelu_backward (approximate='none'): dy * (Phi(x) + x phi(x)), phi the standard normal density.
  let cdf = ${F}(0.5) * (${F}(1.0) + erf_approx(x * ${F}(0.7071067811865476)));
  let pdf = exp(${F}(-0.5) * x * x) * ${F}(0.3989422804014327);
  let r = ${F}(b[p.b_off + i % p.b_len]) * (cdf + x * pdf);
#elif OP_RELU_BACKWARD
  let r = select(${F}(0.0), ${F}(b[p.b_off + i % p.b_len]), x > ${F}(0.0));
#endif
  y[p.y_off + i] = ${Y}(r);
}
