import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readIntegers, readTyped, SafetensorsFile } from '../../src/io/safetensors.js';
import { Blip2Processor } from '../../src/processing/processor.js';
import { captionPrompt, chatPrompt, vqaPrompt } from '../../src/processing/prompts.js';
import { fixtureDirs, readCases, REAL_PROCESSOR_DIR } from './fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'blip2-processor-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function rows(flat: number[], shape: number[]): number[][] {
  const [b, l] = shape as [number, number];
  return Array.from({ length: b }, (_, i) => flat.slice(i * l, (i + 1) * l));
}

for (const dir of fixtureDirs()) {
  const cases = readCases(dir);
  describe(`Blip2Processor on fixture ${cases.fixture}`, () => {
    let st: SafetensorsFile;
    const open = async () => (st ??= await SafetensorsFile.open(join(dir, 'expected.safetensors')));
    afterAll(async () => st?.close());
    const ints = async (name: string) => rows(await readIntegers(await open(), name), cases.tensors[name]!.shape);

    for (const c of cases.cases) {
      it(`${c.name}: input_ids, attention_mask and pixel_values equal HF's`, async () => {
        const p = await Blip2Processor.fromPretrained(dir);
        const out = await p.process({ images: join(dir, cases.images[c.image]!.file), text: c.prompt });
        expect(out.inputIds).toEqual(await ints(`${c.name}.input_ids`));
        expect(out.inputIds[0]).toEqual(c.input_ids);
        expect(out.attentionMask).toEqual(await ints(`${c.name}.attention_mask`));
        const expected = (await readTyped(await open(), `${c.name}.pixel_values`)).data as Float32Array;
        expect(out.pixelShape).toEqual(cases.tensors[`${c.name}.pixel_values`]!.shape);
        expect(Array.from(out.pixelValues)).toEqual(Array.from(expected));
      });
    }

    it('the real blip2-opt-2.7b processor gives realproc.input_ids (32 x <image>, BOS, prompt)', async () => {
      const p = await Blip2Processor.fromPretrained(REAL_PROCESSOR_DIR);
      expect(p.numQueryTokens).toBe(32);
      expect(p.imageTokenIndex).toBe(50265);
      for (const c of cases.cases) {
        const name = `${c.name}.realproc.input_ids`;
        if (!cases.tensors[name]) continue;
        expect(p.encodePrompt(c.prompt), c.name).toEqual((await ints(name))[0]);
        if (c.realproc_input_ids) expect(p.encodePrompt(c.prompt)).toEqual(c.realproc_input_ids);
      }
      const out = await p.process({ images: join(dir, cases.images[0]!.file) });
      expect(out.pixelShape).toEqual([1, 3, 224, 224]);
      expect(out.inputIds).toEqual([[...new Array(32).fill(50265), 2]]);
    });

    it('batch_decode(skip_special_tokens) of the generated sequences gives the recorded texts', async () => {
      const p = await Blip2Processor.fromPretrained(dir);
      for (const c of cases.cases) {
        expect(p.batchDecode(await ints(`${c.name}.greedy.sequences`), { skipSpecialTokens: true }), c.name).toEqual([c.greedy.text]);
        expect(p.batchDecode(await ints(`${c.name}.beam.sequences`), { skipSpecialTokens: true }), c.name).toEqual([c.beam.text]);
        expect(p.batchDecode(await ints(`${c.name}.beam3.sequences`), { skipSpecialTokens: true }), c.name).toEqual(c.beam.beam3_texts);
        expect(p.decode([...c.input_ids, ...c.greedy.new_tokens], { skipSpecialTokens: true })).toBe(c.greedy.text);
      }
    });

    it('left-pads a batch with <pad> = 1 and masks the padding', async () => {
      const p = await Blip2Processor.fromPretrained(dir);
      const [short, long] = [cases.cases.find((c) => c.prompt === '')!, cases.cases.find((c) => c.prompt !== '')!];
      const out = await p.process({
        images: [join(dir, cases.images[short.image]!.file), join(dir, cases.images[long.image]!.file)],
        text: [short.prompt, long.prompt],
      });
      const pad = long.input_ids.length - short.input_ids.length;
      expect(out.pixelShape[0]).toBe(2);
      expect(out.inputIds[0]).toEqual([...new Array(pad).fill(1), ...short.input_ids]);
      expect(out.inputIds[1]).toEqual(long.input_ids);
      expect(out.attentionMask[0]).toEqual([...new Array(pad).fill(0), ...new Array(short.input_ids.length).fill(1)]);
      expect(out.attentionMask[1]).toEqual(new Array(long.input_ids.length).fill(1));
      if (cases.opt_only?.batch) {
        // The text-only batch of the fixture was left-padded by HF the same way.
        const b = cases.opt_only.batch;
        expect(p.padLeft(b.texts.map((t) => p.tokenizer.encode(t))).inputIds).toEqual(b.input_ids);
      }
    });

    it('legacy checkpoints without num_query_tokens get [BOS] + prompt only', async () => {
      const legacy = join(tmp, `${cases.fixture}-legacy`);
      rmSync(legacy, { recursive: true, force: true });
      mkdirSync(legacy);
      for (const f of ['preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(dir, f), join(legacy, f));
      writeFileSync(join(legacy, 'processor_config.json'), JSON.stringify({ processor_class: 'Blip2Processor' }));
      const p = await Blip2Processor.fromPretrained(legacy);
      expect(p.numQueryTokens).toBeNull();
      const c = cases.cases.find((x) => x.prompt !== '')!;
      const out = await p.process({ images: join(dir, cases.images[0]!.file), text: c.prompt });
      expect(out.inputIds[0]).toEqual(c.input_ids.filter((id) => id !== p.imageTokenIndex));
      expect((await p.process({ images: join(dir, cases.images[0]!.file) })).inputIds).toEqual([[2]]);
    });

    it('refuses mismatched inputs and missing configs with clear errors', async () => {
      const p = await Blip2Processor.fromPretrained(dir);
      const img = join(dir, cases.images[0]!.file);
      await expect(p.process({ images: [img, img], text: ['a'] })).rejects.toThrow(/2 image\(s\) but 1 prompt/);
      await expect(p.process({ images: [] })).rejects.toThrow(/no images/);
      await expect(Blip2Processor.fromPretrained(join(tmp, 'does-not-exist'))).rejects.toThrow(/tokenizer.json not found/);
    });
  });
}

describe('prompt builders', () => {
  it('follow the BLIP-2 OPT formats', () => {
    expect(captionPrompt()).toBe('');
    expect(captionPrompt(' a photo of ')).toBe('a photo of');
    expect(vqaPrompt('which city is this?')).toBe('Question: which city is this? Answer:');
    expect(chatPrompt([{ question: 'what is this?', answer: 'a cat' }], 'what color is it?')).toBe(
      'Question: what is this? Answer: a cat. Question: what color is it? Answer:',
    );
    expect(chatPrompt([{ question: 'q1', answer: 'yes.' }, { question: 'q2', answer: 'no' }], 'q3')).toBe('Question: q1 Answer: yes. Question: q2 Answer: no. Question: q3 Answer:');
    expect(() => vqaPrompt('  ')).toThrow(/empty/);
  });
});
