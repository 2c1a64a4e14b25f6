/**
 * The feature stage: a Kafka consumer group on tracefeed.events.v1 that
 * windows frames into features, writes them to Kafka, .arrows files and HTTP,
 * detects anomalies, and dead-letters what it cannot decode.
 *
 * Delivery: offsets are committed only after the outputs of every window
 * that used them are written (at-least-once). The event time up to which each
 * node's windows are written is persisted with them, so a restart that
 * re-reads those offsets skips the events of windows already written instead
 * of counting them twice.
 */
import type { Server } from 'node:http';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Consumer, type IHeaders, type Kafka, type Producer } from 'kafkajs';
import { type RecordBatch, type Schema } from 'apache-arrow';
import { DecodeError, TracefeedError } from '../common/errors.js';
import { serveApi } from '../common/http-auth.js';
import { Topics, kafkaClient } from '../common/kafka.js';
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

export class FeatureStage {
  readonly config: FeatureStageConfig;
  private readonly kafka: Kafka;
  private consumer: Consumer | undefined;
  private producer: Producer | undefined;
  private readonly aggregator: WindowAggregator;
  private readonly detector: AnomalyDetector;
  private readonly files: ArrowFileSink;
  private readonly schema: Schema;
  private readonly statePath: string;
  private http: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  /** Next offset to read, per partition, of what was consumed. */
  private readonly consumed = new Map<number, number>();
  private readonly committed = new Map<number, number>();
  private readonly dead: Record<string, number> = {};
  private featureRecordsSent = 0;
  /** Records re-delivered after a rebalance and skipped (already held). */
  private redelivered = 0;
  private anomaliesPublished = 0;
  private anomaliesEarly = 0;
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
    this.statePath = join(c.data_dir, 'state.json');
    this.aggregator = new WindowAggregator(
      {
        windowMs: c.window_seconds * 1000,
        allowedLatenessMs: c.allowed_lateness_seconds * 1000,
        idleCloseMs: c.idle_close_seconds * 1000,
        maxFutureSkewMs: c.max_future_skew_seconds * 1000,
      },
      this.loadState(),
    );
    for (const [node, ms] of Object.entries(this.aggregator.clampedState))
      log.warn(
        { node, saved_ms: ms, state: this.statePath },
        'saved closed-up-to time is in the future: clamped to the wall clock',
      );
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

  /** Called after each window's outputs are written (for in-process consumers and tests). */
  onWindow(listener: WindowListener): void {
    this.listeners.push(listener);
  }

  get arrowsDir(): string {
    return join(this.config.data_dir, 'arrows');
  }

  private loadState(): Record<string, number> {
    if (!existsSync(this.statePath)) return {};
    try {
      const s = JSON.parse(readFileSync(this.statePath, 'utf8')) as {
        closed_up_to_ms?: Record<string, number>;
      };
      return s.closed_up_to_ms ?? {};
    } catch (err) {
      throw new TracefeedError(
        `feature stage state ${this.statePath} is unreadable: ${(err as Error).message}`,
        {
          cause: err,
          hint: 'move it away to start over (windows already written may then be written again)',
        },
      );
    }
  }

  private saveState(): void {
    const tmp = `${this.statePath}.tmp`;
    writeFileSync(tmp, JSON.stringify({ closed_up_to_ms: this.aggregator.closedUpTo() }));
    renameSync(tmp, this.statePath);
  }

