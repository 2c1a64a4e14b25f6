/**
 * Anomaly detection without any model: per series (node, workload, source,
 * metric) a robust baseline, the EWMA of the values, and a spread, the EWMA
 * of absolute deviations (a running MAD). A window is anomalous when
 * (value - baseline) / max(spread, floor) passes the threshold after the
 * warm-up. Anomalous values update the baseline only clipped, so one burst
 * does not teach the baseline that bursts are normal.
 *
 * Cold start: until a series has its own baseline (`warmup_windows` closed
 * windows) it is judged against priors: the metric's absolute floor
 * (`prior_min`) and the node's other workloads (the median baseline of the
 * same metric over the node's established series). A new workload that fails
 * from its first window is reported in that window.
 *
 * Early fire: `observePartial` scores windows still open. A sum can only grow
 * until the close, so a partial value that already crosses the threshold
 * fires at once; the close does not fire the same (series, window) again.
 * Baselines learn only from closed windows.
 */
import { z } from 'zod';
import { type SourceName } from '../wire/layout.js';
import { FAMILIES, SOURCE_NAMES } from '../families/registry.js';
import { DERIVED_METRICS, QUANTILE_COLUMNS } from './columns.js';
import {
  ANOMALY_SCHEMA_VERSION,
  anomalySchema,
  type Anomaly,
  type AnomalyBasis,
} from './anomaly.js';

export const metricRuleSchema = z.strictObject({
  /** Feature column, or a metric a family derives from its columns (`tcp_resets`). */
  metric: z.string().min(1),
  /** Only rows of this source (a probe family, or `cgroup`). */
  probe: z.enum(SOURCE_NAMES as [SourceName, ...SourceName[]]),
  /** The smallest change that can count as anomalous, in the metric's unit (see `share_of_window`). */
  min_delta: z.number().positive(),
  /**
   * The metric is a time in µs accumulated over the window (pressure, throttling):
   * `min_delta` and `prior_min` are then shares of the window's length (0.2 = 20 %),
   * so they mean the same for any window length. Default false.
   */
  share_of_window: z.boolean().default(false),
  /**
   * Prior for a series still warming up: a window at or above this is anomalous
   * (in the metric's unit per window, or a share of the window with `share_of_window`).
   * Unset: a new series is judged by its peers only.
   */
  prior_min: z.number().positive().optional(),
});
export type MetricRule = z.infer<typeof metricRuleSchema>;
export type MetricRuleInput = z.input<typeof metricRuleSchema>;

/**
 * The default metrics, each family's (src/families/<name>): every incident class
 * has a steady-state signal (process, tcp and cgroup rows exist while the
 * detailed families are off), plus the detailed families' own metrics for when
 * they are on.
 */
export const DEFAULT_METRICS: MetricRuleInput[] = FAMILIES.flatMap((f) =>
  f.anomalyMetrics.map((m) => ({ ...m, probe: f.name })),
);

export const anomalyConfigSchema = z.strictObject({
  /** Closed windows a series must have before it is judged against its own baseline. Default 5. */
  warmup_windows: z.number().int().min(1).max(1000).default(5),
  /** EWMA weight of the newest window. Default 0.2. */
  alpha: z.number().gt(0).lt(1).default(0.2),
  /** Score for a warning. Default 4. */
  threshold: z.number().positive().default(4),
  /** Score for critical. Default 8. */
  critical_threshold: z.number().positive().default(8),
  /** Spread floor relative to the baseline. Default 0.1. */
  relative_floor: z.number().min(0).default(0.1),
  /**
   * Established series (past their warm-up) of the same metric and source on the node
   * needed to judge a new series against its peers. Default 3.
   */
  peers_min_series: z.number().int().min(1).default(3),
  /** Score windows still open (every second in the feature stage) and fire early. Default true. */
  early_fire: z.boolean().default(true),
  metrics: z.array(metricRuleSchema).default(DEFAULT_METRICS.map((m) => metricRuleSchema.parse(m))),
});
export type AnomalyConfig = z.infer<typeof anomalyConfigSchema>;
export type AnomalyConfigInput = z.input<typeof anomalyConfigSchema>;

interface SeriesState {
  n: number;
  baseline: number;
  spread: number;
}

export type FeatureRow = Record<string, string | number | null>;

/** What a window was judged against, when it is anomalous. */
interface Judgement {
  basis: AnomalyBasis;
  score: number;
  baseline: number;
  spread: number;
  /** The most a cold-start series learns from this window (its baseline is clipped to it). */
  learnAtMost: number;
}

