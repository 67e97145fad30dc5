/** Builds a uniform block of 4-byte scalars, in the order of the WGSL struct's fields. */
export class Uniforms {
  private readonly words: number[] = [];
  private static readonly f = new Float32Array(1);
  private static readonly u = new Uint32Array(Uniforms.f.buffer);

  u32(...values: number[]): this {
    for (const v of values) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`u32 uniform out of range: ${v}`);
      this.words.push(v >>> 0);
    }
    return this;
  }
  i32(...values: number[]): this {
    for (const v of values) {
      if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw new RangeError(`i32 uniform out of range: ${v}`);
      this.words.push(v >>> 0);
    }
    return this;
  }
  f32(...values: number[]): this {
    for (const v of values) {
      Uniforms.f[0] = v;
      this.words.push(Uniforms.u[0]!);
    }
    return this;
  }
  build(): Uint32Array {
    return Uint32Array.from(this.words);
  }
}

export function uniforms(): Uniforms {
  return new Uniforms();
}
