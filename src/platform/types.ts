/**
 * What the engine needs from its host. The core never imports Node built-ins; everything
 * host-specific (file access, the Dawn binding) sits behind this interface.
 */

/** Random-access bytes: a local file in Node, a URL (HTTP range requests) or a Blob in browsers. */
export interface ByteSource {
  readonly name: string;
  readonly size: number;
  /** Reads exactly `length` bytes at `offset`, or rejects. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /**
   * Reads exactly `target.length` bytes at `offset` into `target`, or rejects. Optional: sources that can fill
   * a caller's buffer spare a fresh allocation per read (loading streams gigabytes through one buffer).
   */
  readInto?(offset: number, target: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** Sequential output, used by the safetensors writer. */
export interface ByteSink {
  write(chunk: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export interface Platform {
  readonly kind: 'node' | 'browser';
  /** The WebGPU entry point, or null when the host has none. */
  gpu(options?: { dawnToggles?: string[] }): Promise<GPU | null>;
  /** Text of a resource next to the code (the WGSL shaders). */
  readText(url: URL): Promise<string>;
  /** Opens a file path (Node) or URL (both) for random-access reads. */
  openBytes(location: string | URL | Blob): Promise<ByteSource>;
  /** Creates or truncates a file for writing (Node only; browsers throw). */
  createSink(path: string): Promise<ByteSink>;
  /** Hint shown when no adapter is found. */
  readonly noAdapterHelp: string;
  /**
   * Waits for a WebGPU promise without the binding's busy polling (Node: platform/quiet-wait.ts); absent where
   * waiting costs nothing (browsers).
   */
  readonly quietWait?: <T>(promise: Promise<T>) => Promise<T>;
}
