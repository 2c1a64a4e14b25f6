/**
 * The operator console: a page bundled at build time (src/console/web, into
 * dist/console/web by scripts/build-console.mjs) and the API it reads, on
 * loopback, behind the installation's token (src/common/http-auth.ts): a
 * browser logs in once through a one-time code and then carries an HttpOnly
 * SameSite=Strict session cookie.
 *
 *   GET  /login?code=…              redeems a one-time code: cookie, then 303 to /
 *   POST /v1/login-codes            (bearer) a fresh one-time login URL
 *   GET  /, /assets/*               the page
 *   GET  /v1/now                    per node and probe family: rates, drops, settings, generation
 *   GET  /v1/now/stream             the same, as server-sent events, once a second
 *   GET  /v1/features?since=…       feature rows, Arrow IPC stream (as the features API)
 *   GET  /v1/timeline?since=…       anomalies and feedback actions
 *   GET  /v1/feedback               requests with their decisions and state per node
 *   POST /v1/feedback/:id/approve|reject|revert   the operator's decisions (the CLI's path)
 *   POST /v1/ask                    {"question"}: server-sent events `token`, then `result` or `error`
 *   GET  /v1/thresholds             the thresholds in force and the last reload error
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { HttpError, readJsonBody } from '../common/http.js';
import { extname, join, normalize } from 'node:path';
import { z } from 'zod';
import { ConfigError, TracefeedError } from '../common/errors.js';
import {
  BrowserSessions,
  serveApi,
  type ApiGuard,
  type ApiSecurityInput,
} from '../common/http-auth.js';
import type { Logger } from '../common/logger.js';
import { repoRoot } from '../common/paths.js';
import type { Anomaly } from '../features/anomaly.js';
import type { FeatureStage } from '../features/feature-stage.js';
import type { FeedbackService, RequestView } from '../feedback/service.js';
import type { AgentStats } from '../ingest/node-agent.js';
import type { ProbeState } from '../ingest/probe-controller.js';
import type { AskResult, AskOptions } from '../agent/agent.js';

export const DEFAULT_CONSOLE_PORT = 9467;
/** Anomalies kept for the timeline. */
const ANOMALY_HORIZON_MS = 3600_000;
const MAX_ANOMALIES = 5000;

/** Where the bundled page is (scripts/build-console.mjs writes it). */
export const CONSOLE_ASSETS_DIR = join(repoRoot, 'dist', 'console', 'web');

/** A node agent running in this process, as the console reads it. */
export interface ConsoleNode {
  stats(): AgentStats;
  probes(): ProbeState[];
}

/** What the console shows; every part but `nodes` is optional (its view then says it is off). */
export interface ConsoleSources {
  nodes: ConsoleNode[];
  stage?: FeatureStage;
  /** The feedback service of the running controller (decisions go through its policy engine). */
  feedback?: () => FeedbackService | undefined;
  /** The agent: `ask(question, { onToken })`. */
  agent?: { ask(question: string, opts?: AskOptions): Promise<AskResult> };
}

export interface ConsoleOptions {
  port?: number;
  host?: string;
  security?: ApiSecurityInput;
  /** The actor recorded for decisions taken on the page. Default `operator/console`. */
  actor?: string;
  /** The page's directory. Default CONSOLE_ASSETS_DIR. */
  assetsDir?: string;
  log: Logger;
}

export interface ConsoleServer {
  server: Server;
  guard: ApiGuard;
  sessions: BrowserSessions;
  port: number;
  /** A fresh one-time login URL. */
  loginUrl(): string;
  close(): Promise<void>;
}

/** One probe family on one node, as the Now view shows it. */
export interface NowProbe {
  probe: string;
  enabled: boolean;
  attached: boolean;
  generation: number;
  events_per_second: number;
  /** Record bytes framed per second (null when the node does not report it). */
  bytes_per_second: number | null;
  drops: Record<string, number>;
  sample_n: number;
  effective_sample_n: number | null;
  overload_n: number | null;
  focus_count: number;
  /** The filters and focuses in force (filtersInForce). */
  filters: string[];
}

