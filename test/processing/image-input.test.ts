import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sharpImageDecoder } from '../../src/platform/image-node.js';
import { convertToRgb } from '../../src/processing/convert-rgb.js';
import { ImageInputError, type ImageErrorCode } from '../../src/processing/errors.js';
import { readImageHeader } from '../../src/processing/image-header.js';
import { decodeImageBytes, loadImage, loadRgbImage } from '../../src/processing/image-input.js';
import { fixturePath } from '../paths.js';
import { IMAGES_DIR } from './fixtures.js';

interface ManifestEntry {
  file: string;
  width: number;
  height: number;
  pil_mode: string;
  white: string;
  drop: string;
}
const manifest = JSON.parse(readFileSync(join(IMAGES_DIR, 'manifest.json'), 'utf8')) as Record<string, ManifestEntry>;
const bytesOf = (path: string) => new Uint8Array(readFileSync(path));
const CHELSEA = fixturePath('tiny-blip2', 'chelsea.png');

async function expectCode(p: Promise<unknown>, code: ImageErrorCode, message?: RegExp): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, `expected ImageInputError(${code})`).toBeInstanceOf(ImageInputError);
  expect((err as ImageInputError).code, (err as Error).message).toBe(code);
  if (message) expect((err as Error).message).toMatch(message);
}

/** A minimal PNG: signature + IHDR (+ an empty IDAT and IEND), with any size written in the header. */
function pngWithSize(width: number, height: number): Uint8Array {
  const b = new Uint8Array(8 + 25 + 12 + 12);
  b.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const dv = new DataView(b.buffer);
  dv.setUint32(8, 13);
  b.set([73, 72, 68, 82], 12); // IHDR
  dv.setUint32(16, width);
  dv.setUint32(20, height);
  b.set([8, 2, 0, 0, 0], 24);
  dv.setUint32(33, 0);
  b.set([73, 68, 65, 84], 37); // IDAT (empty)
  dv.setUint32(45, 0);
  b.set([73, 69, 78, 68], 49); // IEND
  return b;
}

describe('formats decode as PIL opens and converts them', () => {
  for (const [name, e] of Object.entries(manifest)) {
    if (e.file.endsWith('.bmp')) continue;
    it(`${name} (PIL mode ${e.pil_mode}): identical to PIL for alpha=white and alpha=drop`, async () => {
      const raw = await loadImage(join(IMAGES_DIR, e.file));
      expect([raw.width, raw.height]).toEqual([e.width, e.height]);
      for (const mode of ['white', 'drop'] as const) {
        const rgb = convertToRgb(raw, mode);
        const ref = bytesOf(join(IMAGES_DIR, e[mode]));
        let diffs = 0;
        for (let i = 0; i < ref.length; i++) if (rgb.data[i] !== ref[i]) diffs++;
        expect(diffs, mode).toBe(0);
      }
    });
  }

  it('BMP is refused in Node with a clear error', async () => {
    await expectCode(loadImage(join(IMAGES_DIR, 'bmp.bmp')), 'unsupported', /BMP/);
  });

  it('alpha composite over white is PIL alpha_composite arithmetic for every value and alpha', () => {
    // PIL: a*255 over opaque white, 7 extra bits, rounded division by 255. Reference written independently.
    const data = new Uint8Array(256 * 256 * 2);
    for (let a = 0; a < 256; a++) for (let v = 0; v < 256; v++) (data[(a * 256 + v) * 2] = v), (data[(a * 256 + v) * 2 + 1] = a);
    const rgb = convertToRgb({ width: 256, height: 256, channels: 2, data }, 'white').data;
    for (let a = 0; a < 256; a++)
      for (let v = 0; v < 256; v++) {
        let want = 255;
        if (a > 0) {
          const coef1 = Math.floor((a * 255 * 255 * 128) / (a * 255 + 255 * (255 - a)));
          const tmp = v * coef1 + 255 * (255 * 128 - coef1) + 128 * 128;
          want = Math.floor((Math.floor(tmp / 256) + tmp) / 256 / 128);
        }
        expect(rgb[(a * 256 + v) * 3], `v=${v} a=${a}`).toBe(want);
      }
  });
});

