/**
 * Typed access to the libbpf addon (native/). Errors thrown by the addon carry
 * `step`, `errno` and `code`; they are rethrown here as BpfError.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BpfError, EnvironmentError } from '../common/errors.js';
import { repoRoot } from '../common/paths.js';

export interface ProgramInfo {
  name: string;
  id: number;
  attached: boolean;
  section: string;
}

export interface MapInfo {
  name: string;
  id: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

export interface RingOptions {
  /** Bytes per batch handed to JavaScript. Default 262144. */
  batchBytes?: number;
  /** Longest a partial batch waits before it is handed over, ms. Default 100. */
  flushMs?: number;
  /** Batches queued for JavaScript before the drain thread blocks. Default 8. */
  maxPendingBatches?: number;
}

export interface RingStats {
  batches: number;
  events: number;
  bytes: number;
  malformed: number;
  pollErrors: number;
}

export interface NativeBpfObject {
  load(): void;
  /** `cgroup`: the cgroup v2 directory a cgroup program (cgroup_skb) attaches to. */
  attach(prog: string, cgroup?: string): void;
  detach(prog: string): void;
  programs(): ProgramInfo[];
  maps(): MapInfo[];
  mapLookup(map: string, key: Buffer): Buffer | null;
  mapUpdate(map: string, key: Buffer, value: Buffer, flags?: number): void;
  mapDelete(map: string, key: Buffer): boolean;
  sumPercpuCounters(map: string): bigint[];
  /** Every entry of a map; with `delete`, each entry is removed after it is read. */
  mapDump(
    map: string,
    opts?: { delete?: boolean; max?: number },
  ): { keys: Buffer; values: Buffer; count: number };
  /** Drains the ring on a native thread into a JS callback, or straight into a FrameSink. */
  startRing(
    map: string,
    opts: RingOptions,
    target: ((batch: Buffer, events: number) => void) | NativeFrameSink,
  ): void;
  ringStats(): RingStats;
  stopRing(): void;
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
export interface NativeFrameSink {
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
  /** cgroup ids frames could not name yet (each reported once). */
  takeWantedCgroups(): bigint[];
  setCgroupName(id: bigint, path: string): void;
  /** Closes the open frame and waits up to timeoutMs for the broker; the rest is counted as dropped. */
  stop(timeoutMs: number): Promise<void>;
}

export type FrameSinkEvent = (kind: 'cgroups' | 'log', level?: string, message?: string) => void;

export interface OpenOptions {
  ringbufBytes?: Record<string, number>;
  consts?: Record<string, number | bigint>;
}

interface NativeModule {
  BpfObject: new (path: string, opts?: OpenOptions) => NativeBpfObject;
  FrameSink: new (opts: FrameSinkOptions, onEvent: FrameSinkEvent) => NativeFrameSink;
  setLogger(fn: (level: 'warn' | 'info' | 'debug', message: string) => void): void;
  libbpfVersion(): string;
}

let cached: NativeModule | undefined;

export function loadNative(): NativeModule {
  if (cached) return cached;
  const path = join(repoRoot, 'native', 'build', 'tracefeed.node');
  if (!existsSync(path)) {
    throw new EnvironmentError(
      `the native addon is not built: ${path} is missing`,
      'native-addon',
      {
        hint: 'run `npm run build` (or scripts/bootstrap.sh, which installs libbpf-dev and builds it)',
      },
    );
  }
  const require = createRequire(import.meta.url);
  cached = require(path) as NativeModule;
  return cached;
}

/** Turns an addon error into BpfError; other errors pass through. */
export function toBpfError(err: unknown): unknown {
  if (err instanceof Error && typeof (err as { step?: unknown }).step === 'string') {
    const e = err as Error & { step: string; errno?: number; code?: string; object?: string };
    return new BpfError(e.message, e.step, e.errno ?? 0, e.code ?? 'UNKNOWN', e.object, {
      cause: err,
      retriable: e.code === 'EAGAIN' || e.code === 'EBUSY',
      hint:
        e.code === 'EPERM'
          ? 'the kernel refused: run as root, and check kernel.unprivileged_bpf_disabled / lockdown'
          : undefined,
    });
  }
  return err;
}

/** Opens an object file; addon errors become BpfError. */
export function openObject(path: string, opts?: OpenOptions): NativeBpfObject {
  if (!existsSync(path)) {
    throw new EnvironmentError(`BPF object ${path} is missing`, 'bpf-object', {
      hint: 'run `npm run build:bpf` (needs clang and bpftool: scripts/bootstrap.sh installs them)',
    });
  }
  const native = loadNative();
  try {
    return new native.BpfObject(path, opts);
  } catch (err) {
    throw toBpfError(err);
  }
}
