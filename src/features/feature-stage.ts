/**
 * The feature stage: a Kafka consumer group on tracefeed.events.v1 that
 * windows frames into features, writes them to Kafka, .arrows files and HTTP,
 * detects anomalies, and dead-letters what it cannot decode. Any number of
 * instances may run in one group.
 *
 * Delivery (docs/exactly-once.md): exactly once into Kafka. Windows are kept
 * per input partition; each partition has its own transactional producer
 * (`<prefix>-<group>-<topic>-<partition>`), and one transaction carries a
 * partition's closed windows, their anomalies, its dead letters and the
 * partition's consumer offset, with the event time up to which each node's
 * windows are written as the offset's metadata. A window leaves memory only
 * once that transaction commits. The committed offset never passes the first
 * record of a window still open. A new owner of a partition fences the old one
 * (same transactional id), then resumes from the offset and metadata committed.
 */
import type { Server } from 'node:http';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Admin,
  type Consumer,
  type IHeaders,
  type Kafka,
  type Message,
  type PartitionOffset,
  type Producer,
} from 'kafkajs';
import { type RecordBatch, type Schema } from 'apache-arrow';
import { DecodeError, TracefeedError } from '../common/errors.js';
import { serveApi } from '../common/http-auth.js';
import { kafkaClient } from '../common/kafka.js';
import type { Logger } from '../common/logger.js';
import { WindowAggregator, type AggregatorCounters, type ClosedWindow } from './aggregator.js';
import { AnomalyDetector } from './anomaly-detector.js';
import type { Anomaly } from './anomaly.js';
import { buildWindowBatch, featureSchema } from './arrow-batch.js';
import {
  featureStageConfigSchema,
  type FeatureStageConfig,
  type FeatureStageConfigInput,
} from './config.js';
import { readArrowsFile, selectRows, toIpcStream, type FeatureQuery } from './feature-query.js';
import { ArrowFileSink } from './file-sink.js';
import { featureMetrics } from './metrics.js';

export interface FeatureStageStats extends AggregatorCounters {
  /** Records sent to the dead-letter topic, by reason. */
  deadLettered: Record<string, number>;
  featureRecordsSent: number;
  /** Records re-delivered after a rebalance and skipped because this process already holds them. */
  redelivered: number;
  anomaliesPublished: number;
  /** Of anomaliesPublished, those fired on a window still open. */
  anomaliesEarly: number;
  openWindows: number;
  /** Closed windows written in a transaction not yet committed (retried until it is). */
  unackedWindows: number;
  /** Transactions committed, and those aborted (their windows kept and retried). */
  transactionsCommitted: number;
  transactionsAborted: number;
  /** Partitions taken over, and given up (revoked, or fenced by a new owner). */
  partitionsAssigned: number;
  partitionsRevoked: number;
  /** Open and unacknowledged windows dropped with a partition given up (its new owner re-reads them). */
  windowsDroppedOnRevoke: number;
  /** Partitions owned now. */
  partitions: number[];
  committed: Record<string, string>;
  lastWindowEnd: string | null;
}

interface DeadLetter {
  key: Buffer | null;
  value: Buffer | null;
  headers: IHeaders;
}

/**
 * After a window's outputs are written. `anomalies`: every anomaly of the window,
 * including those already published while it was open (`partial: true`).
 */
export type WindowListener = (w: {
  window: ClosedWindow;
  rows: Array<Record<string, string | number | null>>;
  anomalies: Anomaly[];
}) => void;

/** A closed window with its outputs built once (a retried transaction resends the same). */
interface PreparedWindow {
  window: ClosedWindow;
  batch: RecordBatch;
  record: Message;
  rows: Array<Record<string, string | number | null>>;
  /** Anomalies to publish with the window (found at its close). */
  fresh: Anomaly[];
  /** Every anomaly of the window, including those fired early (for listeners). */
  all: Anomaly[];
}

/** What this instance holds for one input partition it owns. */
interface OwnedPartition {
  partition: number;
  producer: Producer;
  /** Next offset to read (everything below it was ingested, or is covered by the committed offset). */
  consumed: number;
  /** Offset committed (-1: none). */
  committed: number;
  /**
   * The last batch reached the partition's high watermark, and no rebalance since: only
   * then may its nodes' windows close by the wall clock.
   */
  caughtUp: boolean;
  /** Closed windows whose transaction has not committed yet. */
  unacked: PreparedWindow[];
  dead: DeadLetter[];
  /** Anomalies of open windows (early fire), published with the next transaction. */
  early: Anomaly[];
}