  async start(): Promise<void> {
    const c = this.config;
    this.producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
    });
    await this.producer.connect();
    this.consumer = this.kafka.consumer({
      groupId: c.group_id,
      maxWaitTimeInMs: 250,
      sessionTimeout: 30000,
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: Topics.events, fromBeginning: c.from_beginning });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        await this.serial(async () => {
          const dead: DeadLetter[] = [];
          for (const m of batch.messages) {
            if (!isRunning() || isStale()) break;
            const offset = Number(m.offset);
            // After a rebalance the group re-delivers from the committed offset; what this
            // process already holds in open windows must not be added again.
            if (offset < (this.consumed.get(batch.partition) ?? -1)) {
              this.redelivered++;
              resolveOffset(m.offset);
              continue;
            }
            this.ingestOne(batch.partition, offset, m.key, m.value, m.headers ?? {}, dead);
            this.consumed.set(batch.partition, offset + 1);
            resolveOffset(m.offset);
          }
          await this.deadLetter(dead, batch.topic, batch.partition);
          await this.emitDue();
          await this.commit();
          await heartbeat();
        });
      },
    });
    this.timer = setInterval(() => {
      void this.serial(async () => {
        await this.emitDue();
        if (c.anomaly.early_fire) await this.scoreOpen();
        await this.commit();
      }).catch((err: unknown) => this.log.error({ err }, 'feature stage tick failed'));
    }, 1000);
    if (c.http_port > 0) this.http = await this.startHttp(c.http_port);
    this.log.info(
      { window_seconds: c.window_seconds, data_dir: c.data_dir, http_port: c.http_port },
      'feature stage running',
    );
  }

  /** Runs `fn` after everything queued before it: windows and commits never interleave. */
  private serial(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn);
    this.chain = next.catch(() => undefined);
    return next;
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
          },
        });
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      dead.push({
        key,
        value,
        headers: { ...headers, tracefeed_dlq_reason: err.reason, tracefeed_dlq_error: err.message },
      });
    }
  }

  private async deadLetter(dead: DeadLetter[], topic: string, partition: number): Promise<void> {
    if (dead.length === 0) return;
    await this.producer!.send({
      topic: Topics.eventsDlq,
      acks: -1,
      messages: dead.map((d) => ({
        key: d.key,
        value: d.value,
        headers: { ...d.headers, tracefeed_dlq_source: `${topic}/${partition}` },
      })),
    });
    for (const d of dead) {
      const reason = String(d.headers.tracefeed_dlq_reason);
      this.dead[reason] = (this.dead[reason] ?? 0) + 1;
    }
    this.log.warn({ records: dead.length, reasons: this.dead }, 'records dead-lettered');
  }

  /** Closes due windows and writes their outputs: files, Kafka features, anomalies. */
  private async emitDue(force = false): Promise<void> {
    const closed = this.aggregator.closeDue(Date.now(), force);
    if (closed.length === 0) return;
    const batches: RecordBatch[] = [];
    const records: Array<{ key: string; value: Buffer; headers: IHeaders }> = [];
    const anomalies: Anomaly[] = [];
    const built: Array<{
      window: ClosedWindow;
      rows: Array<Record<string, string | number | null>>;
      anomalies: Anomaly[];
    }> = [];
    for (const w of closed) {
      if (w.rows === 0) continue;
      const built_ = buildWindowBatch(w, this.aggregator.cgroupNames(w.node), this.schema);
      const batch = built_.batch;
      const rows = built_.rows();
      batches.push(batch);
      const windowStart = new Date(w.windowStartMs).toISOString();
      records.push({
        key: w.node,
        value: Buffer.from(toIpcStream(this.schema, [batch])),
        headers: {
          ce_specversion: '1.0',
          ce_id: `${w.node}@${windowStart}`,
          ce_source: `/node/${w.node}`,
          ce_type: 'io.tracefeed.features.v1',
          ce_time: new Date().toISOString(),
          'content-type': 'application/vnd.apache.arrow.stream',
          tracefeed_window_start: windowStart,
          tracefeed_rows: String(w.rows),
        },
      });
      const found = this.detector.observeClosed(rows);
      anomalies.push(...found.fresh);
      built.push({ window: w, rows, anomalies: [...found.early, ...found.fresh] });
      this.lastWindowEnd = w.windowEndMs;
    }
    if (batches.length > 0) this.files.write(batches);
    if (records.length > 0) {
      await this.producer!.send({ topic: Topics.features, acks: -1, messages: records });
      this.featureRecordsSent += records.length;
    }
    await this.publishAnomalies(anomalies);
    this.saveState();
    for (const b of built) for (const l of this.listeners) l(b);
  }

  /** Scores the windows still open: an anomaly whose partial value already crosses fires now. */
  private async scoreOpen(): Promise<void> {
    const found: Anomaly[] = [];
    for (const w of this.aggregator.snapshotOpen()) {
      if (w.rows === 0) continue;
      const rows = buildWindowBatch(w, this.aggregator.cgroupNames(w.node), this.schema).rows();
      found.push(...this.detector.observePartial(rows));
    }
    await this.publishAnomalies(found);
    this.anomaliesEarly += found.length;
  }

  private async publishAnomalies(anomalies: Anomaly[]): Promise<void> {
    if (anomalies.length > 0) {
      await this.producer!.send({
        topic: Topics.anomalies,
        acks: -1,
        messages: anomalies.map((a) => ({
          key: a.series_id,
          value: JSON.stringify(a),
          headers: {
            ce_specversion: '1.0',
            ce_id: a.id,
            ce_source: `/node/${a.node}`,
            ce_type: 'io.tracefeed.anomalies.v1',
            'content-type': 'application/json',
          },
        })),
      });
      this.anomaliesPublished += anomalies.length;
      this.log.info(
        { anomalies: anomalies.map((a) => `${a.series_id} score ${a.score.toFixed(1)}`) },
        'anomalies',
      );
    }
  }

  /** Commits, per partition, the lowest offset an open window still needs (or all consumed). */
  private async commit(): Promise<void> {
    if (!this.consumer) return;
    const pending = this.aggregator.pendingMinOffsets();
    const offsets: Array<{ topic: string; partition: number; offset: string }> = [];
    for (const [partition, next] of this.consumed) {
      const need = pending.get(partition);
      const safe = need === undefined ? next : Math.min(need, next);
      if (safe > (this.committed.get(partition) ?? -1)) {
        offsets.push({ topic: Topics.events, partition, offset: String(safe) });
      }
    }
    if (offsets.length === 0) return;
    await this.consumer.commitOffsets(offsets);
    for (const o of offsets) this.committed.set(o.partition, Number(o.offset));
  }

  stats(): FeatureStageStats {
    const committed: Record<string, string> = {};
    for (const [p, o] of this.committed) committed[String(p)] = String(o);
    return {
      ...this.aggregator.counters,
      deadLettered: { ...this.dead },
      featureRecordsSent: this.featureRecordsSent,
      redelivered: this.redelivered,
      anomaliesPublished: this.anomaliesPublished,
      anomaliesEarly: this.anomaliesEarly,
      openWindows: this.aggregator.openWindows(),
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

  /** Stops consuming. Open windows are not written: their offsets are not committed, so a restart re-reads them. */
  async stop(): Promise<FeatureStageStats> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.chain;
    await this.consumer?.disconnect();
    await this.producer?.disconnect();
    this.http?.close();
    this.consumer = undefined;
    this.producer = undefined;
    return this.stats();
  }
}
