/** `tracefeed probes list|set`: talk to the running agent's local API. */
import { TransportError, ConfigError } from '../common/errors.js';
import { authHeaders } from '../common/http-auth.js';
import type { ProbeStats } from '../ingest/node-agent.js';
import type { ProbePatch } from '../ingest/probe-settings.js';
import { jsonLine, table, type OutputFormat } from './output.js';

async function call(port: number, method: string, path: string, body?: unknown): Promise<unknown> {
  // Outside the try: a token file this user cannot read is its own error, not "no agent".
  const auth = authHeaders();
  let res: Response;
  try {
    res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method,
      headers: {
        ...auth,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new TransportError(`no tracefeed agent answers on 127.0.0.1:${port}`, 'http', {
      cause: err,
      hint: 'start it with `tracefeed up` (or pass --api-port if it listens elsewhere)',
    });
  }
  const json = (await res.json()) as { error?: string; path?: string; hint?: string };
  if (!res.ok)
    throw new ConfigError(
      json.error ?? `HTTP ${res.status}`,
      json.path ?? '',
      json.hint !== undefined ? { hint: json.hint } : {},
    );
  return json;
}

function filtersText(p: ProbeStats): string {
  const parts: string[] = [];
  for (const [dim, set] of Object.entries(p.settings.filters)) {
    if (set.allow.length) parts.push(`${dim}=${set.allow.join(',')}`);
    if (set.deny.length) parts.push(`${dim}!=${set.deny.join(',')}`);
  }
  if (p.settings.min_duration_ms) parts.push(`min=${p.settings.min_duration_ms}ms`);
  if (p.settings.slow_ms) parts.push(`slow=${p.settings.slow_ms}ms`);
  return parts.join(' ') || '-';
}

export function printProbes(probes: ProbeStats[], format: OutputFormat): void {
  if (format === 'json') {
    process.stdout.write(`${JSON.stringify(probes, null, 2)}\n`);
  } else if (format === 'jsonl') {
    process.stdout.write(probes.map(jsonLine).join('\n') + '\n');
  } else {
    process.stdout.write(
      table(
        [
          'probe',
          'enabled',
          'attached',
          'events/s',
          'events',
          'sample',
          'drops (full/filtered/sampled/map)',
          'filters',
          'gen',
        ],
        probes.map((p) => [
          p.probe,
          p.enabled ? 'yes' : 'no',
          p.attached ? 'yes' : 'no',
          p.eventsPerSecond,
          p.events,
          p.settings.sample_n === 1 ? 'all' : `1/${p.settings.sample_n}`,
          `${p.drops.ringbuf_full ?? 0}/${p.drops.filtered ?? 0}/${p.drops.sampled_out ?? 0}/${p.drops.map_full ?? 0}`,
          filtersText(p),
          p.generation,
        ]),
      ) + '\n',
    );
  }
}

export async function listProbes(port: number, format: OutputFormat): Promise<number> {
  const { probes } = (await call(port, 'GET', '/v1/probes')) as { probes: ProbeStats[] };
  printProbes(probes, format);
  return 0;
}

export async function setProbe(
  port: number,
  probe: string,
  patch: ProbePatch,
  format: OutputFormat,
): Promise<number> {
  const state = (await call(
    port,
    'PATCH',
    `/v1/probes/${encodeURIComponent(probe)}`,
    patch,
  )) as ProbeStats;
  printProbes(
    [{ ...state, events: state.events ?? 0, eventsPerSecond: state.eventsPerSecond ?? 0 }],
    format,
  );
  return 0;
}
