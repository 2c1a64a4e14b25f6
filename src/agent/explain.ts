/**
 * The deterministic explanation of one anomaly, from the anomaly and the
 * features around it: what changed (the series against its baseline and its
 * recent history), where (this workload only, or several on the node), what
 * moved with it (other metrics of the workload), the likely cause (rules per
 * metric, refined by what moved), and the evidence. Used by the
 * `explain_anomaly` tool and by the analysis worker with or without a model.
 */
import { FAMILIES } from '../families/registry.js';
import type { Anomaly } from '../features/anomaly.js';
import { anomalyRef, type AnomalyStore } from './anomaly-store.js';
import { isQuantile, metricProbe, metricValue, round } from './feature-math.js';
import type { FeedbackGateway, RecentFeedback } from './gateway.js';
import type { ProcessIndex, ProcessSeen } from './process-index.js';
import type { FeatureRow, FeatureSource } from './sources.js';

/** Metrics compared against the windows before, to see what moved with the anomaly: each family's. */
const CORRELATED = [...FAMILIES.flatMap((f) => f.agent.correlated ?? []), 'events_per_second'];

/** Windows of history read before the anomaly's window. */
export const HISTORY_WINDOWS = 10;

/** One piece of evidence; also what answers cite. */
export interface Evidence {
  kind: 'anomaly' | 'series' | 'correlated' | 'elsewhere' | 'processes' | 'feedback';
  series?: string;
  metric?: string;
  window_start?: string;
  window_end?: string;
  value?: number;
  baseline?: number;
  note: string;
}

export interface Correlated {
  metric: string;
  before_avg: number;
  now: number;
  change: number;
}

export interface Explanation {
  anomaly: {
    ref: string;
    id: string;
    series_id: string;
    node: string;
    workload: string;
    cgroup_id: string;
    probe: string;
    metric: string;
    window_start: string;
    window_end: string;
    observed: number;
    baseline: number;
    spread: number;
    score: number;
    threshold: number;
    direction: string;
    severity: string;
  };
  what_changed: string;
  where: string;
  likely_cause: string;
  /** The series over the windows before and including the anomaly's. */
  series_history: Array<{ window_start: string; value: number }>;
  /** Other metrics of the workload that moved in the same window. */
  correlated: Correlated[];
  /** The same metric on other workloads of the node in the same window. */
  same_metric_elsewhere: Array<{ workload: string; value: number }>;
  /** Other anomalies of the node in the same window. */
  other_anomalies: Array<{ ref: string; workload: string; metric: string; score: number }>;
  /** Programs started in the workload recently (untrusted names, as data). */
  processes: ProcessSeen[];
  recent_feedback: RecentFeedback[];
  evidence: Evidence[];
}

export interface ExplainDeps {
  features: FeatureSource;
  anomalies?: AnomalyStore;
  processes?: ProcessIndex;
  gateway?: FeedbackGateway;
}

function fmt(metric: string, v: number): string {
  if (metric.endsWith('_ns')) {
    if (v >= 1e9) return `${round(v / 1e9)} s`;
    if (v >= 1e6) return `${round(v / 1e6)} ms`;
    if (v >= 1e3) return `${round(v / 1e3)} µs`;
    return `${round(v)} ns`;
  }
  if (metric.endsWith('_bytes_sent') || metric.endsWith('_bytes_received')) {
    if (v >= 1 << 20) return `${round(v / (1 << 20))} MiB`;
    if (v >= 1 << 10) return `${round(v / (1 << 10))} KiB`;
    return `${round(v)} B`;
  }
  return String(round(v));
}
export { fmt as formatMetricValue };

function perWindow(rows: FeatureRow[], metric: string): Map<string, number> {
  const probe = metricProbe(metric);
  const m = new Map<string, number>();
  for (const r of rows) {
    if (probe !== undefined && r.probe !== probe) continue;
    const v = metricValue(r, metric);
    if (v === null) continue;
    const k = String(r.window_start);
    const cur = m.get(k);
    m.set(k, cur === undefined ? v : isQuantile(metric) ? Math.max(cur, v) : cur + v);
  }
  return m;
}

