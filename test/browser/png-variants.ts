// PNG variants of a fixture image whose PIL decoding is known without PIL: same samples, other metadata.
import { deflateSync, inflateSync } from 'node:zlib';
import sharp from 'sharp';

/** CRC-32 of PNG chunks (type + data). */
function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}

function pngChunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const out = Buffer.alloc(body.length + 8);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), body.length + 4);
  return out;
}

/**
 * chelsea.png's samples with an alpha channel that sweeps 0..255 across the image. PIL's convert("RGB")
 * drops the alpha (the processor's default), so transformers would see chelsea unchanged; a decoder that
 * premultiplies loses the colour under low alpha (all of it where alpha is 0).
 */
export async function withAlphaSweep(png: Buffer): Promise<Buffer> {
  const { data, info } = await sharp(png, { ignoreIcc: true }).raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`expected an RGB image, got ${info.channels} channels`);
  const { width, height } = info;
  const stride = 1 + 4 * width;
  const rows = Buffer.alloc(height * stride); // filter byte 0 (none) on every row
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      data.copy(rows, y * stride + 1 + 4 * x, (y * width + x) * 3, (y * width + x) * 3 + 3);
      rows[y * stride + 4 + 4 * x] = (7 * x + 3 * y) % 256;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // colour type RGBA
  return Buffer.concat([png.subarray(0, 8), pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(rows)), pngChunk('IEND', new Uint8Array(0))]);
}

/**
 * chelsea.png with its embedded sRGB profile changed so that the red and blue colorants trade places: the
 * samples are untouched (PIL, which ignores ICC, sees the same image), but a colour-managing decoder would
 * swap the picture's reds and blues. The fixture's own profile is sRGB, so it cannot tell the two apart.
 */
export function withSwappedColorants(png: Buffer): Buffer {
  const chunks: Buffer[] = [png.subarray(0, 8)];
  let swapped = false;
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    let chunk = png.subarray(at, at + 12 + length);
    if (type === 'iCCP') {
      const data = chunk.subarray(8, 8 + length);
      const nameEnd = data.indexOf(0);
      const profile = Buffer.from(inflateSync(data.subarray(nameEnd + 2)));
      const tags = new Map<string, number>();
      for (let i = 0, n = profile.readUInt32BE(128); i < n; i++) tags.set(profile.toString('latin1', 132 + 12 * i, 136 + 12 * i), 132 + 12 * i);
      const [r, b] = [tags.get('rXYZ'), tags.get('bXYZ')];
      if (r === undefined || b === undefined) throw new Error('the ICC profile has no rXYZ/bXYZ tags');
      const rOffset = profile.readUInt32BE(r + 4);
      profile.writeUInt32BE(profile.readUInt32BE(b + 4), r + 4);
      profile.writeUInt32BE(rOffset, b + 4);
      chunk = pngChunk('iCCP', Buffer.concat([data.subarray(0, nameEnd + 2), deflateSync(profile)]));
      swapped = true;
    }
    chunks.push(chunk);
    at += 12 + length;
  }
  if (!swapped) throw new Error('the PNG has no iCCP chunk');
  return Buffer.concat(chunks);
}
