/**
 * The roles `tracefeed up` runs in one process, each on its own: `tracefeed node` (probes,
 * frame sink, feedback worker) on every host, `tracefeed features` as one member of the
 * feature stage's consumer group (run any number of them), `tracefeed controller` (rules,
 * policy, budgets). `tracefeed agent serve` is the agent's. Each serves its own
 * `/healthz`, `/v1/health` and `/metrics`.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { Logger } from '../common/logger.js';
import { brokersFrom, ensureTopics } from '../common/kafka.js';
import { FeatureStage } from '../features/index.js';
import type { FeatureStageConfigInput } from '../features/config.js';
import { jsonLine } from './output.js';
import { mirrorCounter } from '../common/metrics.js';
import { DEFAULT_AGENT_OPTIONS, NodeAgent, preflight } from '../ingest/index.js';
import { startControlApi, DEFAULT_API_PORT } from '../ingest/control-api.js';
import { AuditTrail, NodeFeedbackWorker, redisUrlFrom } from '../feedback/index.js';
import type { ProbeName } from '../wire/layout.js';
import { PROBE_NAMES } from '../families/registry.js';
import { FeedbackController } from '../feedback/controller.js';
import { DEFAULT_CONTROLLER_API_PORT, startControllerApi } from '../feedback/controller-api.js';
import { join } from 'node:path';
import { repoRoot } from '../common/paths.js';

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

function probeList(v: string): ProbeName[] {
  const names = v
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  for (const n of names)
    if (!PROBE_NAMES.includes(n as ProbeName))
      throw new InvalidArgumentError(
        `--probes: unknown probe "${n}" (known: ${PROBE_NAMES.join(', ')})`,
      );
  return names as ProbeName[];
}

interface ControllerOptions {
  brokers?: string;
  redis?: string;
  thresholds: string;
  group: string;
  anomaliesTopic?: string;
  port: number;
  metricsOpen: boolean;
  duration?: number;
}

/** Runs the controller role: rules on anomalies, policy, budgets; signs and queues the jobs. */
export async function runController(o: ControllerOptions, log: Logger): Promise<number> {
  const brokers = brokersFrom(o.brokers);
  if (!o.anomaliesTopic) await ensureTopics(brokers, log);
  const controller = await new FeedbackController({
    brokers,
    redisUrl: redisUrlFrom(o.redis),
    thresholdsPath: o.thresholds,
    groupId: o.group,
    log,
    ...(o.anomaliesTopic ? { topic: o.anomaliesTopic } : {}),
  }).start();
  const api =
    o.port > 0
      ? await startControllerApi(controller, o.port, log, { metrics_open: o.metricsOpen })
      : undefined;
  log.info({ group_id: o.group, port: o.port, pid: process.pid }, 'tracefeed controller');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    if (o.duration !== undefined) setTimeout(resolve, o.duration * 1000).unref();
  });
  api?.close();
  await controller.stop();
  process.stdout.write(`${jsonLine(controller.counters)}\n`);
  return 0;
}

interface NodeOptions {
  node: string;
  brokers?: string;
  eventsTopic?: string;
  redis?: string;
  feedback: boolean;
  apiPort: number;
  bufferMaxBytes?: number;
  probes?: ProbeName[];
  cgroupScope?: string;
  metricsOpen: boolean;
  duration?: number;
}

