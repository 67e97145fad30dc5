import { uniforms } from '../gpu/uniforms.js';
import { BYTES_PER_ELEMENT, Tensor, type DType } from '../tensor.js';
import { dtypeDefines } from './dtype.js';
import { grid1d } from './grid.js';
import { newOutput } from './output.js';

const WG = 256;

/**
 * Token embedding lookup: ids i32 [...] into table [V, D] (f32 or f16) gives [..., D] in `outDtype` (default
 * f32). Tables larger than the storage binding limit (OPT's 50304x2560 f16 table is 257.6 MB) are bound in
 * slices of whole rows, one dispatch per slice. Ids outside [0, V) never read memory: their rows are zeros.
 */
export function embedding(ids: Tensor, table: Tensor, options: { outDtype?: DType } = {}): Tensor {
  const outDtype = options.outDtype ?? 'f32';
  if (ids.dtype !== 'i32') throw new TypeError(`embedding: ids must be i32, got ${ids}`);
  if (table.ndim !== 2) throw new RangeError(`embedding: table must be [V, D], got ${table}`);
  if (table.dtype !== 'f32' && table.dtype !== 'f16') throw new TypeError(`embedding: table must be f32 or f16, got ${table}`);
  if (outDtype !== 'f32' && outDtype !== 'f16') throw new TypeError(`embedding: outDtype must be f32 or f16, got ${outDtype}`);
  if (ids.gpu !== table.gpu) throw new Error('embedding: ids and table live on different devices');
  return newOutput(table.gpu, [...ids.shape, table.dim(1)], outDtype, (out) => record(ids, table, out));
}

function record(ids: Tensor, table: Tensor, out: Tensor): void {
  const gpu = table.gpu;
  const [vocab, d] = table.shape as [number, number];
  const outDtype = out.dtype;
  const bpe = BYTES_PER_ELEMENT[table.dtype];
  const rowBytes = d * bpe;
  const align = gpu.caps.minStorageBufferOffsetAlignment;
  // A slice starts up to align-bpe bytes into its binding and its end is rounded up to 4 bytes.
  const rowsPerSlice = Math.min(vocab, Math.floor((gpu.caps.maxStorageBufferBindingSize - align - 4) / rowBytes));
  if (rowsPerSlice < 1 && vocab > 0) {
    throw new RangeError(`embedding: one table row (${rowBytes} bytes) does not fit the storage binding limit`);
  }
  const bIds = ids.bind();
  const bOut = out.bind();
  // Without shader-f16 an f16 table is read as packed pairs; only an f16 output then needs the feature.
  const packed = table.dtype === 'f16' && !gpu.caps.f16;
  const pipeline = gpu.pipeline('embedding', { T: table.dtype, OUT: outDtype, PACKED: packed, ...dtypeDefines(...(packed ? [outDtype] : [table.dtype, outDtype])) });
  const g = grid1d(gpu, out.size, WG);
  const slices = vocab === 0 ? 1 : Math.ceil(vocab / rowsPerSlice);
  for (let s = 0; s < slices; s++) {
    const begin = s * rowsPerSlice;
    const end = Math.min(vocab, begin + rowsPerSlice);
    const start = table.byteOffset + begin * rowBytes;
    const alignedStart = start - (start % align);
    const stop = Math.min(table.storageByteLength, Math.ceil((start + (end - begin) * rowBytes) / 4) * 4);
    gpu.dispatch({
      label: 'embedding',
      pipeline,
      uniforms: uniforms()
        .u32(out.size, d, bIds.elementOffset, (start - alignedStart) / bpe, begin, end, vocab, bOut.elementOffset, g.rowStride, s === 0 ? 1 : 0, 0, 0)
        .build(),
      buffers: [bIds.binding, { buffer: table.buffer, offset: alignedStart, size: Math.max(4, stop - alignedStart) }, bOut.binding],
      workgroups: g.workgroups,
    });
  }
}

/**
 * Gradient of `embedding`: adds dOut [..., D] (f32 or f16) into the rows of `tableGrad` ([V, D] f32) named by
 * ids ([...] i32), summing repeated ids in order; ids outside [0, V) contribute nothing.
 */
export function embeddingBackward(ids: Tensor, dOut: Tensor, tableGrad: Tensor): void {
  if (ids.dtype !== 'i32') throw new TypeError(`embeddingBackward: ids must be i32, got ${ids}`);
  if (tableGrad.ndim !== 2 || tableGrad.dtype !== 'f32') throw new RangeError(`embeddingBackward: tableGrad must be f32 [V, D], got ${tableGrad}`);
  if (dOut.dtype !== 'f32' && dOut.dtype !== 'f16') throw new TypeError(`embeddingBackward: dOut must be f32 or f16, got ${dOut}`);
  const [vocab, d] = tableGrad.shape as [number, number];
  if (dOut.size !== ids.size * d) throw new RangeError(`embeddingBackward: dOut ${dOut} must hold ${ids.size} rows of ${d}`);
  if (ids.gpu !== tableGrad.gpu || dOut.gpu !== tableGrad.gpu) throw new Error('embeddingBackward: tensors live on different devices');
  if (ids.size === 0 || d === 0) return;
  const gpu = tableGrad.gpu;
  const [bi, bg, bt] = [ids.bind(), dOut.bind(), tableGrad.bind()];
  gpu.dispatch({
    label: 'embedding_backward',
    pipeline: gpu.pipeline('embedding_backward', { G: dOut.dtype, ...dtypeDefines(dOut.dtype) }),
    uniforms: uniforms().u32(ids.size, d, vocab, bi.elementOffset, bg.elementOffset, bt.elementOffset).build(),
    buffers: [bi.binding, bg.binding, bt.binding],
    workgroups: [Math.ceil(d / 64)],
  });
}
