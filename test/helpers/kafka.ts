/** An independent Kafka consumer for tests: reads the events topic and decodes frames. */
import { randomUUID } from 'node:crypto';
import { existsSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { logLevel, type Consumer, type KafkaMessage } from 'kafkajs';
import { brokersFrom, kafkaClient, Topics, type KafkaRole } from '../../src/common/kafka.js';
import { stateDir } from '../../src/common/paths.js';
import { decodeFrameEvents, type TracefeedEvent } from '../../src/ingest/index.js';

/** TRACEFEED_KAFKA_BROKERS, else 127.0.0.1:9092. */
export const BROKERS = brokersFrom(undefined);

/** The infrastructure's secrets directory (of the TRACEFEED_HOME the tests started with). */
export const INFRA_SECRETS = join(stateDir(), 'secrets');

/**
 * Makes the infrastructure's passwords visible in another TRACEFEED_HOME (a test's
 * fresh installation), so that its clients still authenticate to Kafka and Redis.
 */
export function linkInfraSecrets(home: string): void {
  if (existsSync(INFRA_SECRETS) && !existsSync(join(home, 'secrets')))
    symlinkSync(INFRA_SECRETS, join(home, 'secrets'));
}

/** A kafkajs client of `role` for a test (logs off). */
export function testKafka(role: KafkaRole, clientId = 'tracefeed-test') {
  return kafkaClient({ role, clientId, brokers: BROKERS, logLevel: logLevel.NOTHING });
}

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
  // The agent's role reads every tracefeed topic, in groups named tracefeed-*.
  const kafka = testKafka('agent');
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
