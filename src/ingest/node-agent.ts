/**
 * The node agent: loads the probe families and drains their ring buffers into
 * a native frame sink, which frames many events into one Kafka record and
 * produces it (librdkafka) without the records ever touching the JS heap.
 * JS keeps the control plane: probe settings change at run time through
 * `setProbe` (map writes, never a reload), kernel aggregations are flushed
 * into summary records, cgroup ids are named for the sink, and stats are kept.
 */
import { hostname } from 'node:os';
import { ConfigError, TracefeedError, isRetriable } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { nativeKafkaSecurity, Topics } from '../common/kafka.js';
import { bpfObjectPath } from '../common/paths.js';
import { CgroupResolver, cgroup2Root } from './cgroup-resolver.js';
import { resolveCgroupScope, type CgroupScope } from './cgroup-scope.js';
import {
  CgroupStatsCollector,
  type CgroupStatsCounters,
  type CgroupStatsOptions,
} from './cgroup-stats.js';
import { DropReason, type ProbeName } from '../wire/layout.js';
import {
  OP_TYPE,
  OpTable,
  PROBE_FAMILIES as FAMILIES,
  SOURCE_NAMES,
  type ProbeFamily as FamilySpec,
} from '../families/registry.js';
import {
  loadNative,
  openObject,
  toBpfError,
  type FrameSinkStats,
  type NativeBpfObject,
  type NativeFrameSink,
} from './native.js';
import { preflight } from './preflight.js';
import { ProbeController, overloadSampleN, type ProbeState } from './probe-controller.js';
import {
  applyPatch,
  defaultSettings,
  probePatchSchema,
  type ProbePatch,
} from '../wire/probe-settings.js';
import { flushSummaryMap } from './summaries.js';
import { OverloadGovernor, type OverloadOptions } from './overload-governor.js';
import { ProbeStatsReporter } from './probe-stats.js';

/** The Kafka side of the sink's stats. */
export type PublisherStats = Omit<FrameSinkStats, 'framesBuilt' | 'malformed'>;

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
  /** Ring buffer size per probe family, bytes (power of two). Default 4 MiB. */
  ringBytes: number;
  /** Kernel wakes the drain thread once per this many bytes written (1/16 of the ring by default). Default 256 KiB. */
  wakeupBytes: number;
  /** How often kernel aggregations (syscall, run-queue histograms) are flushed, ms. Default 5000. */
  summaryIntervalMs: number;
  /** Settings applied on start, per probe, over the defaults. */
  probes: Partial<Record<ProbeName, ProbePatch>>;
  /** Which cgroups the always-on cgroup signals read (see CgroupStatsOptions). Default: discover every 6 intervals, idle after 12. */
  cgroupStats?: Partial<CgroupStatsOptions>;
  /** Overload sampling by the node (see OverloadOptions). Default: x4 steps up to 1024, calm 5 s, floor `process`. */
  overload?: Partial<OverloadOptions>;
  /** Load only these families (default: all). */
  families?: readonly ProbeName[];
  /**
   * The cgroup subtree this node owns (path relative to the cgroup v2 root, or absolute
   * under its mount): the kernel collects only tasks and sockets in it, the cgroup
   * signals read only cgroups in it, focuses outside it are refused. Several nodes can
   * then share one kernel. Default: the whole host.
   */
  cgroupScope?: string;
  log: Logger;
}

export const DEFAULT_AGENT_OPTIONS = {
  nodeName: hostname(),
  topic: Topics.events,
  frameMaxBytes: 512 * 1024,
  lingerMs: 200,
  bufferMaxBytes: 64 * 1024 * 1024,
  ringBytes: 4 * 1024 * 1024,
  wakeupBytes: 256 * 1024,
  summaryIntervalMs: 5000,
  probes: {},
} as const;

export interface ProbeStats extends ProbeState {
  /** Events received from the kernel into user space (summary records included). */
  events: number;
  /** Events per second over the last second. */
  eventsPerSecond: number;
  /** Record bytes (as the kernel wrote them, headers included) framed per second over the last second. */
  bytesPerSecond: number;
  /** Kernel drops by reason; same as `drops`. */
  kernelDrops: Record<string, number>;
}

