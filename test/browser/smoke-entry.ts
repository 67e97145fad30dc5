// Runs in the browser page: the same engine source as in Node, bundled by esbuild.
import { Gpu } from '../../src/gpu/gpu.js';
import { cast, copy } from '../../src/kernels/copy.js';
import { Tensor } from '../../src/tensor.js';

export interface SmokeResult {
  adapter: string;
  f16: boolean;
  copied: number[];
  castBack: number[];
  liveBytesAfter: number;
  error?: string;
}

async function run(): Promise<SmokeResult> {
  const gpu = await Gpu.create();
  const data = Array.from({ length: 1001 }, (_, i) => Math.sin(i) * 100);
  const x = Tensor.from(gpu, data, [7, 143]);
  const view = x.rows(3, 2);
  const y = copy(view);
  const copied = Array.from(await y.read());
  const i = cast(y, 'i32');
  const back = cast(i, 'f32');
  const castBack = Array.from(await back.read());
  for (const t of [x, view, y, i, back]) t.dispose();
  await gpu.sync();
  const result: SmokeResult = { adapter: `${gpu.caps.adapter.vendor} ${gpu.caps.adapter.architecture}`, f16: gpu.caps.f16, copied, castBack, liveBytesAfter: gpu.stats().liveBytes };
  gpu.destroy();
  return result;
}

(globalThis as { smoke?: Promise<SmokeResult> }).smoke = run().catch((e: unknown) => ({ error: String((e as Error)?.stack ?? e) }) as SmokeResult);
