/** `tracefeed up`: infrastructure, probes, ingest; a live status line; a summary at the end. */
import { mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { cgroup2Root } from '../ingest/cgroup-resolver.js';
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
  /**
   * Node agents on this host, for tests and demos. Default 1 (named `node`, the whole host).
   * More: named `<node>-1`..`<node>-N`, each owning its cgroup (`nodeCgroups`, else
   * /tracefeed-node-<i>, made when absent) with its own local API (nodeApiPort)
   * and its own feedback worker, against one feature stage, controller and agent.
   */
  nodes?: number;
  /** The cgroups of the nodes (paths relative to the cgroup v2 root), one per node. */
  nodeCgroups?: string[];
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

/** One node agent of `tracefeed up`: its name, its cgroup scope (none: the whole host). */
export interface UpNode {
  name: string;
  cgroupScope?: string;
}

/**
 * The node agents `up` runs: one for the whole host, or `nodes` of them each owning a
 * cgroup. Cgroups not given are /tracefeed-node-<i>, made when absent (`made` lists them).
 */
export function planNodes(o: Pick<UpOptions, 'node' | 'nodes' | 'nodeCgroups'>): {
  nodes: UpNode[];
  made: string[];
} {
  const n = o.nodes ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new ConfigError(`--nodes must be a whole number in 1..64, got ${n}`, 'nodes');
  if (o.nodeCgroups && o.nodeCgroups.length !== n)
    throw new ConfigError(
      `--node-cgroups names ${o.nodeCgroups.length} cgroups for ${n} nodes`,
      'node_cgroups',
    );
  if (n === 1 && !o.nodeCgroups) return { nodes: [{ name: o.node }], made: [] };
  const root = cgroup2Root();
  if (!root) throw new ConfigError('no cgroup v2 mount: many nodes need one', 'nodes');
  const made: string[] = [];
  const nodes = Array.from({ length: n }, (_, k) => {
    const i = k + 1;
    const given = o.nodeCgroups?.[k];
    const path = given ?? `/tracefeed-node-${i}`;
    if (!given) {
      try {
        mkdirSync(join(root, path));
        made.push(join(root, path));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    return { name: n === 1 ? o.node : `${o.node}-${i}`, cgroupScope: path };
  });
  return { nodes, made };
}

/**
 * The local API port of the i-th node agent (from 0): `base`, then base + 10, + 20, ...
 * clear of the other local APIs (features, agent, console, controller: 9465..9468).
 */
export function nodeApiPort(base: number, i: number): number {
  return base + 10 * i;
}

/** Removes the cgroups `planNodes` made, when empty (one with processes left stays). */
function removeMade(made: string[], log: Logger): void {
  for (const dir of made) {
    try {
      rmdirSync(dir);
    } catch (err) {
      log.info({ cgroup: dir, err: (err as Error).message }, 'node cgroup left in place');
    }
  }
}

export async function runUp(o: UpOptions): Promise<number> {
  // Root, BTF, tracefs and bpffs first: nothing else is worth starting without them.
  preflight(o.log);
  if (o.infra) infraUp(true);
  await ensureTopics(o.brokers, o.log);
  const plan = planNodes(o);
  const agents: NodeAgent[] = [];
  try {
    for (const n of plan.nodes) {
      const a = new NodeAgent({
        ...DEFAULT_AGENT_OPTIONS,
        nodeName: n.name,
        brokers: o.brokers,
        bufferMaxBytes: o.bufferMaxBytes,
        ...(n.cgroupScope ? { cgroupScope: n.cgroupScope } : {}),
        log: o.log.child({ node: n.name }),
      });
      a.start();
      agents.push(a);
    }
  } catch (err) {
    for (const a of agents) await a.stop(0);
    removeMade(plan.made, o.log);
    throw err;
  }
  const agent = agents[0]!;
  const apis: Array<Awaited<ReturnType<typeof startControlApi>>> = [];
  let stage: FeatureStage | undefined;
  let audit: AuditTrail | undefined;
  const workers: NodeFeedbackWorker[] = [];
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
    for (const w of workers) await w.stop();
    await audit?.close();
  };
  try {
    const security = { metrics_open: o.metricsOpen ?? false };
    o.log.info(
      { token_file: tokenPath(), metrics_open: security.metrics_open },
      'local APIs require the bearer token in this file (the CLI reads it)',
    );
    if (o.apiPort > 0)
      for (const [i, a] of agents.entries())
        apis.push(
          await startControlApi(a, nodeApiPort(o.apiPort, i), o.log, '127.0.0.1', security),
        );
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
      // One worker per node, on that node's own queue.
      for (const [i, a] of agents.entries())
        workers.push(
          await new NodeFeedbackWorker(a, {
            node: plan.nodes[i]!.name,
            redisUrl: o.redisUrl,
            audit,
            log: o.log,
          }).start(),
        );
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
          probes: agents.map((a, i) => agentProbeSource(a, plan.nodes[i]!.name)),
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
          nodes: agents,
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
    for (const api of apis) api.close();
    await stopFeedback().catch(() => undefined);
    await stage?.stop().catch(() => undefined);
    for (const a of agents) await a.stop(0);
    removeMade(plan.made, o.log);
    throw err;
  }
  o.log.info(
    {
      nodes: plan.nodes.map((n, i) => ({
        node: n.name,
        scope: n.cgroupScope ?? '/',
        api_port: o.apiPort > 0 ? nodeApiPort(o.apiPort, i) : 0,
      })),
      brokers: o.brokers,
      duration_s: o.duration,
    },
    'tracefeed up',
  );

  const status = new StatusLine();
  const tick = setInterval(() => {
    const cur = agent.stats();
    const all = agents.map((a) => a.stats());
    const rates = cur.probes
      .filter((p) => p.enabled)
      .map((p) => {
        let eps = 0;
        let drops = 0;
        for (const s of all)
          for (const q of s.probes)
            if (q.probe === p.probe) {
              eps += q.eventsPerSecond;
              drops += Object.values(q.kernelDrops).reduce((a, b) => a + b, 0);
            }
        return `${p.probe} ${eps}/s drops ${drops}`;
      })
      .join(' | ');
    const pub = all.reduce(
      (t, s) => ({
        framesSent: t.framesSent + s.publisher.framesSent,
        eventsSent: t.eventsSent + s.publisher.eventsSent,
        bufferedFrames: t.bufferedFrames + s.publisher.bufferedFrames,
        eventsDropped: t.eventsDropped + s.publisher.eventsDropped,
        lagMs: Math.max(t.lagMs, s.publisher.lagMs),
        connected: t.connected && s.publisher.connected,
      }),
      {
        framesSent: 0,
        eventsSent: 0,
        bufferedFrames: 0,
        eventsDropped: 0,
        lagMs: 0,
        connected: true,
      },
    );
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
  for (const api of apis) api.close();
  const feedbackStats = controller ? { ...controller.counters } : undefined;
  await stopFeedback();
  const finals: AgentStats[] = [];
  for (const a of agents) finals.push(await a.stop());
  const features = await stage?.stop();
  for (const [i, final] of finals.entries())
    printSummary(
      final,
      o.format,
      i === finals.length - 1 ? features : undefined,
      i === finals.length - 1 ? feedbackStats : undefined,
    );
  removeMade(plan.made, o.log);
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
