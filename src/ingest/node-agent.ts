/**
 * The node agent: loads the probe families, drains their ring buffers in
 * batches, flushes kernel aggregations into summary records, frames many
 * events into one Kafka record and publishes them. Probe settings change at
 * run time through `setProbe` (map writes, never a reload).
 */
import { hostname } from 'node:os';
import { ConfigError, TracefeedError, isRetriable } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { Topics } from '../common/kafka.js';
import { bpfObjectPath } from '../common/paths.js';
import { CgroupResolver } from './cgroup-resolver.js';
import { FAMILIES, type FamilySpec } from './families.js';
import { encodeFrame } from './frame.js';
import { EVENT_HEADER_SIZE, Op, OP_TYPE, OpTable, PROBE_OF_OP, type ProbeName } from './layout.js';
import { loadNative, openObject, toBpfError, type NativeBpfObject } from './native.js';
import { preflight } from './preflight.js';
import { ProbeController, type ProbeState } from './probe-controller.js';
import {
  applyPatch,
  defaultSettings,
  probePatchSchema,
  type ProbePatch,
} from './probe-settings.js';
import { FramePublisher, type PublisherStats } from './publisher.js';
import { flushSummaryMap, writeRecordHeader } from './summaries.js';

export interface NodeAgentOptions {
  /** Node name put in every frame and used as the Kafka key. Default: os.hostname(). */
  nodeName: string;
  /** Kafka bootstrap brokers. */
  brokers: string[];
  /** Events topic. Default `tracefeed.events.v1`. */
  topic: string;
  /** Largest frame (one Kafka record), bytes. Default 512 KiB. */
  frameMaxBytes: number;
  /** Longest events wait to be framed, ms. Default 200. */
  lingerMs: number;
  /** Bytes of frames buffered while Kafka is unreachable; past it frames are dropped and counted. Default 64 MiB. */
  bufferMaxBytes: number;
  /** Ring buffer size per probe family, bytes (power of two). Default 1 MiB. */
  ringBytes: number;
  /** Kernel wakes the drain thread only once this many bytes wait. Default 64 KiB. */
  wakeupBytes: number;
  /** How often kernel aggregations (syscall, run-queue histograms) are flushed, ms. Default 5000. */
  summaryIntervalMs: number;
  /** Settings applied on start, per probe, over the defaults. */
  probes: Partial<Record<ProbeName, ProbePatch>>;
  /** Load only these families (default: all). */
  families?: readonly ProbeName[];
  log: Logger;
}

export const DEFAULT_AGENT_OPTIONS = {
  nodeName: hostname(),
  topic: Topics.events,
  frameMaxBytes: 512 * 1024,
  lingerMs: 200,
  bufferMaxBytes: 64 * 1024 * 1024,
  ringBytes: 1024 * 1024,
  wakeupBytes: 64 * 1024,
  summaryIntervalMs: 5000,
  probes: {},
} as const;

export interface ProbeStats extends ProbeState {
  /** Events received from the kernel into user space (summary records included). */
  events: number;
  /** Events per second over the last second. */
  eventsPerSecond: number;
  /** Kernel drops by reason; same as `drops`. */
  kernelDrops: Record<string, number>;
}

export interface AgentStats {
  node: string;
  startedAt: string;
  uptimeMs: number;
  probes: ProbeStats[];
  eventsByType: Record<string, number>;
  framesBuilt: number;
  /** Records rejected before framing (malformed batches). */
  malformed: number;
  /** cgroup ids seen that could not be resolved to a path. */
  cgroupMisses: number;
  publisher: PublisherStats;
}

interface LoadedFamily {
  spec: FamilySpec;
  obj: NativeBpfObject;
  control: ProbeController;
}

export class NodeAgent {
  private readonly families = new Map<ProbeName, LoadedFamily>();
  private readonly publisher: FramePublisher;
  private readonly bootTimeNs: bigint;
  private readonly startedAt = Date.now();
  readonly cgroups: CgroupResolver;
  private sequence = 0n;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private pendingEvents = 0;
  /** cgroup ids (exact below 2^53) the pending records carry. */
  private pendingCgroups = new Set<number>();
  private readonly unresolvedTries = new Map<number, number>();
  private readonly opCounts = new Float64Array(256);
  private readonly batchCgroups = new Set<number>();
  private timers: NodeJS.Timeout[] = [];
  private framesBuilt = 0;
  private malformed = 0;
  private lastSummaryAt = process.hrtime.bigint();
  private readonly eventsByOp = new Map<number, number>();
  private readonly eventsByProbe = new Map<string, number>();
  private readonly rates = new Map<string, number>();
  private prevCounts = new Map<string, number>();
  private stopped = false;

