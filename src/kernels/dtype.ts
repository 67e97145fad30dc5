import type { DType } from '../tensor.js';

/** Defines every shader compiled for `dtype` needs (`F16` turns on `enable f16;`). */
export function dtypeDefines(...dtypes: DType[]): { F16: boolean } {
  return { F16: dtypes.includes('f16') };
}
