/**
 * Publishes frames to Kafka with a bounded in-memory buffer. While the broker
 * is unreachable frames wait in the buffer; past `bufferMaxBytes` the newest
 * frames are dropped and counted. Nothing is dropped silently: every drop is
 * in `stats()` and in the metrics.
 */
import { Kafka, logLevel, type Producer, type IHeaders } from 'kafkajs';
import type { Logger } from '../common/logger.js';
import { kafkaLogCreator } from '../common/kafka.js';

export interface PublisherOptions {
  /** Bootstrap brokers. Default: ['127.0.0.1:9092']. */
  brokers: string[];
  /** Kafka client id. */
  clientId: string;
  /** Topic to publish to. */
  topic: string;
  /** Bytes of frames held while Kafka is slow or down. Default 64 MiB. */
  bufferMaxBytes: number;
  /** Most bytes sent in one produce request. Default 4 MiB. */
  sendMaxBytes: number;
  /** Delay before the first retry after a failure, ms; doubles up to 5 s. Default 200. */
  retryInitialMs: number;
  log: Logger;
}

export interface OutgoingFrame {
  key: string;
  value: Buffer;
  headers: IHeaders;
  /** Events inside the frame, for counters. */
  events: number;
  /** When it was queued (ms since epoch), for lag. */
  queuedAt: number;
}

export interface PublisherStats {
  connected: boolean;
  framesSent: number;
  eventsSent: number;
  bytesSent: number;
  framesDropped: number;
  eventsDropped: number;
  bufferedFrames: number;
  bufferedEvents: number;
  bufferedBytes: number;
  sendErrors: number;
  /** Age in ms of the oldest frame waiting to be acknowledged; 0 when empty. */
  lagMs: number;
  lastError: string | undefined;
}

export class FramePublisher {
  private readonly kafka: Kafka;
  private producer: Producer | undefined;
  private readonly queue: OutgoingFrame[] = [];
  private bufferedBytes = 0;
  private bufferedEvents = 0;
  private running = false;
  private wake: (() => void) | undefined;
  private pump: Promise<void> | undefined;
  private readonly s = {
    connected: false,
    framesSent: 0,
    eventsSent: 0,
    bytesSent: 0,
    framesDropped: 0,
    eventsDropped: 0,
    sendErrors: 0,
    lastError: undefined as string | undefined,
  };

  constructor(private readonly opts: PublisherOptions) {
    this.kafka = new Kafka({
      clientId: opts.clientId,
      brokers: opts.brokers,
      logLevel: logLevel.WARN,
      logCreator: kafkaLogCreator(opts.log),
      connectionTimeout: 3000,
      requestTimeout: 10000,
      retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 2000 },
    });
  }

  /** Queues a frame. Returns false (and counts the drop) when the buffer is full. */
  enqueue(frame: OutgoingFrame): boolean {
    if (this.bufferedBytes + frame.value.byteLength > this.opts.bufferMaxBytes) {
      this.s.framesDropped++;
      this.s.eventsDropped += frame.events;
      return false;
    }
    this.queue.push(frame);
    this.bufferedBytes += frame.value.byteLength;
    this.bufferedEvents += frame.events;
    this.wake?.();
    return true;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.pump = this.run();
  }

  /** Stops after trying to flush what is buffered for up to `flushTimeoutMs`. */
  async stop(flushTimeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + flushTimeoutMs;
    while (this.queue.length > 0 && this.s.connected && Date.now() < deadline) {
      await sleep(50);
    }
    this.running = false;
    this.wake?.();
    await this.pump;
    await this.producer?.disconnect().catch(() => undefined);
    this.producer = undefined;
  }

  stats(): PublisherStats {
    const head = this.queue[0];
    return {
      ...this.s,
      bufferedFrames: this.queue.length,
      bufferedEvents: this.bufferedEvents,
      bufferedBytes: this.bufferedBytes,
      lagMs: head ? Date.now() - head.queuedAt : 0,
    };
  }

  private async connect(): Promise<Producer> {
    if (this.producer) return this.producer;
    const p = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
    });
    await p.connect();
    this.producer = p;
    return p;
  }

  private async run(): Promise<void> {
    let backoff = this.opts.retryInitialMs;
    while (this.running) {
      if (this.queue.length === 0) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, 500);
        });
        this.wake = undefined;
        continue;
      }
      const batch: OutgoingFrame[] = [];
      let bytes = 0;
      for (const f of this.queue) {
        if (batch.length > 0 && bytes + f.value.byteLength > this.opts.sendMaxBytes) break;
        batch.push(f);
        bytes += f.value.byteLength;
      }
      try {
        const producer = await this.connect();
        await producer.send({
          topic: this.opts.topic,
          acks: -1,
          messages: batch.map((f) => ({ key: f.key, value: f.value, headers: f.headers })),
        });
        this.queue.splice(0, batch.length);
        let events = 0;
        for (const f of batch) events += f.events;
        this.bufferedBytes -= bytes;
        this.bufferedEvents -= events;
        this.s.framesSent += batch.length;
        this.s.eventsSent += events;
        this.s.bytesSent += bytes;
        if (!this.s.connected) {
          this.opts.log.info({ buffered_frames: this.queue.length }, 'kafka reachable, publishing');
        }
        this.s.connected = true;
        backoff = this.opts.retryInitialMs;
      } catch (err) {
        this.s.sendErrors++;
        const msg = err instanceof Error ? err.message : String(err);
        if (this.s.connected || this.s.lastError !== msg) {
          this.opts.log.warn(
            { err: msg, buffered_frames: this.queue.length, buffered_bytes: this.bufferedBytes },
            'kafka send failed; buffering and retrying',
          );
        }
        this.s.lastError = msg;
        this.s.connected = false;
        // A fresh producer after a failure: the idempotent session may be stale.
        const old = this.producer;
        this.producer = undefined;
        await old?.disconnect().catch(() => undefined);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
