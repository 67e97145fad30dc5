import { readFileSync, readdirSync } from 'node:fs';
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

  it('#include splices a shader preprocessed with the same defines, nested, only where active', () => {
    const files: Record<string, string> = {
      outer_common: ['o ${V}', '#include inner_common', '#if !X', 'o not x', '#endif'].join('\n'),
      inner_common: ['#if X', 'i x ${V}', '#else', 'i not x', '#endif'].join('\n'),
    };
    const source = (name: string) => files[name];
    const src = ['a', '#include outer_common', '#if Y', '  #include inner_common', '#endif', 'b ${V}'].join('\n');
    const lines = (d: Record<string, string | number | boolean>) =>
      preprocessWgsl(src, d, 'kernel.wgsl', source)
        .split('\n')
        .filter((l) => l.length);
    expect(lines({ X: true, V: 1 })).toEqual(['a', 'o 1', 'i x 1', 'b 1']);
    expect(lines({ Y: true, V: 2 })).toEqual(['a', 'o 2', 'i not x', 'o not x', 'i not x', 'b 2']);
    // An #include inside an inactive branch is never resolved.
    expect(preprocessWgsl('#if Z\n#include missing\n#endif\nok', {}, 'k.wgsl', source).trim()).toBe('ok');
  });

  it('#include reports unknown shaders, cycles, bad names and a missing source', () => {
    const files: Record<string, string> = { a_common: '#include b_common', b_common: '#include a_common', open_common: '#if X' };
    const source = (name: string) => files[name];
    expect(() => preprocessWgsl('x\n#include nope', {}, 'k.wgsl', source)).toThrow("k.wgsl:2: #include of unknown shader 'nope'");
    expect(() => preprocessWgsl('#include a_common', {}, 'k.wgsl', source)).toThrow('#include cycle k.wgsl -> a_common.wgsl -> b_common.wgsl -> a_common.wgsl');
    expect(() => preprocessWgsl('#include k', {}, 'k.wgsl', () => '')).toThrow(/#include cycle k\.wgsl -> k\.wgsl/);
    expect(() => preprocessWgsl('#include ../etc', {}, 'k.wgsl', source)).toThrow(/takes a shader NAME/);
    expect(() => preprocessWgsl('#include a_common', {})).toThrow(/needs the shader sources/);
    // An included file's #if must close inside it.
    expect(() => preprocessWgsl('#include open_common\n#endif', {}, 'k.wgsl', source)).toThrow('open_common.wgsl: unterminated #if');
  });

  it('every *_common shader is included by some kernel, and every #include names one', () => {
    const dir = fileURLToPath(new URL('../../wgsl/', import.meta.url));
    const included = new Set<string>();
    for (const name of SHADER_NAMES) {
      for (const m of readFileSync(`${dir}${name}.wgsl`, 'utf8').matchAll(/^\s*#include\s+(\S+)\s*$/gm)) {
        expect(SHADER_NAMES as readonly string[]).toContain(m[1]);
        included.add(m[1]!);
      }
    }
    expect(SHADER_NAMES.filter((n) => n.endsWith('_common')).sort()).toEqual([...included].sort());
  });
});
