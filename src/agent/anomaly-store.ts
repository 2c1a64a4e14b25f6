/**
 * The anomalies the agent knows about: an in-memory, bounded store fed by
 * `tracefeed.anomalies.v1` (the analysis worker, or `readRecentAnomalies` for
 * one-shot questions). The oldest anomalies leave first; evictions are counted.
 */
import { createHash, randomUUID } from 'node:crypto';
import { kafkaClient, Topics } from '../common/kafka.js';
import type { Logger } from '../common/logger.js';
import { anomalySchema, type Anomaly } from '../features/anomaly.js';

const SEVERITY_RANK = { warning: 0, critical: 1 } as const;

/**
 * A short opaque handle for an anomaly. Anomaly ids hold the workload (an
 * event-derived string); the handle lets the agent name an anomaly in a
 * model-visible tool call without repeating untrusted text.
 */
export function anomalyRef(id: string): string {
  return `an-${createHash('sha256').update(id).digest('hex').slice(0, 12)}`;
}

export interface AnomalyFilter {
  /** Anomalies whose window ends at or after this time (ms). */
  sinceMs?: number;
  untilMs?: number;
  node?: string;
  workload?: string;
  probe?: string;
  metric?: string;
  minSeverity?: 'warning' | 'critical';
  /** Newest first, at most this many. Default 50. */
  limit?: number;
}

export class AnomalyStore {
  private readonly byId = new Map<string, Anomaly>();
  private readonly byRef = new Map<string, string>();
  /** Anomalies dropped because the store was full (oldest first). */
  evicted = 0;
  /** Records that were not valid anomalies. */
  invalid = 0;

  /** @param maxAnomalies Most anomalies kept. Default 10000. */
  constructor(readonly maxAnomalies = 10_000) {}

  /** Adds (or replaces) one anomaly; returns false when it was already known. */
  add(a: Anomaly): boolean {
    const known = this.byId.has(a.id);
    this.byId.delete(a.id);
    this.byId.set(a.id, a);
    this.byRef.set(anomalyRef(a.id), a.id);
    while (this.byId.size > this.maxAnomalies) {
      const oldest = this.byId.keys().next().value as string;
      this.byId.delete(oldest);
      this.byRef.delete(anomalyRef(oldest));
      this.evicted++;
    }
    return !known;
  }

  /** Parses one record of the anomalies topic and adds it; undefined when invalid. */
  addRecord(value: Buffer | string | null): Anomaly | undefined {
    try {
      const r = anomalySchema.safeParse(JSON.parse(value?.toString() ?? ''));
      if (r.success) {
        this.add(r.data);
        return r.data;
      }
    } catch {
      // not JSON: counted below
    }
    this.invalid++;
    return undefined;
  }

  /** By id or by ref (`an-...`). */
  get(idOrRef: string): Anomaly | undefined {
    return this.byId.get(idOrRef) ?? this.byId.get(this.byRef.get(idOrRef) ?? '');
  }

  list(f: AnomalyFilter = {}): Anomaly[] {
    const out: Anomaly[] = [];
    for (const a of this.byId.values()) {
      const end = Date.parse(a.window_end);
      if (f.sinceMs !== undefined && end < f.sinceMs) continue;
      if (f.untilMs !== undefined && Date.parse(a.window_start) >= f.untilMs) continue;
      if (f.node !== undefined && a.node !== f.node) continue;
      if (f.workload !== undefined && a.workload !== f.workload) continue;
      if (f.probe !== undefined && a.probe !== f.probe) continue;
      if (f.metric !== undefined && a.metric !== f.metric) continue;
      if (f.minSeverity !== undefined && SEVERITY_RANK[a.severity] < SEVERITY_RANK[f.minSeverity])
        continue;
      out.push(a);
    }
    out.sort((x, y) => y.window_start.localeCompare(x.window_start) || y.score - x.score);
    return out.slice(0, f.limit ?? 50);
  }

  get size(): number {
    return this.byId.size;
  }
}

/**
 * Reads the anomalies published since `sinceMs` into `store` (offsets looked
 * up by timestamp, read up to the end of each partition), for one-shot
 * questions that have no live subscription. Returns how many were read.
 */
export async function readRecentAnomalies(
  store: AnomalyStore,
  opts: { brokers: string[]; sinceMs: number; log: Logger; timeoutMs?: number; topic?: string },
): Promise<number> {
  return readTopicSince({
    ...opts,
    topic: opts.topic ?? Topics.anomalies,
    onValue: (v) => store.addRecord(v) !== undefined,
  });
}

/**
 * Reads a topic's records published since `sinceMs` (offsets looked up by
 * timestamp, read up to the end of each partition as it was when asked).
 * `onValue` returns whether the record was taken. Returns how many were.
 */
export async function readTopicSince(opts: {
  brokers: string[];
  sinceMs: number;
  log: Logger;
  topic: string;
  onValue: (value: Buffer | null) => boolean;
  timeoutMs?: number;
}): Promise<number> {
  const topic = opts.topic;
  const kafka = kafkaClient({
    role: 'agent',
    clientId: 'tracefeed-agent-read',
    brokers: opts.brokers,
    log: opts.log,
    connectionTimeout: 3000,
    retry: { retries: 2, initialRetryTime: 200 },
  });
  const admin = kafka.admin();
  await admin.connect();
  let starts: Array<{ partition: number; offset: string }>;
  let ends: Array<{ partition: number; high: string }>;
  try {
    starts = await admin.fetchTopicOffsetsByTimestamp(topic, opts.sinceMs);
    ends = (await admin.fetchTopicOffsets(topic)).map((o) => ({
      partition: o.partition,
      high: o.high,
    }));
  } finally {
    await admin.disconnect();
  }
  const need = new Map<number, { from: bigint; to: bigint }>();
  for (const e of ends) {
    const s = starts.find((x) => x.partition === e.partition);
    const from = BigInt(s && Number(s.offset) >= 0 ? s.offset : e.high);
    if (from < BigInt(e.high)) need.set(e.partition, { from, to: BigInt(e.high) });
  }
  if (need.size === 0) return 0;
  const consumer = kafka.consumer({
    groupId: `tracefeed-agent-read-${randomUUID()}`,
    maxWaitTimeInMs: 100,
    // Anomalies are written in transactions: only committed ones (docs/exactly-once.md).
    readUncommitted: false,
  });
  let read = 0;
  const pending = new Set(need.keys());
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        const range = need.get(partition);
        if (!range) return;
        const off = BigInt(message.offset);
        if (off >= range.from && off < range.to && opts.onValue(message.value)) read++;
        if (off + 1n >= range.to) {
          pending.delete(partition);
          if (pending.size === 0) done();
        }
      },
    });
    for (const [partition, r] of need)
      consumer.seek({ topic, partition, offset: r.from.toString() });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      finished,
      new Promise((r) => (timer = setTimeout(r, opts.timeoutMs ?? 5000))),
    ]);
    clearTimeout(timer);
  } finally {
    await consumer.disconnect();
  }
  return read;
}