export interface NowNode {
  node: string;
  /** `local`: an agent in this process; `report`: the node's last report in Redis. */
  source: 'local' | 'report';
  at: string;
  events_per_second: number;
  /** Frame bytes sent to Kafka per second (the node's records). */
  bytes_per_second: number;
  kafka_connected: boolean | null;
  events_dropped: number | null;
  probes: NowProbe[];
}

const actionSchema = z.strictObject({ reason: z.string().max(500).optional() });
const askSchema = z.strictObject({
  question: z.string().min(1).max(8000),
  conversation_id: z
    .string()
    .regex(/^[A-Za-z0-9._:-]{1,128}$/)
    .optional(),
});

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
}

function parseBody<T>(schema: z.ZodType<T>, v: unknown): T {
  const r = schema.safeParse(v);
  if (!r.success)
    throw new HttpError(
      400,
      `invalid request: ${r.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}`,
    );
  return r.data;
}

function timeParam(url: URL, name: string): number | undefined {
  const v = url.searchParams.get(name);
  if (v === null) return undefined;
  const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(ms))
    throw new HttpError(400, `${name} must be an ISO 8601 time or epoch ms, got "${v}"`);
  return ms;
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
};

/** The page's Content-Security-Policy: its own scripts, styles and API only. */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * The filters in force, as short strings: non-empty allow/deny lists, a
 * duration floor, the slow-syscall stream, the per-cgroup focuses.
 */
export function filtersInForce(p: Pick<ProbeState, 'settings' | 'focus'>): string[] {
  const out: string[] = [];
  for (const [name, f] of Object.entries(p.settings.filters)) {
    if (f.allow.length) out.push(`${name} allow ${f.allow.join(',')}`);
    if (f.deny.length) out.push(`${name} deny ${f.deny.join(',')}`);
  }
  if (p.settings.min_duration_ms > 0) out.push(`min duration ${p.settings.min_duration_ms} ms`);
  if (p.settings.slow_ms > 0) out.push(`slow over ${p.settings.slow_ms} ms`);
  for (const [key, f] of Object.entries(p.focus ?? {}))
    out.push(
      `focus ${key}${key === f.cgroup_id ? '' : ` (cgroup ${f.cgroup_id})`}: 1 in ${f.effective_sample_n}`,
    );
  return out;
}

function probeView(
  p: ProbeState & { eventsPerSecond?: number; bytesPerSecond?: number },
): NowProbe {
  return {
    probe: p.probe,
    enabled: p.enabled,
    attached: p.attached,
    generation: p.generation,
    events_per_second: p.eventsPerSecond ?? 0,
    bytes_per_second: p.bytesPerSecond ?? null,
    drops: { ...p.drops },
    sample_n: p.settings.sample_n,
    effective_sample_n: p.effective_sample_n,
    overload_n: p.overload_n,
    focus_count: p.focus_count,
    filters: filtersInForce(p),
  };
}