export interface AgentStats {
  node: string;
  /** The node's cgroup scope (path relative to the cgroup v2 root); "/" for the whole host. */
  scope: string;
  startedAt: string;
  uptimeMs: number;
  probes: ProbeStats[];
  eventsByType: Record<string, number>;
  framesBuilt: number;
  /** Records rejected before framing (malformed regions). */
  malformed: number;
  /** cgroup ids seen that could not be resolved to a path. */
  cgroupMisses: number;
  /** The always-on cgroup signals: passes, records, reads, read failures, missing files. */
  cgroupStats: CgroupStatsCounters | undefined;
  /** Overload steps taken by the node, by probe and direction. */
  overloadChanges: Array<{ probe: string; direction: 'up' | 'down'; count: number }>;
  publisher: PublisherStats;
}

interface LoadedFamily {
  spec: FamilySpec;
  obj: NativeBpfObject;
  control: ProbeController;
}

export class NodeAgent {
  private readonly families = new Map<ProbeName, LoadedFamily>();
  private sink: NativeFrameSink | undefined;
  private readonly bootTimeNs: bigint;
  private readonly startedAt = Date.now();
  readonly cgroups: CgroupResolver;
  /** cgroup ids the sink asked for that the resolver could not name yet, with tries. */
  private readonly unresolved = new Map<bigint, number>();
  private retryTimer: NodeJS.Timeout | undefined;
  private timers: NodeJS.Timeout[] = [];
  private lastSummaryAt = process.hrtime.bigint();
  private readonly rates = new Map<string, number>();
  private prevCounts = new Map<string, number>();
  private readonly byteRates = new Map<string, number>();
  private prevBytes = new Map<string, number>();
  private stopped = false;
  private readonly cgroupStats: CgroupStatsCollector | undefined;
  private readonly probeStats = new ProbeStatsReporter();
  private readonly governor: OverloadGovernor;
  /** The cgroup subtree this node owns; undefined: the whole host. */
  readonly scope: CgroupScope | undefined;

