/**
 * Anomaly records published to tracefeed.anomalies.v1 (JSON, key = series id).
 * The feature stage produces them; the feedback rules and the agent consume them.
 */
import { z } from 'zod';
import { type SourceName } from '../wire/layout.js';
import { SOURCE_NAMES } from '../families/registry.js';

export const ANOMALY_SCHEMA_VERSION = 1;

/**
 * Which judgement fired: `baseline` (the series against its own history),
 * `prior` (a series still warming up against the metric's absolute floor),
 * `peers` (a series still warming up against the node's established workloads).
 */
export const ANOMALY_BASES = ['baseline', 'prior', 'peers'] as const;
export type AnomalyBasis = (typeof ANOMALY_BASES)[number];

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
  /** Source of the feature row: a probe family, or `cgroup` (the cgroup v2 files). */
  probe: z.enum(SOURCE_NAMES as [SourceName, ...SourceName[]]),
  /** Feature column, e.g. `tcp_retransmits`, `syscall_p99_ns`. */
  metric: z.string().min(1),
  window_start: z.iso.datetime(),
  window_end: z.iso.datetime(),
  observed: z.number(),
  /**
   * What `observed` was judged against. basis `baseline`: the series' robust baseline (EWMA)
   * and spread (EWMA of absolute deviation, MAD-like); `prior`: the metric's absolute floor
   * (spread 0); `peers`: the median baseline and spread of the node's established series.
   */
  baseline: z.number(),
  spread: z.number().min(0),
  /**
   * (observed - baseline) / max(spread, floor); for basis `prior`, threshold x observed / prior.
   * Compared with `threshold`.
   */
  score: z.number(),
  threshold: z.number().positive(),
  direction: z.enum(['high', 'low']),
  severity: z.enum(['warning', 'critical']),
  /** Which judgement fired. Default `baseline` (records written before the field existed). */
  basis: z.enum(ANOMALY_BASES).default('baseline'),
  /**
   * The window was still open: `observed` is its value so far (a sum only grows until the
   * close, which does not publish the same series and window again). Default false.
   */
  partial: z.boolean().default(false),
  /** The feature rows that show it (window, series, values). */
  evidence: z.array(z.record(z.string(), z.union([z.string(), z.number(), z.null()]))).max(50),
  detected_at: z.iso.datetime(),
});

export type Anomaly = z.infer<typeof anomalySchema>;