/** Starts the console. The page must have been built (`npm run build`). */
export async function startConsole(
  sources: ConsoleSources,
  opts: ConsoleOptions,
): Promise<ConsoleServer> {
  const log = opts.log;
  const assets = opts.assetsDir ?? CONSOLE_ASSETS_DIR;
  let indexHtml: Buffer;
  try {
    indexHtml = readFileSync(join(assets, 'index.html'));
  } catch (err) {
    throw new TracefeedError(`the console's page is not built (${join(assets, 'index.html')})`, {
      cause: err,
      hint: 'run `npm run build` (or `npm run build:console`)',
    });
  }
  const actor = opts.actor ?? 'operator/console';
  const sessions = new BrowserSessions();
  const host = opts.host ?? '127.0.0.1';

  // Anomalies of the last hour, newest last.
  const anomalies: Anomaly[] = [];
  sources.stage?.onWindow((w) => {
    const seen = new Set(anomalies.map((a) => a.id));
    for (const a of w.anomalies) if (!seen.has(a.id)) anomalies.push(a);
    const horizon = Date.now() - ANOMALY_HORIZON_MS;
    while (
      anomalies.length > MAX_ANOMALIES ||
      (anomalies.length > 0 && Date.parse(anomalies[0]!.window_end) < horizon)
    )
      anomalies.shift();
  });

  // Bytes/s of local nodes: the publisher's bytes sent, sampled once a second.
  const bytesRate = new Map<string, { at: number; bytes: number; rate: number }>();
  const sample = (): void => {
    const now = Date.now();
    for (const n of sources.nodes) {
      const s = n.stats();
      const prev = bytesRate.get(s.node);
      const bytes = s.publisher.bytesSent;
      const rate = prev && now > prev.at ? ((bytes - prev.bytes) * 1000) / (now - prev.at) : 0;
      bytesRate.set(s.node, { at: now, bytes, rate: Math.max(0, Math.round(rate)) });
    }
  };
  sample();
  const sampler = setInterval(sample, 1000);
  sampler.unref();

  const now = async (): Promise<{ at: string; nodes: NowNode[] }> => {
    const nodes: NowNode[] = [];
    for (const n of sources.nodes) {
      const s = n.stats();
      const states = new Map(n.probes().map((p) => [p.probe, p]));
      const probes = s.probes.map((p) => probeView({ ...(states.get(p.probe) ?? p), ...p }));
      nodes.push({
        node: s.node,
        source: 'local',
        at: new Date().toISOString(),
        events_per_second: probes.reduce((a, p) => a + p.events_per_second, 0),
        bytes_per_second: bytesRate.get(s.node)?.rate ?? 0,
        kafka_connected: s.publisher.connected,
        events_dropped: s.publisher.eventsDropped,
        probes,
      });
    }
    const service = sources.feedback?.();
    if (service) {
      const local = new Set(nodes.map((n) => n.node));
      for (const name of await service.store.nodes()) {
        if (local.has(name)) continue;
        const r = await service.store.report(name);
        if (!r || Date.now() - Date.parse(r.at) > 60_000) continue;
        nodes.push({
          node: name,
          source: 'report',
          at: r.at,
          events_per_second: r.events_per_second,
          bytes_per_second: r.bytes_per_second,
          kafka_connected: null,
          events_dropped: null,
          probes: r.probes.map((p) => ({
            probe: p.probe,
            enabled: p.enabled,
            attached: p.attached,
            generation: p.generation,
            events_per_second: p.events_per_second,
            bytes_per_second: null,
            drops: {},
            sample_n: p.settings.sample_n,
            effective_sample_n: null,
            overload_n: null,
            focus_count: Object.keys(p.settings.focus ?? {}).length,
            filters: filtersInForce({
              settings: p.settings,
              focus: Object.fromEntries(
                Object.entries(p.settings.focus ?? {}).map(([k, f]) => [
                  k,
                  { ...f, cgroup_id: k, effective_sample_n: f.sample_n ?? 1 },
                ]),
              ),
            }),
          })),
        });
      }
    }
    return { at: new Date().toISOString(), nodes };
  };

  const needFeedback = (): FeedbackService => {
    const s = sources.feedback?.();
    if (!s) throw new HttpError(503, 'the feedback controller is not running in this process');
    return s;
  };

  const timeline = async (since: number): Promise<unknown> => {
    const service = sources.feedback?.();
    const actions: Array<Record<string, unknown>> = [];
    if (service) {
      for (const v of await service.list(500)) {
        const at = Date.parse(v.submitted_at);
        if (at < since) continue;
        actions.push(actionView(v));
      }
    }
    return {
      since: new Date(since).toISOString(),
      anomalies: anomalies.filter((a) => Date.parse(a.window_end) >= since),
      actions,
    };
  };

  const handler = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const path = url.pathname;
    const m = req.method;
    if (m === 'GET' && path === '/login') {
      const code = url.searchParams.get('code') ?? '';
      const session = sessions.redeem(code);
      if (!session) {
        res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(
          'This login link is unknown, used or expired.\nGet a new one with `tracefeed console-login`.\n',
        );
        return;
      }
      res.writeHead(303, {
        'set-cookie': sessions.cookie(session, opts.security?.tls_cert_path !== undefined),
        location: '/',
        'cache-control': 'no-store',
      });
      res.end();
      return;
    }
    if (m === 'POST' && path === '/v1/login-codes') {
      send(res, 200, { url: loginUrl() });
      return;
    }
    if (m === 'GET' && (path === '/' || path === '/index.html')) {
      res.writeHead(200, {
        'content-type': MIME['.html']!,
        'content-security-policy': CSP,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        'cache-control': 'no-store',
      });
      res.end(indexHtml);
      return;
    }
    if (m === 'GET' && path.startsWith('/assets/')) {
      const rel = normalize(path.slice('/assets/'.length));
      if (rel.startsWith('..') || rel.includes('/') || rel.includes('\\'))
        throw new HttpError(404, `no asset ${path}`);
      let body: Buffer;
      try {
        body = readFileSync(join(assets, rel));
      } catch {
        throw new HttpError(404, `no asset ${path}`);
      }
      res.writeHead(200, {
        'content-type': MIME[extname(rel)] ?? 'application/octet-stream',
        'x-content-type-options': 'nosniff',
      });
      res.end(body);
      return;
    }
    if (m === 'GET' && path === '/v1/now') {
      send(res, 200, await now());
      return;
    }
    if (m === 'GET' && path === '/v1/now/stream') {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        connection: 'keep-alive',
      });
      let busy = false;
      const push = (): void => {
        if (busy) return;
        busy = true;
        now()
          .then((v) => res.write(`event: now\ndata: ${JSON.stringify(v)}\n\n`))
          .catch((err: unknown) =>
            res.write(`event: error\ndata: ${JSON.stringify({ error: String(err) })}\n\n`),
          )
          .finally(() => (busy = false));
      };
      push();
      const t = setInterval(push, 1000);
      res.on('close', () => clearInterval(t));
      return;
    }
    if (m === 'GET' && path === '/v1/features') {
      if (!sources.stage)
        throw new HttpError(503, 'the feature stage is not running in this process');
      const body = sources.stage.query({
        sinceMs: timeParam(url, 'since'),
        untilMs: timeParam(url, 'until'),
        node: url.searchParams.get('node') ?? undefined,
        workload: url.searchParams.get('workload') ?? undefined,
        probe: url.searchParams.get('probe') ?? undefined,
      });
      res.writeHead(200, {
        'content-type': 'application/vnd.apache.arrow.stream',
        'cache-control': 'no-store',
      });
      res.end(body);
      return;
    }
    if (m === 'GET' && path === '/v1/timeline') {
      send(res, 200, await timeline(timeParam(url, 'since') ?? Date.now() - ANOMALY_HORIZON_MS));
      return;
    }
    if (m === 'GET' && path === '/v1/feedback') {
      const service = sources.feedback?.();
      send(res, 200, {
        controller: service !== undefined,
        requests: service ? (await service.list(200)).map(requestView) : [],
      });
      return;
    }
    const act = /^\/v1\/feedback\/([^/]+)\/(approve|reject|revert)$/.exec(path);
    if (m === 'POST' && act) {
      const id = decodeURIComponent(act[1]!);
      const body = parseBody(actionSchema, await readJsonBody(req));
      const service = needFeedback();
      let result: unknown;
      if (act[2] === 'approve') result = { decisions: await service.approve(id, actor) };
      else if (act[2] === 'reject') {
        await service.reject(id, actor, body.reason ?? 'rejected by operator (console)');
        result = { rejected: true };
      } else result = { nodes: await service.revert(id, actor) };
      log.info({ request: id, action: act[2], actor }, 'console: operator decision');
      send(res, 200, { id, ...(result as object), request: requestView((await service.get(id))!) });
      return;
    }
    if (m === 'GET' && path === '/v1/thresholds') {
      const service = sources.feedback?.();
      send(res, 200, {
        controller: service !== undefined,
        status: service ? ((await service.store.thresholdsStatus()) ?? null) : null,
      });
      return;
    }
    if (m === 'POST' && path === '/v1/ask') {
      const body = parseBody(askSchema, await readJsonBody(req));
      if (!sources.agent) throw new HttpError(503, 'the agent is not running in this process');
      const ac = new AbortController();
      res.on('close', () => {
        if (!res.writableFinished) ac.abort();
      });
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      const event = (name: string, data: unknown): void => {
        res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
      };
      try {
        const result = await sources.agent.ask(body.question, {
          ...(body.conversation_id ? { conversationId: body.conversation_id } : {}),
          signal: ac.signal,
          onToken: (text) => event('token', { text }),
        });
        event('result', result);
      } catch (err) {
        event('error', {
          error: err instanceof Error ? err.message : String(err),
          ...(err instanceof TracefeedError && err.hint ? { hint: err.hint } : {}),
        });
      }
      res.end();
      return;
    }
    throw new HttpError(404, `no route for ${m} ${path}`);
  };

  const port = opts.port ?? DEFAULT_CONSOLE_PORT;
  const { server, guard } = await serveApi(
    {
      what: 'console',
      flag: 'pass --console-port',
      port,
      host,
      sessions,
      ...(opts.security ? { security: opts.security } : {}),
      log,
    },
    (req, res, url) =>
      void handler(req, res, url).catch((err: unknown) => {
        const status =
          err instanceof HttpError
            ? err.status
            : err instanceof ConfigError
              ? 400
              : err instanceof TracefeedError && !err.retriable
                ? 400
                : 500;
        if (status >= 500) log.error({ err }, 'console request failed');
        if (res.headersSent) {
          res.end();
          return;
        }
        send(res, status, {
          error: err instanceof Error ? err.message : String(err),
          ...(err instanceof TracefeedError && err.hint ? { hint: err.hint } : {}),
        });
      }),
  );
  const addr = server.address();
  const bound = typeof addr === 'object' && addr ? addr.port : port;
  const scheme = opts.security?.tls_cert_path !== undefined ? 'https' : 'http';
  const urlHost = host.includes(':') ? `[${host}]` : host;
  function loginUrl(): string {
    return `${scheme}://${urlHost}:${bound}/login?code=${sessions.issueCode()}`;
  }
  return {
    server,
    guard,
    sessions,
    port: bound,
    loginUrl,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(sampler);
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A request as the Feedback view lists it. */
export function requestView(v: RequestView): Record<string, unknown> {
  return {
    id: v.request.id,
    created_at: v.request.created_at,
    submitted_at: v.submitted_at,
    origin: v.request.origin,
    actor: v.actor,
    action: v.request.action,
    probe: v.request.probe,
    workload: v.request.workload ?? null,
    reason: v.request.reason,
    decisions: v.decisions.map((d) => ({
      node: d.node,
      outcome: d.outcome,
      reason: d.reason,
      patch: d.patch ?? null,
      ttl_seconds: d.ttl_seconds ?? null,
    })),
    status: v.status,
    awaiting_approval: Object.values(v.status).some((s) => s.state === 'queued'),
    applied: Object.values(v.status).some((s) => s.state === 'applied'),
  };
}

/** A feedback action as the timeline draws it. */
function actionView(v: RequestView): Record<string, unknown> {
  const r = requestView(v);
  return {
    id: r.id,
    at: v.submitted_at,
    action: v.request.action,
    origin: v.request.origin,
    probe: v.request.probe,
    workload: v.request.workload ?? null,
    nodes: Object.keys(v.status),
    states: Object.fromEntries(Object.entries(v.status).map(([n, s]) => [n, s.state])),
    /** When the change was taken back, per node (TTL, operator, budget). */
    reverted: Object.entries(v.status)
      .filter(([, s]) => s.state === 'reverted')
      .map(([node, s]) => ({ node, at: s.at, reason: s.reason ?? '' })),
    reason: v.request.reason,
  };
}