  constructor(private readonly opts: NodeAgentOptions) {
    this.publisher = new FramePublisher({
      brokers: opts.brokers,
      clientId: `tracefeed-agent-${opts.nodeName}`,
      topic: opts.topic,
      bufferMaxBytes: opts.bufferMaxBytes,
      sendMaxBytes: 4 * 1024 * 1024,
      retryInitialMs: 200,
      log: opts.log,
    });
    // CLOCK_MONOTONIC (bpf_ktime_get_ns) to wall clock: Node's hrtime is the same clock.
    this.bootTimeNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
    this.cgroups = new CgroupResolver();
  }

  /** Loads every probe family, applies the start settings, and starts publishing. */
  start(): void {
    preflight(this.opts.log);
    const native = loadNative();
    native.setLogger((level, message) => {
      const line = message.trimEnd();
      if (level === 'warn') this.opts.log.warn({ libbpf: true }, line);
      else this.opts.log.debug({ libbpf: true }, line);
    });
    for (const name of Object.keys(this.opts.probes)) {
      if (!FAMILIES.some((f) => f.name === name))
        throw new ConfigError(`unknown probe "${name}"`, `probes.${name}`);
    }
    this.publisher.start();
    const wanted = FAMILIES.filter(
      (f) => !this.opts.families || this.opts.families.includes(f.name),
    );
    try {
      for (const spec of wanted) {
        const obj = this.loadFamily(spec);
        const initial = applyPatch(
          defaultSettings(spec.defaultEnabled),
          probePatchSchema.parse(this.opts.probes[spec.name] ?? {}),
        );
        const control = new ProbeController(spec, obj, this.cgroups, initial);
        this.families.set(spec.name, { spec, obj, control });
        obj.startRing(
          'rb',
          {
            batchBytes: Math.min(256 * 1024, this.opts.frameMaxBytes),
            flushMs: 100,
            maxPendingBatches: 16,
          },
          (batch, n) => this.onBatch(batch, n),
        );
        control.apply(initial);
        this.opts.log.info({ probe: spec.name, enabled: initial.enabled }, 'probe loaded');
      }
    } catch (err) {
      this.closeFamilies();
      void this.publisher.stop(0);
      throw toBpfError(err);
    }
    this.timers.push(setInterval(() => this.flush(), this.opts.lingerMs));
    this.timers.push(setInterval(() => this.flushSummaries(), this.opts.summaryIntervalMs));
    this.timers.push(setInterval(() => this.updateRates(), 1000));
  }

