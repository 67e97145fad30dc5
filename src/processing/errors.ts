/** Why an image could not be turned into pixels. */
export type ImageErrorCode =
  | 'not-an-image' // the bytes are not in any supported image format
  | 'unsupported' // a recognised format this decoder cannot read
  | 'truncated' // the file ends before the image data does
  | 'corrupt' // the decoder rejected the data
  | 'empty' // zero width or height
  | 'too-large' // more pixels (or bytes) than the configured limit
  | 'bad-input' // the input value itself is malformed (bad base64, bad raw pixel buffer, ...)
  | 'unreadable' // the file could not be read
  | 'fetch-failed'; // the image URL could not be fetched

/** The one error class for bad image input; `code` says which rule was broken. */
export class ImageInputError extends Error {
  override readonly name = 'ImageInputError';
  constructor(
    readonly code: ImageErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
