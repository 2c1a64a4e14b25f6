/** An independent Kafka consumer for tests: reads the events topic and decodes frames. */
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type Consumer, type KafkaMessage } from 'kafkajs';
import { Topics } from '../../src/common/kafka.js';
import { decodeFrameEvents, type TracefeedEvent } from '../../src/ingest/index.js';

export const BROKERS = (process.env.TRACEFEED_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');

export interface CollectedRecord {
  key: string | undefined;
  headers: Record<string, string>;
  events: TracefeedEvent[];
}

/**
 * An independent consumer in a group of its own, reading `topic` from its end.
 * Resolves once the group is joined. From the end, a record published just
 * after that may be missed (the start offset is resolved at the first fetch);
 * a topic of the test's own is read with `fromBeginning`. Returns the function that stops it.
 */
export async function subscribe(
  topic: string,
  onMessage: (message: KafkaMessage) => void,
  fromBeginning = false,
): Promise<() => Promise<void>> {
  const kafka = new Kafka({
    clientId: 'tracefeed-test',
    brokers: BROKERS,
    logLevel: logLevel.NOTHING,
  });
  const consumer: Consumer = kafka.consumer({
    groupId: `tracefeed-test-${randomUUID()}`,
    maxWaitTimeInMs: 200,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning });
  let joined!: () => void;
  const ready = new Promise<void>((r) => (joined = r));
  consumer.on(consumer.events.GROUP_JOIN, () => joined());
  await consumer.run({ eachMessage: async ({ message }) => onMessage(message) });
  await ready;
  return () => consumer.disconnect();
}

/** Starts a consumer at the end of the topic and collects every decoded record. */
export async function startCollector(topic: string = Topics.events): Promise<{
  records: CollectedRecord[];
  events: () => TracefeedEvent[];
  waitFor: (pred: (e: TracefeedEvent) => boolean, timeoutMs: number) => Promise<TracefeedEvent>;
  stop: () => Promise<void>;
}> {
  const records: CollectedRecord[] = [];
  const stop = await subscribe(topic, (message) => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
    records.push({
      key: message.key?.toString(),
      headers,
      events: message.value ? decodeFrameEvents(message.value) : [],
    });
  });
  const events = (): TracefeedEvent[] => records.flatMap((r) => r.events);
  return {
    records,
    events,
    async waitFor(pred, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const hit = events().find(pred);
        if (hit) return hit;
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`no matching event within ${timeoutMs} ms (${events().length} events seen)`);
    },
    stop,
  };
}
