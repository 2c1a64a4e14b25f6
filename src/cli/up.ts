/** `tracefeed up`: infrastructure, probes, ingest; a live status line; a summary at the end. */
import type { Logger } from '../common/logger.js';
import { ensureTopics } from '../common/kafka.js';
import { NodeAgent, DEFAULT_AGENT_OPTIONS, preflight, type AgentStats } from '../ingest/index.js';
import { infraUp } from '../infra/index.js';
import { tokenPath } from '../common/http-auth.js';
import { startControlApi } from '../ingest/control-api.js';
import { FeatureStage, type FeatureStageStats } from '../features/index.js';
import {
  AnalysisWorker,
  AnomalyStore,
  FeedbackServiceGateway,
  ProcessIndex,
  TracefeedAgent,
  agentProbeSource,
  stageFeatureSource,
  startAgentApi,
} from '../agent/index.js';
import {
  AuditTrail,
  FeedbackController,
  NodeFeedbackWorker,
  type ControllerStats,
} from '../feedback/index.js';
import { startConsole, type ConsoleServer } from '../console/server.js';
import { StatusLine, jsonLine, table, type OutputFormat } from './output.js';
import { startControllerApi } from '../feedback/controller-api.js';

export interface UpOptions {
  duration?: number;
  node: string;
  brokers: string[];
  infra: boolean;
  bufferMaxBytes: number;
  /** Port of the local API (metrics, probe control); 0 turns it off. */
  apiPort: number;
  /** Run the feature stage in this process. */
  features: boolean;
  /** Feature window length, seconds. */
  windowSeconds: number;
  /** Port of the features HTTP API; 0 turns it off. */
  featuresPort: number;
  /** Run the feedback controller and this node's feedback worker. */
  feedback: boolean;
  /** Thresholds file (hot-reloaded). */
  thresholdsPath: string;
  redisUrl: string;
  /** Run the agent (questions on HTTP, automatic anomaly analysis); needs the feature stage. */
  agent: boolean;
  /** Port of the agent's HTTP API (POST /v1/ask); 0 turns it off. */
  agentPort: number;
  /** Port of the operator console (browser); 0 turns it off. */
  consolePort?: number;
  /** Port of the controller's HTTP API (health, status, metrics); 0 turns it off. Default 0. */
  controllerPort?: number;
  /** Serve GET /metrics on every local API without a token. Default false. */
  metricsOpen?: boolean;
  format: OutputFormat;
  log: Logger;
}

