/**
 * `blip2 finetune` with quantized frozen weights on the tiny checkpoint: with --quantize q4 on a float folder, and
 * from a q4 folder written by `blip2 convert`. The Q-Former trains through the quantized language model (the loss
 * falls), the saved folder keeps the input's layout (float frozen weights copied from a float input; codes, scales
 * and quantization_config from a converted one) and loads and captions in this project; a resumed run must be given
 * the same --quantize, and a --quantize that contradicts a converted folder is a clear error.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/io/checkpoint.js';
import { Blip2 } from '../../src/pipeline.js';
import { TINY, fixturePath } from '../paths.js';
import { cliInProcess } from './run.js';

// Two images with captions other than the float test's: enough for the loss to fall in a few steps.
const EXAMPLES = [
  { image: fixturePath('tiny-blip2', 'chelsea.png'), text: 'a cat on the mat' },
  { image: fixturePath('tiny-blip2', 'horse.png'), text: 'an ink horse' },
];

let dir = '';
let data = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blip2-finetune-q-'));
  data = join(dir, 'data.jsonl');
  writeFileSync(data, EXAMPLES.map((e) => JSON.stringify(e)).join('\n'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Key -> dtype[shape] of a folder's weights, single file or sharded. */
async function layout(folder: string): Promise<Record<string, string>> {
  const f = await openCheckpoint(folder);
  const out = Object.fromEntries(f.keys().map((k) => [k, `${f.info(k).dtype}[${f.info(k).shape.join(',')}]`]));
  await f.close();
  return out;
}

async function bytesOf(folder: string, key: string): Promise<Buffer> {
  const f = await openCheckpoint(folder);
  try {
    return Buffer.from(await f.readBytes(key));
  } finally {
    await f.close();
  }
}

interface Summary {
  steps: number;
  first_loss: number;
  last_loss: number;
}
const train = () => ['--data', data, '--max-steps', '6', '--lr', '1e-3', '--weight-decay', '0', '--schedule', 'constant'] as string[];

describe('blip2 finetune with quantized frozen weights', () => {
  it('--quantize q4: the Q-Former learns through the q4 language model; the folder keeps the float input layout; resuming needs the same --quantize', async () => {
    const out = join(dir, 'q4-run');
    const r = await cliInProcess(['finetune', '--model', TINY, '--quantize', 'q4', '--out', out, '--save-every', '3', ...train()]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/trainable parameters .* frozen weights q4/);
    const s = JSON.parse(r.stdout.trim().split('\n').pop()!) as Summary;
    expect(s.steps).toBe(6);
    expect(s.last_loss).toBeLessThan(s.first_loss);
    expect(await layout(out)).toEqual(await layout(TINY));
    // Frozen weights are the input's exact floats, never the codes the run held; trained ones moved.
    const frozen = 'language_model.model.decoder.layers.0.fc1.weight';
    expect((await bytesOf(out, frozen)).equals(await bytesOf(TINY, frozen))).toBe(true);
    expect((await bytesOf(out, 'query_tokens')).equals(await bytesOf(TINY, 'query_tokens'))).toBe(false);
    const resumed = await cliInProcess(['finetune', '--resume', join(out, 'checkpoint-3'), '--out', join(dir, 'resumed'), ...train()]);
    expect(resumed.code).toBe(1);
    expect(resumed.stderr).toMatch(/--resume: the run was started with other settings \(quantize: "q4"\)/);
    const again = await cliInProcess(['finetune', '--resume', join(out, 'checkpoint-3'), '--quantize', 'q4', '--out', join(dir, 'resumed'), '-q', ...train()]);
    expect(again.code, again.stderr).toBe(0);
    expect(readFileSync(join(dir, 'resumed', 'model.safetensors')).equals(readFileSync(join(out, 'model.safetensors')))).toBe(true);
  });

  it('a folder written by blip2 convert --quantize q4: trains, saves a q4 folder of the same layout that loads and captions', async () => {
    const conv = join(dir, 'tiny-q4');
    const c = await cliInProcess(['convert', TINY, '--quantize', 'q4', '--out', conv, '-q']);
    expect(c.code, c.stderr).toBe(0);
    const out = join(dir, 'q4-folder-run');
    const r = await cliInProcess(['finetune', '--model', conv, '--out', out, ...train()]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/frozen weights q4/);
    const s = JSON.parse(r.stdout.trim().split('\n').pop()!) as Summary;
    expect(s.last_loss).toBeLessThan(s.first_loss);
    expect(await layout(out)).toEqual(await layout(conv));
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).quantization_config).toEqual(JSON.parse(readFileSync(join(conv, 'config.json'), 'utf8')).quantization_config);
    const blip2 = await Blip2.fromPretrained(out, { dtype: 'f32' });
    try {
      expect((await blip2.caption(fixturePath('tiny-blip2', 'chelsea.png'))).text.length).toBeGreaterThan(0);
    } finally {
      blip2.dispose();
    }
    const wrong = await cliInProcess(['finetune', '--model', conv, '--quantize', 'q8', '--out', join(dir, 'x'), ...train()]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/holds q4 weights .* quantize 'q8' contradicts it/);
  });
});
