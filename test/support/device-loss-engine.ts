/**
 * An engine module for `blip2 serve` tests (`BLIP2_ENGINE_MODULE`): the real BLIP-2 engine, whose GPU device is
 * destroyed when the process gets SIGUSR2 — a forced device loss, as a driver reset or a GPU fault causes.
 */
import { createEngine as createBlip2Engine, type Blip2Engine } from '../../src/server/blip2-engine.js';
import type { EngineFactory } from '../../src/server/engine.js';

export const createEngine: EngineFactory = async (options) => {
  const engine = (await createBlip2Engine(options)) as Blip2Engine;
  process.once('SIGUSR2', () => engine.pipeline.model.gpu.device.destroy());
  return engine;
};
