// SPDX-License-Identifier: Apache-2.0
//
// Types of the native addon (native/src). Errors thrown by BpfObject methods
// are BpfError instances (plain Error objects with the fields below).

export type BpfStep = 'open' | 'load' | 'attach' | 'detach' | 'map' | 'ring' | 'close';

export interface BpfError extends Error {
  step: BpfStep;
  /** Positive errno. */
  errno: number;
  /** Symbolic errno, e.g. 'EPERM'. */
  code: string;
  object?: string;
  program?: string;
  map?: string;
}

export interface BpfObjectOptions {
  /** Ring buffer map name => size in bytes (power of 2, multiple of the page size). Applied before load. */
  ringbufBytes?: Record<string, number>;
  /** `const volatile` global name => value, written into .rodata before load. */
  consts?: Record<string, number | bigint | boolean>;
}

export interface ProgramInfo {
  name: string;
  /** Kernel program id; 0 before load. */
  id: number;
  attached: boolean;
  /** ELF section, e.g. 'tracepoint/sched/sched_process_exec'. */
  section: string;
}

export interface MapInfo {
  name: string;
  /** Kernel map id; 0 before load. */
  id: number;
  /** enum bpf_map_type */
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

export interface RingOptions {
  /** Hand a batch to JS once it holds this many bytes. Default 262144. */
  batchBytes?: number;
  /** ... or this long after its first sample. Default 100. */
  flushMs?: number;
  /** Batches waiting for JS before the ring thread blocks (the kernel then counts drops). Default 8. */
  maxPendingBatches?: number;
}

export interface RingStats {
  batches: number;
  events: number;
  bytes: number;
  malformed: number;
  pollErrors: number;
}

/**
 * Called on the JS thread with a batch: raw ring samples concatenated, each
 * starting with struct tf_event_header (size at offset 4). `batch` owns its
 * memory; keep it as long as needed.
 */
export type OnBatch = (batch: Buffer, events: number) => void;

export class BpfObject {
  constructor(path: string, opts?: BpfObjectOptions);
  load(): void;
  /**
   * No-op if already attached. `cgroup`: a cgroup v2 directory, for programs
   * that attach to a cgroup (cgroup_skb/ingress, cgroup_skb/egress).
   */
  attach(prog: string, cgroup?: string): void;
  /** No-op if not attached. */
  detach(prog: string): void;
  programs(): ProgramInfo[];
  maps(): MapInfo[];
  /** null when the key is absent. Per-CPU maps: one 8-byte-aligned value per possible CPU. */
  mapLookup(map: string, key: Buffer): Buffer | null;
  mapUpdate(map: string, key: Buffer, value: Buffer, flags?: number): void;
  /** false when the key was absent. */
  mapDelete(map: string, key: Buffer): boolean;
  /**
   * Every entry, read with get_next_key + lookup: `keys` and `values` are
   * `count` fixed-size records concatenated (keySize, and valueSize or, for
   * per-CPU maps, one 8-byte-aligned value per possible CPU as mapLookup).
   * `delete`: remove each entry right after reading it (not for arrays). Not
   * atomic: a kernel update between the lookup and the delete is lost.
   * `max`: stop after this many entries (default: max_entries).
   */
  mapDump(
    map: string,
    opts?: { delete?: boolean; max?: number },
  ): { keys: Buffer; values: Buffer; count: number };
  /** For a PERCPU_ARRAY of u64: entry i summed over CPUs. */
  sumPercpuCounters(map: string): bigint[];
  startRing(map: string, opts: RingOptions | undefined, onBatch: OnBatch): void;
  startRing(map: string, onBatch: OnBatch): void;
  /** Cumulative over every ring this object started. */
  ringStats(): RingStats;
  /** Joins the ring thread; queued batches and the last partial batch are delivered before it returns. */
  stopRing(): void;
  /** Stops the ring, destroys links, closes the object. Idempotent; also run by the GC finalizer. */
  close(): void;
}

export function setLogger(
  fn: ((level: 'warn' | 'info' | 'debug', message: string) => void) | null,
): void;

/** "major.minor" of the libbpf the addon runs with. */
export function libbpfVersion(): string;

declare const addon: {
  BpfObject: typeof BpfObject;
  setLogger: typeof setLogger;
  libbpfVersion: typeof libbpfVersion;
};
export default addon;
