// The public API of the browser model store (re-exported by the package's entry point).
export { listStoredModels, deleteStoredModel, modelStorageInfo } from './store.js';
export {
  ModelStorageError,
  type ModelStorageErrorCode,
  type ModelCacheOptions,
  type ModelCacheSetting,
  type ModelStorageOptions,
  type DownloadProgress,
  type StoredModel,
  type StoredModelFile,
  type ModelStorageInfo,
} from './types.js';
