/**
 * The append-only audit trail: one JSON line per request and per state change,
 * fsync'd to stateDir()/audit/feedback.jsonl, and the same record on
 * `tracefeed.feedback.v1` (key = request id). The file is the record of truth:
 * a Kafka outage is logged and counted, never blocks the loop.
 */
import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CompressionTypes, type Producer } from 'kafkajs';
import { cloudEventHeaders, feedbackSource } from '../common/cloudevents.js';
import { kafkaClient, Topics } from '../common/kafka.js';
import type { Logger } from '../common/logger.js';
import { stateDir } from '../common/paths.js';

export const AUDIT_STATES = [
  'submitted',
  'accepted',
  'clamped',
  'queued',
  'rejected',
  'approved',
  'delivered',
  'applied',
  'failed',
  'reverted',
  'expired',
] as const;
export type AuditState = (typeof AUDIT_STATES)[number];

export interface AuditRecord {
  schema_version: 1;
  /** Unique per record. */
  audit_id: string;
  /** The request (or, for a malformed job, the job id). */
  request_id: string;
  state: AuditState;
  at: string;
  /** Who wrote it: `controller`, `node/<name>`, `operator/<user>`, `cli`. */
  actor: string;
  node?: string;
  reason?: string;
  /** State-specific details: the request, the decision, the applied result. */
  data?: Record<string, unknown>;
}

export type AuditInput = Omit<AuditRecord, 'schema_version' | 'audit_id' | 'at'> & { at?: string };

export interface AuditTrailOptions {
  /** JSON lines file. Default `stateDir()/audit/feedback.jsonl`. */
  path?: string;
  /** Kafka brokers for `tracefeed.feedback.v1`; none: file only. */
  brokers?: string[];
  /** Default `tracefeed.feedback.v1`. */
  topic?: string;
  log: Logger;
}

export function defaultAuditPath(): string {
  return join(stateDir(), 'audit', 'feedback.jsonl');
}

export class AuditTrail {
  readonly path: string;
  private producer: Producer | undefined;
  private sending: Promise<void> = Promise.resolve();
  private connected: Promise<void> | undefined;
  /** Records written to the file. */
  written = 0;
  /** Records Kafka did not take (they are in the file). */
  kafkaErrors = 0;

  constructor(private readonly opts: AuditTrailOptions) {
    this.path = opts.path ?? defaultAuditPath();
    mkdirSync(dirname(this.path), { recursive: true });
    if (opts.brokers && opts.brokers.length > 0) {
      const kafka = kafkaClient({
        role: 'controller',
        clientId: 'tracefeed-feedback-audit',
        brokers: opts.brokers,
        log: opts.log,
        retry: { retries: 5, initialRetryTime: 200 },
      });
      this.producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    }
  }

  /** Appends one record (fsync'd) and queues it for Kafka; returns the record. */
  record(input: AuditInput): AuditRecord {
    const rec: AuditRecord = {
      schema_version: 1,
      audit_id: randomUUID(),
      at: input.at ?? new Date().toISOString(),
      request_id: input.request_id,
      state: input.state,
      actor: input.actor,
      ...(input.node !== undefined ? { node: input.node } : {}),
      ...(input.reason !== undefined ? { reason: input.reason } : {}),
      ...(input.data !== undefined ? { data: input.data } : {}),
    };
    const line = JSON.stringify(rec) + '\n';
    const fd = openSync(this.path, 'a', 0o640);
    try {
      writeSync(fd, line);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.written++;
    if (this.producer) {
      const producer = this.producer;
      this.connected ??= producer.connect();
      this.sending = this.sending
        .then(() => this.connected)
        .then(async () => {
          await producer.send({
            topic: this.opts.topic ?? Topics.feedback,
            acks: -1,
            compression: CompressionTypes.None,
            messages: [
              {
                key: rec.request_id,
                value: JSON.stringify(rec),
                headers: cloudEventHeaders({
                  kind: 'feedback',
                  id: rec.audit_id,
                  source: feedbackSource(rec.actor),
                  time: rec.at,
                }),
              },
            ],
          });
        })
        .catch((err: unknown) => {
          this.kafkaErrors++;
          this.connected = undefined;
          this.opts.log.warn(
            { err: (err as Error).message, request: rec.request_id, state: rec.state },
            'audit record not sent to Kafka (kept on disk)',
          );
        });
    }
    return rec;
  }

  /** Waits for the records queued for Kafka. */
  async flush(): Promise<void> {
    await this.sending;
  }

  async close(): Promise<void> {
    await this.flush();
    if (this.producer && this.connected) await this.producer.disconnect().catch(() => undefined);
  }
}

/** Reads the audit file (all records, or those of one request). */
export function readAudit(path = defaultAuditPath(), requestId?: string): AuditRecord[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const out: AuditRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      const r = JSON.parse(line) as AuditRecord;
      if (requestId === undefined || r.request_id === requestId) out.push(r);
    } catch {
      // a torn last line after a crash: skip it
    }
  }
  return out;
}
