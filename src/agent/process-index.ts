/**
 * Which programs run in which workload: a bounded, in-memory index of recent
 * `process.exec` events per (node, cgroup), fed by `tracefeed.events.v1`.
 * Explanations cite it ("processes started in the workload"), so process
 * names and paths (untrusted) reach the model only inside tool results.
 *
 * It also counts per executable (node, comm) in time buckets: execs, exits,
 * failed exits, TCP connects, connect failures, retransmits and every record
 * that names a process, so questions can be answered by process as well as
 * by cgroup (a host where everything shares one cgroup still gets answers).
 */
import { randomUUID } from 'node:crypto';
import { type Consumer } from 'kafkajs';
import { kafkaClient, Topics } from '../common/kafka.js';
import type { Logger } from '../common/logger.js';
import { decodeFrameEvents } from '../wire/event-decoder.js';
import { readTopicSince } from './anomaly-store.js';

export interface ProcessSeen {
  /** `process.executable.name` (comm, at most 15 bytes). */
  name: string;
  /** `process.executable.path`, as exec'd. */
  path: string;
  execs: number;
  last_seen: string;
}

/** Per-executable counters, weighted by the records' sample weight. */
export const PROCESS_METRICS = [
  'events',
  'exec_count',
  'exit_count',
  'failed_exits',
  'tcp_connects',
  'tcp_connect_failures',
  'tcp_retransmits',
] as const;
export type ProcessMetric = (typeof PROCESS_METRICS)[number];

const PM_INDEX = Object.fromEntries(PROCESS_METRICS.map((m, i) => [m, i])) as Record<
  ProcessMetric,
  number
>;

const TCP_METRIC: Record<string, ProcessMetric> = {
  'tcp.connect': 'tcp_connects',
  'tcp.connect_fail': 'tcp_connect_failures',
  'tcp.retransmit': 'tcp_retransmits',
};

interface ExecutableEntry {
  node: string;
  name: string;
  /** Bucket index (time / bucketMs) -> counters in PROCESS_METRICS order. */
  buckets: Map<number, Float64Array>;
  /** cgroup id -> records seen (at most 8 kept). */
  cgroups: Map<string, number>;
}

export interface ExecutableTotal {
  node: string;
  /** `process.executable.name` (comm). */
  executable: string;
  value: number;
  /** Buckets with records of the metric. */
  buckets: number;
  /** Workloads (cgroup paths when known, else `cgroup:<id>`) it ran in, most records first. */
  workloads: string[];
}

interface CgroupEntry {
  node: string;
  cgroupId: string;
  path: string | undefined;
  procs: Map<string, ProcessSeen>;
  touched: number;
}

export interface ProcessIndexOptions {
  /** Cgroups tracked (least recently active dropped). Default 4096. */
  maxCgroups?: number;
  /** Distinct programs kept per cgroup (least recently seen dropped). Default 16. */
  maxProgramsPerCgroup?: number;
  /** Executables counted (least recently active dropped, counted in `executablesEvicted`). Default 4096. */
  maxExecutables?: number;
  /** Counter bucket, ms. Default 10000. */
  bucketMs?: number;
  /** Buckets kept per executable (older ones dropped). Default 720 (2 h of 10 s). */
  maxBuckets?: number;
}

export class ProcessIndex {
  private readonly entries = new Map<string, CgroupEntry>();
  private readonly byPath = new Map<string, string>();
  private readonly executables = new Map<string, ExecutableEntry>();
  private consumer: Consumer | undefined;
  readonly maxCgroups: number;
  readonly maxPrograms: number;
  readonly maxExecutables: number;
  readonly bucketMs: number;
  readonly maxBuckets: number;
  /** Executables dropped because the index was full. */
  executablesEvicted = 0;
  /** Records counted per executable. */
  records = 0;
  /** Exec events indexed; frames that failed to decode. */
  execs = 0;
  undecodable = 0;
  /** Resolves once a live subscription has joined its group. */
  ready: Promise<void> = Promise.resolve();

