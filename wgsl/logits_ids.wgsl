// Logits processors that touch listed token ids, in place on f32 logits [R, V], one invocation per list slot
// (ids i32 [R, n]; -1 and any id outside [0, V) are skipped).
// PENALTY: HF's repetition penalty, s < 0 ? s * penalty : s / penalty, once per distinct id: a slot defers to
// an earlier slot of its row holding the same id (lists are short: prompt plus generated tokens).
// Otherwise: logits[r, id] = value (banned n-grams, min_new_tokens' eos ban); duplicates write the same value.

struct Params {
  total: u32,   // R * n
  n: u32,
  width: u32,   // V
  logits_off: u32,
  ids_off: u32,
  row_stride: u32,
  value: f32,   // the penalty, or the value to set
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> logits: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * p.row_stride;
  if (i >= p.total) { return; }
  let id = ids[p.ids_off + i];
  if (id < 0 || u32(id) >= p.width) { return; }
  let row = i / p.n;
  let at = p.logits_off + row * p.width + u32(id);
#if PENALTY
  for (var j = row * p.n; j < i; j++) {
    if (ids[p.ids_off + j] == id) { return; }
  }
  let s = logits[at];
  logits[at] = select(s / p.value, s * p.value, s < 0.0);
#else
  logits[at] = p.value;
#endif
}
