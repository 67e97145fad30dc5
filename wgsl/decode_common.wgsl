// Shared part of the decode-step kernels (decode_attention, decode_embed, decode_state): the session's state
// buffer. A decode step is captured once and replayed at every token (src/gpu/program.ts), so nothing that
// changes between steps may be a uniform: the tokens fed, positions, cache lengths, the attention mask and the
// token history live in one u32 storage buffer, `st`, laid out by src/model/opt-decode-state.ts:
//   st[0 .. 15]: header (below), then per-row arrays at the header's offsets.
// Rows are independent (one sequence each, at its own length), so a batch's rows can be replaced between steps.
// It is never compiled alone: each kernel pulls it in with `#include decode_common` after declaring `st`.

const H_ROWS = 0u;        // R
const H_CAPACITY = 1u;    // C: cache rows per sequence (and mask columns)
const H_HIDDEN = 2u;      // D
const H_HEADS = 3u;
const H_HEAD_DIM = 4u;
const H_WIDTH = 5u;       // cache row width: [key | value | query] = 3 D
const H_SCALE = 6u;       // attention scale (f32 bits)
const H_HIST_WIDTH = 7u;  // token history columns per row
const H_FED = 8u;         // offset of fed[R] (i32): the token each row feeds at the next step
const H_POS = 9u;         // offset of pos[R] (i32): its position id (OPT's offset of 2 included)
const H_LEN = 10u;        // offset of len[R]: cache rows filled; the fed token's key/value go to row len
const H_HLEN = 11u;       // offset of hlen[R]: ids in the row's history (prompt + generated)
const H_START = 12u;      // offset of start[R]: prompt length of the row (min_new_tokens counts from it)
const H_MASK = 13u;       // offset of mask[R, C] (f32 bits): 0 to attend, a large negative value for padding
const H_HIST = 14u;       // offset of hist[R, hist_width] (i32; -1 past hlen): the row's input_ids so far

fn hdr(i: u32) -> u32 { return st[i]; }
fn row_len(r: u32) -> u32 { return st[st[H_LEN] + r]; }
fn mask_at(r: u32, j: u32) -> f32 { return bitcast<f32>(st[st[H_MASK] + r * st[H_CAPACITY] + j]); }