  constructor(opts: ProcessIndexOptions = {}) {
    this.maxCgroups = opts.maxCgroups ?? 4096;
    this.maxPrograms = opts.maxProgramsPerCgroup ?? 16;
    this.maxExecutables = opts.maxExecutables ?? 4096;
    this.bucketMs = opts.bucketMs ?? 10_000;
    this.maxBuckets = opts.maxBuckets ?? 720;
  }

  private count(
    node: string,
    name: string,
    cgroupId: string,
    timeMs: number,
    weight: number,
    metric?: ProcessMetric,
    failed = false,
  ): void {
    const key = `${node}\0${name}`;
    let e = this.executables.get(key);
    if (e) this.executables.delete(key);
    else e = { node, name, buckets: new Map(), cgroups: new Map() };
    this.executables.set(key, e);
    while (this.executables.size > this.maxExecutables) {
      this.executables.delete(this.executables.keys().next().value as string);
      this.executablesEvicted++;
    }
    const b = Math.floor(timeMs / this.bucketMs);
    let c = e.buckets.get(b);
    if (!c) {
      c = new Float64Array(PROCESS_METRICS.length);
      e.buckets.set(b, c);
      if (e.buckets.size > this.maxBuckets) {
        const oldest = Math.min(...e.buckets.keys());
        e.buckets.delete(oldest);
      }
    }
    c[PM_INDEX.events]! += weight;
    if (metric !== undefined) c[PM_INDEX[metric]]! += weight;
    if (failed) c[PM_INDEX.failed_exits]! += weight;
    e.cgroups.set(cgroupId, (e.cgroups.get(cgroupId) ?? 0) + weight);
    if (e.cgroups.size > 8) {
      const least = [...e.cgroups.entries()].reduce((a, x) => (x[1] < a[1] ? x : a));
      e.cgroups.delete(least[0]);
    }
    this.records++;
  }

  /** The path of a cgroup as its node named it, else `cgroup:<id>`. */
  private workloadOf(node: string, cgroupId: string): string {
    return this.entries.get(`${node}|${cgroupId}`)?.path ?? `cgroup:${cgroupId}`;
  }

  /**
   * Executables by one metric over the buckets that start in [sinceMs, untilMs),
   * largest first (ties by node, then name). Zero totals are left out.
   */
  topExecutables(q: {
    metric: ProcessMetric;
    sinceMs: number;
    untilMs: number;
    node?: string;
    workload?: string;
  }): ExecutableTotal[] {
    const i = PM_INDEX[q.metric];
    const out: ExecutableTotal[] = [];
    for (const e of this.executables.values()) {
      if (q.node !== undefined && e.node !== q.node) continue;
      const workloads = [...e.cgroups.entries()]
        .sort((a, b) => b[1] - a[1])
        .map(([id]) => this.workloadOf(e.node, id));
      if (q.workload !== undefined && !workloads.includes(q.workload)) continue;
      let value = 0;
      let buckets = 0;
      for (const [b, c] of e.buckets) {
        const t = b * this.bucketMs;
        if (t < q.sinceMs || t >= q.untilMs) continue;
        if (c[i]! > 0) {
          value += c[i]!;
          buckets++;
        }
      }
      if (value > 0) out.push({ node: e.node, executable: e.name, value, buckets, workloads });
    }
    return out.sort(
      (a, b) =>
        b.value - a.value ||
        a.node.localeCompare(b.node) ||
        a.executable.localeCompare(b.executable),
    );
  }

  private entry(node: string, cgroupId: string): CgroupEntry {
    const key = `${node}|${cgroupId}`;
    let e = this.entries.get(key);
    if (e) this.entries.delete(key);
    else e = { node, cgroupId, path: undefined, procs: new Map(), touched: 0 };
    e.touched = Date.now();
    this.entries.set(key, e);
    while (this.entries.size > this.maxCgroups) {
      const [k, old] = this.entries.entries().next().value as [string, CgroupEntry];
      this.entries.delete(k);
      if (old.path !== undefined) this.byPath.delete(`${old.node}|${old.path}`);
    }
    return e;
  }

