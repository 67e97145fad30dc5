// Run by test/gpu/device.test.ts in a child process: use the engine and return without any explicit cleanup.
import { Gpu } from '../../src/gpu/gpu.js';
import { copy } from '../../src/kernels/copy.js';
import { Tensor } from '../../src/tensor.js';

const gpu = await Gpu.create();
const c = copy(Tensor.from(gpu, [1, 2, 3], [3]));
process.stdout.write(`${Array.from(await c.read()).join(',')}\n`);
if (process.argv[2] === 'destroy') gpu.destroy();
