// First step on a GPU machine: which adapter Dawn finds, its limits and features, and one kernel round trip.
import { adapterLabel } from '../../src/gpu/capabilities.js';
import { Gpu } from '../../src/gpu/gpu.js';
import { linear } from '../../src/kernels/linear.js';
import { Tensor } from '../../src/tensor.js';

const gpu = await Gpu.create();
console.log(JSON.stringify({ adapter: adapterLabel(gpu.caps.adapter), caps: gpu.caps }, null, 2));
const x = Tensor.from(gpu, [1, 2, 3, 4, 5, 6], [2, 3]);
const w = Tensor.from(gpu, [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1], [4, 3]);
const y = await linear(x, w).read();
console.log('linear check', Array.from(y).join(','), '(expect 1,2,3,6,4,5,6,15)');
gpu.destroy();
