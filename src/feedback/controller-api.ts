/**
 * The controller role's HTTP API (bearer token, src/common/http-auth.ts):
 *   GET /healthz    {"ok":…} without a token (503 when not healthy)
 *   GET /v1/health  why (consumer group joined, Redis state)
 *   GET /v1/status  the controller's counters and thresholds version
 *   GET /metrics    Prometheus text format
 */
import type { Server } from 'node:http';
import { Gauge, Registry } from 'prom-client';
import { serveApi, type ApiSecurityInput } from '../common/http-auth.js';
import type { Logger } from '../common/logger.js';
import { mirrorCounter } from '../common/metrics.js';
import type { ControllerStats, FeedbackController } from './controller.js';

export const DEFAULT_CONTROLLER_API_PORT = 9468;

export function controllerMetrics(controller: FeedbackController): Registry {
  const registry = new Registry();
  const c = (): ControllerStats => controller.counters;
  const counters: Array<[string, string, (s: ControllerStats) => number]> = [
    ['tracefeed_controller_anomalies_total', 'Anomalies read.', (s) => s.anomalies],
    [
      'tracefeed_controller_invalid_anomalies_total',
      'Records on the anomalies topic that are not valid anomalies (skipped).',
      (s) => s.invalidAnomalies,
    ],
    ['tracefeed_controller_requests_total', 'Feedback requests made.', (s) => s.requests],
    ['tracefeed_controller_duplicates_total', 'Requests seen before.', (s) => s.duplicates],
    ['tracefeed_controller_budget_checks_total', 'Budget checks.', (s) => s.budgetChecks],
    [
      'tracefeed_controller_budget_loosenings_total',
      'Loosenings made to bring a node under its budget.',
      (s) => s.budgetLoosenings,
    ],
  ];
  for (const [name, help, read] of counters)
    mirrorCounter(registry, name, help, [], () => [[{}, read(c())]]);
  mirrorCounter(
    registry,
    'tracefeed_controller_outcomes_total',
    'Policy outcomes, by outcome.',
    ['outcome'],
    () => Object.entries(c().outcomes).map(([outcome, v]) => [{ outcome }, v]),
  );
  new Gauge({
    name: 'tracefeed_controller_healthy',
    help: '1 when the controller is healthy (group joined, Redis ready).',
    registers: [registry],
    collect() {
      this.set(controller.health().ok ? 1 : 0);
    },
  });
  return registry;
}

export async function startControllerApi(
  controller: FeedbackController,
  port: number,
  log: Logger,
  security: ApiSecurityInput = {},
  host = '127.0.0.1',
): Promise<Server> {
  const registry = controllerMetrics(controller);
  const { server } = await serveApi(
    {
      what: 'controller API',
      flag: 'pass --port',
      port,
      host,
      security,
      log,
      health: () => controller.health(),
    },
    (req, res, url) =>
      void (async () => {
        if (req.method === 'GET' && url.pathname === '/metrics') {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(await registry.metrics());
        } else if (req.method === 'GET' && url.pathname === '/v1/status') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ ...controller.counters, health: controller.health() }));
        } else {
          res.writeHead(404, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: `no route for ${req.method} ${url.pathname}` }));
        }
      })().catch((err: unknown) => {
        log.error({ err }, 'controller API request failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: (err as Error).message }));
      }),
  );
  return server;
}