/** Offset metadata: per node, the event time up to which windows of the partition are written. */
interface OffsetMetadata {
  v: 1;
  closed_up_to_ms: Record<string, number>;
}

/** Brokers keep at most 4096 bytes of offset metadata by default. */
const MAX_METADATA_BYTES = 3800;

/** Errors after which a transactional producer is fenced for good: another owner took the id. */
const FENCED = new Set([
  'INVALID_PRODUCER_EPOCH',
  'PRODUCER_FENCED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
]);

function isFenced(err: unknown): boolean {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    const type = (e as { type?: unknown }).type;
    if (typeof type === 'string' && FENCED.has(type)) return true;
    if (e instanceof Error && /fenced|INVALID_PRODUCER_EPOCH/i.test(e.message)) return true;
  }
  return false;
}

export class FeatureStage {
  readonly config: FeatureStageConfig;
  private readonly kafka: Kafka;
  private consumer: Consumer | undefined;
  private admin: Admin | undefined;
  private readonly aggregator: WindowAggregator;
  private readonly detector: AnomalyDetector;
  private readonly files: ArrowFileSink;
  private readonly schema: Schema;
  private http: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private readonly owned = new Map<number, OwnedPartition>();
  /** Partitions paused after being fenced, until the next assignment. */
  private readonly paused = new Set<number>();
  private memberId: string | undefined;
  /** An assignment whose take-over failed in part (retried by the tick). */
  private takeoverPending: { assigned: number[]; memberId: string } | undefined;
  private readonly dead: Record<string, number> = {};
  private featureRecordsSent = 0;
  /** Records re-delivered after a rebalance and skipped (already held, or covered by the committed offset). */
  private redelivered = 0;
  private anomaliesPublished = 0;
  private anomaliesEarly = 0;
  private transactionsCommitted = 0;
  private transactionsAborted = 0;
  private partitionsAssigned = 0;
  private partitionsRevoked = 0;
  private windowsDroppedOnRevoke = 0;
  private lastWindowEnd: number | null = null;
  private readonly listeners: WindowListener[] = [];

