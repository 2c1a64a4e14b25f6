/**
 * The feature stage: a Kafka consumer group on tracefeed.events.v1 that
 * windows frames into features, writes them to Kafka, .arrows files and HTTP,
 * detects anomalies, and dead-letters what it cannot decode. Any number of
 * instances may run in one group.
 *
 * Delivery (docs/exactly-once.md): exactly once into Kafka. Windows are kept
 * per input partition; each partition has its own transactional producer, and
 * one transaction carries a partition's closed windows, their anomalies, its
 * dead letters and the partition's consumer offset. A window leaves memory
 * only once that transaction commits.
 *
 * This class wires the parts: the consumer and offset ledger
 * (partition-ledger.ts), the window aggregator and anomaly detector, the
 * outputs (output-sinks.ts) and the HTTP API (feature-api.ts).
 */
import type { Server } from 'node:http';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Schema } from 'apache-arrow';
import { DecodeError, TracefeedError } from '../common/errors.js';
import { kafkaClient } from '../common/kafka.js';
import type { Logger } from '../common/logger.js';
import { WindowAggregator } from './aggregator.js';
import { AnomalyDetector } from './anomaly-detector.js';
import { featureSchema } from './arrow-batch.js';
import {
  featureStageConfigSchema,
  type FeatureStageConfig,
  type FeatureStageConfigInput,
} from './config.js';
import { startFeatureApi } from './feature-api.js';
import type { FeatureQuery } from './feature-query.js';
import { OutputSinks, type DeadLetter, type WindowListener } from './output-sinks.js';
import { PartitionLedger, type InputRecord, type LedgerHooks } from './partition-ledger.js';
import type { FeatureStageHealth, FeatureStageStats } from './stage-stats.js';

export type { FeatureStageHealth, FeatureStageStats } from './stage-stats.js';
export type { WindowListener } from './output-sinks.js';