describe('input forms', () => {
  let server: Server;
  let base = '';
  const png = bytesOf(CHELSEA);
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/chelsea.png') {
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length });
        res.end(png);
      } else if (req.url === '/slow.png') {
        setTimeout(() => res.end(png), 1500); // answers after the client's time limit
      } else {
        res.writeHead(404);
        res.end('not found');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  let reference: Uint8Array;
  const same = async (input: Parameters<typeof loadRgbImage>[0], options = {}) => {
    reference ??= (await loadRgbImage(CHELSEA)).data;
    const rgb = await loadRgbImage(input, options);
    expect([rgb.width, rgb.height]).toEqual([451, 300]);
    expect(Buffer.from(rgb.data).equals(Buffer.from(reference))).toBe(true);
  };

  it('file path, file: URL, bytes, ArrayBuffer and Blob', async () => {
    await same(CHELSEA);
    await same(new URL(`file://${CHELSEA}`));
    await same(png);
    await same(png.buffer.slice(png.byteOffset, png.byteOffset + png.byteLength));
    await same(new Blob([png]));
  });

  it('data: URI and bare base64', async () => {
    const b64 = Buffer.from(png).toString('base64');
    await same(`data:image/png;base64,${b64}`);
    await same(b64);
    await same(b64.replace(/(.{76})/g, '$1\n')); // MIME-style line breaks
  });

  it('http URL from a local server, through the default fetcher and an injected one', async () => {
    await same(`${base}/chelsea.png`);
    const seen: string[] = [];
    await same(`${base}/anything`, {
      fetchBytes: async (url: string) => {
        seen.push(url);
        return png;
      },
    });
    expect(seen).toEqual([`${base}/anything`]);
  });

  it('raw pixels, already decoded', async () => {
    const raw = await loadImage(CHELSEA);
    await same({ width: raw.width, height: raw.height, channels: raw.channels, data: new Uint8ClampedArray(raw.data) });
  });

  it('URL failures: 404, over the byte limit, time limit, injected fetcher errors', async () => {
    await expectCode(loadImage(`${base}/missing.png`), 'fetch-failed', /HTTP 404/);
    await expectCode(loadImage(`${base}/chelsea.png`, { maxBytes: 1000 }), 'too-large', /over the limit of 1000 bytes/);
    await expectCode(loadImage(`${base}/slow.png`, { fetchTimeoutMs: 200 }), 'fetch-failed', /within 200 ms/);
    await expectCode(loadImage(`${base}/x`, { fetchBytes: async () => Promise.reject(new Error('address not allowed')) }), 'fetch-failed', /address not allowed/);
    await expectCode(loadImage(`${base}/x`, { fetchBytes: async () => new Uint8Array(5000), maxBytes: 100 }), 'too-large');
  });
});

describe('bad images fail with a typed error, never a crash, a hang or a huge allocation', () => {
  it('truncated files', async () => {
    for (const f of [CHELSEA, join(IMAGES_DIR, 'jpeg420.jpg'), join(IMAGES_DIR, 'webp_lossy.webp'), join(IMAGES_DIR, 'gif_transparent.gif'), join(IMAGES_DIR, 'png_interlaced.png')]) {
      const b = bytesOf(f);
      for (const frac of [0.5, 0.9]) await expectCode(decodeImageBytes(b.subarray(0, Math.floor(b.length * frac))), 'truncated');
      await expectCode(decodeImageBytes(b.subarray(0, 12)), 'truncated');
    }
  });

  it('bytes that are not an image, and empty input', async () => {
    await expectCode(decodeImageBytes(new TextEncoder().encode('hello, this is text and not a picture')), 'not-an-image');
    await expectCode(decodeImageBytes(new Uint8Array(0)), 'not-an-image');
    await expectCode(loadImage('/definitely/not/here.png'), 'unreadable');
    await expectCode(loadImage('data:image/png;base64,!!!!'), 'bad-input');
    await expectCode(loadImage('data:text/plain;base64,aGVsbG8='), 'bad-input', /not an image/);
    await expectCode(loadImage(new Uint8Array([1, 2, 3])), 'not-an-image');
  });

  it('corrupt image data', async () => {
    const g = bytesOf(join(IMAGES_DIR, 'png_gray.png'));
    for (let i = 60; i < g.length - 20; i++) g[i] = (i * 31) & 255;
    await expectCode(decodeImageBytes(g), 'corrupt');
  });

  it('zero-sized images', async () => {
    await expectCode(decodeImageBytes(pngWithSize(0, 10)), 'empty');
    await expectCode(decodeImageBytes(pngWithSize(10, 0)), 'empty');
    await expectCode(loadImage({ width: 0, height: 3, channels: 3, data: new Uint8Array(0) }), 'empty');
  });

  it('huge images are refused from the header before decoding', async () => {
    const t0 = performance.now();
    await expectCode(decodeImageBytes(pngWithSize(20000, 20000)), 'too-large', /20000x20000/);
    // A JPEG whose frame header claims 20000x20000.
    const jpeg = bytesOf(join(IMAGES_DIR, 'jpeg420.jpg'));
    const sof = jpeg.findIndex((v, i) => v === 0xff && jpeg[i + 1] === 0xc0);
    new DataView(jpeg.buffer, jpeg.byteOffset).setUint16(sof + 5, 20000);
    new DataView(jpeg.buffer, jpeg.byteOffset).setUint16(sof + 7, 20000);
    expect(readImageHeader(jpeg)).toMatchObject({ format: 'jpeg', width: 20000, height: 20000 });
    await expectCode(decodeImageBytes(jpeg), 'too-large');
    await expectCode(loadImage(CHELSEA, { maxPixels: 1000 }), 'too-large');
    await expectCode(loadImage({ width: 5000, height: 5000, channels: 1, data: new Uint8Array(1) }, { maxPixels: 1e6 }), 'too-large');
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('the sharp back-end enforces the pixel limit itself as well', async () => {
    const b = bytesOf(CHELSEA);
    await expectCode(sharpImageDecoder.decode(b, readImageHeader(b), { maxPixels: 1000 }), 'too-large');
  });

  it('raw pixel buffers of the wrong size or channel count', async () => {
    await expectCode(loadImage({ width: 2, height: 2, channels: 3, data: new Uint8Array(11) }), 'bad-input', /expected 12/);
    await expectCode(loadImage({ width: 2, height: 2, channels: 5 as 3, data: new Uint8Array(20) }), 'bad-input', /channels/);
    expect(() => convertToRgb({ width: 2, height: 2, channels: 4, data: new Uint8Array(3) })).toThrow(ImageInputError);
  });
});
