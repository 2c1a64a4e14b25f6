/**
 * Aggregation of feature rows for the tools: one metric, grouped, combined
 * per window, then over windows (sum, max, avg), top-k. Pure.
 */
import type { SourceName } from '../wire/layout.js';
import {
  COMPLETENESS_COLUMNS,
  DERIVED_METRICS,
  QUANTILE_COLUMNS,
  SUM_COLUMNS,
} from '../features/columns.js';
import { FAMILIES } from '../families/registry.js';
import type { FeatureRow } from './sources.js';

/** Every metric the tools accept: the feature columns and those families derive (`tcp_resets`). */
export const METRICS = [
  'events_per_second',
  ...SUM_COLUMNS,
  ...DERIVED_METRICS.keys(),
  ...QUANTILE_COLUMNS.map((q) => q.name),
  ...COMPLETENESS_COLUMNS,
] as [string, ...string[]];

/** Completeness columns that describe the sampling in force: combined by max, never summed. */
const SAMPLING = new Set([
  'sample_weight_max',
  'probe_sample_n',
  'probe_overload_n',
  'probe_focus_count',
]);

const QUANTILES = new Set(QUANTILE_COLUMNS.map((q) => q.name));

/** Each family's columns, quantiles and derived metrics -> the family. */
const PROBE_OF_METRIC: ReadonlyMap<string, SourceName> = new Map(
  FAMILIES.flatMap((f) =>
    [
      ...f.columns.sums,
      ...f.columns.quantiles.map((q) => q.name),
      ...Object.keys(f.columns.derived ?? {}),
    ].map((m) => [m, f.name] as const),
  ),
);

/** The probe whose rows carry a metric (undefined: every probe's rows). */
export function metricProbe(metric: string): SourceName | undefined {
  return PROBE_OF_METRIC.get(metric);
}

export function isQuantile(metric: string): boolean {
  return QUANTILES.has(metric);
}

export type Aggregation = 'sum' | 'max' | 'avg';

/** sum for counts, max for quantiles, avg for rates. */
export function defaultAggregation(metric: string): Aggregation {
  if (isQuantile(metric) || SAMPLING.has(metric)) return 'max';
  if (metric === 'events_per_second' || metric === 'coverage_ratio') return 'avg';
  return 'sum';
}

export function metricValue(row: FeatureRow, metric: string): number | null {
  const parts = DERIVED_METRICS.get(metric);
  if (parts) {
    if (parts.every((c) => typeof row[c] !== 'number')) return null;
    return parts.reduce((sum, c) => sum + Number(row[c] ?? 0), 0);
  }
  const v = row[metric];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

export type GroupBy = 'workload' | 'node' | 'probe' | 'window' | 'node_workload' | 'series';

export interface Group {
  key: Record<string, string>;
  value: number;
  /** Windows in which the group had rows. */
  windows: number;
  /** The window with the largest per-window value. */
  peak: { window_start: string; window_end: string; value: number };
  /** Series ids (`node|workload|probe|metric`) that contributed, at most 5. */
  series: string[];
  cgroup_ids: string[];
}

export interface WindowSpan {
  count: number;
  first_start: string | null;
  last_end: string | null;
  window_seconds: number | null;
}

export function windowSpan(rows: FeatureRow[]): WindowSpan {
  const starts = new Set<string>();
  let first: string | null = null;
  let last: string | null = null;
  let seconds: number | null = null;
  for (const r of rows) {
    const s = String(r.window_start);
    const e = String(r.window_end);
    starts.add(s);
    if (first === null || s < first) first = s;
    if (last === null || e > last) last = e;
    seconds ??= (Date.parse(e) - Date.parse(s)) / 1000;
  }
  return { count: starts.size, first_start: first, last_end: last, window_seconds: seconds };
}

function keyOf(row: FeatureRow, by: GroupBy): Record<string, string> {
  switch (by) {
    case 'workload':
      return { workload: String(row.workload) };
    case 'node':
      return { node: String(row.node) };
    case 'probe':
      return { probe: String(row.probe) };
    case 'window':
      return { window_start: String(row.window_start) };
    case 'node_workload':
      return { node: String(row.node), workload: String(row.workload) };
    case 'series':
      return { node: String(row.node), workload: String(row.workload), probe: String(row.probe) };
  }
}

/** Rows that carry the metric (its probe's rows, non-null values). */
export function metricRows(rows: FeatureRow[], metric: string): FeatureRow[] {
  const probe = metricProbe(metric);
  return rows.filter(
    (r) => (probe === undefined || r.probe === probe) && metricValue(r, metric) !== null,
  );
}

/** Groups, best first; `include_zero` false drops groups whose value is 0. */
export function aggregate(
  rows: FeatureRow[],
  o: { metric: string; group_by: GroupBy; aggregation: Aggregation; include_zero?: boolean },
): Group[] {
  const quant = isQuantile(o.metric);
  const groups = new Map<
    string,
    {
      key: Record<string, string>;
      perWindow: Map<string, { end: string; v: number }>;
      series: Set<string>;
      cg: Set<string>;
    }
  >();
  for (const r of metricRows(rows, o.metric)) {
    const v = metricValue(r, o.metric)!;
    const key = keyOf(r, o.group_by);
    const k = JSON.stringify(key);
    let g = groups.get(k);
    if (!g) {
      g = { key, perWindow: new Map(), series: new Set(), cg: new Set() };
      groups.set(k, g);
    }
    const ws = String(r.window_start);
    const cur = g.perWindow.get(ws);
    // Within one window: counts add up across rows; quantiles cannot, take the largest.
    if (!cur) g.perWindow.set(ws, { end: String(r.window_end), v });
    else cur.v = quant ? Math.max(cur.v, v) : cur.v + v;
    if (g.series.size < 5) g.series.add(`${r.node}|${r.workload}|${r.probe}|${o.metric}`);
    if (r.cgroup_id !== null && r.cgroup_id !== undefined && g.cg.size < 5)
      g.cg.add(String(r.cgroup_id));
  }
  const out: Group[] = [];
  for (const g of groups.values()) {
    const vals = [...g.perWindow.entries()];
    let value = 0;
    if (o.aggregation === 'sum') value = vals.reduce((a, [, x]) => a + x.v, 0);
    else if (o.aggregation === 'max') value = Math.max(...vals.map(([, x]) => x.v));
    else value = vals.reduce((a, [, x]) => a + x.v, 0) / vals.length;
    const [pws, p] = vals.reduce((a, b) => (b[1].v > a[1].v ? b : a));
    if (!o.include_zero && value === 0) continue;
    out.push({
      key: g.key,
      value: round(value),
      windows: vals.length,
      peak: { window_start: pws, window_end: p.end, value: round(p.v) },
      series: [...g.series],
      cgroup_ids: [...g.cg],
    });
  }
  out.sort(
    (a, b) => b.value - a.value || JSON.stringify(a.key).localeCompare(JSON.stringify(b.key)),
  );
  return out;
}

export function round(x: number): number {
  if (!Number.isFinite(x)) return x;
  const a = Math.abs(x);
  if (a >= 1000 || Number.isInteger(x)) return Math.round(x * 100) / 100;
  return Number(x.toPrecision(4));
}
