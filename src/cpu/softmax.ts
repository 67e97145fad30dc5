/**
 * Plain TypeScript row-wise softmax and log-softmax (f64 arithmetic): the oracle of the softmax kernel
 * tests. Same conventions as the kernels: scores are clamped below at SCORE_FLOOR, so -Infinity and
 * float32's lowest value act as "masked" and a row that is entirely masked comes out uniform, not NaN.
 */

/** Lowest score the kernels keep; anything below (float32's lowest value, -Infinity) is raised to it. */
export const SCORE_FLOOR = -3.0e38;

function maskedRow(x: ArrayLike<number>, row: number, width: number, mask: ArrayLike<number> | undefined): Float64Array {
  const out = new Float64Array(width);
  const maskRows = mask ? mask.length / width : 0;
  const mBase = mask ? (row % maskRows) * width : 0;
  for (let j = 0; j < width; j++) out[j] = x[row * width + j]! + (mask ? mask[mBase + j]! : 0);
  return out;
}

function checkMask(width: number, mask: ArrayLike<number> | undefined): void {
  if (mask && (mask.length === 0 || mask.length % width !== 0)) {
    throw new RangeError(`mask of ${mask.length} elements does not hold whole rows of width ${width}`);
  }
}

/** Max and sum of exp(v - max) over a row, after clamping at SCORE_FLOOR. */
function rowStats(row: Float64Array): { max: number; sum: number } {
  let max = SCORE_FLOOR;
  for (const v of row) max = Math.max(max, Math.max(v, SCORE_FLOOR));
  let sum = 0;
  for (const v of row) sum += Math.exp(Math.max(v, SCORE_FLOOR) - max);
  return { max, sum };
}

/**
 * softmax over rows of `width` elements; `mask` (optional) holds whole rows and is broadcast over the
 * leading rows of `x` (row r uses mask row r % maskRows).
 */
export function softmaxReference(x: ArrayLike<number>, width: number, mask?: ArrayLike<number>): Float32Array {
  checkMask(width, mask);
  const rows = width === 0 ? 0 : x.length / width;
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    const row = maskedRow(x, r, width, mask);
    const { max, sum } = rowStats(row);
    for (let j = 0; j < width; j++) out[r * width + j] = Math.exp(Math.max(row[j]!, SCORE_FLOOR) - max) / sum;
  }
  return out;
}

/** log(softmax) over rows of `width`; -Infinity inputs stay -Infinity (the statistics ignore them). */
export function logSoftmaxReference(x: ArrayLike<number>, width: number): Float32Array {
  const rows = width === 0 ? 0 : x.length / width;
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    const row = maskedRow(x, r, width, undefined);
    const { max, sum } = rowStats(row);
    const logSum = Math.log(sum);
    for (let j = 0; j < width; j++) out[r * width + j] = row[j]! - max - logSum;
  }
  return out;
}
