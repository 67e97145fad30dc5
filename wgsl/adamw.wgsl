// One AdamW step on one parameter tensor (torch.optim.AdamW's single-tensor algorithm, f32): with the
// gradient first multiplied by the clip coefficient (clip_grad_norm_, read from the device),
//   p = p * (1 - lr * wd)                              decoupled weight decay
//   m = m + (1 - beta1) * (g - m)                      (torch's lerp)
//   v = v * beta2 + (1 - beta2) * g * g
//   p = p - step_size * m / (sqrt(v) / bc2_sqrt + eps) step_size = lr / (1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t)
// in the order and with the intermediate roundings of torch's CPU code; the scalars are computed in double
// on the host and rounded to f32 once, as torch passes Python floats to f32 kernels.
// Defines: none.

struct Params {
  n: u32,
  p_off: u32,
  g_off: u32,
  m_off: u32,
  v_off: u32,
  c_off: u32,       // clip coefficient: coef[c_off]
  row_stride: u32,
  decay: f32,       // 1 - lr * weight_decay
  one_minus_beta1: f32,
  beta2: f32,
  one_minus_beta2: f32,
  neg_step_size: f32,
  bc2_sqrt: f32,
  eps: f32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> coef: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * p.row_stride;
  if (i >= p.n) { return; }
  let g = grad[p.g_off + i] * coef[p.c_off + 1u];
  let w = param[p.p_off + i] * p.decay;
  let m0 = m[p.m_off + i];
  let m1 = fma(p.one_minus_beta1, g - m0, m0);
  let v1 = v[p.v_off + i] * p.beta2 + p.one_minus_beta2 * g * g;
  let denom = sqrt(v1) / p.bc2_sqrt + p.eps;
  m[p.m_off + i] = m1;
  v[p.v_off + i] = v1;
  param[p.p_off + i] = w + p.neg_step_size * m1 / denom;
}
