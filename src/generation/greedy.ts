/** Greedy token choice: torch.argmax on the GPU (first maximum wins), only the ids come back. */
import { argmax } from '../kernels/argmax.js';
import type { Tensor } from '../tensor.js';

export async function pickGreedy(scores: Tensor): Promise<number[]> {
  const ids = argmax(scores);
  try {
    return Array.from(await ids.read());
  } finally {
    ids.dispose();
  }
}
