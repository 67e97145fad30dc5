export class GpuError extends Error {
  override readonly name = 'GpuError';
}

/** No adapter, or the device could not be created. */
export class NoAdapterError extends GpuError {}

/** The device was lost (driver reset, out of memory, destroyed); every later call fails with this. */
export class DeviceLostError extends GpuError {}