export async function runUp(o: UpOptions): Promise<number> {
  // Root, BTF, tracefs and bpffs first: nothing else is worth starting without them.
  preflight(o.log);
  if (o.infra) infraUp(true);
  await ensureTopics(o.brokers, o.log);
  const agent = new NodeAgent({
    ...DEFAULT_AGENT_OPTIONS,
    nodeName: o.node,
    brokers: o.brokers,
    bufferMaxBytes: o.bufferMaxBytes,
    log: o.log,
  });
  agent.start();
  let api: Awaited<ReturnType<typeof startControlApi>> | undefined;
  let stage: FeatureStage | undefined;
  let audit: AuditTrail | undefined;
  let worker: NodeFeedbackWorker | undefined;
  let controller: FeedbackController | undefined;
  let analysis: AnalysisWorker | undefined;
  let processes: ProcessIndex | undefined;
  let agentApi: Awaited<ReturnType<typeof startAgentApi>> | undefined;
  let consoleServer: ConsoleServer | undefined;
  let controllerApi: Awaited<ReturnType<typeof startControllerApi>> | undefined;
  const stopFeedback = async (): Promise<void> => {
    await consoleServer?.close();
    agentApi?.close();
    controllerApi?.close();
    await analysis?.stop();
    await processes?.stop();
    await controller?.stop();
    await worker?.stop();
    await audit?.close();
  };
  try {
    const security = { metrics_open: o.metricsOpen ?? false };
    o.log.info(
      { token_file: tokenPath(), metrics_open: security.metrics_open },
      'local APIs require the bearer token in this file (the CLI reads it)',
    );
    if (o.apiPort > 0) api = await startControlApi(agent, o.apiPort, o.log, '127.0.0.1', security);
    if (o.features) {
      stage = new FeatureStage(
        {
          brokers: o.brokers,
          window_seconds: o.windowSeconds,
          http_port: o.featuresPort,
          http_security: security,
        },
        o.log,
      );
      await stage.start();
    }
    if (o.feedback) {
      audit = new AuditTrail({ brokers: o.brokers, log: o.log });
      worker = await new NodeFeedbackWorker(agent, {
        node: o.node,
        redisUrl: o.redisUrl,
        audit,
        log: o.log,
      }).start();
      controller = await new FeedbackController({
        brokers: o.brokers,
        redisUrl: o.redisUrl,
        thresholdsPath: o.thresholdsPath,
        audit,
        log: o.log,
      }).start();
      if ((o.controllerPort ?? 0) > 0)
        controllerApi = await startControllerApi(controller, o.controllerPort!, o.log, security);
    }
    let ai: TracefeedAgent | undefined;
    if (o.agent && stage) {
      processes = await new ProcessIndex().start({ brokers: o.brokers, log: o.log });
      ai = new TracefeedAgent({
        deps: {
          features: stageFeatureSource(stage),
          anomalies: new AnomalyStore(),
          probes: [agentProbeSource(agent, o.node)],
          processes,
          ...(controller?.service
            ? {
                gateway: new FeedbackServiceGateway(
                  controller.service,
                  () => controller!.thresholds,
                ),
              }
            : {}),
        },
        log: o.log,
      });
      analysis = await new AnalysisWorker({ agent: ai, brokers: o.brokers, log: o.log }).start();
      if (o.agentPort > 0)
        agentApi = await startAgentApi(ai, o.agentPort, { log: o.log, security });
    }
    if ((o.consolePort ?? 0) > 0) {
      consoleServer = await startConsole(
        {
          nodes: [agent],
          ...(stage ? { stage } : {}),
          feedback: () => controller?.service,
          ...(ai ? { agent: ai } : {}),
        },
        { port: o.consolePort, security, log: o.log },
      );
      // A one-time login link on the terminal (not in the log); `tracefeed console-login` makes more.
      o.log.info({ port: consoleServer.port }, 'console listening');
      process.stderr.write(`console: open ${consoleServer.loginUrl()} (one-time login link)\n`);
    }
  } catch (err) {
    api?.close();
    await stopFeedback().catch(() => undefined);
    await stage?.stop().catch(() => undefined);
    await agent.stop(0);
    throw err;
  }
  o.log.info(
    { node: o.node, brokers: o.brokers, duration_s: o.duration, api_port: o.apiPort },
    'tracefeed up',
  );

  const status = new StatusLine();
  const tick = setInterval(() => {
    const cur = agent.stats();
    const rates = cur.probes
      .filter((p) => p.enabled)
      .map((p) => {
        const drops = Object.values(p.kernelDrops).reduce((a, b) => a + b, 0);
        return `${p.probe} ${p.eventsPerSecond}/s drops ${drops}`;
      })
      .join(' | ');
    const pub = cur.publisher;
    status.update(
      `${rates} | records sent ${pub.framesSent} (${pub.eventsSent} ev) | buffered ${pub.bufferedFrames} | ` +
        `dropped ${pub.eventsDropped} | lag ${(pub.lagMs / 1000).toFixed(1)}s | kafka ${pub.connected ? 'up' : 'DOWN'}` +
        (stage
          ? ` | windows ${stage.stats().windowsClosed} anomalies ${stage.stats().anomaliesPublished}`
          : ''),
    );
  }, 1000);

  await new Promise<void>((resolve) => {
    const done = (): void => resolve();
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    if (o.duration !== undefined) setTimeout(done, o.duration * 1000).unref();
  });
  clearInterval(tick);
  status.clear();
  api?.close();
  const feedbackStats = controller ? { ...controller.counters } : undefined;
  await stopFeedback();
  const final = await agent.stop();
  const features = await stage?.stop();
  printSummary(final, o.format, features, feedbackStats);
  return 0;
}

export function printSummary(
  s: AgentStats,
  format: OutputFormat,
  features?: FeatureStageStats,
  feedback?: ControllerStats,
): void {
  if (format !== 'table') {
    const all = { ...s, features: features ?? null, feedback: feedback ?? null };
    process.stdout.write(`${format === 'json' ? JSON.stringify(all, null, 2) : jsonLine(all)}\n`);
    return;
  }
  const rows: Array<Array<string | number>> = [];
  for (const [type, n] of Object.entries(s.eventsByType)) rows.push([type, n]);
  for (const p of s.probes) {
    for (const [reason, n] of Object.entries(p.kernelDrops))
      rows.push([`${p.probe} kernel drops (${reason})`, n]);
  }
  const pub = s.publisher;
  rows.push(
    ['frames built', s.framesBuilt],
    ['records sent', pub.framesSent],
    ['events sent', pub.eventsSent],
    ['bytes sent', pub.bytesSent],
    ['events dropped (buffer full)', pub.eventsDropped],
    ['events still buffered', pub.bufferedEvents],
    ['malformed records', s.malformed],
    ['send errors', pub.sendErrors],
  );
  if (features) {
    rows.push(
      ['feature windows written', features.windowsClosed],
      ['feature rows written', features.rowsEmitted],
      ['anomalies published', features.anomaliesPublished],
      ['late events', features.late],
      ['dead-lettered records', Object.values(features.deadLettered).reduce((a, b) => a + b, 0)],
    );
  }
  if (feedback) {
    rows.push(
      ['feedback requests', feedback.requests],
      ['budget loosenings', feedback.budgetLoosenings],
    );
    for (const [outcome, n] of Object.entries(feedback.outcomes))
      rows.push([`feedback ${outcome}`, n]);
  }
  process.stdout.write(
    `tracefeed on ${s.node}, ${(s.uptimeMs / 1000).toFixed(1)} s\n${table(['what', 'count'], rows)}\n`,
  );
}