/** Runs the node role: probes, the frame sink and this node's feedback worker. */
export async function runNode(o: NodeOptions, log: Logger): Promise<number> {
  preflight(log);
  const brokers = brokersFrom(o.brokers);
  if (!o.eventsTopic) await ensureTopics(brokers, log);
  const agent = new NodeAgent({
    ...DEFAULT_AGENT_OPTIONS,
    nodeName: o.node,
    brokers,
    log,
    ...(o.eventsTopic ? { topic: o.eventsTopic } : {}),
    ...(o.bufferMaxBytes !== undefined ? { bufferMaxBytes: o.bufferMaxBytes } : {}),
    ...(o.probes ? { families: o.probes } : {}),
    ...(o.cgroupScope ? { cgroupScope: o.cgroupScope } : {}),
  });
  agent.start();
  let audit: AuditTrail | undefined;
  let worker: NodeFeedbackWorker | undefined;
  const api =
    o.apiPort > 0
      ? await startControlApi(
          agent,
          o.apiPort,
          log,
          '127.0.0.1',
          { metrics_open: o.metricsOpen },
          (registry) =>
            mirrorCounter(
              registry,
              'tracefeed_node_feedback_jobs_total',
              'Feedback jobs of this node, by outcome (reverted_locally: by the node on its own; restored_from_journal: put back after a restart).',
              ['outcome'],
              () =>
                Object.entries(worker?.counts ?? {}).map(([k, v]) => [
                  { outcome: k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) },
                  v,
                ]),
            ),
        )
      : undefined;
  try {
    if (o.feedback) {
      audit = new AuditTrail({ brokers, log });
      worker = await new NodeFeedbackWorker(agent, {
        node: o.node,
        redisUrl: redisUrlFrom(o.redis),
        audit,
        log,
      }).start();
    }
  } catch (err) {
    api?.close();
    await agent.stop(0);
    throw err;
  }
  log.info(
    { node: o.node, scope: agent.scope?.path ?? '/', api_port: o.apiPort, pid: process.pid },
    'tracefeed node',
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    if (o.duration !== undefined) setTimeout(resolve, o.duration * 1000).unref();
  });
  api?.close();
  await worker?.stop();
  await audit?.close();
  const stats = await agent.stop();
  process.stdout.write(`${jsonLine({ ...stats, feedback: worker?.counts ?? null })}\n`);
  return 0;
}

export function registerRoleCommands(program: Command, log: Logger): void {
  program
    .command('controller')
    .description(
      'the controller role: rules on anomalies, policy, budgets; queues signed jobs to nodes',
    )
    .option(
      '--brokers <list>',
      'Kafka bootstrap brokers (default: TRACEFEED_KAFKA_BROKERS or 127.0.0.1:9092)',
    )
    .option('--redis <url>', 'Redis URL (default: TRACEFEED_REDIS_URL or redis://127.0.0.1:6379)')
    .option(
      '--thresholds <file>',
      'thresholds file (YAML, hot-reloaded)',
      join(repoRoot, 'config', 'thresholds.yaml'),
    )
    .option('--group <id>', 'consumer group on the anomalies topic', 'tracefeed-feedback')
    .option('--anomalies-topic <topic>', 'anomalies topic (default tracefeed.anomalies.v1)')
    .option(
      '--port <port>',
      'HTTP API (/healthz, /v1/health, /v1/status, /metrics); 0 turns it off',
      int('--port', 0),
      DEFAULT_CONTROLLER_API_PORT,
    )
    .option('--metrics-open', 'serve GET /metrics without the bearer token', false)
    .option('--duration <seconds>', 'stop by itself after this long', int('--duration', 1))
    .action(async (opts: ControllerOptions) => {
      process.exitCode = await runController(opts, log);
    });

  program
    .command('node')
    .description('the node role on this host: probes, the frame sink to Kafka, the feedback worker')
    .requiredOption('--node <name>', 'node name (the Kafka key and the feedback queue)')
    .option(
      '--brokers <list>',
      'Kafka bootstrap brokers (default: TRACEFEED_KAFKA_BROKERS or 127.0.0.1:9092)',
    )
    .option('--events-topic <topic>', 'events topic (default tracefeed.events.v1)')
    .option('--redis <url>', 'Redis URL (default: TRACEFEED_REDIS_URL or redis://127.0.0.1:6379)')
    .option('--no-feedback', 'do not run the feedback worker')
    .option(
      '--api-port <port>',
      'local API (probes, /metrics, /healthz); 0 turns it off',
      int('--api-port', 0),
      DEFAULT_API_PORT,
    )
    .option(
      '--buffer-max-bytes <bytes>',
      'frames held while Kafka is unreachable',
      int('--buffer-max-bytes', 1),
    )
    .option('--probes <list>', 'probe families to load (default: all)', probeList)
    .option(
      '--cgroup-scope <path>',
      'the cgroup subtree this node owns (relative to the cgroup v2 root, or absolute under it): only its tasks and sockets are collected, so several nodes can share a host (default: the whole host)',
    )
    .option('--metrics-open', 'serve GET /metrics without the bearer token', false)
    .option('--duration <seconds>', 'stop by itself after this long', int('--duration', 1))
    .action(async (opts: NodeOptions) => {
      process.exitCode = await runNode(opts, log);
    });

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
