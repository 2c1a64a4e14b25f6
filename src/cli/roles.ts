/**
 * The roles `tracefeed up` runs in one process, each on its own: `tracefeed features` is
 * one member of the feature stage's consumer group (run any number of them).
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { Logger } from '../common/logger.js';
import { brokersFrom, ensureTopics } from '../common/kafka.js';
import { FeatureStage } from '../features/index.js';
import type { FeatureStageConfigInput } from '../features/config.js';
import { jsonLine } from './output.js';

function int(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be a whole number >= ${min}, got "${v}"`);
    return n;
  };
}

interface FeaturesOptions {
  brokers?: string;
  group: string;
  eventsTopic?: string;
  featuresTopic?: string;
  anomaliesTopic?: string;
  dlqTopic?: string;
  windowSeconds: number;
  latenessSeconds?: number;
  idleCloseSeconds?: number;
  sessionTimeoutMs?: number;
  dataDir?: string;
  port: number;
  fromBeginning: boolean;
  metricsOpen: boolean;
  duration?: number;
}

/** Runs one feature stage member until SIGINT/SIGTERM (or `duration`); prints its stats. */
export async function runFeatures(o: FeaturesOptions, log: Logger): Promise<number> {
  const brokers = brokersFrom(o.brokers);
  const topics = {
    ...(o.eventsTopic ? { events: o.eventsTopic } : {}),
    ...(o.featuresTopic ? { features: o.featuresTopic } : {}),
    ...(o.anomaliesTopic ? { anomalies: o.anomaliesTopic } : {}),
    ...(o.dlqTopic ? { dlq: o.dlqTopic } : {}),
  };
  if (Object.keys(topics).length === 0) await ensureTopics(brokers, log);
  const config: FeatureStageConfigInput = {
    brokers,
    group_id: o.group,
    topics,
    window_seconds: o.windowSeconds,
    http_port: o.port,
    http_security: { metrics_open: o.metricsOpen },
    from_beginning: o.fromBeginning,
    ...(o.latenessSeconds !== undefined ? { allowed_lateness_seconds: o.latenessSeconds } : {}),
    ...(o.idleCloseSeconds !== undefined ? { idle_close_seconds: o.idleCloseSeconds } : {}),
    ...(o.sessionTimeoutMs !== undefined ? { session_timeout_ms: o.sessionTimeoutMs } : {}),
    ...(o.dataDir ? { data_dir: o.dataDir } : {}),
  };
  const stage = new FeatureStage(config, log);
  await stage.start();
  log.info({ group_id: o.group, http_port: o.port, pid: process.pid }, 'tracefeed features');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    if (o.duration !== undefined) setTimeout(resolve, o.duration * 1000).unref();
  });
  const stats = await stage.stop();
  process.stdout.write(`${jsonLine(stats)}\n`);
  return 0;
}

export function registerRoleCommands(program: Command, log: Logger): void {
  program
    .command('features')
    .description(
      'one member of the feature stage consumer group: frames to windows, features and anomalies, exactly once (run any number)',
    )
    .option(
      '--brokers <list>',
      'Kafka bootstrap brokers (default: TRACEFEED_KAFKA_BROKERS or 127.0.0.1:9092)',
    )
    .option('--group <id>', 'consumer group', 'tracefeed-features')
    .option('--events-topic <topic>', 'topic read (default tracefeed.events.v1)')
    .option('--features-topic <topic>', 'features topic (default tracefeed.features.v1)')
    .option('--anomalies-topic <topic>', 'anomalies topic (default tracefeed.anomalies.v1)')
    .option('--dlq-topic <topic>', 'dead-letter topic (default tracefeed.events.dlq.v1)')
    .option('--window-seconds <s>', 'window length', int('--window-seconds', 1), 10)
    .option('--lateness-seconds <s>', 'allowed lateness (default 5)', int('--lateness-seconds', 0))
    .option('--idle-close-seconds <s>', 'idle close (default 5)', int('--idle-close-seconds', 0))
    .option(
      '--session-timeout-ms <ms>',
      'group session timeout (default 30000)',
      int('--session-timeout-ms', 6000),
    )
    .option('--data-dir <dir>', 'where .arrows files go (default <TRACEFEED_HOME>/features)')
    .option(
      '--port <port>',
      'HTTP API (features, /metrics, /v1/status); 0 turns it off',
      int('--port', 0),
      9465,
    )
    .option('--from-beginning', 'read the topic from the start when the group has no offset', false)
    .option('--metrics-open', 'serve GET /metrics without the bearer token', false)
    .option('--duration <seconds>', 'stop by itself after this long', int('--duration', 1))
    .action(async (opts: FeaturesOptions) => {
      process.exitCode = await runFeatures(opts, log);
    });
}
