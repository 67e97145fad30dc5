import { getPlatform } from '../platform/index.js';
import { BindGroupCache, type BufferRange } from './bind-group-cache.js';
import { BufferPool, type PoolStats } from './buffer-pool.js';
import { describeAdapter, isSoftwareAdapter, type Capabilities } from './capabilities.js';
import { DeviceLostError, GpuError, NoAdapterError } from './errors.js';
import { buildProgram, GpuProgram, ProgramBuilder } from './program.js';
import { preprocessWgsl, type Defines } from './shader-preprocess.js';
import { loadShaderSources } from './shader-sources.js';
import { CHUNK_BYTES, StagingArena } from './staging-arena.js';

export interface GpuOptions {
  powerPreference?: GPUPowerPreference;
  /** Ignore `shader-f16` even where the adapter has it (to exercise the f32 path). */
  disableF16?: boolean;
  /** Pretend the storage binding limit is this small (to exercise split bindings in tests). */
  maxStorageBufferBindingSize?: number;
  /** Extra Dawn toggles (Node only). */
  dawnToggles?: string[];
  /** Idle bytes the buffer pool keeps. */
  maxPooledBytes?: number;
  /** Submit after this many recorded dispatches even without a read (keeps the GPU fed). */
  autoFlushDispatches?: number;
  /**
   * Wait for the device without the Dawn binding's busy polling (Node: src/platform/quiet-wait.ts). Default: on
   * software adapters, whose work needs every core the polling thread would take.
   */
  quietWaits?: boolean;
}

/** A buffer range bound to a shader. */
export interface Binding {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}

export interface DispatchArgs {
  pipeline: GPUComputePipeline;
  /** Uniform parameters, bound at @binding(0) when present. */
  uniforms?: ArrayBufferView;
  /**
   * Storage buffers, bound at @binding(1), (2), ... (or from 0 without uniforms). `null` skips a binding number
   * the shader declares but this variant does not use (an auto layout leaves unused bindings out).
   */
  buffers: readonly (GPUBuffer | Binding | null)[];
  workgroups: readonly [number, number?, number?];
  label?: string;
}

export interface GpuStats extends PoolStats {
  bindGroupHits: number;
  bindGroupMisses: number;
  /** Dispatches executed (recorded directly or replayed from programs). */
  dispatches: number;
  submits: number;
  pipelines: number;
}

/** What the adapter offers (not only what the device was created with): benchmark reports record it. */
export interface AdapterOffer {
  features: string[];
  limits: Record<string, number>;
}

const REQUESTED_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups' as GPUFeatureName, 'timestamp-query'];

function describeOffer(adapter: GPUAdapter): AdapterOffer {
  const limits: Record<string, number> = {};
  // GPUSupportedLimits' fields are getters on the prototype: walk it, not Object.keys.
  for (let proto: object | null = adapter.limits; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto) as object | null) {
    for (const key of Object.getOwnPropertyNames(proto)) {
      const v = (adapter.limits as unknown as Record<string, unknown>)[key];
      if (typeof v === 'number' && !(key in limits)) limits[key] = v;
    }
  }
  return { features: [...adapter.features].map(String).sort(), limits };
}

/**
 * The device, its capabilities and the machinery every kernel shares: buffer pool, pipeline cache,
 * one command encoder that collects dispatches until a read (or `flush`) submits them.
 */
export class Gpu {
  readonly pool: BufferPool;
  private readonly bindGroups: BindGroupCache;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly uniforms: StagingArena;
  private readonly uploads: StagingArena;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private recorded = 0;
  private dispatches = 0;
  private submits = 0;
  private firstError: GpuError | null = null;
  /** Error scopes wrap everything recorded between two submits, so errors are reported by the read that flushed them. */
  private scopeOpen = false;
  private pendingScopes: Promise<GPUError | null>[] = [];
  private lostError: DeviceLostError | null = null;
  /** Resolves (never rejects) when the device is lost, so waits can race it without unhandled rejections. */
  private readonly lost: Promise<DeviceLostError>;
  /**
   * Reads in progress, told when the device is lost. (Racing each read against `lost` itself would leave one
   * promise reaction on it per read for the life of the device: a server's memory grew by ~1 KiB per request.)
   */
  private readonly lostWaiters = new Set<(e: DeviceLostError) => void>();
  /** How waits on the device are awaited: quietly (GpuOptions.quietWaits) or as the binding settles them. */
  private readonly waitFor: <T>(promise: Promise<T>) => Promise<T>;
  private destroyed = false;
  private readonly autoFlush: number;
  /** Set while `capture` runs: dispatches and copies are collected instead of encoded. */
  private capturing: ProgramBuilder | null = null;

