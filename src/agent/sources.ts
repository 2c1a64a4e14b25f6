/**
 * Where the agent reads from. Features: the feature stage in-process
 * (`FeatureStage.query`) or its HTTP API (`GET /v1/features`). Probe state:
 * the node agent in-process (`NodeAgent.probes()`) or its local API
 * (`GET /v1/probes`). All read-only.
 */
import { DataType, tableFromIPC, type Table } from 'apache-arrow';
import type { FeatureQuery } from '../features/feature-query.js';
import type { ProbeStats } from '../ingest/node-agent.js';
import type { ProbeSettings } from '../wire/probe-settings.js';
import { TransportError } from '../common/errors.js';
import { authHeaders } from '../common/http-auth.js';

/** One feature row; times as ISO strings, the cgroup id as a decimal string. */
export type FeatureRow = Record<string, string | number | null>;

export interface FeatureSource {
  /** Rows whose window starts in [sinceMs, untilMs), matching the filters. */
  query(q: FeatureQuery): Promise<FeatureRow[]>;
  /** The same rows as the Arrow IPC stream the feature stage wrote (when the source has it). */
  queryIpc?(q: FeatureQuery): Promise<Uint8Array>;
  /** For messages: where the rows come from. */
  readonly name: string;
}

/** Rows of an Arrow IPC stream of features. */
export function rowsFromIpc(bytes: Uint8Array): FeatureRow[] {
  const table: Table = tableFromIPC(bytes);
  const fields = table.schema.fields;
  const cols = fields.map((f) => ({ f, v: table.getChild(f.name)! }));
  const out: FeatureRow[] = [];
  for (let i = 0; i < table.numRows; i++) {
    const row: FeatureRow = {};
    for (const { f, v } of cols) {
      const x = v.get(i) as unknown;
      if (x === null || x === undefined) row[f.name] = null;
      else if (DataType.isTimestamp(f.type))
        row[f.name] = new Date(
          typeof x === 'bigint' ? Number(x / 1_000_000n) : Number(x),
        ).toISOString();
      else if (typeof x === 'bigint') row[f.name] = x.toString();
      else if (typeof x === 'number' || typeof x === 'string') row[f.name] = x;
      else row[f.name] = String(x);
    }
    out.push(row);
  }
  return out;
}

/** Features from a feature stage in the same process. */
export function stageFeatureSource(stage: { query(q: FeatureQuery): Uint8Array }): FeatureSource {
  return {
    name: 'feature stage (in-process)',
    query: async (q) => rowsFromIpc(stage.query(q)),
    queryIpc: async (q) => stage.query(q),
  };
}

/** Features from the feature stage's HTTP API, e.g. `http://127.0.0.1:9465`. */
export function httpFeatureSource(baseUrl: string, timeoutMs = 10_000): FeatureSource {
  const source: FeatureSource = {
    name: `features API ${baseUrl}`,
    async query(q) {
      return rowsFromIpc(await source.queryIpc!(q));
    },
    async queryIpc(q) {
      const u = new URL('/v1/features', baseUrl);
      if (q.sinceMs !== undefined) u.searchParams.set('since', String(Math.floor(q.sinceMs)));
      if (q.untilMs !== undefined) u.searchParams.set('until', String(Math.ceil(q.untilMs)));
      if (q.node !== undefined) u.searchParams.set('node', q.node);
      if (q.workload !== undefined) u.searchParams.set('workload', q.workload);
      if (q.probe !== undefined) u.searchParams.set('probe', q.probe);
      let res: Response;
      try {
        res = await fetch(u, { headers: authHeaders(), signal: AbortSignal.timeout(timeoutMs) });
      } catch (err) {
        throw new TransportError(
          `the features API at ${baseUrl} is unreachable: ${(err as Error).message}`,
          'http',
          {
            cause: err,
            retriable: true,
            hint: 'run the feature stage (it serves GET /v1/features), or pass --features-url',
          },
        );
      }
      if (!res.ok)
        throw new TransportError(
          `features API ${u.pathname}: HTTP ${res.status} ${await res.text()}`,
          'http',
        );
      return new Uint8Array(await res.arrayBuffer());
    },
  };
  return source;
}

/** One probe on one node, as the tools show it. */
export interface ProbeView {
  node: string;
  probe: string;
  description?: string;
  enabled: boolean;
  attached: boolean;
  generation: number;
  settings: ProbeSettings;
  events_per_second: number;
  drops: Record<string, number>;
}

export interface ProbeSource {
  probes(): Promise<ProbeView[]>;
  readonly name: string;
}

function view(node: string, p: ProbeStats): ProbeView {
  return {
    node,
    probe: p.probe,
    description: p.description,
    enabled: p.enabled,
    attached: p.attached,
    generation: p.generation,
    settings: p.settings,
    events_per_second: p.eventsPerSecond,
    drops: p.drops,
  };
}

/** Probe state of a node agent in the same process. */
export function agentProbeSource(agent: { probes(): ProbeStats[] }, node: string): ProbeSource {
  return {
    name: `node agent ${node} (in-process)`,
    probes: async () => agent.probes().map((p) => view(node, p)),
  };
}

/** Probe state from a node agent's local API, e.g. `http://127.0.0.1:9464`. */
export function httpProbeSource(baseUrl: string, timeoutMs = 5000): ProbeSource {
  return {
    name: `node agent API ${baseUrl}`,
    async probes() {
      const get = async (path: string): Promise<unknown> => {
        let res: Response;
        try {
          res = await fetch(new URL(path, baseUrl), {
            headers: authHeaders(),
            signal: AbortSignal.timeout(timeoutMs),
          });
        } catch (err) {
          throw new TransportError(
            `the node agent API at ${baseUrl} is unreachable: ${(err as Error).message}`,
            'http',
            {
              cause: err,
              retriable: true,
              hint: 'run `tracefeed up` on this host, or pass --agent-url',
            },
          );
        }
        if (!res.ok)
          throw new TransportError(
            `node agent API ${path}: HTTP ${res.status} ${await res.text()}`,
            'http',
          );
        return res.json();
      };
      const status = (await get('/v1/status')) as { node?: string };
      const body = (await get('/v1/probes')) as { probes?: ProbeStats[] };
      return (body.probes ?? []).map((p) => view(status.node ?? 'unknown', p));
    },
  };
}
