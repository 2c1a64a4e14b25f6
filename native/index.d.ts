// SPDX-License-Identifier: Apache-2.0
//
// Types of the native addon (native/src), the only declaration of them: the
// TypeScript sources re-export them from src/ingest/native.ts. Errors thrown by
// BpfObject methods are BpfError instances (plain Error objects with the fields below).

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
  /** Hand a batch over once it holds this many bytes. Default 262144. */
  batchBytes?: number;
  /** ... or this long after its first sample, ms. Default 100. */
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

export interface BpfObject {
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
   * `delete`: remove each entry as it is read (not for arrays). Hash maps use
   * the kernel's lookup-and-delete batch (each bucket copied and emptied under
   * its lock): an update is lost only when it falls between a program's lookup
   * of the entry and its write to it. Other maps (and kernels without the
   * batch op) are walked: an update between the lookup and the delete is lost.
   * `max`: stop after this many entries (default: max_entries).
   */
  mapDump(
    map: string,
    opts?: { delete?: boolean; max?: number },
  ): { keys: Buffer; values: Buffer; count: number };
  /** For a PERCPU_ARRAY of u64: entry i summed over CPUs. */
  sumPercpuCounters(map: string): bigint[];
  /** Drains the ring on a native thread into a JS callback, or straight into a FrameSink. */
  startRing(map: string, opts: RingOptions | undefined, target: OnBatch | FrameSink): void;
  startRing(map: string, target: OnBatch | FrameSink): void;
  /** Cumulative over every ring this object started. */
  ringStats(): RingStats;
  /** Joins the ring thread; queued batches and the last partial batch are delivered before it returns. */
  stopRing(): void;
  /** Stops the ring, destroys links, closes the object. Idempotent; also run by the GC finalizer. */
  close(): void;
}

export interface FrameSinkOptions {
  node: string;
  topic: string;
  /** Comma-separated bootstrap brokers. */
  brokers: string;
  clientId?: string;
  /** Wall-clock ns at ktime 0 (frame header). */
  bootTimeNs: bigint;
  /** For CloudEvents ids: `<node>:<startedAtMs>:<sequence>`. */
  startedAtMs: number;
  frameMaxBytes: number;
  lingerMs: number;
  bufferMaxBytes: number;
  /** Offset of the cgroup id in each op's record (0: none), OpTable.cgroupOffset. */
  cgroupOffsets: Uint8Array;
  /** Extra librdkafka properties. */
  kafka?: Record<string, string>;
}

export interface FrameSinkStats {
  connected: boolean;
  framesBuilt: number;
  framesSent: number;
  eventsSent: number;
  bytesSent: number;
  framesDropped: number;
  eventsDropped: number;
  bufferedFrames: number;
  bufferedEvents: number;
  bufferedBytes: number;
  sendErrors: number;
  malformed: number;
  lagMs: number;
  lastError: string | undefined;
}

/** Native framing and Kafka producer (librdkafka): see native/src/frame-sink.h. */
export interface FrameSink {
  /** Appends whole records; false when the region was malformed (counted) or the sink is stopped. */
  append(records: Uint8Array, count?: number): boolean;
  stats(): FrameSinkStats;
  /** Records appended per op since start (index = op). */
  opCounts(): Float64Array;
  /** Record bytes appended per op since start (index = op; the records' sizes, headers included). */
  opBytes(): Float64Array;
  /** Records dropped after the ring (buffer bound exceeded, stop, failed delivery) per op (index = op). */
  droppedByOp(): Float64Array;
  /** cgroup ids the frames closed since the previous call carried (then forgotten). */
  takeSeenCgroups(): bigint[];
  /**
   * cgroup ids frames could not name yet, each reported once: frames carry them until
   * setCgroupName names them or forgetCgroup gives them up (the caller owns the retries).
   */
  takeWantedCgroups(): bigint[];
  setCgroupName(id: bigint, path: string): void;
  /** The caller could not name this cgroup: frames stop carrying it (asked again if it comes back). */
  forgetCgroup(id: bigint): void;
  /** Closes the open frame and waits up to timeoutMs for the broker; the rest is counted as dropped. */
  stop(timeoutMs: number): Promise<void>;
}

/** Events of a FrameSink: `cgroups` (takeWantedCgroups has ids), or a librdkafka log line. */
export type FrameSinkEvent = (kind: 'cgroups' | 'log', level?: string, message?: string) => void;

export interface NativeAddon {
  BpfObject: new (path: string, opts?: BpfObjectOptions) => BpfObject;
  FrameSink: new (opts: FrameSinkOptions, onEvent: FrameSinkEvent) => FrameSink;
  /** Where libbpf's log lines go (null: back to stderr). */
  setLogger(fn: ((level: 'warn' | 'info' | 'debug', message: string) => void) | null): void;
  /** "major.minor" of the libbpf the addon runs with. */
  libbpfVersion(): string;
}

/** native/build/tracefeed.node */
export const addonPath: string;
/** How the addon is built. */
export const BUILD_COMMAND: string;

/**
 * Loads the addon (once). When it is not built, throws an Error with code
 * 'TRACEFEED_NATIVE_MISSING' and `path`, naming the file and BUILD_COMMAND.
 */
export function loadNative(): NativeAddon;