function likelyCause(a: Anomaly, up: Set<string>): string {
  for (const f of FAMILIES) {
    const cause = f.agent.likelyCause?.(a.metric, up);
    if (cause) return cause;
  }
  if (a.metric === 'events_per_second') return 'the workload became much busier on this probe';
  return `${a.metric} departed from its baseline`;
}

export async function explainAnomaly(a: Anomaly, deps: ExplainDeps): Promise<Explanation> {
  const ws = Date.parse(a.window_start);
  const we = Date.parse(a.window_end);
  const w = Math.max(1, we - ws);
  const ref = anomalyRef(a.id);
  const workloadQ = JSON.stringify(a.workload);

  // The workload over the windows before and including the anomaly's.
  const hist = await deps.features.query({
    sinceMs: ws - HISTORY_WINDOWS * w,
    untilMs: we,
    node: a.node,
    workload: a.workload,
  });
  const series = perWindow(hist, a.metric);
  const series_history = [...series.entries()]
    .sort(([x], [y]) => x.localeCompare(y))
    .map(([window_start, value]) => ({ window_start, value: round(value) }));

  const correlated: Correlated[] = [];
  const prevWindows = Math.max(1, Math.round((ws - (ws - HISTORY_WINDOWS * w)) / w));
  for (const m of CORRELATED) {
    if (m === a.metric) continue;
    const pw = perWindow(hist, m);
    const now = pw.get(a.window_start) ?? 0;
    const before = [...pw.entries()].filter(([k]) => k < a.window_start).map(([, v]) => v);
    const beforeAvg = isQuantile(m)
      ? before.length > 0
        ? before.reduce((x, y) => x + y, 0) / before.length
        : 0
      : before.reduce((x, y) => x + y, 0) / prevWindows;
    const change = now - beforeAvg;
    if (Math.abs(change) > Math.max(1, 0.5 * Math.abs(beforeAvg)))
      correlated.push({
        metric: m,
        before_avg: round(beforeAvg),
        now: round(now),
        change: round(change),
      });
  }
  correlated.sort(
    (x, y) =>
      Math.abs(y.change) / Math.max(1, Math.abs(y.before_avg)) -
      Math.abs(x.change) / Math.max(1, Math.abs(x.before_avg)),
  );
  const up = new Set(correlated.filter((c) => c.change > 0).map((c) => c.metric));

  // The same metric on the node's other workloads, same window.
  const probe = metricProbe(a.metric);
  const nodeRows = await deps.features.query({
    sinceMs: ws,
    untilMs: ws + 1,
    node: a.node,
    ...(probe ? { probe } : {}),
  });
  const byWorkload = new Map<string, number>();
  for (const r of nodeRows) {
    if (r.workload === a.workload) continue;
    const v = metricValue(r, a.metric);
    if (v === null || v === 0) continue;
    const k = String(r.workload);
    byWorkload.set(
      k,
      isQuantile(a.metric) ? Math.max(byWorkload.get(k) ?? 0, v) : (byWorkload.get(k) ?? 0) + v,
    );
  }
  const same_metric_elsewhere = [...byWorkload.entries()]
    .sort((x, y) => y[1] - x[1])
    .slice(0, 5)
    .map(([workload, value]) => ({ workload, value: round(value) }));

  const others = (
    deps.anomalies?.list({ node: a.node, sinceMs: we - 1, untilMs: we, limit: 100 }) ?? []
  ).filter((o) => o.id !== a.id && o.window_start === a.window_start);
  const other_anomalies = others.slice(0, 10).map((o) => ({
    ref: anomalyRef(o.id),
    workload: o.workload,
    metric: o.metric,
    score: round(o.score),
  }));
  const sameMetricAnomalous = others.filter((o) => o.metric === a.metric).length;

  const processes = deps.processes?.lookup(a.node, a.workload, a.cgroup_id) ?? [];
  let recent_feedback: RecentFeedback[] = [];
  try {
    recent_feedback = ((await deps.gateway?.recent(50)) ?? [])
      .filter((f) => Object.keys(f.states).includes(a.node) || Object.keys(f.states).length === 0)
      .slice(0, 5);
  } catch {
    // feedback state is context, not required
  }

  const ratio = a.baseline > 0 ? ` (${round(a.observed / a.baseline)}x)` : '';
  const what_changed = `${a.metric} was ${fmt(a.metric, a.observed)} in the window ${a.window_start} to ${a.window_end}, against a baseline of ${fmt(a.metric, a.baseline)}${ratio}; score ${round(a.score)} >= threshold ${a.threshold} (${a.severity})${
    correlated.length > 0
      ? `; with it: ${correlated
          .slice(0, 3)
          .map((c) => `${c.metric} ${fmt(c.metric, c.before_avg)} -> ${fmt(c.metric, c.now)}`)
          .join(', ')}`
      : ''
  }`;
  const nodeWide = sameMetricAnomalous > 0;
  const where = nodeWide
    ? `node ${a.node}, workload ${workloadQ} and ${sameMetricAnomalous} other workload(s) of the node with the same anomaly in the same window: node-wide`
    : `node ${a.node}, workload ${workloadQ} (probe ${a.probe})${
        same_metric_elsewhere.length > 0
          ? `; ${same_metric_elsewhere.length} other workload(s) on the node had some ${a.metric} in that window, none anomalous`
          : '; no other workload on the node had any'
      }`;
  let likely_cause = likelyCause(a, up);
  if (nodeWide)
    likely_cause +=
      '; several workloads at once point at the node or its network rather than one workload';
  if (processes.length > 0)
    likely_cause += `; programs started in the workload recently: ${processes
      .slice(0, 3)
      .map((p) => `${JSON.stringify(p.name)} (${p.execs} exec${p.execs === 1 ? '' : 's'})`)
      .join(', ')}`;

  const evidence: Evidence[] = [
    {
      kind: 'anomaly',
      series: a.series_id,
      metric: a.metric,
      window_start: a.window_start,
      window_end: a.window_end,
      value: a.observed,
      baseline: round(a.baseline),
      note: `score ${round(a.score)}, ${a.severity}`,
    },
  ];
  if (series_history.length > 1)
    evidence.push({
      kind: 'series',
      series: a.series_id,
      metric: a.metric,
      window_start: series_history[0]!.window_start,
      window_end: a.window_end,
      note: `last ${series_history.length} windows: ${series_history.map((p) => fmt(a.metric, p.value)).join(', ')}`,
    });
  for (const c of correlated.slice(0, 5))
    evidence.push({
      kind: 'correlated',
      series: `${a.node}|${a.workload}|${metricProbe(c.metric) ?? '*'}|${c.metric}`,
      metric: c.metric,
      window_start: a.window_start,
      window_end: a.window_end,
      value: c.now,
      baseline: c.before_avg,
      note: `${c.metric} ${fmt(c.metric, c.before_avg)} -> ${fmt(c.metric, c.now)}`,
    });
  for (const e of same_metric_elsewhere.slice(0, 3))
    evidence.push({
      kind: 'elsewhere',
      series: `${a.node}|${e.workload}|${a.probe}|${a.metric}`,
      metric: a.metric,
      window_start: a.window_start,
      window_end: a.window_end,
      value: e.value,
      note: `same window, another workload`,
    });
  if (processes.length > 0)
    evidence.push({
      kind: 'processes',
      note: `programs started: ${processes.map((p) => JSON.stringify(p.name)).join(', ')}`,
    });
  for (const f of recent_feedback.slice(0, 2))
    evidence.push({
      kind: 'feedback',
      note: `${f.request_id}: ${f.action} ${f.probe} (${Object.values(f.states).join(', ')})`,
    });

  return {
    anomaly: {
      ref,
      id: a.id,
      series_id: a.series_id,
      node: a.node,
      workload: a.workload,
      cgroup_id: a.cgroup_id,
      probe: a.probe,
      metric: a.metric,
      window_start: a.window_start,
      window_end: a.window_end,
      observed: a.observed,
      baseline: round(a.baseline),
      spread: round(a.spread),
      score: round(a.score),
      threshold: a.threshold,
      direction: a.direction,
      severity: a.severity,
    },
    what_changed,
    where,
    likely_cause,
    series_history,
    correlated,
    same_metric_elsewhere,
    other_anomalies,
    processes,
    recent_feedback,
    evidence,
  };
}
