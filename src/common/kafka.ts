import { Kafka, logLevel, type KafkaConfig, type logCreator } from 'kafkajs';
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

/**
 * Who is talking to Kafka. Each role has its own credentials and ACLs on the local
 * cluster (docs/security.md): `node` produces events; `features` reads events and
 * writes features, anomalies and the dead-letter topic; `controller` reads anomalies
 * and writes feedback; `agent` reads everything and writes analyses; `admin` creates
 * topics and ACLs.
 */
export type KafkaRole = 'admin' | 'node' | 'features' | 'controller' | 'agent';

export interface KafkaClientOptions {
  role: KafkaRole;
  clientId: string;
  brokers: string[];
  log?: Logger;
  /** kafkajs log level (default WARN, routed to `log` when given). */
  logLevel?: logLevel;
  connectionTimeout?: number;
  retry?: KafkaConfig['retry'];
}

/**
 * The kafkajs security settings (SASL, TLS) of a role. Today: none (PLAINTEXT).
 */
export function kafkaSecurity(_role: KafkaRole): Pick<KafkaConfig, 'sasl' | 'ssl'> {
  return {};
}

/** The librdkafka properties of a role's security settings, for the native frame sink. */
export function nativeKafkaSecurity(_role: KafkaRole): Record<string, string> {
  return {};
}

/** The one way tracefeed makes a kafkajs client. */
export function kafkaClient(o: KafkaClientOptions): Kafka {
  return new Kafka({
    clientId: o.clientId,
    brokers: o.brokers,
    logLevel: o.logLevel ?? logLevel.WARN,
    ...(o.log ? { logCreator: kafkaLogCreator(o.log) } : {}),
    ...(o.connectionTimeout !== undefined ? { connectionTimeout: o.connectionTimeout } : {}),
    ...(o.retry ? { retry: o.retry } : {}),
    ...kafkaSecurity(o.role),
  });
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
  const kafka = kafkaClient({
    role: 'admin',
    clientId: 'tracefeed-admin',
    brokers,
    log,
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
