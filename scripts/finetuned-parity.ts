/**
 * Does a folder written by `blip2 finetune` caption the same in transformers as here? Captions each image greedily
 * with this project (f32, max_new_tokens 20) and with transformers' Blip2ForConditionalGeneration.from_pretrained
 * (scripts/ref/check_finetuned.py, run in the reference chroot), and compares the generated token ids one by one.
 *
 *   npx tsx scripts/finetuned-parity.ts --model TUNED --base BASE [--python CMD] [--map FROM=TO] [--json FILE] IMAGE...
 *   npx tsx scripts/finetuned-parity.ts --model TUNED --reference REF.json IMAGE...
 *
 * --python runs check_finetuned.py (default `chroot /tmp/refroot python3`, the chroot of
 * shared/tools/ref/make-chroot.sh, which mounts /work at /host: --map /work=/host, the default, rewrites the paths
 * it is given); --reference reads that script's JSON output instead. Exits 1 when any image's tokens differ or the
 * folder's keys, shapes and dtypes are not the base checkpoint's.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Blip2 } from '../src/pipeline.js';

interface Reference {
  transformers?: string;
  torch?: string;
  same_keys_shapes_dtypes: boolean;
  changed_tensors: number;
  unchanged_tensors: number;
  captions: Record<string, string>;
  tokens: Record<string, number[]>;
}

const { values: args, positionals: images } = parseArgs({
  allowPositionals: true,
  options: {
    model: { type: 'string' },
    base: { type: 'string' },
    reference: { type: 'string' },
    python: { type: 'string', default: 'chroot /tmp/refroot python3' },
    map: { type: 'string', default: '/work=/host' },
    json: { type: 'string' },
  },
});
if (!args.model || images.length === 0 || (!args.reference && !args.base)) {
  console.error('usage: npx tsx scripts/finetuned-parity.ts --model TUNED (--base BASE | --reference REF.json) [--python CMD] [--map FROM=TO] [--json FILE] IMAGE...');
  process.exit(2);
}

function referenceRun(): Reference {
  if (args.reference) return JSON.parse(readFileSync(args.reference, 'utf8')) as Reference;
  const [from, to] = args.map!.split('=') as [string, string];
  const inside = (p: string) => {
    const abs = resolve(p);
    if (!abs.startsWith(from)) throw new Error(`${abs} is outside ${from}, which --map makes visible to the reference as ${to}`);
    return to + abs.slice(from.length);
  };
  const script = fileURLToPath(new URL('./ref/check_finetuned.py', import.meta.url));
  const [cmd, ...pre] = args.python!.split(/\s+/) as [string, ...string[]];
  const out = execFileSync(cmd, [...pre, inside(script), inside(args.model!), inside(args.base!), ...images.map(inside)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  return JSON.parse(out.slice(out.indexOf('{'))) as Reference;
}

const reference = referenceRun();
const blip2 = await Blip2.fromPretrained(args.model, { dtype: 'f32' });
const rows: { image: string; ours: number[]; transformers: number[]; text: string; reference_text: string; equal: boolean }[] = [];
try {
  for (const image of images) {
    const name = basename(image);
    const ours = await blip2.caption(image, { max_new_tokens: 20 });
    const theirs = reference.tokens[name];
    if (!theirs) throw new Error(`the reference has no tokens for ${name}`);
    const equal = ours.token_ids.length === theirs.length && ours.token_ids.every((t, i) => t === theirs[i]);
    rows.push({ image: name, ours: ours.token_ids, transformers: theirs, text: ours.text, reference_text: reference.captions[name] ?? '', equal });
  }
} finally {
  blip2.dispose();
}

const versions = reference.transformers ? ` (transformers ${reference.transformers}, torch ${reference.torch})` : '';
console.log(`${args.model}: keys, shapes and dtypes equal to the base checkpoint's: ${reference.same_keys_shapes_dtypes}; ${reference.changed_tensors} tensors changed, ${reference.unchanged_tensors} byte-identical${versions}`);
for (const r of rows) {
  console.log(`${r.equal ? 'same' : 'DIFFERENT'}  ${r.image}: ${JSON.stringify(r.text)} [${r.ours.join(' ')}]${r.equal ? '' : `; transformers ${JSON.stringify(r.reference_text)} [${r.transformers.join(' ')}]`}`);
}
const ok = reference.same_keys_shapes_dtypes && rows.every((r) => r.equal);
console.log(ok ? `all ${rows.length} captions equal token for token` : 'MISMATCH');
if (args.json) writeFileSync(args.json, JSON.stringify({ model: args.model, reference, rows, ok }, null, 2) + '\n');
process.exit(ok ? 0 : 1);