  private constructor(
    readonly device: GPUDevice,
    readonly caps: Capabilities,
    private readonly shaderSources: Map<string, string>,
    options: GpuOptions,
    /** The adapter's own features and limits. */
    readonly adapterOffer: AdapterOffer = { features: [], limits: {} },
    quietWait: (<T>(promise: Promise<T>) => Promise<T>) | null = null,
  ) {
    this.waitFor = quietWait ?? ((promise) => promise);
    this.pool = new BufferPool(device, caps.maxBufferSize, options.maxPooledBytes, () => this.encoder !== null);
    this.uniforms = new StagingArena(device, caps.minUniformBufferOffsetAlignment, GPUBufferUsage.UNIFORM, 'uniforms');
    this.uploads = new StagingArena(device, 16, GPUBufferUsage.COPY_SRC, 'uploads');
    this.bindGroups = new BindGroupCache(device);
    this.autoFlush = options.autoFlushDispatches ?? 2048;
    device.addEventListener('uncapturederror', (ev) => {
      const msg = (ev as GPUUncapturedErrorEvent).error?.message ?? 'unknown WebGPU error';
      this.firstError ??= new GpuError(`WebGPU error: ${msg}`);
    });
    this.lost = device.lost.then((info) => {
      const err = new DeviceLostError(`the GPU device was lost (${info.reason}): ${info.message || 'no message'}`);
      if (!this.destroyed) this.lostError = err;
      for (const w of this.lostWaiters) w(err);
      return err;
    });
  }

