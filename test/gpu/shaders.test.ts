import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { preprocessWgsl } from '../../src/gpu/shader-preprocess.js';
import { SHADER_NAMES } from '../../src/gpu/shader-sources.js';

describe('shader sources', () => {
  it('SHADER_NAMES lists exactly the files in wgsl/', () => {
    const dir = fileURLToPath(new URL('../../wgsl/', import.meta.url));
    const files = readdirSync(dir)
      .filter((f) => f.endsWith('.wgsl'))
      .map((f) => f.slice(0, -5))
      .sort();
    expect([...SHADER_NAMES].sort()).toEqual(files);
  });

  it('preprocesses #if/#elif/#else and ${NAME}', () => {
    const src = ['a', '#if X', 'x ${V}', '#elif !Y', 'noty', '#else', 'other', '#if Z', 'z', '#endif', '#endif', 'b'].join('\n');
    const lines = (d: Record<string, string | number | boolean>) =>
      preprocessWgsl(src, d)
        .split('\n')
        .filter((l) => l.length);
    expect(lines({ X: true, V: 3 })).toEqual(['a', 'x 3', 'b']);
    expect(lines({ X: false })).toEqual(['a', 'noty', 'b']);
    expect(lines({ Y: 1, Z: true, V: 0 })).toEqual(['a', 'other', 'z', 'b']);
    expect(() => preprocessWgsl('#if X\n', {})).toThrow(/unterminated/);
    expect(() => preprocessWgsl('${Q}', {})).toThrow(/not defined/);
    expect(() => preprocessWgsl('#endif', {})).toThrow(/without #if/);
  });
});
