import type { Binding } from '../gpu/gpu.js';
import { uniforms } from '../gpu/uniforms.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor.js';
import type { DecodeState } from './decode-state.js';
import { dtypeDefines } from './dtype.js';
import { grid1d } from './grid.js';
import { newOutput } from './output.js';

const MAX_SLICES = 4;

/**
 * The embeddings of one decode step, [R, D] f32: the token table's row of each row's fed token plus the position
 * table's row of its position id, both ids read from the decode state (one dispatch: OPT's two gathers and their
 * sum). The token table is bound in up to 4 slices of whole rows when it exceeds the storage binding limit;
 * returns null when it would need more (the caller gathers with `embedding` instead).
 */
export function decodeEmbeddings(state: DecodeState, tokens: Tensor, positions: Tensor): Tensor | null {
  const gpu = state.gpu;
  if (tokens.ndim !== 2 || positions.ndim !== 2 || tokens.dim(1) !== positions.dim(1)) throw new RangeError(`decodeEmbeddings: tables ${tokens} and ${positions} must be [V, D] and [P, D]`);
  for (const t of [tokens, positions]) if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new TypeError(`decodeEmbeddings: tables must be f32 or f16, got ${t}`);
  const [vocab, d] = tokens.shape as [number, number];
  const bpe = BYTES_PER_ELEMENT[tokens.dtype];
  const align = gpu.caps.minStorageBufferOffsetAlignment;
  const rowsPerSlice = Math.min(vocab, Math.floor((gpu.caps.maxStorageBufferBindingSize - align - 4) / (d * bpe)));
  if (rowsPerSlice < 1 || Math.ceil(vocab / rowsPerSlice) > MAX_SLICES) return null;
  const packed = tokens.dtype === 'f16' && !gpu.caps.f16;
  const slices: Binding[] = [];
  const offsets: number[] = [];
  for (let begin = 0; begin < vocab; begin += rowsPerSlice) {
    const end = Math.min(vocab, begin + rowsPerSlice);
    const start = tokens.byteOffset + begin * d * bpe;
    const alignedStart = start - (start % align);
    const stop = Math.min(tokens.storageByteLength, Math.ceil((start + (end - begin) * d * bpe) / 4) * 4);
    slices.push({ buffer: tokens.buffer, offset: alignedStart, size: Math.max(4, stop - alignedStart) });
    offsets.push((start - alignedStart) / bpe);
  }
  while (slices.length < MAX_SLICES) {
    slices.push(slices[0]!);
    offsets.push(offsets[0]!);
  }
  const R = state.rows;
  return newOutput(gpu, [R, d], 'f32', (out) => {
    const bp = positions.bind();
    const bo = out.bind();
    const g = grid1d(gpu, R * d, 256);
    gpu.dispatch({
      label: 'decode_embed',
      pipeline: gpu.pipeline('decode_embed', { T: tokens.dtype, P: positions.dtype, PACKED: packed, ...dtypeDefines(...(packed ? [positions.dtype] : [tokens.dtype, positions.dtype])) }),
      uniforms: uniforms()
        .u32(R * d, d, rowsPerSlice, vocab, positions.dim(0), bp.elementOffset, bo.elementOffset, g.rowStride)
        .u32(...offsets)
        .build(),
      buffers: [state.tensor.bind().binding, ...slices, bp.binding, bo.binding],
      workgroups: g.workgroups,
    });
  });
}