export class FeatureStage {
  readonly config: FeatureStageConfig;
  private readonly aggregator: WindowAggregator;
  private readonly detector: AnomalyDetector;
  private readonly schema: Schema;
  private readonly sinks: OutputSinks;
  private readonly ledger: PartitionLedger;
  private http: Server | undefined;
  private timer: NodeJS.Timeout | undefined;

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
    this.schema = featureSchema(c.window_seconds * 1000);
    this.sinks = new OutputSinks({
      config: c,
      aggregator: this.aggregator,
      detector: this.detector,
      schema: this.schema,
      log,
    });
    this.ledger = new PartitionLedger({
      kafka: kafkaClient({
        role: 'features',
        clientId: 'tracefeed-features',
        brokers: c.brokers,
        log,
      }),
      config: c,
      sinks: this.sinks,
      hooks: this.hooks(),
      log,
    });
  }

  /** Called after each window's outputs are committed (for in-process consumers and tests). */
  onWindow(listener: WindowListener): void {
    this.sinks.onWindow(listener);
  }

  get arrowsDir(): string {
    return join(this.config.data_dir, 'arrows');
  }

  /** The transactional id of an input partition's producer. */
  transactionalId(partition: number): string {
    return this.ledger.transactionalId(partition);
  }

  async start(): Promise<void> {
    const c = this.config;
    await this.ledger.start();
    this.timer = setInterval(() => {
      this.ledger.retryTakeOver();
      void this.ledger
        .serial(() => this.flush(c.anomaly.early_fire))
        .catch((err: unknown) => this.log.error({ err }, 'feature stage tick failed'));
    }, 1000);
    if (c.http_port > 0)
      this.http = await startFeatureApi({
        port: c.http_port,
        security: c.http_security,
        log: this.log,
        stats: () => this.stats(),
        health: () => this.health(),
        query: (q) => this.query(q),
      });
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

  /** What the ledger's records and partition changes mean here. */
  private hooks(): LedgerHooks {
    const agg = (): WindowAggregator => this.aggregator;
    return {
      record: (part, offset, r) => this.ingestOne(part.partition, offset, r, part.out.dead),
      afterBatch: () => this.flush(),
      restore: (partition, closedUpTo) => {
        const clamped = agg().counters.stateClamped;
        agg().restorePartition(partition, closedUpTo);
        if (agg().counters.stateClamped > clamped)
          this.log.warn(
            { partition, saved_ms: closedUpTo },
            'committed closed-up-to time is in the future: clamped to the wall clock',
          );
      },
      drop: (partition) => agg().dropPartition(partition),
      closedUpTo: (partition, limit) => agg().closedUpTo(partition, limit),
    };
  }

  private ingestOne(partition: number, offset: number, r: InputRecord, dead: DeadLetter[]): void {
    if (!r.value) {
      dead.push(this.sinks.deadLetter(r, partition, 'empty', 'record has no value'));
      return;
    }
    try {
      this.aggregator.ingestFrame(r.value, partition, offset);
      const future = this.aggregator.lastFrameFutureDated;
      if (future > 0)
        // The rest of the frame counted; a copy goes to the DLQ so the future-dated records can be inspected.
        dead.push(
          this.sinks.deadLetter(
            r,
            partition,
            'future_dated',
            `${future} record(s) later than the wall clock plus ${this.config.max_future_skew_seconds} s (not added)`,
          ),
        );
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      dead.push(this.sinks.deadLetter(r, partition, err.reason, err.message));
    }
  }

  /**
   * Closes due windows (they stay in memory, unacknowledged), then per owned partition
   * writes in one transaction its closed windows, anomalies, dead letters and offset.
   */
  private async flush(scoreOpen = false): Promise<void> {
    const caughtUp = (p: number): boolean => this.ledger.get(p)?.caughtUp === true;
    for (const w of this.aggregator.closeDue(Date.now(), false, caughtUp)) {
      const part = this.ledger.get(w.partition);
      if (!part) continue; // cannot happen: a partition's windows go with it
      if (w.rows === 0) continue;
      part.out.unacked.push(this.sinks.prepare(w));
    }
    if (scoreOpen)
      // The windows still open: an anomaly whose partial value already crosses fires now.
      for (const w of this.aggregator.snapshotOpen()) {
        if (w.rows === 0) continue;
        const part = this.ledger.get(w.partition);
        if (!part) continue;
        part.out.early.push(...this.sinks.scoreOpen(w));
      }
    const pending = this.aggregator.pendingMinOffsets();
    for (const part of this.ledger.ownedPartitions())
      await this.ledger.commit(part, pending.get(part.partition));
  }

  /** Ready once it is a member of its group (it may own no partition: more members than partitions). */
  health(): FeatureStageHealth {
    const member = this.ledger.member;
    return {
      ok: member,
      role: 'features',
      group_id: this.config.group_id,
      member,
      partitions: this.ledger.partitions(),
      ...(member ? {} : { reason: 'not (yet) a member of its consumer group' }),
    };
  }

  stats(): FeatureStageStats {
    const { committed, unacked } = this.ledger.ledger();
    const l = this.ledger;
    const s = this.sinks;
    return {
      ...this.aggregator.counters,
      deadLettered: { ...s.deadLettered },
      featureRecordsSent: s.featureRecordsSent,
      redelivered: l.redelivered,
      anomaliesPublished: s.anomaliesPublished,
      anomaliesEarly: s.anomaliesEarly,
      openWindows: this.aggregator.openWindows(),
      unackedWindows: unacked,
      transactionsCommitted: l.transactionsCommitted,
      transactionsAborted: l.transactionsAborted,
      partitionsAssigned: l.partitionsAssigned,
      partitionsRevoked: l.partitionsRevoked,
      windowsDroppedOnRevoke: l.windowsDroppedOnRevoke,
      partitions: l.partitions(),
      committed,
      lastWindowEnd: s.lastWindowEnd === null ? null : new Date(s.lastWindowEnd).toISOString(),
    };
  }

  /** Features matching the query, from the .arrows files, as one Arrow IPC stream. */
  query(q: FeatureQuery): Uint8Array {
    return this.sinks.query(q);
  }

  /**
   * Stops consuming. Open windows are not written: their offsets are not committed, so the
   * partition's next owner (or a restart) re-reads them.
   */
  async stop(): Promise<FeatureStageStats> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.ledger.stopConsuming();
    const stats = this.stats();
    await this.ledger.close();
    this.http?.close();
    return stats;
  }
}
