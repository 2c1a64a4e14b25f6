/**
 * The node agent's local API, on loopback: Prometheus metrics and probe
 * control for `tracefeed probes list|set`.
 *
 *   GET   /metrics               Prometheus text format
 *   GET   /v1/status             agent stats
 *   GET   /v1/probes             probe states
 *   GET   /v1/probes/<name>/kernel  the probe's tf_config as read from the kernel map
 *   PATCH /v1/probes/:name       change settings (JSON body, ProbePatch)
 *   GET   /healthz               {"ok":true}, without a token
 *
 * Every other request needs the installation's bearer token (see
 * src/common/http-auth.ts); /metrics too unless `metrics_open`.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { ConfigError } from '../common/errors.js';
import { serveApi, type ApiSecurityInput } from '../common/http-auth.js';
import type { Logger } from '../common/logger.js';
import { agentMetrics } from './metrics.js';
import type { NodeAgent } from './node-agent.js';
import type { Registry } from 'prom-client';
import { PROBE_CONFIG_LAYOUT, type ProbeName } from '../wire/layout.js';

export const DEFAULT_API_PORT = 9464;

const MAX_BODY_BYTES = 64 * 1024;

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY_BYTES)
      throw new ConfigError(`request body over ${MAX_BODY_BYTES} bytes`, 'body');
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text || '{}');
  } catch (err) {
    throw new ConfigError(`request body is not JSON: ${(err as Error).message}`, 'body');
  }
}

export async function startControlApi(
  agent: NodeAgent,
  port: number,
  log: Logger,
  host = '127.0.0.1',
  security: ApiSecurityInput = {},
  /** Adds the metrics of what runs with the agent (the node's feedback worker). */
  extendMetrics?: (registry: Registry) => void,
): Promise<Server> {
  const registry = agentMetrics(agent);
  extendMetrics?.(registry);
  const { server } = await serveApi(
    {
      what: 'agent API',
      flag: 'pass --api-port',
      port,
      host,
      security,
      log,
      health: () => nodeHealth(agent),
    },
    (req, res, url) =>
      void (async () => {
        try {
          if (req.method === 'GET' && url.pathname === '/metrics') {
            res.writeHead(200, { 'content-type': registry.contentType });
            res.end(await registry.metrics());
          } else if (req.method === 'GET' && url.pathname === '/v1/status') {
            send(res, 200, agent.stats());
          } else if (req.method === 'GET' && url.pathname === '/v1/probes') {
            send(res, 200, { probes: agent.probes() });
          } else if (req.method === 'GET' && /^\/v1\/probes\/[^/]+\/kernel$/.test(url.pathname)) {
            // tf_config of the probe as the kernel holds it now (read from the map).
            const name = decodeURIComponent(url.pathname.split('/')[3]!);
            if (!agent.probes().some((p) => p.probe === name))
              send(res, 404, { error: `probe ${name} is not loaded` });
            else send(res, 200, kernelConfig(agent, name as ProbeName));
          } else if (req.method === 'PATCH' && url.pathname.startsWith('/v1/probes/')) {
            const name = decodeURIComponent(url.pathname.slice('/v1/probes/'.length));
            send(res, 200, agent.setProbe(name, await readJson(req)));
          } else {
            send(res, 404, { error: `no route for ${req.method} ${url.pathname}` });
          }
        } catch (err) {
          const status = err instanceof ConfigError ? 400 : 500;
          if (status === 500) log.error({ err }, 'control API request failed');
          send(res, status, {
            error: err instanceof Error ? err.message : String(err),
            ...(err instanceof ConfigError ? { path: err.path } : {}),
          });
        }
      })(),
  );
  log.info({ port, host }, 'agent API listening');
  return server;
}

/** A probe's tf_config read back from its kernel map, field by field (PROBE_CONFIG_LAYOUT). */
export function kernelConfig(agent: NodeAgent, probe: ProbeName): Record<string, number> {
  const b = agent.object(probe).mapLookup('tf_config', Buffer.alloc(4));
  if (!b) throw new Error(`no tf_config entry in ${probe}`);
  const out: Record<string, number> = {};
  for (const f of PROBE_CONFIG_LAYOUT.fields) {
    if (f.name === 'pad') continue;
    out[f.name] = f.kind === 'u64' ? Number(b.readBigUInt64LE(f.offset)) : b.readUInt32LE(f.offset);
  }
  return out;
}

/**
 * The node role's health: every enabled probe attached. Whether the frame sink reaches
 * Kafka is reported, not judged (frames are buffered, then dropped and counted, meanwhile).
 */
export function nodeHealth(agent: NodeAgent): { ok: boolean } & Record<string, unknown> {
  const s = agent.stats();
  const detached = s.probes.filter((p) => p.enabled && !p.attached).map((p) => p.probe);
  const kafka = s.publisher.connected;
  const reasons = detached.length ? [`probes not attached: ${detached.join(', ')}`] : [];
  return {
    ok: reasons.length === 0,
    role: 'node',
    node: s.node,
    probes: s.probes.map((p) => p.probe),
    kafka_connected: kafka,
    ...(reasons.length ? { reason: reasons.join('; ') } : {}),
  };
}
