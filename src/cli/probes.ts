/** `tracefeed probes list|set`: talk to the running agent's local API. */
import { TransportError, ConfigError } from '../common/errors.js';
import { authHeaders } from '../common/http-auth.js';
import type { ProbeStats } from '../ingest/node-agent.js';
import { focusKeySchema, type ProbePatch } from '../wire/probe-settings.js';
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

/** The focuses of a probe, one `key(1/N,slow=Xms,min=Yms)` each. */
function focusText(p: ProbeStats): string {
  const parts = Object.entries(p.settings.focus ?? {}).map(([key, f]) => {
    const bits = [f.sample_n === 1 ? 'all' : `1/${f.sample_n}`];
    if (f.slow_ms) bits.push(`slow=${f.slow_ms}ms`);
    if (f.min_duration_ms) bits.push(`min=${f.min_duration_ms}ms`);
    return `${key}(${bits.join(',')})`;
  });
  return parts.join(' ') || '-';
}

const FOCUS_FIELDS = {
  sample_n: 'sample_n',
  slow_ms: 'slow_ms',
  min_duration_ms: 'min_duration_ms',
};

/**
 * One `--focus` value: `<cgroup path or id>[:sample_n=N,slow_ms=X,min_duration_ms=Y]`.
 * Returns the focus key and its settings (absent ones take their defaults).
 */
export function parseFocusOption(spec: string): [string, Record<string, number>] {
  const colon = spec.lastIndexOf(':');
  const hasSettings = colon >= 0 && spec.slice(colon + 1).includes('=');
  const key = hasSettings ? spec.slice(0, colon) : spec;
  const parsedKey = focusKeySchema.safeParse(key);
  if (!parsedKey.success)
    throw new ConfigError(
      `--focus "${spec}": a focus key is a cgroup path starting with "/" or a decimal cgroup id`,
      'focus',
    );
  const settings: Record<string, number> = {};
  if (hasSettings) {
    for (const kv of spec.slice(colon + 1).split(',')) {
      const [name, value] = kv.split('=').map((x) => x.trim());
      const field = FOCUS_FIELDS[name as keyof typeof FOCUS_FIELDS];
      const n = Number(value);
      if (!field || value === undefined || value === '' || !Number.isFinite(n))
        throw new ConfigError(
          `--focus "${spec}": "${kv}" is not one of sample_n=<n>, slow_ms=<ms>, min_duration_ms=<ms>`,
          'focus',
        );
      settings[field] = n;
    }
  }
  return [key, settings];
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
          'bytes/s',
          'events',
          'sample',
          'drops (full/filtered/sampled/map)',
          'lost',
          'filters',
          'focus',
          'gen',
        ],
        probes.map((p) => [
          p.probe,
          p.enabled ? 'yes' : 'no',
          p.attached ? 'yes' : p.always_attached?.length ? 'always-on only' : 'no',
          p.eventsPerSecond,
          p.bytesPerSecond ?? 0,
          p.events,
          p.settings.sample_n === 1 ? 'all' : `1/${p.settings.sample_n}`,
          `${p.drops.ringbuf_full ?? 0}/${p.drops.filtered ?? 0}/${p.drops.sampled_out ?? 0}/${p.drops.map_full ?? 0}`,
          lostText(p),
          filtersText(p),
          focusText(p),
          p.generation,
        ]),
      ) + '\n',
    );
  }
}

/** Losses beyond the four kernel drop reasons: socket-table evictions, failed map writes. */
function lostText(p: ProbeStats): string {
  const parts: string[] = [];
  const evicted = (p.drops.socket_evicted ?? 0) + (p.drops.socket_claim_lost ?? 0);
  if (evicted > 0) parts.push(`${evicted} sockets evicted`);
  const failed = Object.values(p.map_update_failures ?? {}).reduce((a, b) => a + b, 0);
  if (failed > 0) parts.push(`${failed} map writes failed`);
  return parts.length > 0 ? parts.join(', ') : '-';
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
    [
      {
        ...state,
        events: state.events ?? 0,
        eventsPerSecond: state.eventsPerSecond ?? 0,
        bytesPerSecond: state.bytesPerSecond ?? 0,
      },
    ],
    format,
  );
  return 0;
}
