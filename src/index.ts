/**
 * blip2-webgpu: BLIP-2 (OPT-2.7B) on WebGPU, in Node.js and browsers. This entry point is platform-neutral;
 * Node-only extras (hub download, the HTTP server) live in `blip2-webgpu/node`.
 */

// One-call API
export { Blip2, DEFAULT_MAX_NEW_TOKENS, type Blip2LoadOptions, type TextOptions, type GenerationResult, type SingleResult, type BatchRequest } from './pipeline.js';

// Model (mirrors transformers' modeling_blip_2.py / modeling_opt.py)
export { Blip2ForConditionalGeneration, type FromPretrainedOptions, type Blip2ForwardArgs, type Blip2Output, type ImageFeatures } from './model/blip2.js';
export * from './model/blip2-vision.js';
export * from './model/blip2-qformer.js';
export * from './model/opt.js';
export { OPTKVCache } from './model/opt-cache.js';
export { parseBlip2Config, ConfigError, type Blip2Config, type Blip2VisionConfig, type Blip2QFormerConfig, type OPTConfig } from './model/config.js';
export { Module, ModuleList, Parameter, type ParameterRole, type ForwardHook, type ForwardPreHook, type HookHandle } from './model/module.js';
export { Linear, LayerNorm, Embedding, Dropout, type LinearCallOptions } from './model/nn.js';
export { loadWeights, planLoad, CheckpointMismatchError, type LoadOptions, type LoadProgress } from './model/loader.js';

// Training (torch-like: requires_grad, loss.backward(), AdamW.step(); docs/finetuning.md)
export * as F from './autograd/functional.js';
export { noGrad, noGradAsync, enableGrad, freeGraph, checkpoint, isGradEnabled } from './autograd/tape.js';
export { manualSeed } from './autograd/random.js';
export { AdamW, clipGradNorm_, type AdamWOptions } from './training/adamw.js';
export { cosineWithWarmup, type CosineSchedule } from './training/schedule.js';
export { markTrainable, selectionFilter, type ParameterSelection } from './training/select.js';
export { Trainer, type TrainerOptions, type StepResult } from './training/trainer.js';
export { parseTrainingData, encodeExample, collate, DataError, type TrainExample, type PromptFormat } from './training/data.js';
export { saveFinetuned, saveTrainingState, loadTrainingState, type TrainingState } from './training/checkpoint.js';

// Processing and generation
export * from './processing/index.js';
export { generateBlip2, generateCausalLM, type Blip2GenerateArgs, type CausalLMGenerateArgs, type GenerateOutput } from './generation/generate.js';
export { HF_GENERATION_DEFAULTS, GenerationConfigError, type GenerationConfig, type GenerationOptions } from './generation/config.js';
export type { TokenEvent, OnToken, FinishReason } from './generation/types.js';

// Engine
export { Gpu, getGpu, releaseGpu, type GpuOptions, type GpuStats } from './gpu/gpu.js';
export { GpuError, NoAdapterError, DeviceLostError } from './gpu/errors.js';
export { setShaderBaseUrl } from './gpu/shader-sources.js';
export { adapterLabel, type Capabilities, type AdapterDescription } from './gpu/capabilities.js';
export { Tensor, tidy, keep, disposeTree, type DType, type HostArray } from './tensor.js';
export * as ops from './kernels/index.js';

// Checkpoints
export { SafetensorsFile, SafetensorsError, readFloat32, readTyped, type TensorInfo, type TensorSource } from './io/safetensors.js';
export { ShardedCheckpoint, openCheckpoint } from './io/checkpoint.js';
export { writeSafetensors, serializeSafetensors, writeShardedCheckpoint, type TensorToWrite } from './io/safetensors-writer.js';
export { getPlatform, setPlatform, type Platform, type ByteSource } from './platform/index.js';

// Browser model storage (models fetched by URL kept in the origin private file system)
export * from './platform/model-store/index.js';