  /** Indexes one frame of the events topic. */
  ingestFrame(frame: Buffer): void {
    let events;
    try {
      events = decodeFrameEvents(frame);
    } catch {
      this.undecodable++;
      return;
    }
    for (const ev of events) {
      const a = ev.attributes;
      const comm = a['process.executable.name'];
      if (typeof comm === 'string' && ev.type !== 'process.exec') {
        const failed =
          ev.type === 'process.exit' &&
          (Number(a['process.exit.code'] ?? 0) !== 0 ||
            Number(a['process.exit.signal'] ?? 0) !== 0);
        this.count(
          ev.node,
          comm,
          String(a['cgroup.id']),
          Date.parse(ev.time),
          ev.sample_weight || 1,
          ev.type === 'process.exit' ? 'exit_count' : TCP_METRIC[ev.type],
          failed,
        );
      }
      if (ev.type === 'cgroup.info') {
        const e = this.entry(ev.node, String(a['cgroup.id']));
        e.path = String(a['cgroup.path']);
        this.byPath.set(`${ev.node}|${e.path}`, e.cgroupId);
      } else if (ev.type === 'process.exec') {
        const e = this.entry(ev.node, String(a['cgroup.id']));
        const name = String(a['process.executable.name'] ?? '');
        const path = String(a['process.executable.path'] ?? '');
        const key = `${name}\0${path}`;
        const p = e.procs.get(key) ?? { name, path, execs: 0, last_seen: ev.time };
        e.procs.delete(key);
        p.execs += ev.sample_weight || 1;
        p.last_seen = ev.time;
        this.count(
          ev.node,
          name,
          e.cgroupId,
          Date.parse(ev.time),
          ev.sample_weight || 1,
          'exec_count',
        );
        e.procs.set(key, p);
        while (e.procs.size > this.maxPrograms)
          e.procs.delete(e.procs.keys().next().value as string);
        this.execs++;
      }
    }
  }

  /**
   * Programs started recently in a workload (by cgroup path or `cgroup:<id>`,
   * or by cgroup id), most execs first.
   */
  lookup(node: string, workload: string, cgroupId?: string, limit = 10): ProcessSeen[] {
    const id =
      cgroupId ??
      this.byPath.get(`${node}|${workload}`) ??
      (workload.startsWith('cgroup:') ? workload.slice(7) : undefined);
    if (id === undefined) return [];
    const e = this.entries.get(`${node}|${id}`);
    if (!e) return [];
    return [...e.procs.values()].sort((x, y) => y.execs - x.execs).slice(0, limit);
  }

  /**
   * Indexes the event frames published since `sinceMs` (for one-shot questions
   * without a live subscription). Returns how many frames were read.
   */
  async readRecent(opts: {
    brokers: string[];
    sinceMs: number;
    log: Logger;
    timeoutMs?: number;
    topic?: string;
  }): Promise<number> {
    return readTopicSince({
      ...opts,
      topic: opts.topic ?? Topics.events,
      onValue: (v) => {
        if (!v) return false;
        const before = this.undecodable;
        this.ingestFrame(v);
        return this.undecodable === before;
      },
    });
  }

  /** Subscribes to the events topic (from now on) and indexes what arrives. */
  async start(opts: {
    brokers: string[];
    log: Logger;
    groupId?: string;
    topic?: string;
  }): Promise<this> {
    const kafka = kafkaClient({
      role: 'agent',
      clientId: 'tracefeed-agent-processes',
      brokers: opts.brokers,
      log: opts.log,
    });
    // Each agent instance indexes every node: its own group.
    this.consumer = kafka.consumer({
      groupId: opts.groupId ?? `tracefeed-agent-processes-${randomUUID()}`,
      maxWaitTimeInMs: 200,
    });
    let joined!: () => void;
    this.ready = new Promise((r) => (joined = r));
    this.consumer.on(this.consumer.events.GROUP_JOIN, () => joined());
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: opts.topic ?? Topics.events, fromBeginning: false });
    await this.consumer.run({
      eachMessage: async ({ message }) => {
        if (message.value) this.ingestFrame(message.value);
      },
    });
    return this;
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
    this.consumer = undefined;
  }
}
