// Small kernels that move a decode batch's state (decode_common) between steps, so the host never has to:
//   commit: after a step's forward, every row's position and cache length move one on.
//   pick:   greedy choice on the device: the argmax of each row from argmax's per-chunk (key, index)
//           candidates (first maximum wins, as torch.argmax), then commit (after a step, not after the prompt), and the token becomes the row's fed
//           token and joins its history (where the processors and the read-back ring find it).
//   bans:   the logits processors that depend on a row's history, in place on logits [R, V]:
//           no-repeat n-grams (NoRepeatNGramLogitsProcessor) and the eos ban while min_length /
//           min_new_tokens are unmet (one invocation per history slot; slot 0 also does the eos ban).
//   gather: row i of the state becomes row src[i] of a copy of it (beam search reorders its rows).
// Defines: one of COMMIT, PICK, BANS, GATHER.

struct Params {
  rows: u32,
  chunks: u32,      // PICK: candidates per row
  width: u32,       // BANS: V
  logits_off: u32,
  ngram: u32,       // BANS: no_repeat_ngram_size (0: off)
  min_length: u32,  // BANS: eos banned while hlen < min_length
  min_new: u32,     //       or hlen - start < min_new
  eos_count: u32,
  eos: array<vec4<i32>, 2>, // up to 8 eos ids
  row_stride: u32,  // BANS: invocations per grid row
  banned: f32,      // BANS: the value of a banned logit (-inf)
  commit: u32,      // PICK: 1 = the row's fed token was just run (a step), 0 = it came from the prompt (prefill)
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
#if GATHER
@group(0) @binding(1) var<storage, read_write> st: array<u32>;
@group(0) @binding(2) var<storage, read> old: array<u32>;
@group(0) @binding(3) var<storage, read> src: array<i32>;
#elif BANS
@group(0) @binding(1) var<storage, read> st: array<u32>;
@group(0) @binding(2) var<storage, read_write> logits: array<f32>;
#elif PICK
@group(0) @binding(1) var<storage, read_write> st: array<u32>;
@group(0) @binding(2) var<storage, read> cand: array<vec2<u32>>;
#else
@group(0) @binding(1) var<storage, read_write> st: array<u32>;
#endif
#include decode_common

#if !BANS
fn commit_row(r: u32) {
  let pos = st[H_POS] + r;
  let len = st[H_LEN] + r;
  st[pos] = st[pos] + 1u;
  st[len] = st[len] + 1u;
}
#endif

#if PICK
// (key, idx) beats (best key, best idx): larger key, or the same key at a lower index (argmax.wgsl's order).
fn beats(k: u32, i: u32, bk: u32, bi: u32) -> bool {
  return k > bk || (k == bk && i < bi);
}
#endif

#if BANS
fn ban(r: u32, id: i32) {
  if (id >= 0 && u32(id) < p.width) { logits[p.logits_off + r * p.width + u32(id)] = p.banned; }
}

fn hist_at(r: u32, i: u32) -> i32 { return bitcast<i32>(st[st[H_HIST] + r * st[H_HIST_WIDTH] + i]); }
#endif

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
#if BANS
  let idx = gid.x + gid.y * p.row_stride;
  let hw = hdr(H_HIST_WIDTH);
  if (idx >= p.rows * hw) { return; }
  let r = idx / hw;
  let i = idx % hw;
  let len = st[st[H_HLEN] + r];
  if (i == 0u) {
    let start = st[st[H_START] + r];
    if ((p.min_length > 0u && len < p.min_length) || (p.min_new > 0u && len - start < p.min_new)) {
      for (var e = 0u; e < p.eos_count; e++) { ban(r, p.eos[e / 4u][e % 4u]); }
    }
  }
  // The n-gram starting at i repeats the last n - 1 ids: its last id may not follow them again.
  let n = p.ngram;
  if (n > 0u && len + 1u >= n && i + n <= len) {
    var same = true;
    for (var t = 0u; t + 1u < n; t++) {
      if (hist_at(r, i + t) != hist_at(r, len + 1u - n + t)) { same = false; }
    }
    if (same) { ban(r, hist_at(r, i + n - 1u)); }
  }
#else
  let r = gid.x;
  if (r >= p.rows) { return; }
#if GATHER
  // Row r takes old row src[r]: every per-row array, mask and history included.
  let s = u32(src[r]);
  for (var f = H_FED; f <= H_START; f++) { st[st[f] + r] = old[st[f] + s]; }
  let C = st[H_CAPACITY];
  for (var j = 0u; j < C; j++) { st[st[H_MASK] + r * C + j] = old[st[H_MASK] + s * C + j]; }
  let hw = st[H_HIST_WIDTH];
  for (var j = 0u; j < hw; j++) { st[st[H_HIST] + r * hw + j] = old[st[H_HIST] + s * hw + j]; }
#elif PICK
  var bk = 0u;
  var bi = 0xffffffffu;
  for (var c = 0u; c < p.chunks; c++) {
    let v = cand[r * p.chunks + c];
    if (beats(v.x, v.y, bk, bi)) { bk = v.x; bi = v.y; }
  }
  if (p.commit != 0u) { commit_row(r); }
  st[st[H_FED] + r] = bi;
  let hl = st[H_HLEN] + r;
  let at = st[hl];
  if (at < st[H_HIST_WIDTH]) { st[st[H_HIST] + r * st[H_HIST_WIDTH] + at] = bi; }
  st[hl] = at + 1u;
#else
  commit_row(r);
#endif
#endif
}
