/**
 * How complete the data behind a tool result was: the kernel drops and the
 * sampling in the windows it read, from the completeness columns every feature
 * row carries (docs/features.md). probe_* values are node-level per probe and
 * repeated on every row of that (node, probe, window), so they are taken once
 * per (node, probe, window) before they are added up.
 */
import type { FeatureQuery } from '../features/feature-query.js';
import { metricRows, round } from './feature-math.js';
import type { FeatureRow, FeatureSource, ProbeView } from './sources.js';
import type { AgentDeps } from './tools.js';

export interface ProbeCompleteness {
  node: string;
  probe: string;
  windows: number;
  /** Windows whose coverage_ratio was under 1 (events lost after the kernel kept them). */
  lossy_windows: number;
  coverage_min: number;
  ringbuf_full: number;
  sink_dropped: number;
  map_full: number;
  sampled_out: number;
  filtered: number;
  /** Largest 1-in-N sampling in force (kernel, overload included). */
  sample_n_max: number;
  overload_n_max: number;
  /** Largest sample weight of the rows' records (1 = unsampled). */
  sample_weight_max: number;
}

export interface Completeness {
  /** Feature rows the result was computed from. */
  feature_rows: number;
  windows: number;
  first_window: string | null;
  last_window: string | null;
  /** True when no window lost events and nothing was sampled. */
  complete: boolean;
  lossy: boolean;
  sampled: boolean;
  coverage_min: number | null;
  drops: {
    ringbuf_full: number;
    sink_dropped: number;
    map_full: number;
    sampled_out: number;
    filtered: number;
  };
  sample_n_max: number;
  sample_weight_max: number;
  /** The (node, probe) pairs that lost or sampled events, worst first (at most 10). */
  incomplete: ProbeCompleteness[];
  /** Pairs beyond the 10 listed. */
  incomplete_more: number;
  /** One sentence for a reader. */
  summary: string;
}

const num = (v: unknown, dflt: number): number =>
  typeof v === 'number' && Number.isFinite(v) ? v : dflt;

export function completenessOf(rows: FeatureRow[]): Completeness {
  const per = new Map<string, ProbeCompleteness>();
  const seen = new Set<string>();
  const windows = new Set<string>();
  let first: string | null = null;
  let last: string | null = null;
  for (const r of rows) {
    const ws = String(r.window_start);
    const we = String(r.window_end);
    windows.add(ws);
    if (first === null || ws < first) first = ws;
    if (last === null || we > last) last = we;
    const node = String(r.node);
    const probe = String(r.probe);
    const k = `${node}\u0000${probe}`;
    let p = per.get(k);
    if (!p) {
      p = {
        node,
        probe,
        windows: 0,
        lossy_windows: 0,
        coverage_min: 1,
        ringbuf_full: 0,
        sink_dropped: 0,
        map_full: 0,
        sampled_out: 0,
        filtered: 0,
        sample_n_max: 0,
        overload_n_max: 1,
        sample_weight_max: 1,
      };
      per.set(k, p);
    }
    p.sample_weight_max = Math.max(p.sample_weight_max, num(r.sample_weight_max, 1));
    const wk = `${k}\u0000${ws}`;
    if (seen.has(wk)) continue;
    seen.add(wk);
    p.windows++;
    const cov = num(r.coverage_ratio, 1);
    if (cov < 1) p.lossy_windows++;
    p.coverage_min = Math.min(p.coverage_min, cov);
    p.ringbuf_full += num(r.probe_ringbuf_full, 0);
    p.sink_dropped += num(r.probe_sink_dropped, 0);
    p.map_full += num(r.probe_map_full, 0);
    p.sampled_out += num(r.probe_sampled_out, 0);
    p.filtered += num(r.probe_filtered, 0);
    p.sample_n_max = Math.max(p.sample_n_max, num(r.probe_sample_n, 0));
    p.overload_n_max = Math.max(p.overload_n_max, num(r.probe_overload_n, 1));
  }
  const all = [...per.values()];
  const sampledP = (p: ProbeCompleteness): boolean =>
    p.sample_weight_max > 1 || p.sample_n_max > 1 || p.overload_n_max > 1 || p.sampled_out > 0;
  const lossyP = (p: ProbeCompleteness): boolean =>
    p.lossy_windows > 0 || p.ringbuf_full > 0 || p.sink_dropped > 0 || p.map_full > 0;
  const bad = all
    .filter((p) => lossyP(p) || sampledP(p))
    .sort(
      (a, b) =>
        a.coverage_min - b.coverage_min ||
        b.ringbuf_full + b.sink_dropped - (a.ringbuf_full + a.sink_dropped) ||
        b.sample_weight_max - a.sample_weight_max,
    )
    .map((p) => ({ ...p, coverage_min: round(p.coverage_min) }));
  const sum = (f: (p: ProbeCompleteness) => number): number => all.reduce((s, p) => s + f(p), 0);
  const drops = {
    ringbuf_full: sum((p) => p.ringbuf_full),
    sink_dropped: sum((p) => p.sink_dropped),
    map_full: sum((p) => p.map_full),
    sampled_out: sum((p) => p.sampled_out),
    filtered: sum((p) => p.filtered),
  };
  const lossy = all.some(lossyP);
  const sampled = all.some(sampledP);
  const coverage_min = all.length ? round(Math.min(...all.map((p) => p.coverage_min))) : null;
  const sample_weight_max = all.length ? Math.max(...all.map((p) => p.sample_weight_max)) : 1;
  const sample_n_max = all.length ? Math.max(...all.map((p) => p.sample_n_max)) : 0;
  const parts: string[] = [];
  if (rows.length === 0) parts.push('no feature windows were read');
  else {
    parts.push(`${rows.length} feature rows over ${windows.size} window(s)`);
    if (!lossy && !sampled) parts.push('complete: no events lost, nothing sampled');
    if (lossy)
      parts.push(
        `events were LOST in ${bad.filter(lossyP).length} node/probe pair(s) (coverage down to ${coverage_min}; ring buffer full ${drops.ringbuf_full}, dropped after the ring ${drops.sink_dropped}, map full ${drops.map_full}): counts are lower bounds, divide by coverage_ratio to estimate`,
      );
    if (sampled)
      parts.push(
        `SAMPLED in ${bad.filter(sampledP).length} node/probe pair(s) (up to 1 in ${Math.max(sample_n_max, sample_weight_max)}, ${drops.sampled_out} sampled out): counts are weighted estimates, quantiles and names may miss rare events`,
      );
  }
  return {
    feature_rows: rows.length,
    windows: windows.size,
    first_window: first,
    last_window: last,
    complete: rows.length > 0 && !lossy && !sampled,
    lossy,
    sampled,
    coverage_min,
    drops,
    sample_n_max,
    sample_weight_max,
    incomplete: bad.slice(0, 10),
    incomplete_more: Math.max(0, bad.length - 10),
    summary: parts.join('; '),
  };
}

