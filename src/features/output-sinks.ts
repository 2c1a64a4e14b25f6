/**
 * What the feature stage writes: feature records (one Arrow IPC stream per
 * window) to the features topic, anomalies to the anomalies topic, dead letters
 * to the DLQ, and, once a partition's transaction has committed, the windows to
 * the rotating .arrows files and to in-process listeners. A partition's
 * outputs wait in its PendingOutputs until the transaction that carries them
 * commits (partition-ledger.ts runs the transaction).
 */
import { join } from 'node:path';
import type { IHeaders, Message } from 'kafkajs';
import type { RecordBatch, Schema } from 'apache-arrow';
import { cloudEventHeaders, nodeSource } from '../common/cloudevents.js';
import type { Logger } from '../common/logger.js';
import type { ClosedWindow, WindowAggregator } from './aggregator.js';
import type { AnomalyDetector } from './anomaly-detector.js';
import type { Anomaly } from './anomaly.js';
import { buildWindowBatch } from './arrow-batch.js';
import type { FeatureStageConfig } from './config.js';
import { readArrowsFile, selectRows, toIpcStream, type FeatureQuery } from './feature-query.js';
import { ArrowFileSink } from './file-sink.js';

export interface DeadLetter {
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
export interface PreparedWindow {
  window: ClosedWindow;
  batch: RecordBatch;
  record: Message;
  rows: Array<Record<string, string | number | null>>;
  /** Anomalies to publish with the window (found at its close). */
  fresh: Anomaly[];
  /** Every anomaly of the window, including those fired early (for listeners). */
  all: Anomaly[];
}

/** One partition's outputs not yet committed. */
export interface PendingOutputs {
  /** Closed windows whose transaction has not committed yet. */
  unacked: PreparedWindow[];
  dead: DeadLetter[];
  /** Anomalies of open windows (early fire), published with the next transaction. */
  early: Anomaly[];
}

export function emptyOutputs(): PendingOutputs {
  return { unacked: [], dead: [], early: [] };
}

/** What one transaction carries: a snapshot of the pending outputs, and its records by topic. */
export interface OutgoingBatch {
  windows: PreparedWindow[];
  dead: DeadLetter[];
  early: Anomaly[];
  anomalies: Anomaly[];
  /** In the order they are sent: features, anomalies, dead letters (empty ones left out). */
  sends: Array<{ topic: string; messages: Message[] }>;
}

export interface OutputSinksOptions {
  config: FeatureStageConfig;
  aggregator: WindowAggregator;
  detector: AnomalyDetector;
  schema: Schema;
  log: Logger;
}

export class OutputSinks {
  private readonly files: ArrowFileSink;
  private readonly listeners: WindowListener[] = [];
  readonly deadLettered: Record<string, number> = {};
  featureRecordsSent = 0;
  anomaliesPublished = 0;
  anomaliesEarly = 0;
  lastWindowEnd: number | null = null;

  constructor(private readonly opts: OutputSinksOptions) {
    const c = opts.config;
    this.files = new ArrowFileSink({
      dir: join(c.data_dir, 'arrows'),
      rotateMs: c.file_rotate_seconds * 1000,
      retentionBytes: c.file_retention_bytes,
      retentionMs: c.file_retention_seconds * 1000,
    });
  }

  onWindow(listener: WindowListener): void {
    this.listeners.push(listener);
  }

  /** A record that goes to the DLQ, with its reason, error and where it was read. */
  deadLetter(
    record: Pick<DeadLetter, 'key' | 'value' | 'headers'>,
    partition: number,
    reason: string,
    error: string,
  ): DeadLetter {
    return {
      key: record.key,
      value: record.value,
      headers: {
        ...record.headers,
        tracefeed_dlq_reason: reason,
        tracefeed_dlq_error: error,
        tracefeed_dlq_source: `${this.opts.config.topics.events}/${partition}`,
      },
    };
  }

  /** Builds a closed window's outputs (once: a retried transaction sends the same). */
  prepare(w: ClosedWindow): PreparedWindow {
    const { aggregator, detector, schema } = this.opts;
    const built = buildWindowBatch(w, aggregator.cgroupNames(w.node), schema);
    const rows = built.rows();
    const windowStart = new Date(w.windowStartMs).toISOString();
    const record: Message = {
      key: w.node,
      value: Buffer.from(toIpcStream(schema, [built.batch])),
      headers: {
        ...cloudEventHeaders({
          kind: 'features',
          id: `${w.node}@${windowStart}`,
          source: nodeSource(w.node),
          time: new Date().toISOString(),
        }),
        tracefeed_window_start: windowStart,
        tracefeed_rows: String(w.rows),
        tracefeed_source_partition: String(w.partition),
      },
    };
    const found = detector.observeClosed(rows);
    return {
      window: w,
      batch: built.batch,
      record,
      rows,
      fresh: found.fresh,
      all: [...found.early, ...found.fresh],
    };
  }

  /** Scores a window still open: an anomaly whose partial value already crosses fires now. */
  scoreOpen(w: ClosedWindow): Anomaly[] {
    const { aggregator, detector, schema } = this.opts;
    const rows = buildWindowBatch(w, aggregator.cgroupNames(w.node), schema).rows();
    return detector.observePartial(rows);
  }

  private anomalyMessages(anomalies: Anomaly[]): Message[] {
    return anomalies.map((a) => ({
      key: a.series_id,
      value: JSON.stringify(a),
      headers: cloudEventHeaders({ kind: 'anomalies', id: a.id, source: nodeSource(a.node) }),
    }));
  }

  /** What the next transaction of a partition carries (`sends` empty: nothing to write). */
  outgoing(p: PendingOutputs): OutgoingBatch {
    const topics = this.opts.config.topics;
    const windows = p.unacked;
    const dead = p.dead;
    const early = p.early;
    const anomalies = [...early, ...windows.flatMap((w) => w.fresh)];
    const sends: OutgoingBatch['sends'] = [];
    if (windows.length > 0)
      sends.push({ topic: topics.features, messages: windows.map((w) => w.record) });
    if (anomalies.length > 0)
      sends.push({ topic: topics.anomalies, messages: this.anomalyMessages(anomalies) });
    if (dead.length > 0)
      sends.push({
        topic: topics.dlq,
        messages: dead.map((d) => ({ key: d.key, value: d.value, headers: d.headers })),
      });
    return { windows, dead, early, anomalies, sends };
  }

  /**
   * The transaction that carried `o` committed: its outputs leave the partition's pending
   * ones, are counted, and the windows go to the files and the listeners.
   */
  committed(p: PendingOutputs, o: OutgoingBatch): void {
    const log = this.opts.log;
    const { windows, dead, early, anomalies } = o;
    p.unacked = p.unacked.slice(windows.length);
    p.dead = p.dead.slice(dead.length);
    p.early = p.early.slice(early.length);
    for (const d of dead) {
      const reason = String(d.headers.tracefeed_dlq_reason);
      this.deadLettered[reason] = (this.deadLettered[reason] ?? 0) + 1;
    }
    if (dead.length > 0)
      log.warn({ records: dead.length, reasons: this.deadLettered }, 'records dead-lettered');
    this.anomaliesEarly += early.length;
    this.anomaliesPublished += anomalies.length;
    if (anomalies.length > 0)
      log.info(
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
    return toIpcStream(this.opts.schema, selected);
  }
}
