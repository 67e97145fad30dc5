/**
 * A deliberately small preprocessor for the WGSL files: `${NAME}` substitution and line directives
 * `#if NAME`, `#if !NAME`, `#elif NAME`, `#else`, `#endif` (nestable). WGSL has no preprocessor, and
 * one shader file per kernel family needs variants (f16/f32 storage, epilogues, tile sizes).
 */
export type Defines = Readonly<Record<string, string | number | boolean>>;

export function preprocessWgsl(source: string, defines: Defines, fileName = 'shader'): string {
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
  const lines = source.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const d = /^\s*#(if|elif|else|endif)\b(.*)$/.exec(line);
    if (d) {
      const [, kw, rest] = d;
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
      out.push(''); // keep line numbers stable for compiler messages
      continue;
    }
    out.push(isActive() ? line : '');
  }
  if (stack.length) throw new Error(`${fileName}: unterminated #if`);
  return out.join('\n').replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
    const v = defines[name];
    if (v === undefined) throw new Error(`${fileName}: \${${name}} is not defined`);
    return String(v);
  });
}
