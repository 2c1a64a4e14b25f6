/**
 * Anomaly records published to tracefeed.anomalies.v1 (JSON, key = series id).
 * The feature stage produces them; the feedback rules and the agent consume them.
 */
import { z } from 'zod';

export const ANOMALY_SCHEMA_VERSION = 1;

export const anomalySchema = z.strictObject({
  schema_version: z.literal(ANOMALY_SCHEMA_VERSION),
  /** Deterministic: `<series_id>@<window_start>`; a re-run of a window yields the same id. */
  id: z.string().min(1),
  /** `<node>|<workload>|<probe>|<metric>`. */
  series_id: z.string().min(1),
  node: z.string().min(1),
  /** Workload: the cgroup path (or `cgroup:<id>` when it could not be resolved). */
  workload: z.string().min(1),
  cgroup_id: z.string(),
  container_id: z.string().nullable(),
  probe: z.enum(['process', 'tcp', 'syscalls', 'file', 'sched']),
  /** Feature column, e.g. `tcp_retransmits`, `syscall_p99_ns`. */
  metric: z.string().min(1),
  window_start: z.iso.datetime(),
  window_end: z.iso.datetime(),
  observed: z.number(),
  /** Robust baseline (EWMA of the series) and spread (EWMA of absolute deviation, MAD-like). */
  baseline: z.number(),
  spread: z.number().min(0),
  /** (observed - baseline) / max(spread, floor); compared with `threshold`. */
  score: z.number(),
  threshold: z.number().positive(),
  direction: z.enum(['high', 'low']),
  severity: z.enum(['warning', 'critical']),
  /** The feature rows that show it (window, series, values). */
  evidence: z.array(z.record(z.string(), z.union([z.string(), z.number(), z.null()]))).max(50),
  detected_at: z.iso.datetime(),
});

export type Anomaly = z.infer<typeof anomalySchema>;
