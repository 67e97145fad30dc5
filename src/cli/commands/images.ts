/** Reading the images named on the command line, checked before the (slow) model load. */
import { ImageInputError, checkPixelLimit, loadImageSource, readImageHeader, type RawPixels } from '../../processing/index.js';
import { isAbsolute, resolve } from 'node:path';
import { CliError, type CliIo } from '../io.js';

/** A path, URL or data URI from the command line, as bytes whose header says it is a supported image. */
export async function readCliImage(io: CliIo, input: string): Promise<Uint8Array | RawPixels> {
  const isPath = !/^(https?:|data:)/i.test(input);
  const location = isPath && !isAbsolute(input) ? resolve(io.cwd, input) : input;
  try {
    const source = await loadImageSource(location);
    if (source instanceof Uint8Array) checkPixelLimit(readImageHeader(source), 100_000_000);
    return source;
  } catch (e) {
    if (e instanceof ImageInputError) throw new CliError(`${input}: ${e.message}`);
    throw new CliError(`cannot read ${input}: ${(e as Error).message}`);
  }
}
