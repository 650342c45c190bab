// The engine's ONNX layer: build graphs (GraphBuilder), write them (writeModel / compileCached),
// run them off the main thread (createSession).
export { GraphBuilder, Tensor, attr, GRAPH_BUILDER_VERSION, LORA_INPUT } from './graph.js';
export type {
  Attr, AttentionMode, AttentionOptions, BuilderOptions, Conv2dOptions, Dim, ModelDef, Operand, ResizeOptions, Shape, WeightData, WeightSource,
} from './graph.js';
export type { DType, FloatDType, HostArray, HostTensor } from './dtype.js';
export { encodeModel, writeModel, weightBytes, type WriteOptions, type WrittenModel } from './serialize.js';
export {
  compileCached, cachedModelPath, fingerprintFiles, openHeld, pruneCache, listCacheEntries, cacheMaxBytes,
  type CacheKey, type CacheEntry, type CompiledModel,
} from './cache.js';
export {
  OrtWorker, Session, availableExecutionProviders, checkExecutionProvider, createSession,
  type ExecutionProvider, type GraphOptimizationLevel, type RunOptions, type SessionOptions, type ValueMeta,
} from './session.js';
export { DeviceTensor, copiedBytes, resetCopiedBytes } from './session.js';
export {
  EXECUTION_PROVIDERS, defaultExecutionProvider, findSwiftShaderIcd, graphChoicesFor, parseExecutionProvider,
  setDefaultExecutionProvider, vulkanIcds, type GraphChoices,
} from './provider.js';
