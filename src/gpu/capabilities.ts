/** What the rest of the engine may rely on, read once from the adapter and device. */
export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** 'node-dawn' or 'browser'. */
  runtime: string;
}

export interface Capabilities {
  adapter: AdapterDescription;
  /** f16 in shaders (`enable f16;`). */
  f16: boolean;
  subgroups: boolean;
  timestampQuery: boolean;
  /** Rough class, for picking kernel variants: software rasterisers (lavapipe, SwiftShader) want different code. */
  isSoftware: boolean;
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupSizeX: number;
  maxComputeWorkgroupSizeY: number;
  maxComputeWorkgroupsPerDimension: number;
  maxStorageBuffersPerShaderStage: number;
  minStorageBufferOffsetAlignment: number;
  minUniformBufferOffsetAlignment: number;
  maxUniformBufferBindingSize: number;
  subgroupMinSize: number;
  subgroupMaxSize: number;
}

export function describeAdapter(info: GPUAdapterInfo | undefined, runtime: string): AdapterDescription {
  return {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
    runtime,
  };
}

export function isSoftwareAdapter(a: AdapterDescription): boolean {
  const s = `${a.vendor} ${a.architecture} ${a.device} ${a.description}`.toLowerCase();
  return /llvmpipe|lavapipe|swiftshader|software|warp/.test(s);
}

export function adapterLabel(a: AdapterDescription): string {
  const parts = [a.vendor, a.architecture, a.device, a.description].filter((s) => s.length > 0);
  return `${parts.join(' / ') || 'unknown adapter'} (${a.runtime})`;
}
