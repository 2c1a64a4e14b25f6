import { Kafka, logLevel, type logCreator } from 'kafkajs';
import { TransportError } from './errors.js';
import { patchKafkajs } from './kafkajs-patch.js';

patchKafkajs();
import type { Logger } from './logger.js';

/** The v1 topics (README.md, "Kafka topics"). */
export const Topics = {
  events: 'tracefeed.events.v1',
  features: 'tracefeed.features.v1',
  anomalies: 'tracefeed.anomalies.v1',
  feedback: 'tracefeed.feedback.v1',
  eventsDlq: 'tracefeed.events.dlq.v1',
  analyses: 'tracefeed.analyses.v1',
} as const;

/** Routes kafkajs's own log lines to the project logger (debug level: the callers log state changes). */
export function kafkaLogCreator(log: Logger): logCreator {
  return () =>
    ({ level, log: entry }) => {
      const { message, ...rest } = entry;
      if (level === logLevel.ERROR || level === logLevel.WARN)
        log.debug({ kafkajs: rest }, message);
      else log.trace({ kafkajs: rest }, message);
    };
}

export const DEFAULT_BROKERS = ['127.0.0.1:9092'];

export function brokersFrom(value: string | undefined): string[] {
  const v = value ?? process.env.TRACEFEED_KAFKA_BROKERS;
  if (!v) return DEFAULT_BROKERS;
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * Creates the v1 topics that do not exist yet. Throws TransportError with the
 * fix when the broker cannot be reached.
 */
export async function ensureTopics(
  brokers: string[],
  log: Logger,
  partitions = 3,
  topics: readonly string[] = Object.values(Topics),
): Promise<void> {
  const kafka = new Kafka({
    clientId: 'tracefeed-admin',
    brokers,
    logLevel: logLevel.WARN,
    logCreator: kafkaLogCreator(log),
    connectionTimeout: 3000,
    retry: { retries: 3, initialRetryTime: 300 },
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
  } catch (err) {
    throw new TransportError(
      `Kafka is unreachable at ${brokers.join(',')}: ${(err as Error).message}`,
      'kafka',
      {
        cause: err,
        retriable: true,
        hint: 'start the local broker with `tracefeed infra up`, or point --brokers / TRACEFEED_KAFKA_BROKERS at yours',
      },
    );
  }
  try {
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t));
    if (missing.length > 0) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((topic) => ({
          topic,
          numPartitions: partitions,
          replicationFactor: 1,
        })),
      });
      log.info({ topics: missing }, 'created topics');
    }
  } finally {
    await admin.disconnect();
  }
}