  constructor(private readonly opts: NodeAgentOptions) {
    // CLOCK_MONOTONIC (bpf_ktime_get_ns) to wall clock: Node's hrtime is the same clock.
    this.bootTimeNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
    this.cgroups = new CgroupResolver();
    const root = cgroup2Root();
    this.scope = opts.cgroupScope ? resolveCgroupScope(opts.cgroupScope, root) : undefined;
    this.cgroupStats = root
      ? new CgroupStatsCollector(root, (id) => this.cgroups.resolve(id)?.path, {
          ...opts.cgroupStats,
          scope: this.scope?.path ?? '/',
        })
      : undefined;
    this.governor = new OverloadGovernor(opts.overload ?? {}, opts.log);
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
    const sink = this.startSink(native.FrameSink);
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
        const control = new ProbeController(spec, obj, this.cgroups, initial, this.scope);
        this.families.set(spec.name, { spec, obj, control });
        obj.startRing(
          'rb',
          // The sink lingers lingerMs itself: draining more often than that only costs wake-ups.
          {
            batchBytes: Math.min(256 * 1024, this.opts.frameMaxBytes),
            flushMs: this.opts.lingerMs,
          },
          sink,
        );
        control.apply(initial);
        this.opts.log.info(
          { probe: spec.name, enabled: initial.enabled, scope: this.scope?.path },
          'probe loaded',
        );
      }
    } catch (err) {
      this.closeFamilies();
      void sink.stop(0);
      this.sink = undefined;
      throw toBpfError(err);
    }
    this.timers.push(setInterval(() => this.flushSummaries(), this.opts.summaryIntervalMs));
    this.timers.push(
      setInterval(() => {
        this.updateRates();
        this.governOverload();
      }, 1000),
    );
  }

  private startSink(FrameSink: ReturnType<typeof loadNative>['FrameSink']): NativeFrameSink {
    const log = this.opts.log;
    const sink = new FrameSink(
      {
        node: this.opts.nodeName,
        topic: this.opts.topic,
        brokers: this.opts.brokers.join(','),
        clientId: `tracefeed-agent-${this.opts.nodeName}`,
        bootTimeNs: this.bootTimeNs,
        startedAtMs: this.startedAt,
        frameMaxBytes: this.opts.frameMaxBytes,
        lingerMs: this.opts.lingerMs,
        bufferMaxBytes: this.opts.bufferMaxBytes,
        cgroupOffsets: OpTable.cgroupOffset,
        kafka: nativeKafkaSecurity('node'),
      },
      (kind, level, message) => {
        if (kind === 'cgroups') this.nameCgroups();
        else if (level === 'error') log.error({ kafka: true }, message);
        else if (level === 'warn') log.warn({ kafka: true }, message);
        else log.info({ kafka: true }, message);
      },
    );
    this.sink = sink;
    return sink;
  }

  /**
   * Names the cgroups the sink asked about. One the resolver cannot name yet
   * (created since its last walk) is tried again shortly, up to 20 times, then
   * given up. The retries are this method's alone: the sink carries an unnamed
   * cgroup to later frames until it is named or forgotten here.
   */
  private nameCgroups(): void {
    const sink = this.sink;
    if (!sink || this.stopped) return;
    for (const id of sink.takeWantedCgroups())
      if (!this.unresolved.has(id)) this.unresolved.set(id, 0);
    for (const [id, tries] of this.unresolved) {
      const info = this.cgroups.resolve(id);
      if (info) {
        sink.setCgroupName(id, info.path);
        this.unresolved.delete(id);
      } else if (tries + 1 >= 20) {
        this.unresolved.delete(id);
        sink.forgetCgroup(id);
      } else {
        this.unresolved.set(id, tries + 1);
      }
    }
    if (this.unresolved.size > 0 && !this.retryTimer) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.nameCgroups();
      }, this.opts.lingerMs);
    }
  }

  /**
   * Opens and loads one family's object. The kernel sometimes answers a load
   * with EAGAIN (verifier or map allocation under memory pressure): that is
   * retried a few times before it is an error.
   */
  private loadFamily(spec: FamilySpec): NativeBpfObject {
    for (let attempt = 1; ; attempt++) {
      const obj = openObject(bpfObjectPath(spec.object), {
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
    const events = this.eventsByProbe();
    return [...this.families.values()].map((f) => {
      const s = f.control.state();
      return {
        ...s,
        events: events.get(f.spec.name) ?? 0,
        eventsPerSecond: this.rates.get(f.spec.name) ?? 0,
        bytesPerSecond: this.byteRates.get(f.spec.name) ?? 0,
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

  /** Records received per probe (summary records included), from the sink's per-op counts. */
  private eventsByProbe(): Map<string, number> {
    return this.byProbe(this.sink?.opCounts());
  }

  /** Per-op sink counters summed per probe. */
  private byProbe(counts: Float64Array | undefined): Map<string, number> {
    const out = new Map<string, number>();
    if (!counts) return out;
    for (let op = 0; op < 256; op++) {
      const n = counts[op]!;
      if (n === 0) continue;
      const probe = SOURCE_NAMES[OpTable.probeIndex[op]!] ?? 'unknown';
      out.set(probe, (out.get(probe) ?? 0) + n);
    }
    return out;
  }

  private updateRates(): void {
    const next = this.eventsByProbe();
    for (const [probe, n] of next) this.rates.set(probe, n - (this.prevCounts.get(probe) ?? 0));
    this.prevCounts = next;
    const bytes = this.byProbe(this.sink?.opBytes());
    for (const [probe, n] of bytes) this.byteRates.set(probe, n - (this.prevBytes.get(probe) ?? 0));
    this.prevBytes = bytes;
  }

  /** One look at ring and sink pressure: overload sampling up or down. */
  private governOverload(): void {
    const sink = this.sink;
    if (!sink || this.stopped) return;
    const s = sink.stats();
    try {
      this.governor.tick(
        [...this.families.values()].map((f) => ({
          name: f.spec.name,
          enabled: f.control.current.enabled,
          ...ringCounters(f.control.counters()),
          eventsPerSecond: this.rates.get(f.spec.name) ?? 0,
          overloadN: f.control.overloadFactor,
          setOverloadFactor: (n: number) => {
            f.control.setOverloadFactor(n);
          },
        })),
        {
          bufferedBytes: s.bufferedBytes,
          bufferMaxBytes: this.opts.bufferMaxBytes,
          eventsDropped: s.eventsDropped,
        },
      );
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'overload check failed');
    }
  }

  /** The interval's probe stats and cgroup signals, through the sink like the summaries. */
  private flushSignals(now: bigint, interval: bigint): void {
    const sink = this.sink;
    if (!sink) return;
    try {
      const batch = this.probeStats.build(
        [...this.families.values()].map((f) => {
          const c = f.control.counters();
          return {
            name: f.spec.name,
            probeId: f.spec.probeId,
            generation: f.control.currentGeneration,
            sampleN: overloadSampleN(f.control.current.sample_n, f.control.overloadFactor),
            overloadN: f.control.overloadFactor,
            focusCount: f.control.focusCount,
            emitted: c.emitted,
            drops: c.drops,
          };
        }),
        sink.droppedByOp(),
        now,
        interval,
      );
      if (batch.count > 0) sink.append(batch.records, batch.count);
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'probe stats failed');
    }
    if (!this.cgroupStats) return;
    try {
      const batch = this.cgroupStats.collect(sink.takeSeenCgroups(), now);
      if (batch.count > 0) sink.append(batch.records, batch.count);
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'cgroup signals failed');
    }
  }

  private flushSummaries(only?: LoadedFamily): void {
    const now = process.hrtime.bigint();
    const interval = now - this.lastSummaryAt;
    if (!only) {
      this.lastSummaryAt = now;
      this.flushSignals(now, interval);
    }
    for (const fam of only ? [only] : this.families.values()) {
      if (fam.spec.flush) {
        try {
          const batch = fam.spec.flush(fam.obj, now);
          if (batch.count > 0) this.sink?.append(batch.records, batch.count);
        } catch (err) {
          this.opts.log.warn(
            { err: (err as Error).message, probe: fam.spec.name },
            'family flush failed',
          );
        }
      }
      for (const s of fam.spec.summaries) {
        try {
          const batch = flushSummaryMap(fam.obj, s, now, interval, fam.control.currentGeneration);
          if (batch.count > 0) this.sink?.append(batch.records, batch.count);
        } catch (err) {
          this.opts.log.warn(
            { err: (err as Error).message, probe: fam.spec.name, map: s.map },
            'summary flush failed',
          );
        }
      }
    }
  }

  stats(): AgentStats {
    const eventsByType: Record<string, number> = {};
    const counts = this.sink?.opCounts();
    if (counts)
      for (let op = 0; op < 256; op++)
        if (counts[op]! > 0) eventsByType[OP_TYPE.get(op) ?? `op.${op}`] = counts[op]!;
    const { framesBuilt = 0, malformed = 0, ...publisher } = this.sink?.stats() ?? EMPTY_SINK_STATS;
    return {
      node: this.opts.nodeName,
      scope: this.scope?.path ?? '/',
      startedAt: new Date(this.startedAt).toISOString(),
      uptimeMs: Date.now() - this.startedAt,
      probes: this.stopped ? [] : this.probes(),
      eventsByType,
      framesBuilt,
      malformed,
      cgroupMisses: this.cgroups.misses,
      cgroupStats: this.cgroupStats ? { ...this.cgroupStats.counters } : undefined,
      overloadChanges: this.governor.changesByProbe(),
      publisher,
    };
  }

  /** Detaches probes, flushes what is buffered (bounded by `flushTimeoutMs`) and returns the final stats. */
  async stop(flushTimeoutMs = 5000): Promise<AgentStats> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (const f of this.families.values()) {
      try {
        f.obj.stopRing(); // the ring's last batch goes into the sink
      } catch (err) {
        this.opts.log.warn(
          { err: (err as Error).message, probe: f.spec.name },
          'stopping ring failed',
        );
      }
    }
    this.flushSummaries();
    this.cgroupStats?.close();
    const probes = this.probes();
    this.stopped = true;
    this.closeFamilies();
    await this.sink?.stop(flushTimeoutMs);
    return { ...this.stats(), probes };
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

function ringCounters(c: { emitted: number; drops: number[] }): {
  emitted: number;
  ringbufFull: number;
} {
  return { emitted: c.emitted, ringbufFull: c.drops[DropReason.RINGBUF_FULL] ?? 0 };
}

const EMPTY_SINK_STATS: FrameSinkStats = {
  connected: false,
  framesBuilt: 0,
  framesSent: 0,
  eventsSent: 0,
  bytesSent: 0,
  framesDropped: 0,
  eventsDropped: 0,
  bufferedFrames: 0,
  bufferedEvents: 0,
  bufferedBytes: 0,
  sendErrors: 0,
  malformed: 0,
  lagMs: 0,
  lastError: undefined,
};