  static async create(options: GpuOptions = {}): Promise<Gpu> {
    const platform = await getPlatform();
    const gpu = await platform.gpu({ dawnToggles: options.dawnToggles });
    if (!gpu) throw new NoAdapterError(`WebGPU is not available. ${platform.noAdapterHelp}`);
    let adapter: GPUAdapter | null;
    try {
      adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
    } catch (e) {
      throw new NoAdapterError(`requesting a WebGPU adapter failed: ${(e as Error).message}. ${platform.noAdapterHelp}`);
    }
    if (!adapter) throw new NoAdapterError(`no WebGPU adapter was found. ${platform.noAdapterHelp}`);

    const features = REQUESTED_FEATURES.filter((f) => adapter.features.has(f) && !(f === 'shader-f16' && options.disableF16));
    const L = adapter.limits;
    const requiredLimits: Record<string, number> = {
      maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
      maxBufferSize: L.maxBufferSize,
      maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: L.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: L.maxComputeWorkgroupSizeY,
      maxComputeWorkgroupSizeZ: L.maxComputeWorkgroupSizeZ,
      maxComputeWorkgroupsPerDimension: L.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
    };
    let device: GPUDevice;
    try {
      device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
    } catch (e) {
      throw new NoAdapterError(`creating a WebGPU device failed: ${(e as Error).message}`);
    }
    const info = (adapter as GPUAdapter & { info?: GPUAdapterInfo }).info;
    const adapterDesc = describeAdapter(info, platform.kind === 'node' ? 'node-dawn' : 'browser');
    const subgroupInfo = info as (GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number }) | undefined;
    const D = device.limits;
    const caps: Capabilities = {
      adapter: adapterDesc,
      f16: device.features.has('shader-f16'),
      subgroups: device.features.has('subgroups' as GPUFeatureName),
      timestampQuery: device.features.has('timestamp-query'),
      isSoftware: isSoftwareAdapter(adapterDesc),
      maxStorageBufferBindingSize: Math.min(D.maxStorageBufferBindingSize, options.maxStorageBufferBindingSize ?? Infinity),
      maxBufferSize: D.maxBufferSize,
      maxComputeWorkgroupStorageSize: D.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: D.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: D.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: D.maxComputeWorkgroupSizeY,
      maxComputeWorkgroupsPerDimension: D.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: D.maxStorageBuffersPerShaderStage,
      minStorageBufferOffsetAlignment: D.minStorageBufferOffsetAlignment,
      minUniformBufferOffsetAlignment: D.minUniformBufferOffsetAlignment,
      maxUniformBufferBindingSize: D.maxUniformBufferBindingSize,
      subgroupMinSize: subgroupInfo?.subgroupMinSize ?? 0,
      subgroupMaxSize: subgroupInfo?.subgroupMaxSize ?? 0,
    };
    let sources: Map<string, string>;
    try {
      sources = await loadShaderSources();
    } catch (e) {
      device.destroy();
      throw e;
    }
    const quiet = (options.quietWaits ?? caps.isSoftware) && platform.quietWait ? platform.quietWait : null;
    return new Gpu(device, caps, sources, options, describeOffer(adapter), quiet);
  }

  // ---------------------------------------------------------------- state and errors

  /** Throws if the device was lost or a WebGPU error was reported. */
  check(): void {
    if (this.destroyed) throw new GpuError('this Gpu was destroyed');
    if (this.lostError) throw this.lostError;
    if (this.firstError) {
      const e = this.firstError;
      this.firstError = null;
      throw e;
    }
  }

  get isLost(): boolean {
    return this.lostError !== null;
  }

  stats(): GpuStats {
    return { ...this.pool.snapshot(), dispatches: this.dispatches, submits: this.submits, pipelines: this.pipelines.size, bindGroupHits: this.bindGroups.hits, bindGroupMisses: this.bindGroups.misses };
  }

  // ---------------------------------------------------------------- pipelines

  /** Preprocessed WGSL of `shader` with `defines` (exposed for tests and debugging). */
  shaderCode(shader: string, defines: Defines = {}): string {
    const src = this.shaderSources.get(shader);
    if (src === undefined) throw new Error(`unknown shader '${shader}' (add it to SHADER_NAMES)`);
    const enables: string[] = [];
    if (defines.F16) {
      if (!this.caps.f16) throw new Error(`shader ${shader}: f16 requested but the device has no shader-f16`);
      enables.push('enable f16;');
    }
    if (defines.SUBGROUPS) enables.push('enable subgroups;');
    const code = preprocessWgsl(src, defines, `${shader}.wgsl`, (name) => this.shaderSources.get(name));
    return enables.join('\n') + (enables.length ? '\n' : '') + code;
  }

  /** A cached compute pipeline for `shader` compiled with `defines`. */
  pipeline(shader: string, defines: Defines = {}, entryPoint = 'main'): GPUComputePipeline {
    const key = `${shader}|${entryPoint}|${JSON.stringify(Object.entries(defines).sort(([a], [b]) => (a < b ? -1 : 1)))}`;
    let p = this.pipelines.get(key);
    if (!p) {
      this.openScope();
      const code = this.shaderCode(shader, defines);
      const module = this.device.createShaderModule({ code, label: shader });
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint }, label: shader });
      this.pipelines.set(key, p);
    }
    return p;
  }

  // ---------------------------------------------------------------- recording

  private openScope(): void {
    if (this.scopeOpen) return;
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    this.scopeOpen = true;
  }

  private closeScope(): void {
    if (!this.scopeOpen) return;
    const validation = this.device.popErrorScope();
    const oom = this.device.popErrorScope();
    this.pendingScopes.push(Promise.all([validation, oom]).then(([v, o]) => v ?? o, (e: unknown) => new GPUValidationErrorLike(String(e))));
    this.scopeOpen = false;
  }

  /** Throws the first error reported for work submitted so far. */
  private async checkScopes(): Promise<void> {
    const scopes = this.pendingScopes;
    this.pendingScopes = [];
    const errors = (await Promise.all(scopes)).filter((e): e is GPUError => e !== null);
    if (errors.length) throw new GpuError(`WebGPU error: ${errors.map((e) => e.message).join('\n')}`);
  }

  /** Set while timeGpu() measures: every compute pass writes its start (first pass) and end timestamps. */
  private timing: { querySet: GPUQuerySet; started: boolean } | null = null;

  private ensurePass(): GPUComputePassEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    if (!this.pass) {
      const t = this.timing;
      this.pass = this.encoder.beginComputePass(
        t ? { timestampWrites: { querySet: t.querySet, beginningOfPassWriteIndex: t.started ? undefined : 0, endOfPassWriteIndex: 1 } } : undefined,
      );
      if (t) t.started = true;
    }
    return this.pass;
  }

  /**
   * GPU time in milliseconds of the compute work `record` records (from the start of its first compute pass to
   * the end of its last), measured with timestamp queries; null when the device has no timestamp-query.
   * For benchmarks: wall-clock time of small kernels on fast GPUs mostly measures the host.
   */
  async timeGpu(record: () => void): Promise<number | null> {
    if (!this.caps.timestampQuery) {
      record();
      await this.sync();
      return null;
    }
    this.flush();
    const querySet = this.device.createQuerySet({ type: 'timestamp', count: 2 });
    const resolve = this.device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    this.timing = { querySet, started: false };
    try {
      record();
      this.endPass();
    } finally {
      this.timing = null;
    }
    try {
      this.encoder!.resolveQuerySet(querySet, 0, 2, resolve, 0);
      const ns = new BigInt64Array(await this.read(resolve, 0, 16));
      return Number(ns[1]! - ns[0]!) / 1e6;
    } finally {
      querySet.destroy();
      resolve.destroy();
    }
  }

  private endPass(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    return this.encoder;
  }

  dispatch(args: DispatchArgs): void {
    if (this.lostError) throw this.lostError;
    const [x, y = 1, z = 1] = args.workgroups;
    const maxDim = this.caps.maxComputeWorkgroupsPerDimension;
    if (x > maxDim || y > maxDim || z > maxDim) {
      throw new RangeError(`${args.label ?? 'dispatch'}: workgroup grid ${x}x${y}x${z} exceeds ${maxDim} per dimension`);
    }
    if (x === 0 || y === 0 || z === 0) return;
    this.openScope();
    if (this.capturing) {
      const c = this.capturing;
      c.dispatches.push({
        pipeline: args.pipeline,
        uniformBlock: args.uniforms ? c.addUniforms(args.uniforms) : -1,
        storage: args.buffers.map(toRange),
        workgroups: [x, y, z],
        label: args.label ?? 'dispatch',
      });
      return;
    }
    const ranges: BufferRange[] = [];
    if (args.uniforms) {
      const slot = this.uniforms.push(args.uniforms);
      ranges.push({ buffer: slot.buffer, offset: slot.offset, size: slot.size });
    }
    for (const b of args.buffers) ranges.push(toRange(b));
    const bindGroup = this.bindGroups.get(args.pipeline, ranges);
    const pass = this.ensurePass();
    pass.setPipeline(args.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    this.dispatches++;
    if (++this.recorded >= this.autoFlush) this.flush();
  }

  copyBuffer(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    if (size === 0) return;
    this.openScope();
    if (this.capturing) {
      this.capturing.dispatches.push({ kind: 'copy', src, srcOffset, dst, dstOffset, size });
      return;
    }
    this.endPass().copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
    this.recorded++;
  }

  /** Writes host data into a buffer, after everything recorded so far (which may still read it). */
  write(buffer: GPUBuffer, offset: number, data: ArrayBufferView): void {
    this.check();
    this.refuseWhileCapturing('a host write');
    const bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
    if (this.recorded > 0 && bytes.byteLength <= CHUNK_BYTES && offset % 4 === 0 && bytes.byteLength % 4 === 0) {
      // Small uploads in the middle of recorded work (token ids, masks, positions): staged and copied into
      // place by a recorded copy, so the decode loop does not submit once per upload.
      const slot = this.uploads.push(bytes);
      this.copyBuffer(slot.buffer, slot.offset, buffer, offset, bytes.byteLength);
      return;
    }
    if (this.recorded > 0) this.flush();
    if (bytes.byteLength % 4 === 0) {
      this.device.queue.writeBuffer(buffer, offset, bytes);
    } else {
      const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
      padded.set(bytes);
      this.device.queue.writeBuffer(buffer, offset, padded);
    }
  }

  /** Submits what was recorded. */
  flush(): void {
    this.refuseWhileCapturing('a submit');
    if (!this.encoder) {
      this.closeScope();
      return;
    }
    const enc = this.endPass();
    this.encoder = null;
    this.uniforms.upload(this.device.queue);
    this.uploads.upload(this.device.queue);
    this.device.queue.submit([enc.finish()]);
    this.pool.afterSubmit();
    this.closeScope();
    this.recorded = 0;
    this.submits++;
  }

  /** Waits until the device has finished everything submitted; reports errors. */
  async sync(): Promise<void> {
    this.flush();
    await this.waitFor(this.device.queue.onSubmittedWorkDone());
    await this.checkScopes();
    this.check();
  }

  /** Copies `size` bytes at `offset` of `buffer` back to the host. */
  async read(buffer: GPUBuffer, offset: number, size: number): Promise<ArrayBuffer> {
    this.check();
    this.refuseWhileCapturing('a read-back');
    const padded = Math.ceil(size / 4) * 4;
    const staging = this.device.createBuffer({ size: Math.max(4, padded), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    try {
      this.endPass().copyBufferToBuffer(buffer, offset, staging, 0, padded);
      this.recorded++;
      this.flush();
      await this.mapped(this.startMap(staging));
      return staging.getMappedRange(0, padded).slice(0, size);
    } finally {
      staging.destroy();
    }
  }

  /**
   * Starts mapping a MAP_READ buffer whose copy was submitted; the promise never rejects (it resolves to the
   * error), so a read-back ring can keep several in flight and wait for them in order with `mapped`.
   */
  startMap(buffer: GPUBuffer): Promise<GpuError | null> {
    return buffer.mapAsync(GPUMapMode.READ).then(
      () => null,
      (e: unknown) => new GpuError(`reading from the GPU failed: ${(e as Error).message}`),
    );
  }

  /** Waits for a `startMap`, racing device loss, and reports WebGPU errors of the work submitted so far. */
  async mapped(map: Promise<GpuError | null>): Promise<void> {
    let onLost = (_: DeviceLostError) => {};
    const lost = new Promise<DeviceLostError>((resolve) => (onLost = resolve));
    if (this.lostError) onLost(this.lostError);
    this.lostWaiters.add(onLost);
    let failure: GpuError | null;
    try {
      failure = await this.waitFor(Promise.race([map, lost]));
    } finally {
      this.lostWaiters.delete(onLost);
    }
    if (failure) {
      await this.checkScopes(); // a validation error explains a failed map better than the map does
      throw this.lostError ?? failure;
    }
    await this.checkScopes();
    this.check();
  }

  // ---------------------------------------------------------------- programs

  private refuseWhileCapturing(what: string): void {
    if (this.capturing) throw new GpuError(`${what} cannot be captured into a program: only dispatches and device-side copies can (keep per-step values in device buffers)`);
  }

  /**
   * Runs `record` (ordinary kernel calls) and keeps what it records as a replayable program instead of encoding
   * it (src/gpu/program.ts). Every uniform value it records is frozen: per-step values must be read by the
   * kernels from device buffers. Pooled temporaries the recorded work uses are held by the program until it is
   * disposed. Host writes, reads and submits inside `record` throw.
   */
  capture<T>(record: () => T): { program: GpuProgram; result: T } {
    if (this.capturing) throw new GpuError('capture() does not nest');
    this.check();
    const builder = new ProgramBuilder();
    this.capturing = builder;
    this.pool.hold();
    let result: T;
    try {
      result = record();
    } catch (e) {
      this.capturing = null;
      this.pool.endHold(new Set());
      throw e;
    }
    this.capturing = null;
    const adopted = this.pool.endHold(builder.buffers());
    const program = buildProgram(this.device, builder, this.caps.minUniformBufferOffsetAlignment, (p) => this.bindGroups.layout(p), () => {
      for (const b of adopted) this.pool.release(b);
    });
    return { program, result };
  }

  /** Records a captured program's work after everything recorded so far (submitted with the next flush). */
  replay(program: GpuProgram): void {
    if (this.lostError) throw this.lostError;
    this.refuseWhileCapturing('a replay');
    if (program.disposed) throw new GpuError('replay of a disposed program');
    this.openScope();
    let pass: GPUComputePassEncoder | null = null;
    let last: GPUComputePipeline | null = null;
    for (const op of program.ops) {
      if (op.kind === 'dispatch') {
        pass ??= this.ensurePass();
        if (op.pipeline !== last) pass.setPipeline((last = op.pipeline));
        pass.setBindGroup(0, op.bindGroup);
        pass.dispatchWorkgroups(op.workgroups[0], op.workgroups[1], op.workgroups[2]);
      } else {
        this.endPass().copyBufferToBuffer(op.src, op.srcOffset, op.dst, op.dstOffset, op.size);
        pass = null;
        last = null;
      }
    }
    this.dispatches += program.dispatchCount;
    this.recorded += program.ops.length;
  }

  /** Releases everything. Node processes exit cleanly afterwards. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.encoder = null;
    this.pass = null;
    this.bindGroups.clear();
    this.pool.trim();
    this.pool.afterSubmit();
    this.uniforms.destroy();
    this.uploads.destroy();
    this.device.destroy();
  }
}

function toRange(b: GPUBuffer | Binding | null): BufferRange {
  if (b === null) return { buffer: null, offset: 0, size: undefined };
  return b instanceof GPUBuffer ? { buffer: b, offset: 0, size: undefined } : { buffer: b.buffer, offset: b.offset ?? 0, size: b.size };
}

/** Stands in for a GPUError when popErrorScope itself fails (device lost). */
class GPUValidationErrorLike {
  constructor(readonly message: string) {}
}

let defaultGpu: Promise<Gpu> | null = null;

/** The process-wide default device, created on first use. */
export function getGpu(options?: GpuOptions): Promise<Gpu> {
  defaultGpu ??= Gpu.create(options).catch((e: unknown) => {
    defaultGpu = null;
    throw e;
  });
  return defaultGpu;
}

/** Destroys the default device (if any), e.g. at the end of a CLI run. */
export async function releaseGpu(): Promise<void> {
  const g = defaultGpu;
  defaultGpu = null;
  if (g) (await g.catch(() => null))?.destroy();
}
