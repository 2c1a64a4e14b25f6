/**
 * The feature stage's HTTP API (bearer token, src/common/http-auth.ts):
 * `GET /v1/features` (Arrow IPC stream of the rows matching since/until/node/
 * workload/probe), `GET /v1/status` (its counters), `GET /metrics`, and the
 * health routes serveApi adds.
 */
import type { Server } from 'node:http';
import { TracefeedError } from '../common/errors.js';
import { serveApi, type ServeApiOptions } from '../common/http-auth.js';
import type { Logger } from '../common/logger.js';
import type { FeatureQuery } from './feature-query.js';
import { featureMetrics } from './metrics.js';
import type { FeatureStageHealth, FeatureStageStats } from './stage-stats.js';

export interface FeatureApiOptions {
  port: number;
  security: ServeApiOptions['security'];
  log: Logger;
  stats: () => FeatureStageStats;
  health: () => FeatureStageHealth;
  query: (q: FeatureQuery) => Uint8Array;
}

/** A time parameter: ISO 8601 or epoch ms. */
function timeParam(url: URL, name: string): number | undefined {
  const v = url.searchParams.get(name);
  if (v === null) return undefined;
  const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(ms))
    throw new TracefeedError(`${name} must be an ISO 8601 time or epoch ms, got "${v}"`);
  return ms;
}

export async function startFeatureApi(o: FeatureApiOptions): Promise<Server> {
  const registry = featureMetrics(o.stats);
  const { server } = await serveApi(
    {
      what: 'features API',
      flag: 'set http_port',
      port: o.port,
      security: o.security,
      log: o.log,
      health: o.health,
    },
    (req, res, url) => {
      try {
        if (req.method === 'GET' && url.pathname === '/metrics') {
          void registry.metrics().then((text) => {
            res.writeHead(200, { 'content-type': registry.contentType });
            res.end(text);
          });
        } else if (req.method === 'GET' && url.pathname === '/v1/features') {
          const body = o.query({
            sinceMs: timeParam(url, 'since'),
            untilMs: timeParam(url, 'until'),
            node: url.searchParams.get('node') ?? undefined,
            workload: url.searchParams.get('workload') ?? undefined,
            probe: url.searchParams.get('probe') ?? undefined,
          });
          res.writeHead(200, { 'content-type': 'application/vnd.apache.arrow.stream' });
          res.end(body);
        } else if (req.method === 'GET' && url.pathname === '/v1/status') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(o.stats()));
        } else {
          res.writeHead(404, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: `no route for ${req.method} ${url.pathname}` }));
        }
      } catch (err) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: (err as Error).message }));
      }
    },
  );
  return server;
}
