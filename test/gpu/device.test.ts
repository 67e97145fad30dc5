import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { DeviceLostError, GpuError, NoAdapterError } from '../../src/gpu/errors.js';
import { Gpu } from '../../src/gpu/gpu.js';
import { copy } from '../../src/kernels/copy.js';
import { getPlatform, setPlatform, type Platform } from '../../src/platform/index.js';
import { Tensor } from '../../src/tensor.js';

const run = promisify(execFile);
const realPlatform = await getPlatform();
afterEach(() => setPlatform(realPlatform));

function fakePlatform(gpu: GPU | null): Platform {
  return { ...realPlatform, gpu: async () => gpu, noAdapterHelp: 'install lavapipe (test hint)' };
}

describe('device acquisition', () => {
  it('finds an adapter and reads its limits and features', async () => {
    const gpu = await Gpu.create();
    expect(gpu.caps.maxBufferSize).toBeGreaterThan(0);
    expect(gpu.caps.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 1024 * 1024);
    expect(typeof gpu.caps.f16).toBe('boolean');
    expect(gpu.caps.adapter.runtime).toBe('node-dawn');
    gpu.destroy();
  });

  it('honours disableF16 and a smaller binding limit', async () => {
    const gpu = await Gpu.create({ disableF16: true, maxStorageBufferBindingSize: 1 << 20 });
    expect(gpu.caps.f16).toBe(false);
    expect(gpu.caps.maxStorageBufferBindingSize).toBe(1 << 20);
    // f16 storage is fine (weights are read as packed pairs); f16 arithmetic kernels refuse clearly.
    const h = Tensor.from(gpu, [1, 2, 3, 4], [4], 'f16');
    expect(Array.from(await h.read())).toEqual([1, 2, 3, 4]);
    expect(() => copy(h)).toThrow(/shader-f16/);
    h.dispose();
    gpu.destroy();
  });

  it('explains how to fix a missing WebGPU implementation', async () => {
    setPlatform(fakePlatform(null));
    await expect(Gpu.create()).rejects.toThrow(NoAdapterError);
    await expect(Gpu.create()).rejects.toThrow(/install lavapipe/);
  });

  it('explains how to fix a missing adapter', async () => {
    const noAdapter = { requestAdapter: async () => null } as unknown as GPU;
    setPlatform(fakePlatform(noAdapter));
    await expect(Gpu.create()).rejects.toThrow(/no WebGPU adapter was found.*install lavapipe/);
    const throwing = {
      requestAdapter: async () => {
        throw new Error('vulkan init failed');
      },
    } as unknown as GPU;
    setPlatform(fakePlatform(throwing));
    await expect(Gpu.create()).rejects.toThrow(/vulkan init failed/);
  });
});

describe('failures surface as errors, never hangs', () => {
  it('a lost device fails reads and later calls with DeviceLostError', async () => {
    const gpu = await Gpu.create();
    const t = Tensor.from(gpu, [1, 2, 3], [3]);
    const pending = t.read();
    gpu.device.destroy(); // what a driver reset looks like to the engine
    await expect(pending).rejects.toThrow(GpuError);
    await new Promise((r) => setTimeout(r, 10));
    expect(gpu.isLost).toBe(true);
    await expect(t.read()).rejects.toThrow(DeviceLostError);
    expect(() => copy(t)).toThrow(DeviceLostError);
    gpu.destroy();
  });

  it('WebGPU validation errors are reported on the next read', async () => {
    const gpu = await Gpu.create();
    const t = Tensor.from(gpu, [1, 2, 3], [3]);
    // Binding a buffer range past its end is a validation error.
    gpu.dispatch({
      pipeline: gpu.pipeline('copy', { T: 'f32' }),
      uniforms: new Uint32Array([3, 0, 0, 256]),
      buffers: [{ buffer: t.buffer, offset: 0, size: 1 << 20 }, { buffer: t.buffer, offset: 0, size: 1 << 20 }],
      workgroups: [1],
    });
    await expect(t.read()).rejects.toThrow(/WebGPU error/);
    // The device stays usable afterwards.
    expect(Array.from(await t.read())).toEqual([1, 2, 3]);
    t.dispose();
    gpu.destroy();
  });

  it('a Node process that used the engine exits by itself, with or without destroy()', async () => {
    const script = fileURLToPath(new URL('../support/exit-clean.mts', import.meta.url));
    const tsx = fileURLToPath(new URL('../../node_modules/.bin/tsx', import.meta.url));
    for (const args of [[script], [script, 'destroy']]) {
      const { stdout } = await run(tsx, args, { timeout: 60_000 });
      expect(stdout.trim()).toBe('1,2,3');
    }
  });
});

describe('GPU timing', () => {
  it('timeGpu measures recorded work with timestamp queries (or says it cannot)', async () => {
    const gpu = await Gpu.create();
    const x = Tensor.from(gpu, new Float32Array(1 << 16), [1 << 16]);
    const outs: Tensor[] = [];
    const ms = await gpu.timeGpu(() => {
      for (let i = 0; i < 4; i++) outs.push(copy(x));
    });
    if (gpu.caps.timestampQuery) {
      expect(ms).not.toBeNull();
      expect(ms!).toBeGreaterThanOrEqual(0);
      expect(ms!).toBeLessThan(60_000);
    } else {
      expect(ms).toBeNull();
    }
    // The timed work really ran.
    expect((await outs[3]!.read()).length).toBe(1 << 16);
    for (const t of [x, ...outs]) t.dispose();
    gpu.destroy();
  });
});