/** Completeness of live probe counters (describe_probes reads no feature windows). */
export function probeCompleteness(views: ProbeView[]): {
  source: 'live probe counters';
  lossy: boolean;
  sampled: boolean;
  drops: Record<string, number>;
  summary: string;
} {
  const drops: Record<string, number> = {};
  for (const v of views)
    for (const [k, n] of Object.entries(v.drops)) drops[k] = (drops[k] ?? 0) + Number(n);
  const lossy = ['ringbuf_full', 'sink_dropped', 'map_full'].some((k) => (drops[k] ?? 0) > 0);
  const sampledViews = views.filter((v) => v.settings.sample_n > 1);
  const sampled = sampledViews.length > 0 || (drops.sampled_out ?? 0) > 0;
  const parts = [`live counters of ${views.length} probe(s) since their node started`];
  if (lossy)
    parts.push(
      `events were LOST (ring buffer full ${drops.ringbuf_full ?? 0}, dropped after the ring ${drops.sink_dropped ?? 0}, map full ${drops.map_full ?? 0})`,
    );
  if (sampled)
    parts.push(
      `SAMPLED: ${sampledViews.map((v) => `${v.node}/${v.probe} 1 in ${v.settings.sample_n}`).join(', ') || 'by the node'}`,
    );
  if (!lossy && !sampled) parts.push('no drops, nothing sampled');
  return { source: 'live probe counters', lossy, sampled, drops, summary: parts.join('; ') };
}

/** A feature source that keeps every row it returned (for the completeness of one call). */
export function recordingSource(inner: FeatureSource): {
  source: FeatureSource;
  rows: () => FeatureRow[];
} {
  const kept = new Map<string, FeatureRow>();
  return {
    source: {
      name: inner.name,
      async query(q: FeatureQuery) {
        const rows = await inner.query(q);
        for (const r of rows)
          kept.set(`${r.window_start}\u0000${r.node}\u0000${r.workload}\u0000${r.probe}`, r);
        return rows;
      },
    },
    rows: () => [...kept.values()],
  };
}

/** Completeness of the windows list_anomalies' anomalies were found in (it reads no rows itself). */
async function anomaliesCompleteness(data: unknown, deps: AgentDeps): Promise<Completeness> {
  const d = data as {
    anomalies: Array<{ node: string; probe: string; window_start: string; window_end: string }>;
  };
  if (d.anomalies.length === 0) return completenessOf([]);
  const since = Math.min(...d.anomalies.map((a) => Date.parse(a.window_start)));
  const until = Math.max(...d.anomalies.map((a) => Date.parse(a.window_end)));
  const keys = new Set(d.anomalies.map((a) => `${a.node}\u0000${a.probe}\u0000${a.window_start}`));
  const rows = (await deps.features.query({ sinceMs: since, untilMs: until + 1 })).filter((r) =>
    keys.has(`${r.node}\u0000${r.probe}\u0000${r.window_start}`),
  );
  return completenessOf(rows);
}

/** Completeness of describe_probes' live counters, from its result. */
function probesCompleteness(data: unknown): ReturnType<typeof probeCompleteness> {
  const d = data as {
    nodes: Array<{
      node: string;
      probes: Array<{ probe: string; sample_n: number; drops?: Record<string, number> }>;
    }>;
  };
  return probeCompleteness(
    d.nodes.flatMap((n) =>
      n.probes.map(
        (p) =>
          ({
            node: n.node,
            probe: p.probe,
            settings: { sample_n: p.sample_n },
            drops: p.drops ?? {},
          }) as unknown as ProbeView,
      ),
    ),
  );
}

/**
 * What a tool result says about its data's completeness: the feature rows it
 * read (`rows`, from a recordingSource), or what the tool reads instead.
 */
export async function toolCompleteness(
  tool: string,
  args: unknown,
  data: unknown,
  rows: FeatureRow[],
  deps: AgentDeps,
): Promise<unknown> {
  switch (tool) {
    case 'query_features': {
      // The rows that carry the metric asked for.
      const metric = (args as { metric?: unknown }).metric;
      return completenessOf(typeof metric === 'string' ? metricRows(rows, metric) : rows);
    }
    case 'list_anomalies':
      return anomaliesCompleteness(data, deps);
    case 'describe_probes':
      return probesCompleteness(data);
    case 'propose_feedback':
      return {
        source: 'policy engine',
        summary: 'a proposal reads no feature windows; the policy engine decides',
      };
    default:
      return completenessOf(rows);
  }
}
