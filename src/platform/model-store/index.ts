export { withModelStorage } from './scope.js';
export { listStoredModels, deleteStoredModel, modelStorageInfo, setStorePartBytes } from './store.js';
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