/** Partial values of these are not monotonic (a quantile can fall): they wait for the close. */
const NOT_MONOTONIC = new Set(QUANTILE_COLUMNS.map((q) => q.name));

/** At most this many early-fired (series, window) kept until their close. */
const MAX_FIRED = 100_000;

function metricValue(row: FeatureRow, metric: string): number | null {
  const parts = DERIVED_METRICS.get(metric);
  if (parts) return parts.reduce((sum, c) => sum + Number(row[c] ?? 0), 0);
  const v = row[metric];
  return typeof v === 'number' ? v : null;
}

function windowUs(row: FeatureRow): number {
  const ms = Date.parse(String(row.window_end)) - Date.parse(String(row.window_start));
  return Number.isFinite(ms) && ms > 0 ? ms * 1000 : 0;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Anomalies of one closed window: `fresh` are new; `early` already fired while it was open. */
export interface ClosedWindowAnomalies {
  fresh: Anomaly[];
  early: Anomaly[];
}

export class AnomalyDetector {
  private readonly series = new Map<string, SeriesState>();
  /** Established series per (node, source, metric): the peers of a new series. */
  private readonly established = new Map<string, Set<SeriesState>>();
  /** Median baseline and spread per peer group, computed once per observe call. */
  private readonly peerMedians = new Map<string, { baseline: number; spread: number } | null>();
  /** Early-fired `<series>@<window_start>` -> the anomaly, until the window closes. */
  private readonly fired = new Map<string, Anomaly>();
  readonly config: AnomalyConfig;
  /** Windows judged (closed or partial, any basis). */
  scored = 0;
  /** Anomalies fired on a window still open. */
  firedEarly = 0;

  constructor(config: AnomalyConfigInput = {}) {
    this.config = anomalyConfigSchema.parse(config);
  }

  /** Scores the rows of one closed window; returns the new anomalies (validated). */
  observe(rows: FeatureRow[], nowIso = new Date().toISOString()): Anomaly[] {
    return this.observeClosed(rows, nowIso).fresh;
  }

  /**
   * Scores the rows of one closed window and learns from them. A (series, window)
   * that fired while open is not fired again: it comes back in `early`.
   */
  observeClosed(rows: FeatureRow[], nowIso = new Date().toISOString()): ClosedWindowAnomalies {
    const fresh: Anomaly[] = [];
    const early: Anomaly[] = [];
    const c = this.config;
    this.peerMedians.clear();
    for (const row of rows) {
      for (const rule of c.metrics) {
        if (row.probe !== rule.probe) continue;
        const x = metricValue(row, rule.metric);
        if (x === null) continue;
        const id = `${row.node}|${row.workload}|${rule.probe}|${rule.metric}`;
        let st = this.series.get(id);
        if (!st) {
          st = { n: 0, baseline: x, spread: 0 };
          this.series.set(id, st);
        }
        const wUs = windowUs(row);
        const j = this.judge(row, rule, st, x, wUs);
        const key = `${id}@${row.window_start}`;
        const before = this.fired.get(key);
        if (before) {
          this.fired.delete(key);
          early.push(before);
        } else if (j) {
          fresh.push(this.anomaly(row, rule, id, x, j, false, nowIso));
        }
        this.learn(st, rule, x, wUs, j);
        if (st.n === c.warmup_windows) this.peersOf(row, rule).add(st);
      }
    }
    return { fresh, early };
  }

  /**
   * Scores the rows of windows still open, without learning. A value that already
   * crosses the threshold fires now, once per (series, window). Quantiles wait for the close.
   */
  observePartial(rows: FeatureRow[], nowIso = new Date().toISOString()): Anomaly[] {
    const out: Anomaly[] = [];
    this.peerMedians.clear();
    for (const row of rows) {
      for (const rule of this.config.metrics) {
        if (row.probe !== rule.probe || NOT_MONOTONIC.has(rule.metric)) continue;
        const x = metricValue(row, rule.metric);
        if (x === null) continue;
        const id = `${row.node}|${row.workload}|${rule.probe}|${rule.metric}`;
        const key = `${id}@${row.window_start}`;
        if (this.fired.has(key)) continue;
        const j = this.judge(row, rule, this.series.get(id), x, windowUs(row));
        if (!j) continue;
        const a = this.anomaly(row, rule, id, x, j, true, nowIso);
        if (this.fired.size >= MAX_FIRED) {
          const oldest = this.fired.keys().next().value;
          if (oldest !== undefined) this.fired.delete(oldest);
        }
        this.fired.set(key, a);
        this.firedEarly++;
        out.push(a);
      }
    }
    return out;
  }

  /** Series being tracked (for memory bounds and status). */
  get size(): number {
    return this.series.size;
  }

  private peersOf(row: FeatureRow, rule: MetricRule): Set<SeriesState> {
    const k = `${row.node}|${rule.probe}|${rule.metric}`;
    let s = this.established.get(k);
    if (!s) {
      s = new Set();
      this.established.set(k, s);
    }
    return s;
  }

  /** The judgement of one value, or null when it is not anomalous. */
  private judge(
    row: FeatureRow,
    rule: MetricRule,
    st: SeriesState | undefined,
    x: number,
    wUs: number,
  ): Judgement | null {
    const c = this.config;
    const unit = rule.share_of_window ? wUs : 1;
    const minDelta = rule.min_delta * unit;
    this.scored++;
    if (st && st.n >= c.warmup_windows) {
      const floor = Math.max(minDelta, c.relative_floor * Math.abs(st.baseline));
      const score = (x - st.baseline) / Math.max(st.spread, floor);
      if (score < c.threshold) return null;
      return { basis: 'baseline', score, baseline: st.baseline, spread: st.spread, learnAtMost: x };
    }
    // Cold start: no baseline of its own yet.
    let best: Judgement | null = null;
    if (rule.prior_min !== undefined && unit > 0) {
      const prior = rule.prior_min * unit;
      if (x >= prior)
        best = {
          basis: 'prior',
          score: (c.threshold * x) / prior,
          baseline: prior,
          spread: 0,
          learnAtMost: prior,
        };
    }
    const group = `${row.node}|${rule.probe}|${rule.metric}`;
    let med = this.peerMedians.get(group);
    if (med === undefined) {
      const peers = this.established.get(group);
      med =
        peers && peers.size >= c.peers_min_series
          ? {
              baseline: median([...peers].map((p) => p.baseline)),
              spread: median([...peers].map((p) => p.spread)),
            }
          : null;
      this.peerMedians.set(group, med);
    }
    if (med) {
      const m = med.baseline;
      const s = med.spread;
      const scale = Math.max(s, minDelta, c.relative_floor * Math.abs(m));
      const score = (x - m) / scale;
      if (score >= c.threshold && (!best || score > best.score))
        best = {
          basis: 'peers',
          score,
          baseline: m,
          spread: s,
          learnAtMost: m + c.threshold * scale,
        };
    }
    return best;
  }

  /** Closed windows only: EWMA of the value, clipped when anomalous. */
  private learn(
    st: SeriesState,
    rule: MetricRule,
    x: number,
    wUs: number,
    j: Judgement | null,
  ): void {
    const c = this.config;
    if (st.n < c.warmup_windows) {
      // Warm-up: learn the value, but not more than the prior or peers called normal.
      const learned = j ? Math.min(x, j.learnAtMost) : x;
      const dev = Math.abs(learned - st.baseline);
      st.baseline = st.n === 0 ? learned : st.baseline + c.alpha * (learned - st.baseline);
      st.spread = st.n === 0 ? 0 : st.spread + c.alpha * (dev - st.spread);
      st.n++;
      return;
    }
    // Clip what the baseline learns from an outlier.
    const unit = rule.share_of_window ? wUs : 1;
    const floor = Math.max(rule.min_delta * unit, c.relative_floor * Math.abs(st.baseline));
    const limit = c.threshold * Math.max(st.spread, floor);
    const learned = Math.min(Math.max(x, st.baseline - limit), st.baseline + limit);
    const dev = Math.abs(learned - st.baseline);
    st.baseline = st.baseline + c.alpha * (learned - st.baseline);
    st.spread = st.spread + c.alpha * (dev - st.spread);
    st.n++;
  }

  private anomaly(
    row: FeatureRow,
    rule: MetricRule,
    id: string,
    x: number,
    j: Judgement,
    partial: boolean,
    nowIso: string,
  ): Anomaly {
    const c = this.config;
    return anomalySchema.parse({
      schema_version: ANOMALY_SCHEMA_VERSION,
      id: `${id}@${row.window_start}`,
      series_id: id,
      node: String(row.node),
      workload: String(row.workload),
      cgroup_id: String(row.cgroup_id),
      container_id:
        row.container_id === null || row.container_id === undefined
          ? null
          : String(row.container_id),
      probe: rule.probe,
      metric: rule.metric,
      window_start: String(row.window_start),
      window_end: String(row.window_end),
      observed: x,
      baseline: j.baseline,
      spread: j.spread,
      score: j.score,
      threshold: c.threshold,
      direction: 'high',
      severity: j.score >= c.critical_threshold ? 'critical' : 'warning',
      basis: j.basis,
      partial,
      evidence: [row],
      detected_at: nowIso,
    });
  }
}