  constructor(
    config: FeatureStageConfigInput,
    private readonly log: Logger,
  ) {
    const parsed = featureStageConfigSchema.safeParse(config);
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      throw new TracefeedError(
        `invalid feature stage config: ${i ? `${i.path.join('.')}: ${i.message}` : parsed.error.message}`,
      );
    }
    this.config = parsed.data;
    const c = this.config;
    mkdirSync(c.data_dir, { recursive: true });
    this.aggregator = new WindowAggregator({
      windowMs: c.window_seconds * 1000,
      allowedLatenessMs: c.allowed_lateness_seconds * 1000,
      idleCloseMs: c.idle_close_seconds * 1000,
      maxFutureSkewMs: c.max_future_skew_seconds * 1000,
    });
    this.detector = new AnomalyDetector(c.anomaly);
    this.files = new ArrowFileSink({
      dir: join(c.data_dir, 'arrows'),
      rotateMs: c.file_rotate_seconds * 1000,
      retentionBytes: c.file_retention_bytes,
      retentionMs: c.file_retention_seconds * 1000,
    });
    this.schema = featureSchema(c.window_seconds * 1000);
    this.kafka = kafkaClient({
      role: 'features',
      clientId: 'tracefeed-features',
      brokers: c.brokers,
      log,
    });
  }

  /** Called after each window's outputs are committed (for in-process consumers and tests). */
  onWindow(listener: WindowListener): void {
    this.listeners.push(listener);
  }

  get arrowsDir(): string {
    return join(this.config.data_dir, 'arrows');
  }

  /** The transactional id of an input partition's producer. */
  transactionalId(partition: number): string {
    const c = this.config;
    return `${c.transactional_id_prefix}-${c.group_id}-${c.topics.events}-${partition}`;
  }

  async start(): Promise<void> {
    const c = this.config;
    this.admin = this.kafka.admin();
    await this.admin.connect();
    this.consumer = this.kafka.consumer({
      groupId: c.group_id,
      maxWaitTimeInMs: 250,
      sessionTimeout: c.session_timeout_ms,
      heartbeatInterval: Math.min(3000, Math.floor(c.session_timeout_ms / 3)),
      readUncommitted: false,
    });
    const consumer = this.consumer;
    // Every join (the first, and each rebalance) states the partitions this member owns now:
    // the hand-over runs in the same queue as the batches, before any batch of the new generation.
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      const assigned = e.payload.memberAssignment[c.topics.events] ?? [];
      const memberId = e.payload.memberId;
      void this.serial(() => this.handover(assigned, memberId)).catch((err: unknown) =>
        this.log.error({ err }, 'feature stage partition hand-over failed: retried in a second'),
      );
    });
    // While the group rebalances nothing is fetched: no partition counts as read to its end.
    consumer.on(consumer.events.REBALANCING, () => {
      for (const part of this.owned.values()) part.caughtUp = false;
    });
    await consumer.connect();
    await consumer.subscribe({ topic: c.topics.events, fromBeginning: c.from_beginning });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        await this.serial(async () => {
          const part = this.owned.get(batch.partition);
          if (!part) return; // not (or no longer) ours: the owner reads it
          for (const m of batch.messages) {
            if (!isRunning() || isStale()) {
              part.caughtUp = false;
              break;
            }
            const offset = Number(m.offset);
            // After a rebalance the group re-delivers from the committed offset; what this
            // process already holds, or a previous owner already committed, is not added again.
            if (offset < part.consumed) {
              this.redelivered++;
              resolveOffset(m.offset);
              continue;
            }
            this.ingestOne(batch.partition, offset, m.key, m.value, m.headers ?? {}, part.dead);
            part.consumed = offset + 1;
            resolveOffset(m.offset);
          }
          // Read to the end of the partition: a quiet node there is quiet indeed.
          part.caughtUp = Number(batch.lastOffset()) + 1 >= Number(batch.highWatermark);
          await this.flush();
          await heartbeat();
        });
      },
    });
    this.timer = setInterval(() => {
      const retry = this.takeoverPending;
      // Only while no later assignment replaced it (checked when its turn comes).
      if (retry)
        void this.serial(async () => {
          if (this.takeoverPending === retry && retry.memberId === this.memberId)
            await this.handover(retry.assigned, retry.memberId);
        }).catch((err: unknown) => this.log.warn({ err }, 'partition take-over retry failed'));
      void this.serial(() => this.flush(c.anomaly.early_fire)).catch((err: unknown) =>
        this.log.error({ err }, 'feature stage tick failed'),
      );
    }, 1000);
    if (c.http_port > 0) this.http = await this.startHttp(c.http_port);
    this.log.info(
      {
        window_seconds: c.window_seconds,
        data_dir: c.data_dir,
        http_port: c.http_port,
        group_id: c.group_id,
        topic: c.topics.events,
      },
      'feature stage running',
    );
  }

  /** Runs `fn` after everything queued before it: windows, commits and hand-overs never interleave. */
  private serial(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /**
   * Takes the partitions of a new assignment: gives up those no longer assigned (their open
   * and unacknowledged windows are dropped: the new owner re-reads them from the committed
   * offset, which is at or before their first record), and takes over the new ones: first
   * fence any previous owner (initialising the partition's transactional id aborts its open
   * transaction and refuses its later ones), then resume from what is committed now.
   */
  private async handover(assigned: number[], memberId: string): Promise<void> {
    this.takeoverPending = undefined;
    try {
      await this.takeOver(assigned, memberId);
    } catch (err) {
      // Retried by the tick unless a later assignment comes first.
      this.takeoverPending = { assigned, memberId };
      throw err;
    }
  }

  private async takeOver(assigned: number[], memberId: string): Promise<void> {
    // A new member id: this member was dropped from the group (its session expired), so
    // whatever it held may have been owned by another since: nothing is kept.
    const rejoined = this.memberId !== undefined && memberId !== this.memberId;
    this.memberId = memberId;
    const keep = new Set(rejoined ? [] : assigned);
    for (const p of [...this.owned.keys()]) if (!keep.has(p)) await this.giveUp(p, 'revoked');
    if (this.paused.size > 0) {
      this.consumer?.resume([{ topic: this.config.topics.events, partitions: [...this.paused] }]);
      this.paused.clear();
    }
    const fresh = assigned.filter((p) => !this.owned.has(p));
    if (fresh.length === 0) return;
    const producers: Array<{ partition: number; producer: Producer }> = [];
    const failed: number[] = [];
    for (const partition of fresh) {
      const producer = this.kafka.producer({
        transactionalId: this.transactionalId(partition),
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        transactionTimeout: Math.max(10_000, this.config.session_timeout_ms),
      });
      try {
        await producer.connect();
        const t = await producer.transaction(); // InitProducerId: the previous owner is fenced
        await t.abort();
        producers.push({ partition, producer });
      } catch (err) {
        failed.push(partition);
        this.log.warn(
          { partition, err: (err as Error).message },
          'partition take-over failed: retried in a second',
        );
        await producer.disconnect().catch(() => undefined);
      }
    }
    if (failed.length > 0) this.takeoverPending = { assigned, memberId };
    let committed: Awaited<ReturnType<FeatureStage['fetchCommitted']>>;
    try {
      committed = await this.fetchCommitted();
    } catch (err) {
      for (const { producer } of producers) await producer.disconnect().catch(() => undefined);
      throw err;
    }
    for (const { partition, producer } of producers) {
      const at = committed.get(partition);
      const offset = at?.offset ?? -1;
      if (at?.metadata) {
        const clamped = this.aggregator.counters.stateClamped;
        this.aggregator.restorePartition(partition, at.metadata);
        if (this.aggregator.counters.stateClamped > clamped)
          this.log.warn(
            { partition, saved_ms: at.metadata },
            'committed closed-up-to time is in the future: clamped to the wall clock',
          );
      }
      this.owned.set(partition, {
        partition,
        producer,
        consumed: offset,
        committed: offset,
        caughtUp: false,
        unacked: [],
        dead: [],
        early: [],
      });
      this.partitionsAssigned++;
      this.log.info(
        { partition, committed: offset, nodes: Object.keys(at?.metadata ?? {}).length },
        'partition taken over',
      );
    }
  }

  /** The group's committed offset and window metadata per partition of the events topic. */
  private async fetchCommitted(): Promise<
    Map<number, { offset: number; metadata: Record<string, number> | undefined }>
  > {
    const c = this.config;
    const res = await this.admin!.fetchOffsets({ groupId: c.group_id, topics: [c.topics.events] });
    const out = new Map<number, { offset: number; metadata: Record<string, number> | undefined }>();
    for (const t of res)
      for (const p of t.partitions) {
        let metadata: Record<string, number> | undefined;
        if (p.metadata) {
          try {
            const m = JSON.parse(p.metadata) as Partial<OffsetMetadata>;
            if (m.v === 1 && m.closed_up_to_ms && typeof m.closed_up_to_ms === 'object')
              metadata = m.closed_up_to_ms;
          } catch {
            this.log.warn(
              { partition: p.partition, metadata: p.metadata.slice(0, 80) },
              "committed offset metadata is not the feature stage's: ignored",
            );
          }
        }
        out.set(p.partition, { offset: Number(p.offset), metadata });
      }
    return out;
  }

  /** Forgets a partition: its windows are re-read by whoever owns it next. */
  private async giveUp(partition: number, why: 'revoked' | 'fenced'): Promise<void> {
    const part = this.owned.get(partition);
    if (!part) return;
    this.owned.delete(partition);
    const dropped = this.aggregator.dropPartition(partition) + part.unacked.length;
    this.windowsDroppedOnRevoke += dropped;
    this.partitionsRevoked++;
    this.log.info({ partition, why, windows_dropped: dropped }, 'partition given up');
    await part.producer.disconnect().catch(() => undefined);
  }

  private ingestOne(
    partition: number,
    offset: number,
    key: Buffer | null,
    value: Buffer | null,
    headers: IHeaders,
    dead: DeadLetter[],
  ): void {
    if (!value) {
      dead.push({
        key,
        value,
        headers: {
          ...headers,
          tracefeed_dlq_reason: 'empty',
          tracefeed_dlq_error: 'record has no value',
          tracefeed_dlq_source: `${this.config.topics.events}/${partition}`,
        },
      });
      return;
    }
    try {
      this.aggregator.ingestFrame(value, partition, offset);
      const future = this.aggregator.lastFrameFutureDated;
      if (future > 0)
        // The rest of the frame counted; a copy goes to the DLQ so the future-dated records can be inspected.
        dead.push({
          key,
          value,
          headers: {
            ...headers,
            tracefeed_dlq_reason: 'future_dated',
            tracefeed_dlq_error: `${future} record(s) later than the wall clock plus ${this.config.max_future_skew_seconds} s (not added)`,
            tracefeed_dlq_source: `${this.config.topics.events}/${partition}`,
          },
        });
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      dead.push({
        key,
        value,
        headers: {
          ...headers,
          tracefeed_dlq_reason: err.reason,
          tracefeed_dlq_error: err.message,
          tracefeed_dlq_source: `${this.config.topics.events}/${partition}`,
        },
      });
    }
  }

  /** Builds a closed window's outputs (once: a retried transaction sends the same). */
  private prepare(w: ClosedWindow): PreparedWindow {
    const built = buildWindowBatch(w, this.aggregator.cgroupNames(w.node), this.schema);
    const rows = built.rows();
    const windowStart = new Date(w.windowStartMs).toISOString();
    const record: Message = {
      key: w.node,
      value: Buffer.from(toIpcStream(this.schema, [built.batch])),
      headers: {
        ce_specversion: '1.0',
        ce_id: `${w.node}@${windowStart}`,
        ce_source: `/node/${w.node}`,
        ce_type: 'io.tracefeed.features.v1',
        ce_time: new Date().toISOString(),
        'content-type': 'application/vnd.apache.arrow.stream',
        tracefeed_window_start: windowStart,
        tracefeed_rows: String(w.rows),
        tracefeed_source_partition: String(w.partition),
      },
    };
    const found = this.detector.observeClosed(rows);
    return {
      window: w,
      batch: built.batch,
      record,
      rows,
      fresh: found.fresh,
      all: [...found.early, ...found.fresh],
    };
  }

  /**
   * Closes due windows (they stay in memory, unacknowledged), then per owned partition
   * writes in one transaction its closed windows, anomalies, dead letters and offset.
   */
  private async flush(scoreOpen = false): Promise<void> {
    const caughtUp = (p: number): boolean => this.owned.get(p)?.caughtUp === true;
    for (const w of this.aggregator.closeDue(Date.now(), false, caughtUp)) {
      const part = this.owned.get(w.partition);
      if (!part) continue; // cannot happen: a partition's windows go with it
      if (w.rows === 0) continue;
      part.unacked.push(this.prepare(w));
    }
    if (scoreOpen) this.scoreOpen();
    const pending = this.aggregator.pendingMinOffsets();
    for (const part of [...this.owned.values()]) await this.commitPartition(part, pending);
  }

  /** Scores the windows still open: an anomaly whose partial value already crosses fires now. */
  private scoreOpen(): void {
    for (const w of this.aggregator.snapshotOpen()) {
      if (w.rows === 0) continue;
      const part = this.owned.get(w.partition);
      if (!part) continue;
      const rows = buildWindowBatch(w, this.aggregator.cgroupNames(w.node), this.schema).rows();
      part.early.push(...this.detector.observePartial(rows));
    }
  }

  private anomalyMessages(anomalies: Anomaly[]): Message[] {
    return anomalies.map((a) => ({
      key: a.series_id,
      value: JSON.stringify(a),
      headers: {
        ce_specversion: '1.0',
        ce_id: a.id,
        ce_source: `/node/${a.node}`,
        ce_type: 'io.tracefeed.anomalies.v1',
        'content-type': 'application/json',
      },
    }));
  }

  /**
   * One transaction for one partition: its closed windows, their anomalies, early anomalies,
   * dead letters, and the offset up to which everything is written (never past the first
   * record of a window still open), with the nodes' closed-up-to times as its metadata.
   * On failure the transaction is aborted and everything stays for the next attempt; when
   * fenced, the partition is given up.
   */
  private async commitPartition(part: OwnedPartition, pending: Map<number, number>): Promise<void> {
    const c = this.config;
    const need = pending.get(part.partition);
    const safe = need === undefined ? part.consumed : Math.min(need, part.consumed);
    const advance = safe > part.committed;
    const windows = part.unacked;
    const dead = part.dead;
    const early = part.early;
    if (windows.length === 0 && dead.length === 0 && early.length === 0 && !advance) return;
    const fresh = windows.flatMap((w) => w.fresh);
    const anomalies = [...early, ...fresh];
    let txn: Awaited<ReturnType<Producer['transaction']>> | undefined;
    try {
      txn = await part.producer.transaction();
      if (windows.length > 0)
        await txn.send({
          topic: c.topics.features,
          acks: -1,
          messages: windows.map((w) => w.record),
        });
      if (anomalies.length > 0)
        await txn.send({
          topic: c.topics.anomalies,
          acks: -1,
          messages: this.anomalyMessages(anomalies),
        });
      if (dead.length > 0)
        await txn.send({
          topic: c.topics.dlq,
          acks: -1,
          messages: dead.map((d) => ({ key: d.key, value: d.value, headers: d.headers })),
        });
      if (advance) {
        // kafkajs sends each partition's `metadata` (TxnOffsetCommit); its types omit it.
        const offset: PartitionOffset & { metadata: string } = {
          partition: part.partition,
          offset: String(safe),
          metadata: this.metadata(part.partition),
        };
        await txn.sendOffsets({
          consumerGroupId: c.group_id,
          topics: [{ topic: c.topics.events, partitions: [offset] }],
        });
      }
      await txn.commit();
    } catch (err) {
      this.transactionsAborted++;
      if (txn?.isActive()) await txn.abort().catch(() => undefined);
      if (isFenced(err)) {
        this.log.warn(
          { partition: part.partition, err: (err as Error).message },
          'fenced: another member owns this partition now',
        );
        await this.giveUp(part.partition, 'fenced');
        // Still assigned here by a generation this member has not seen end: read nothing of
        // it until the next assignment says who owns it.
        this.consumer?.pause([{ topic: c.topics.events, partitions: [part.partition] }]);
        this.paused.add(part.partition);
        return;
      }
      this.log.warn(
        { partition: part.partition, windows: windows.length, err: (err as Error).message },
        'feature transaction aborted: kept for the next attempt',
      );
      return;
    }
    this.transactionsCommitted++;
    if (advance) part.committed = safe;
    part.unacked = part.unacked.slice(windows.length);
    part.dead = part.dead.slice(dead.length);
    part.early = part.early.slice(early.length);
    for (const d of dead) {
      const reason = String(d.headers.tracefeed_dlq_reason);
      this.dead[reason] = (this.dead[reason] ?? 0) + 1;
    }
    if (dead.length > 0)
      this.log.warn({ records: dead.length, reasons: this.dead }, 'records dead-lettered');
    this.anomaliesEarly += early.length;
    this.anomaliesPublished += anomalies.length;
    if (anomalies.length > 0)
      this.log.info(
        { anomalies: anomalies.map((a) => `${a.series_id} score ${a.score.toFixed(1)}`) },
        'anomalies',
      );
    if (windows.length === 0) return;
    this.featureRecordsSent += windows.length;
    // Not transactional: the files get each committed window once, after its commit (a crash
    // right here leaves it out of the files; Kafka has it).
    this.files.write(windows.map((w) => w.batch));
    for (const w of windows) {
      if (w.window.windowEndMs > (this.lastWindowEnd ?? 0))
        this.lastWindowEnd = w.window.windowEndMs;
      for (const l of this.listeners) l({ window: w.window, rows: w.rows, anomalies: w.all });
    }
  }

  /** The offset metadata of a partition: the nodes' closed-up-to times, within the broker's limit. */
  private metadata(partition: number): string {
    let limit = Infinity;
    for (;;) {
      const m: OffsetMetadata = {
        v: 1,
        closed_up_to_ms: this.aggregator.closedUpTo(partition, limit),
      };
      const text = JSON.stringify(m);
      const n = Object.keys(m.closed_up_to_ms).length;
      if (Buffer.byteLength(text) <= MAX_METADATA_BYTES || n === 0) return text;
      // Nodes heard from longest ago go first; their replays, if any, count as late.
      limit = n - 1;
    }
  }

  /** Ready once it is a member of its group (it may own no partition: more members than partitions). */
  health(): {
    ok: boolean;
    role: 'features';
    group_id: string;
    member: boolean;
    partitions: number[];
    reason?: string;
  } {
    const member = this.memberId !== undefined && this.consumer !== undefined;
    return {
      ok: member,
      role: 'features',
      group_id: this.config.group_id,
      member,
      partitions: [...this.owned.keys()].sort((a, b) => a - b),
      ...(member ? {} : { reason: 'not (yet) a member of its consumer group' }),
    };
  }

  stats(): FeatureStageStats {
    const committed: Record<string, string> = {};
    let unacked = 0;
    for (const [p, part] of this.owned) {
      if (part.committed >= 0) committed[String(p)] = String(part.committed);
      unacked += part.unacked.length;
    }
    return {
      ...this.aggregator.counters,
      deadLettered: { ...this.dead },
      featureRecordsSent: this.featureRecordsSent,
      redelivered: this.redelivered,
      anomaliesPublished: this.anomaliesPublished,
      anomaliesEarly: this.anomaliesEarly,
      openWindows: this.aggregator.openWindows(),
      unackedWindows: unacked,
      transactionsCommitted: this.transactionsCommitted,
      transactionsAborted: this.transactionsAborted,
      partitionsAssigned: this.partitionsAssigned,
      partitionsRevoked: this.partitionsRevoked,
      windowsDroppedOnRevoke: this.windowsDroppedOnRevoke,
      partitions: [...this.owned.keys()].sort((a, b) => a - b),
      committed,
      lastWindowEnd:
        this.lastWindowEnd === null ? null : new Date(this.lastWindowEnd).toISOString(),
    };
  }

  /** Features matching the query, from the .arrows files, as one Arrow IPC stream. */
  query(q: FeatureQuery): Uint8Array {
    const selected: RecordBatch[] = [];
    for (const f of this.files.files()) {
      if (q.sinceMs !== undefined && f.mtimeMs < q.sinceMs) continue; // written before the range starts
      for (const b of readArrowsFile(f.path)) {
        const s = selectRows(b, q);
        if (s) selected.push(s);
      }
    }
    return toIpcStream(this.schema, selected);
  }

  private async startHttp(port: number): Promise<Server> {
    const registry = featureMetrics(() => this.stats());
    const { server } = await serveApi(
      {
        what: 'features API',
        flag: 'set http_port',
        port,
        security: this.config.http_security,
        log: this.log,
        health: () => this.health(),
      },
      (req, res, url) => {
        try {
          if (req.method === 'GET' && url.pathname === '/metrics') {
            void registry.metrics().then((text) => {
              res.writeHead(200, { 'content-type': registry.contentType });
              res.end(text);
            });
          } else if (req.method === 'GET' && url.pathname === '/v1/features') {
            const time = (name: string): number | undefined => {
              const v = url.searchParams.get(name);
              if (v === null) return undefined;
              const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
              if (!Number.isFinite(ms))
                throw new TracefeedError(
                  `${name} must be an ISO 8601 time or epoch ms, got "${v}"`,
                );
              return ms;
            };
            const body = this.query({
              sinceMs: time('since'),
              untilMs: time('until'),
              node: url.searchParams.get('node') ?? undefined,
              workload: url.searchParams.get('workload') ?? undefined,
              probe: url.searchParams.get('probe') ?? undefined,
            });
            res.writeHead(200, { 'content-type': 'application/vnd.apache.arrow.stream' });
            res.end(body);
          } else if (req.method === 'GET' && url.pathname === '/v1/status') {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify(this.stats()));
          } else {
            res.writeHead(404, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ error: `no route for ${req.method} ${url.pathname}` }));
          }
        } catch (err) {
          res.writeHead(400, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: (err as Error).message }));
        }
      },
    );
    return server;
  }

  /**
   * Stops consuming. Open windows are not written: their offsets are not committed, so the
   * partition's next owner (or a restart) re-reads them.
   */
  async stop(): Promise<FeatureStageStats> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.chain;
    await this.consumer?.disconnect();
    await this.serial(async () => {
      for (const part of this.owned.values())
        await part.producer.disconnect().catch(() => undefined);
    });
    const stats = this.stats();
    this.owned.clear();
    await this.admin?.disconnect();
    this.http?.close();
    this.consumer = undefined;
    this.admin = undefined;
    return stats;
  }
}
