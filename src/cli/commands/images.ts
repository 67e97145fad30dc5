/** Reading the images named on the command line, checked before the (slow) model load. */
import { ImageInputError, checkPixelLimit, loadImageSource, readImageHeader, type RawPixels } from '../../processing/index.js';
import { looksTruncated } from '../../processing/image-header.js';
import { isAbsolute, resolve } from 'node:path';
import { CliError, type CliIo } from '../io.js';

/** An image that cannot be used: `reason` without the image's name, for `--json` records. */
export class ImageReadError extends CliError {
  constructor(
    readonly image: string,
    readonly reason: string,
  ) {
    super(`${image}: ${reason}`);
  }
}

/**
 * How an image argument is shown in output and messages: as given, except that a `data:` URI becomes its
 * header and size (`data:image/png;base64,…(16 KB)`) instead of being echoed whole.
 */
export function displayImage(input: string): string {
  if (!/^data:/i.test(input)) return input;
  const comma = input.indexOf(',');
  if (comma < 0 || input.length <= 64) return input;
  const payload = input.slice(comma + 1);
  const bytes = /;base64$/i.test(input.slice(0, comma)) ? Math.floor((payload.replace(/[\s=]/g, '').length * 3) / 4) : payload.length;
  const size = bytes < 1024 ? `${bytes} B` : `${Math.round(bytes / 1024)} KB`;
  return `${input.slice(0, comma + 1)}…(${size})`;
}

/**
 * A path, URL or data URI from the command line, as bytes whose header says it is a supported image of
 * acceptable size, and that does not visibly end early (a truncated PNG or WebP): such files fail here, before
 * the model loads, rather than in the middle of a batch.
 */
export async function readCliImage(io: CliIo, input: string): Promise<Uint8Array | RawPixels> {
  const isPath = !/^(https?:|data:)/i.test(input);
  const location = isPath && !isAbsolute(input) ? resolve(io.cwd, input) : input;
  const shown = displayImage(input);
  try {
    const source = await loadImageSource(location);
    if (source instanceof Uint8Array) {
      const header = readImageHeader(source);
      checkPixelLimit(header, 100_000_000);
      if (looksTruncated(source, header.format)) {
        throw new ImageInputError('truncated', `truncated ${header.format.toUpperCase()}: the file ends before its image data does`);
      }
    }
    return source;
  } catch (e) {
    if (e instanceof ImageInputError) throw new ImageReadError(shown, e.message);
    throw new ImageReadError(shown, `cannot read it: ${(e as Error).message}`);
  }
}
