/**
 * `blip2 finetune` on the tiny checkpoint: the training loss on four images falls below 10% of its start, the
 * saved folder has the input's keys, shapes and dtypes and captions the images as trained; a run resumed from a
 * checkpoint folder ends bit for bit where an uninterrupted one does; bad input gives clear errors.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { Blip2 } from '../../src/pipeline.js';
import { TINY, fixturePath } from '../paths.js';
import { cliInProcess } from './run.js';

const TRAINING = [
  ['chelsea.png', 'a photo of a cat'],
  ['camera.png', 'a man with a camera'],
  ['cell.png', 'cells under a microscope'],
  ['horse.png', 'a drawing of a horse'],
] as const;

let dir: string;
let data: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blip2-finetune-'));
  data = join(dir, 'data.jsonl');
  writeFileSync(data, TRAINING.map(([image, text]) => JSON.stringify({ image: fixturePath('tiny-blip2', image), text })).join('\n'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The keys of `folder`'s weights whose bytes differ from the input checkpoint's. */
async function changedKeys(folder: string): Promise<string[]> {
  const [a, b] = await Promise.all([SafetensorsFile.open(join(folder, 'model.safetensors')), SafetensorsFile.open(join(TINY, 'model.safetensors'))]);
  const changed: string[] = [];
  for (const k of a.keys()) if (!Buffer.from(await a.readBytes(k)).equals(await b.readBytes(k))) changed.push(k);
  await Promise.all([a.close(), b.close()]);
  return changed;
}

async function layout(folder: string): Promise<Record<string, string>> {
  const f = await SafetensorsFile.open(join(folder, 'model.safetensors'));
  const out = Object.fromEntries(f.keys().map((k) => [k, `${f.info(k).dtype}[${f.info(k).shape.join(',')}]`]));
  await f.close();
  return out;
}

describe('blip2 finetune', () => {
  it('drives the loss on four images below 10% of its start, and the saved folder captions them as trained', async () => {
    const out = join(dir, 'trained');
    // The language model trains too here. With the stage-2 selection alone (OPT frozen) 10 % in 200 steps is out of
    // reach on this checkpoint: its frozen OPT is steered through 8 soft tokens, 8 free vectors per image trained
    // directly only just get there (6.3-10.9 % at the best setting, by start; 0.9 % with 32 positions), and the
    // Q-Former's best of 22 settings is 21 % (docs/finetuning.md, "How far the stage-2 selection gets", measured in
    // transformers with scripts/ref/finetune_bounds.py).
    const r = await cliInProcess(['finetune', '--model', TINY, '--data', data, '--out', out, '--max-steps', '80', '--lr', '1e-3', '--weight-decay', '0', '--warmup', '5', '--schedule', 'constant', '--trainable', 'all-but-vision', '--eval', data, '--eval-every', '40', '--progress']);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { steps: number; first_loss: number; last_loss: number; eval_loss: number };
    expect(summary.steps).toBe(80);
    expect(summary.last_loss).toBeLessThan(0.1 * summary.first_loss);
    expect(summary.eval_loss).toBeLessThan(0.1 * summary.first_loss);
    expect(r.stderr).toMatch(/Training: 100% 80\/80 loss \d+\.\d+ \d+\.\d+ steps\/s/);
    expect(r.stderr).toMatch(/step 40\/80: loss \d+\.\d+, held-out loss \d+\.\d+/);
    expect(await layout(out)).toEqual(await layout(TINY));
    // The Q-Former, its queries, the projection and OPT learned; the vision tower (features cached) did not move.
    const changed = await changedKeys(out);
    for (const k of ['query_tokens', 'qformer.encoder.layer.0.crossattention.attention.key.weight', 'language_projection.weight', 'language_model.model.decoder.embed_tokens.weight']) expect(changed, k).toContain(k);
    expect(changed.filter((k) => k.startsWith('vision_model.'))).toEqual([]);
    for (const f of ['config.json', 'tokenizer.json', 'generation_config.json', 'processor_config.json']) expect(readFileSync(join(out, f)).equals(readFileSync(join(TINY, f))), f).toBe(true);
    const blip2 = await Blip2.fromPretrained(out, { dtype: 'f32' });
    try {
      for (const [image, text] of TRAINING) expect((await blip2.caption(fixturePath('tiny-blip2', image))).text).toBe(text);
    } finally {
      blip2.dispose();
    }
  });

  it('resumes from a checkpoint folder and ends where an uninterrupted run ends, bit for bit', async () => {
    const common = ['--data', data, '--max-steps', '4', '--batch-size', '2', '--lr', '1e-3', '--seed', '3', '--dropout', '-q'];
    const whole = join(dir, 'whole');
    expect((await cliInProcess(['finetune', '--model', TINY, '--out', whole, '--save-every', '2', ...common])).code).toBe(0);
    const resumed = join(dir, 'resumed');
    const r = await cliInProcess(['finetune', '--resume', join(whole, 'checkpoint-2'), '--out', resumed, ...common]);
    expect(r.code, r.stderr).toBe(0);
    for (const f of ['model.safetensors', 'optimizer.safetensors']) expect(readFileSync(join(resumed, f)).equals(readFileSync(join(whole, f))), f).toBe(true);
    const other = await cliInProcess(['finetune', '--resume', join(whole, 'checkpoint-2'), '--out', join(dir, 'other'), ...common.map((a) => (a === '1e-3' ? '2e-3' : a))]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/--resume: the run was started with other settings \(lr: 0.001\)/);
  });

  it('refuses missing images, empty files, malformed lines and texts longer than the context with clear messages', async () => {
    const write = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    const run = (file: string, extra: string[] = []) => cliInProcess(['finetune', '--model', TINY, '--data', file, '--out', join(dir, 'x'), ...extra]);
    let r = await run(write('missing.jsonl', '{"image": "nope.png", "text": "a"}\n{"image": "also-missing.jpg", "text": "b"}'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/missing images:\n  .*missing.jsonl:1: nope.png\n  .*missing.jsonl:2: also-missing.jpg/);
    r = await run(write('empty.jsonl', '\n'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/empty.jsonl: the file is empty/);
    r = await run(write('bad.jsonl', '{"image": "a.png", "text": '));
    expect(r.stderr).toMatch(/bad.jsonl:1: not valid JSON/);
    r = await run(write('long.jsonl', JSON.stringify({ image: fixturePath('tiny-blip2', 'chelsea.png'), text: 'word '.repeat(100) })));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/long.jsonl:1: \d+ tokens \(8 image tokens \+ text\) exceed the model's 64 positions; shorten the text/);
    r = await run(data, ['--trainable', 'everything']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--trainable must be qformer, query_tokens, layers:I,J or all-but-vision/);
    r = await cliInProcess(['finetune', '--model', TINY, '--out', join(dir, 'x')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/needs --data FILE/);
  });
});
