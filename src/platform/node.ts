import { open, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { checkRange } from './browser.js';
import type { ByteSink, ByteSource, Platform } from './types.js';
import { browserPlatform } from './browser.js';
import { withNativeStderrSilenced } from './native-stderr.js';
import { quietWait } from './quiet-wait.js';

class FileSource implements ByteSource {
  private constructor(
    readonly name: string,
    readonly size: number,
    private readonly handle: import('node:fs/promises').FileHandle,
  ) {}
  static async open(path: string): Promise<FileSource> {
    const handle = await open(path, 'r');
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new Error(`${path} is not a regular file`);
      return new FileSource(path, st.size, handle);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    await this.readInto(offset, out);
    return out;
  }
  async readInto(offset: number, target: Uint8Array): Promise<void> {
    const length = target.length;
    checkRange(this.name, this.size, offset, length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(target, done, length - done, offset + done);
      if (bytesRead === 0) throw new Error(`${this.name}: unexpected end of file at ${offset + done}`);
      done += bytesRead;
    }
  }
  async close(): Promise<void> {
    await this.handle.close();
  }
}

let dawnGpu: GPU | null = null;
let hideStartupWarnings = false;

/**
 * Keeps the lines Dawn's Vulkan backend prints to stderr while it enumerates adapters (the "artificially reduced"
 * limit warnings of Mesa drivers) off the terminal; for the CLI, whose `--quiet` promises nothing but errors.
 * Takes effect when the WebGPU entry point is created, i.e. before the first device. See native-stderr.ts.
 */
export function hideDawnStartupWarnings(): void {
  hideStartupWarnings = true;
}

export const nodePlatform: Platform = {
  kind: 'node',
  async gpu(options) {
    if (dawnGpu) return dawnGpu;
    process.env.XDG_RUNTIME_DIR ??= '/tmp';
    // lavapipe (Mesa's CPU Vulkan driver, used where there is no GPU) runs one worker thread per core by default;
    // measured on the 2-core machine, 16 threads instead made matmuls 1.8x faster (11 -> 20 GFLOP/s) and the f16
    // GEMVs of decoding 1.5x (docs/full-size.md). Other drivers ignore the variable; a value set by the user wins.
    process.env.LP_NUM_THREADS ??= String(Math.min(32, 8 * availableParallelism()));
    let mod: { create(flags: string[]): GPU; globals: object };
    try {
      mod = (await import('webgpu')) as unknown as { create(flags: string[]): GPU; globals: object };
    } catch (e) {
      throw new Error(`cannot load the 'webgpu' package (Dawn for Node): ${(e as Error).message}. Run npm install.`);
    }
    // The WebGPU constants (GPUBufferUsage, ...) are globals in browsers; Dawn provides them separately.
    for (const [k, v] of Object.entries(mod.globals)) {
      if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
    }
    const gpu = mod.create(options?.dawnToggles ?? []);
    // Dawn enumerates adapters (and prints its warnings) inside the first requestAdapter() call; later calls reuse
    // what it found, so this first, discarded request is the only one that needs the silence.
    if (hideStartupWarnings) withNativeStderrSilenced(() => void gpu.requestAdapter().catch(() => null));
    dawnGpu = gpu;
    return dawnGpu;
  },
  async readText(url) {
    if (url.protocol === 'file:') return readFile(fileURLToPath(url), 'utf8');
    return browserPlatform.readText(url);
  },
  async openBytes(location) {
    if (typeof location === 'string' && !/^https?:\/\//.test(location)) return FileSource.open(location);
    if (location instanceof URL && location.protocol === 'file:') return FileSource.open(fileURLToPath(location));
    return browserPlatform.openBytes(location);
  },
  async createSink(path): Promise<ByteSink> {
    const handle = await open(path, 'w');
    return {
      async write(chunk) {
        let done = 0;
        while (done < chunk.byteLength) {
          const { bytesWritten } = await handle.write(chunk, done, chunk.byteLength - done);
          done += bytesWritten;
        }
      },
      async close() {
        await handle.close();
      },
    };
  },
  quietWait,
  noAdapterHelp:
    'Dawn found no Vulkan adapter. On a machine without a GPU install Mesa lavapipe (Debian 12: `bash scripts/install-system.sh`, which takes mesa-vulkan-drivers from bookworm-backports; Debian 12\'s own Mesa 22 is too old). With a GPU, install its Vulkan driver and libvulkan1.',
};