  /**
   * Opens and loads one family's object. The kernel sometimes answers a load
   * with EAGAIN (verifier or map allocation under memory pressure): that is
   * retried a few times before it is an error.
   */
  private loadFamily(spec: FamilySpec): NativeBpfObject {
    for (let attempt = 1; ; attempt++) {
      const obj = openObject(bpfObjectPath(spec.name), {
        ringbufBytes: { rb: this.opts.ringBytes },
        consts: { wakeup_bytes: BigInt(this.opts.wakeupBytes) },
      });
      try {
        obj.load();
        return obj;
      } catch (err) {
        obj.close();
        const e = toBpfError(err);
        if (!isRetriable(e) || attempt >= 4) throw e;
        this.opts.log.warn(
          { probe: spec.name, attempt, err: (e as Error).message },
          'probe load failed; retrying',
        );
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100 * attempt);
      }
    }
  }

  /** Changes a probe's settings live and returns its new state. */
  setProbe(name: string, patch: unknown): ProbeState {
    const fam = this.families.get(name as ProbeName);
    if (!fam) {
      throw new ConfigError(
        `unknown probe "${name}"; probes: ${[...this.families.keys()].join(', ')}`,
        'probe',
      );
    }
    const parsed = probePatchSchema.safeParse(patch);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      throw new ConfigError(
        `invalid settings for ${name}: ${first ? `${first.path.join('.') || '(root)'}: ${first.message}` : parsed.error.message}`,
        first?.path.join('.') ?? '',
      );
    }
    // Summaries collected under the old settings are flushed with the old generation.
    if (fam.spec.summaries.length > 0) this.flushSummaries(fam);
    const state = fam.control.apply(applyPatch(fam.control.current, parsed.data));
    this.opts.log.info(
      { probe: name, generation: state.generation, settings: state.settings },
      'probe settings applied',
    );
    return state;
  }

  probes(): ProbeStats[] {
    return [...this.families.values()].map((f) => {
      const s = f.control.state();
      return {
        ...s,
        events: this.eventsByProbe.get(f.spec.name) ?? 0,
        eventsPerSecond: this.rates.get(f.spec.name) ?? 0,
        kernelDrops: s.drops,
      };
    });
  }

  /** The loaded object of a family, for tests and tools that read its maps. */
  object(name: ProbeName): NativeBpfObject {
    const fam = this.families.get(name);
    if (!fam) throw new TracefeedError(`probe ${name} is not loaded`);
    return fam.obj;
  }

  private updateRates(): void {
    const next = new Map<string, number>();
    for (const [probe, n] of this.eventsByProbe) {
      next.set(probe, n);
      this.rates.set(probe, n - (this.prevCounts.get(probe) ?? 0));
    }
    this.prevCounts = next;
  }

  private onBatch(batch: Buffer, n: number): void {
    if (this.stopped) return;
    this.addRecords(batch, n);
  }

  /**
   * Counts and queues a region of whole records. The hot path of the agent: one
   * pass, typed-array counters, no allocation per record.
   */
  private addRecords(records: Buffer, n: number): void {
    const len = records.byteLength;
    const dv = new DataView(records.buffer, records.byteOffset, len);
    const byOp = this.opCounts;
    const cgroups = this.batchCgroups;
    cgroups.clear();
    let counted = 0;
    let off = 0;
    while (off < len) {
      if (len - off < EVENT_HEADER_SIZE) break;
      const op = dv.getUint8(off);
      const size = dv.getUint32(off + 4, true);
      if (size < EVENT_HEADER_SIZE || size % 8 !== 0 || off + size > len) break;
      byOp[op]!++;
      const at = OpTable.cgroupOffset[op]!;
      if (at !== 0)
        cgroups.add(dv.getUint32(off + at, true) + dv.getUint32(off + at + 4, true) * 4294967296);
      counted++;
      off += size;
    }
    if (off !== len) {
      // The addon validates every sample, so this is a bug; count and drop the batch.
      this.malformed += n;
      this.opts.log.error({ at: off, bytes: len }, 'malformed batch dropped');
      for (let i = 0; i < byOp.length; i++) byOp[i] = 0;
      return;
    }
    for (let op = 0; op < byOp.length; op++) {
      const c = byOp[op]!;
      if (c === 0) continue;
      byOp[op] = 0;
      this.eventsByOp.set(op, (this.eventsByOp.get(op) ?? 0) + c);
      const probe = PROBE_OF_OP.get(op) ?? 'unknown';
      this.eventsByProbe.set(probe, (this.eventsByProbe.get(probe) ?? 0) + c);
    }
    if (this.pendingBytes + len > this.opts.frameMaxBytes) this.flush();
    for (const id of cgroups) this.pendingCgroups.add(id);
    this.pending.push(records);
    this.pendingBytes += len;
    this.pendingEvents += counted;
    if (this.pendingBytes >= this.opts.frameMaxBytes) this.flush();
  }

  private flushSummaries(only?: LoadedFamily): void {
    const now = process.hrtime.bigint();
    const interval = now - this.lastSummaryAt;
    if (!only) this.lastSummaryAt = now;
    for (const fam of only ? [only] : this.families.values()) {
      for (const s of fam.spec.summaries) {
        try {
          const batch = flushSummaryMap(
            fam.obj,
            s.map,
            s.kind,
            now,
            interval,
            fam.control.currentGeneration,
          );
          if (batch.count > 0) this.addRecords(batch.records, batch.count);
        } catch (err) {
          this.opts.log.warn(
            { err: (err as Error).message, probe: fam.spec.name, map: s.map },
            'summary flush failed',
          );
        }
      }
    }
  }

  /** One TF_OP_CGROUP_INFO record per cgroup the pending records name, so consumers anywhere can name workloads. */
  private cgroupInfoRecords(): { records: Buffer; count: number } {
    const parts: Buffer[] = [];
    const unresolved = new Set<number>();
    for (const id of this.pendingCgroups) {
      const info = this.cgroups.resolve(BigInt(id));
      if (!info) {
        // A cgroup created since the last walk: name it in a later frame.
        if ((this.unresolvedTries.get(id) ?? 0) < 20) {
          this.unresolvedTries.set(id, (this.unresolvedTries.get(id) ?? 0) + 1);
          unresolved.add(id);
        }
        continue;
      }
      this.unresolvedTries.delete(id);
      const path = Buffer.from(info.path, 'utf8').subarray(0, 4096);
      const size = 40 + ((path.length + 7) & ~7);
      const b = Buffer.alloc(size);
      writeRecordHeader(b, 0, Op.CGROUP_INFO, size, process.hrtime.bigint(), 0);
      b.writeBigUInt64LE(BigInt(id), 24);
      b.writeUInt16LE(path.length, 32);
      path.copy(b, 40);
      parts.push(b);
    }
    this.pendingCgroups = unresolved;
    return { records: Buffer.concat(parts), count: parts.length };
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    const info = this.cgroupInfoRecords();
    const events = this.pendingEvents;
    if (info.count > 0) this.pending.push(info.records);
    const seq = this.sequence++;
    const value = encodeFrame({
      node: this.opts.nodeName,
      bootTimeNs: this.bootTimeNs,
      sequence: seq,
      chunks: this.pending,
      eventCount: events + info.count,
    });
    const now = Date.now();
    this.publisher.enqueue({
      key: this.opts.nodeName,
      value,
      events,
      queuedAt: now,
      headers: {
        ce_specversion: '1.0',
        ce_id: `${this.opts.nodeName}:${this.startedAt}:${seq}`,
        ce_source: `/node/${this.opts.nodeName}`,
        ce_type: 'io.tracefeed.events.v1',
        ce_time: new Date(now).toISOString(),
        'content-type': 'application/vnd.tracefeed.frame.v1',
        tracefeed_event_count: String(events + info.count),
      },
    });
    this.framesBuilt++;
    this.pending = [];
    this.pendingBytes = 0;
    this.pendingEvents = 0;
  }

  stats(): AgentStats {
    const eventsByType: Record<string, number> = {};
    for (const [op, n] of this.eventsByOp) eventsByType[OP_TYPE.get(op) ?? `op.${op}`] = n;
    return {
      node: this.opts.nodeName,
      startedAt: new Date(this.startedAt).toISOString(),
      uptimeMs: Date.now() - this.startedAt,
      probes: this.stopped ? [] : this.probes(),
      eventsByType,
      framesBuilt: this.framesBuilt,
      malformed: this.malformed,
      cgroupMisses: this.cgroups.misses,
      publisher: this.publisher.stats(),
    };
  }

  /** Detaches probes, flushes what is buffered (bounded by `flushTimeoutMs`) and returns the final stats. */
  async stop(flushTimeoutMs = 5000): Promise<AgentStats> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const f of this.families.values()) {
      try {
        f.obj.stopRing();
      } catch (err) {
        this.opts.log.warn(
          { err: (err as Error).message, probe: f.spec.name },
          'stopping ring failed',
        );
      }
    }
    this.flushSummaries();
    this.flush();
    const final = this.stats();
    this.stopped = true;
    this.closeFamilies();
    await this.publisher.stop(flushTimeoutMs);
    return { ...final, publisher: this.publisher.stats() };
  }

  private closeFamilies(): void {
    for (const f of this.families.values()) {
      try {
        f.obj.close();
      } catch (err) {
        this.opts.log.warn(
          { err: (err as Error).message, probe: f.spec.name },
          'closing probe failed',
        );
      }
    }
    this.families.clear();
  }
}
