/** Node-only extras: model download into the Hugging Face cache, and the OpenAI-compatible HTTP server. */
export * from './index.js';
export { downloadModel, resolveModel, HubError, DEFAULT_MODEL, type HubOptions, type ResolvedModel, type DownloadProgress } from './io/hub.js';
export { Blip2Server } from './server/http-server.js';
export type { Engine, GenerateRequest, GenerateResult, GenerationParams } from './server/engine.js';
