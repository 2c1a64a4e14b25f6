/**
 * Which programs run in which workload: a bounded, in-memory index of recent
 * `process.exec` events per (node, cgroup), fed by `tracefeed.events.v1`.
 * Explanations cite it ("processes started in the workload"), so process
 * names and paths (untrusted) reach the model only inside tool results.
 */
import { randomUUID } from 'node:crypto';
import { type Consumer } from 'kafkajs';
import { kafkaClient, Topics } from '../common/kafka.js';
import type { Logger } from '../common/logger.js';
import { decodeFrameEvents } from '../ingest/event-decoder.js';

export interface ProcessSeen {
  /** `process.executable.name` (comm, at most 15 bytes). */
  name: string;
  /** `process.executable.path`, as exec'd. */
  path: string;
  execs: number;
  last_seen: string;
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
}

export class ProcessIndex {
  private readonly entries = new Map<string, CgroupEntry>();
  private readonly byPath = new Map<string, string>();
  private consumer: Consumer | undefined;
  readonly maxCgroups: number;
  readonly maxPrograms: number;
  /** Exec events indexed; frames that failed to decode. */
  execs = 0;
  undecodable = 0;
  /** Resolves once a live subscription has joined its group. */
  ready: Promise<void> = Promise.resolve();

  constructor(opts: ProcessIndexOptions = {}) {
    this.maxCgroups = opts.maxCgroups ?? 4096;
    this.maxPrograms = opts.maxProgramsPerCgroup ?? 16;
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
