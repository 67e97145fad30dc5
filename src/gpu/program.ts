/**
 * A recorded sequence of dispatches and copies that can be replayed at every decode step (WebGPU has no
 * compute bundles; this is the nearest thing within the API, as CUDA graphs are for CUDA). Capturing runs
 * the ordinary kernel calls once with `Gpu.capture`; instead of being encoded they are kept as pipeline +
 * bind group + workgroup count, with every uniform block written once into one buffer owned by the
 * program. Replaying then costs three native calls per dispatch and no JavaScript work per kernel: no
 * uniform building, no binding arithmetic, no bind-group lookup.
 *
 * What varies between steps must therefore live in device buffers (token ids, positions, cache lengths):
 * a kernel whose uniforms would change between steps cannot be captured. Host writes, reads and submits
 * are refused while capturing.
 *
 * Buffers: the program references the buffers its dispatches bind. Those that were pooled temporaries of
 * the capture (intermediate activations, released back to the pool inside it) are taken out of the pool
 * for the program's lifetime and returned by `dispose()`; the others (weights, caches, state) belong to
 * their owners, who must keep them alive while the program is replayed.
 */

/** One recorded operation. */
export type ProgramOp =
  | { kind: 'dispatch'; pipeline: GPUComputePipeline; bindGroup: GPUBindGroup; workgroups: [number, number, number]; label: string }
  | { kind: 'copy'; src: GPUBuffer; srcOffset: number; dst: GPUBuffer; dstOffset: number; size: number };

/** A buffer range bound by a captured dispatch (uniform ranges point into the program's own buffer). */
export interface CapturedRange {
  buffer: GPUBuffer | null;
  offset: number;
  size: number | undefined;
}

export interface CapturedDispatch {
  pipeline: GPUComputePipeline;
  /** Index of the uniform block in the builder's list, or -1. */
  uniformBlock: number;
  storage: CapturedRange[];
  workgroups: [number, number, number];
  label: string;
}

/** Collects what a capture records; `Gpu.capture` turns it into a `GpuProgram`. */
export class ProgramBuilder {
  readonly dispatches: (CapturedDispatch | Extract<ProgramOp, { kind: 'copy' }>)[] = [];
  readonly uniformBlocks: Uint8Array[] = [];

  addUniforms(data: ArrayBufferView): number {
    this.uniformBlocks.push(new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)));
    return this.uniformBlocks.length - 1;
  }

  /** Every storage or copy buffer the recorded work touches. */
  buffers(): Set<GPUBuffer> {
    const out = new Set<GPUBuffer>();
    for (const d of this.dispatches) {
      if ('pipeline' in d) {
        for (const r of d.storage) if (r.buffer) out.add(r.buffer);
      } else {
        out.add(d.src);
        out.add(d.dst);
      }
    }
    return out;
  }
}

/** A captured program: replay it with `Gpu.replay`, dispose it when the decode session ends. */
export class GpuProgram {
  private disposedFlag = false;

  constructor(
    readonly ops: readonly ProgramOp[],
    /** Dispatches per replay. */
    readonly dispatchCount: number,
    private readonly uniformBuffer: GPUBuffer | null,
    private readonly release: () => void,
  ) {}

  get disposed(): boolean {
    return this.disposedFlag;
  }

  /** Returns the adopted temporaries to the pool and destroys the program's uniform buffer. */
  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    this.release();
    this.uniformBuffer?.destroy();
  }

  /** Number of dispatches per label (benchmarks report what a step consists of). */
  histogram(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const op of this.ops) if (op.kind === 'dispatch') out[op.label] = (out[op.label] ?? 0) + 1;
    return out;
  }
}

/**
 * Builds the GPU objects of a captured program: one uniform buffer holding every block at its aligned
 * offset, and one bind group per dispatch.
 */
export function buildProgram(
  device: GPUDevice,
  builder: ProgramBuilder,
  uniformAlign: number,
  layoutOf: (p: GPUComputePipeline) => GPUBindGroupLayout,
  release: () => void,
): GpuProgram {
  const offsets: number[] = [];
  let size = 0;
  for (const block of builder.uniformBlocks) {
    offsets.push(size);
    size = Math.ceil((size + Math.max(16, block.byteLength)) / uniformAlign) * uniformAlign;
  }
  let uniformBuffer: GPUBuffer | null = null;
  if (size > 0) {
    uniformBuffer = device.createBuffer({ size, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: 'program uniforms' });
    const staging = new Uint8Array(size);
    builder.uniformBlocks.forEach((b, i) => staging.set(b, offsets[i]!));
    device.queue.writeBuffer(uniformBuffer, 0, staging);
  }
  const ops: ProgramOp[] = [];
  let dispatchCount = 0;
  for (const d of builder.dispatches) {
    if (!('pipeline' in d)) {
      ops.push(d);
      continue;
    }
    const entries: GPUBindGroupEntry[] = [];
    let binding = 0;
    if (d.uniformBlock >= 0) {
      const bytes = Math.max(16, Math.ceil(builder.uniformBlocks[d.uniformBlock]!.byteLength / 16) * 16);
      entries.push({ binding: binding++, resource: { buffer: uniformBuffer!, offset: offsets[d.uniformBlock]!, size: bytes } });
    }
    for (const r of d.storage) {
      const b = binding++;
      if (!r.buffer) continue; // a binding number this pipeline does not use
      const resource: GPUBufferBinding = r.size === undefined ? { buffer: r.buffer, offset: r.offset } : { buffer: r.buffer, offset: r.offset, size: r.size };
      entries.push({ binding: b, resource });
    }
    const bindGroup = device.createBindGroup({ layout: layoutOf(d.pipeline), entries, label: d.label });
    ops.push({ kind: 'dispatch', pipeline: d.pipeline, bindGroup, workgroups: d.workgroups, label: d.label });
    dispatchCount++;
  }
  return new GpuProgram(ops, dispatchCount, uniformBuffer, release);
}
