/**
 * Anomaly detection without any model: per series (node, workload, probe,
 * metric) a robust baseline, the EWMA of the values, and a spread, the EWMA
 * of absolute deviations (a running MAD). A window is anomalous when
 * (value - baseline) / max(spread, floor) passes the threshold after the
 * warm-up. Anomalous values update the baseline only clipped, so one burst
 * does not teach the baseline that bursts are normal.
 */
import { z } from 'zod';
import { ANOMALY_SCHEMA_VERSION, anomalySchema, type Anomaly } from './anomaly.js';

export const metricRuleSchema = z.strictObject({
  /** Feature column (or `tcp_resets`, the sum of resets sent and received). */
  metric: z.string().min(1),
  /** Only rows of this probe. */
  probe: z.enum(['process', 'tcp', 'syscalls', 'file', 'sched']),
  /** The smallest change that can count as anomalous, in the metric's unit. */
  min_delta: z.number().positive(),
});

export const anomalyConfigSchema = z.strictObject({
  /** Windows a series must have before it is scored. Default 5. */
  warmup_windows: z.number().int().min(1).max(1000).default(5),
  /** EWMA weight of the newest window. Default 0.2. */
  alpha: z.number().gt(0).lt(1).default(0.2),
  /** Score for a warning. Default 4. */
  threshold: z.number().positive().default(4),
  /** Score for critical. Default 8. */
  critical_threshold: z.number().positive().default(8),
  /** Spread floor relative to the baseline. Default 0.1. */
  relative_floor: z.number().min(0).default(0.1),
  metrics: z.array(metricRuleSchema).default([
    { metric: 'tcp_retransmits', probe: 'tcp', min_delta: 5 },
    { metric: 'tcp_resets', probe: 'tcp', min_delta: 5 },
    { metric: 'tcp_connect_failures', probe: 'tcp', min_delta: 5 },
    { metric: 'failed_exits', probe: 'process', min_delta: 5 },
    { metric: 'exec_count', probe: 'process', min_delta: 50 },
    { metric: 'syscall_errors', probe: 'syscalls', min_delta: 50 },
    { metric: 'syscall_p99_ns', probe: 'syscalls', min_delta: 1_000_000 },
    { metric: 'runq_p99_ns', probe: 'sched', min_delta: 1_000_000 },
    { metric: 'events_per_second', probe: 'tcp', min_delta: 100 },
  ]),
});
export type AnomalyConfig = z.infer<typeof anomalyConfigSchema>;

interface SeriesState {
  n: number;
  baseline: number;
  spread: number;
}

export type FeatureRow = Record<string, string | number | null>;

function metricValue(row: FeatureRow, metric: string): number | null {
  if (metric === 'tcp_resets')
    return Number(row.tcp_resets_sent ?? 0) + Number(row.tcp_resets_received ?? 0);
  const v = row[metric];
  return typeof v === 'number' ? v : null;
}

export class AnomalyDetector {
  private readonly series = new Map<string, SeriesState>();
  readonly config: AnomalyConfig;
  scored = 0;

  constructor(config: Partial<AnomalyConfig> = {}) {
    this.config = anomalyConfigSchema.parse(config);
  }

  /** Scores the rows of one closed window; returns the anomalies found (validated). */
  observe(rows: FeatureRow[], nowIso = new Date().toISOString()): Anomaly[] {
    const out: Anomaly[] = [];
    const c = this.config;
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
        const floor = Math.max(rule.min_delta, c.relative_floor * Math.abs(st.baseline));
        const score = (x - st.baseline) / Math.max(st.spread, floor);
        if (st.n >= c.warmup_windows) {
          this.scored++;
          if (score >= c.threshold) {
            out.push(
              anomalySchema.parse({
                schema_version: ANOMALY_SCHEMA_VERSION,
                id: `${id}@${row.window_start}`,
                series_id: id,
                node: String(row.node),
                workload: String(row.workload),
                cgroup_id: String(row.cgroup_id),
                container_id: row.container_id === null ? null : String(row.container_id),
                probe: rule.probe,
                metric: rule.metric,
                window_start: String(row.window_start),
                window_end: String(row.window_end),
                observed: x,
                baseline: st.baseline,
                spread: st.spread,
                score,
                threshold: c.threshold,
                direction: 'high',
                severity: score >= c.critical_threshold ? 'critical' : 'warning',
                evidence: [row],
                detected_at: nowIso,
              }),
            );
          }
        }
        // Clip what the baseline learns from an outlier.
        const limit = c.threshold * Math.max(st.spread, floor);
        const learned =
          st.n === 0 ? x : Math.min(Math.max(x, st.baseline - limit), st.baseline + limit);
        const dev = Math.abs(learned - st.baseline);
        st.baseline = st.n === 0 ? learned : st.baseline + c.alpha * (learned - st.baseline);
        st.spread = st.n === 0 ? 0 : st.spread + c.alpha * (dev - st.spread);
        st.n++;
      }
    }
    return out;
  }

  /** Series being tracked (for memory bounds and status). */
  get size(): number {
    return this.series.size;
  }
}
