/**
 * Fine-tuning data and loop: examples encoded exactly as the fixtures' reference batches (HF's processor output
 * and labels), JSON Lines and COCO parsing with clear errors, and gradient accumulation equal to one batch.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/gpu.js';
import { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import { Blip2Processor } from '../../src/processing/processor.js';
import { collate, DataError, encodeExample, parseTrainingData } from '../../src/training/data.js';
import { Trainer } from '../../src/training/trainer.js';
import { testGpu } from '../helpers.js';
import { TINY } from '../paths.js';
import { fixtureDirs } from '../support/fixtures.js';
import { hasTrainingReference, loadTrainingReference } from '../support/training-reference.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

describe('training data', () => {
  for (const dir of fixtureDirs().filter(hasTrainingReference)) {
    it(`encodes the captions as transformers' processor did for ${dir.split('/').pop()}'s reference batch`, async () => {
      const ref = await loadTrainingReference(dir);
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { text_config: { eos_token_id: number; max_position_embeddings: number } };
      const meta = JSON.parse(readFileSync(join(dir, 'training.json'), 'utf8')) as { captions: string[] };
      const processor = await Blip2Processor.fromPretrained(dir);
      const rows = meta.captions.map((text) =>
        encodeExample(processor, { image: 'unused.png', text }, { format: 'caption', eosTokenId: config.text_config.eos_token_id, maxLength: config.text_config.max_position_embeddings }),
      );
      const batch = collate(rows, processor.tokenizer.padTokenId);
      expect(batch.input_ids).toEqual(ref.inputs.input_ids);
      expect(batch.attention_mask).toEqual(ref.inputs.attention_mask);
      expect(batch.labels).toEqual(ref.inputs.labels);
      await ref.close();
    });
  }

  it('takes a question as a prompt without a loss on it (VQA), and refuses a text longer than the context', async () => {
    const processor = await Blip2Processor.fromPretrained(TINY);
    const q = processor.numQueryTokens!;
    const ex = encodeExample(processor, { image: 'x.png', text: 'a cat', question: 'what is it?', source: 'data.jsonl:3' }, { format: 'vqa', eosTokenId: 202, maxLength: 64 });
    const promptIds = processor.encodePrompt('Question: what is it? Answer:');
    expect(ex.inputIds.slice(0, promptIds.length)).toEqual(promptIds);
    expect(ex.labels.slice(0, promptIds.length).every((l) => l === -100)).toBe(true);
    expect(ex.labels.slice(promptIds.length)).toEqual(ex.inputIds.slice(promptIds.length));
    expect(ex.inputIds.at(-1)).toBe(202);
    expect(() => encodeExample(processor, { image: 'x.png', text: 'word '.repeat(80), source: 'data.jsonl:9' }, { format: 'caption', eosTokenId: 202, maxLength: 64 })).toThrow(
      new RegExp(`data.jsonl:9: \\d+ tokens \\(${q} image tokens \\+ text\\) exceed the model's 64 positions`),
    );
    expect(() => encodeExample(processor, { image: 'x.png', text: 'a cat' }, { format: 'vqa', eosTokenId: 202, maxLength: 64 })).toThrow(/needs a "question"/);
  });

  it('parses JSON Lines and COCO captions, with errors that name the file and line', () => {
    expect(parseTrainingData('{"image": "a.png", "text": "a cat"}\n\n{"image": "b.png", "caption": "a dog", "question": "what?"}\n', 'd.jsonl')).toEqual([
      { image: 'a.png', text: 'a cat', question: undefined, source: 'd.jsonl:1' },
      { image: 'b.png', text: 'a dog', question: 'what?', source: 'd.jsonl:3' },
    ]);
    const coco = JSON.stringify({ images: [{ id: 7, file_name: 'x.jpg' }], annotations: [{ image_id: 7, caption: 'one' }, { image_id: 7, caption: 'two' }] });
    expect(parseTrainingData(coco, 'c.json').map((e) => [e.image, e.text])).toEqual([
      ['x.jpg', 'one'],
      ['x.jpg', 'two'],
    ]);
    expect(() => parseTrainingData('  \n', 'e.jsonl')).toThrow(new DataError('e.jsonl: the file is empty'));
    expect(() => parseTrainingData('{"image": "a.png", "text": "ok"}\n{"image": "b.png"', 'd.jsonl')).toThrow(/d.jsonl:2: not valid JSON/);
    expect(() => parseTrainingData('{"text": "no image"}', 'd.jsonl')).toThrow(/d.jsonl:1: "image" must be a path or URL/);
    expect(() => parseTrainingData(JSON.stringify({ images: [], annotations: [{ image_id: 1, caption: 'x' }] }), 'c.json')).toThrow(/image_id 1 is not in "images"/);
  });
});

describe('the training loop', () => {
  let model: Blip2ForConditionalGeneration;
  let processor: Blip2Processor;
  beforeAll(async () => {
    processor = await Blip2Processor.fromPretrained(TINY);
  });
  afterAll(() => model?.dispose());

  async function oneStep(microBatchSize: number): Promise<{ loss: number; params: Float32Array }> {
    model?.dispose();
    model = await Blip2ForConditionalGeneration.fromPretrained(TINY, { gpu, dtype: 'f32', trainable: 'qformer' });
    const trainer = new Trainer(model, processor, { lr: 1e-3, batchSize: 3, microBatchSize, maxGradNorm: 1 });
    const items = trainer.prepare([
      { image: join(TINY, 'chelsea.png'), text: 'a photo of a cat' },
      { image: join(TINY, 'camera.png'), text: 'a man with a camera and a long caption' },
      { image: join(TINY, 'cell.png'), text: 'cells' },
    ]);
    const r = await trainer.trainStep(items);
    const params = (await model.language_projection.weight.value.read()) as Float32Array;
    trainer.dispose();
    return { loss: r.loss, params };
  }

  it('accumulating micro-batches (token-weighted) equals one batch: same loss, same update', async () => {
    const whole = await oneStep(3);
    const parts = await oneStep(1);
    expect(Math.abs(parts.loss - whole.loss)).toBeLessThan(1e-5 * whole.loss);
    let worst = 0;
    whole.params.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - parts.params[i]!))));
    // AdamW's first step is lr * sign(g) except where g is rounding noise: a few elements may differ by up to 2 lr.
    const moved = whole.params.filter((v, i) => Math.abs(v - parts.params[i]!) > 1e-6).length;
    expect(moved / whole.params.length).toBeLessThan(0.01);
    expect(worst).toBeLessThanOrEqual(2e-3 + 1e-6);
  });

  it('names the example whose image cannot be read', async () => {
    const trainer = new Trainer(model, processor, { batchSize: 1 });
    const items = trainer.prepare([{ image: join(TINY, 'missing.png'), text: 'x', source: 'data.jsonl:4' }]);
    await expect(trainer.trainStep(items)).rejects.toThrow(/data.jsonl:4: cannot read image .*missing.png/);
    trainer.dispose();
  });
});
