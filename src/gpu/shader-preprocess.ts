/**
 * A deliberately small preprocessor for the WGSL files: `${NAME}` substitution, line directives
 * `#if NAME`, `#if !NAME`, `#elif NAME`, `#else`, `#endif` (nestable), and `#include NAME`, which
 * splices in wgsl/NAME.wgsl preprocessed with the same defines. WGSL has no preprocessor, and one
 * shader file per kernel family needs variants (f16/f32 storage, epilogues, tile sizes); kernels of a
 * family share their parameters, bindings and load helpers through an included `*_common` file.
 */
export type Defines = Readonly<Record<string, string | number | boolean>>;

/** The source of shader NAME for `#include NAME`, or undefined when there is no such shader. */
export type IncludeSource = (name: string) => string | undefined;

const DIRECTIVE = /^\s*#(if|elif|else|endif|include)\b(.*)$/;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function preprocessWgsl(source: string, defines: Defines, fileName = 'shader', include?: IncludeSource): string {
  return expand(source, defines, fileName, include, []);
}

/** `chain`: the files whose #include led here, outermost first (to report include cycles). */
function expand(source: string, defines: Defines, fileName: string, include: IncludeSource | undefined, chain: readonly string[]): string {
  const out: string[] = [];
  // Each frame: whether this branch is active, whether any branch of the chain was taken, whether the parent is active.
  const stack: { active: boolean; taken: boolean; parent: boolean }[] = [];
  const isActive = () => (stack.length === 0 ? true : stack[stack.length - 1]!.active);
  const truth = (expr: string, line: number): boolean => {
    const m = /^(!?)\s*([A-Za-z_][A-Za-z0-9_]*)$/.exec(expr.trim());
    if (!m) throw new Error(`${fileName}:${line}: #if takes NAME or !NAME, got '${expr}'`);
    const v = defines[m[2]!];
    const t = v !== undefined && v !== false && v !== 0 && v !== '';
    return m[1] ? !t : t;
  };
  const substitute = (line: string): string =>
    line.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const v = defines[name];
      if (v === undefined) throw new Error(`${fileName}: \${${name}} is not defined`);
      return String(v);
    });
  const lines = source.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const d = DIRECTIVE.exec(line);
    if (!d) {
      out.push(isActive() ? substitute(line) : '');
      continue;
    }
    const [, kw, rest] = d;
    if (kw === 'include') {
      out.push(isActive() ? included(rest!.trim(), i + 1) : '');
      continue;
    }
    if (kw === 'if') {
      const parent = isActive();
      const t = parent && truth(rest!, i + 1);
      stack.push({ active: t, taken: t, parent });
    } else {
      const top = stack[stack.length - 1];
      if (!top) throw new Error(`${fileName}:${i + 1}: #${kw} without #if`);
      if (kw === 'elif') {
        const t = top.parent && !top.taken && truth(rest!, i + 1);
        top.active = t;
        top.taken ||= t;
      } else if (kw === 'else') {
        top.active = top.parent && !top.taken;
        top.taken = true;
      } else {
        stack.pop();
      }
    }
    out.push(''); // keeps line numbers stable for compiler messages (up to an #include)
  }
  if (stack.length) throw new Error(`${fileName}: unterminated #if`);
  return out.join('\n');

  function included(name: string, line: number): string {
    const where = `${fileName}:${line}`;
    if (!NAME.test(name)) throw new Error(`${where}: #include takes a shader NAME, got '${name}'`);
    const file = `${name}.wgsl`;
    const path = [...chain, fileName];
    if (path.includes(file)) throw new Error(`${where}: #include cycle ${[...path, file].join(' -> ')}`);
    if (!include) throw new Error(`${where}: #include ${name} needs the shader sources (preprocess through Gpu.shaderCode)`);
    const src = include(name);
    if (src === undefined) throw new Error(`${where}: #include of unknown shader '${name}' (add it to SHADER_NAMES)`);
    return expand(src, defines, file, include, path);
  }
}
