export { ImageInputError, type ImageErrorCode } from './errors.js';
export type { RawImage, ImageDecoder, DecodeLimits } from './image-decode.js';
export { readImageHeader, sniffFormat, checkPixelLimit, type ImageHeader, type ImageFormat } from './image-header.js';
export { convertToRgb, type AlphaMode, type RgbImage } from './convert-rgb.js';
export { resizeBicubicAntialiasU8, computeAxisTaps, type AxisTaps } from './resize.js';
export {
  loadImage,
  loadRgbImage,
  loadImageSource,
  decodeImageBytes,
  defaultFetchBytes,
  DEFAULT_MAX_BYTES,
  DEFAULT_MAX_PIXELS,
  type ImageInput,
  type RawPixels,
  type FetchBytes,
  type ImageLoadOptions,
} from './image-input.js';
export { defaultImageDecoder } from './decoder.js';
export { parseImageProcessorConfig, BLIP_IMAGE_PROCESSOR_DEFAULTS, ProcessorConfigError, type ImageProcessorConfig } from './config.js';
export { BlipImageProcessor, type PixelBatch } from './image-processor.js';
export { Blip2Tokenizer, IMAGE_TOKEN, type DecodeOptions, type TokenizerFiles } from './tokenizer.js';
export { Blip2Processor, type ProcessInput, type ProcessedBatch, type ProcessorOptions } from './processor.js';
export { captionPrompt, vqaPrompt, chatPrompt, type ChatTurn } from './prompts.js';
