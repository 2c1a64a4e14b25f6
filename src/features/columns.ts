import { FAMILIES, type FamilyHistogram, type FamilySumColumn } from '../families/registry.js';

/**
 * The feature columns: one row per (window, node, workload, probe). Counts are
 * weighted by the records' sample weight, so sampling does not bias them.
 * Names carry their unit. Each family brings its own (src/families/<name>),
 * in registry order.
 */

/** Summed columns, in slab order: `events`, then each family's. */
export const SUM_COLUMNS: readonly SumColumn[] = [
  'events',
  ...FAMILIES.flatMap((f): readonly FamilySumColumn[] => f.columns.sums),
];
export type SumColumn = 'events' | FamilySumColumn;
export const NSUM = SUM_COLUMNS.length;
export const S = Object.fromEntries(SUM_COLUMNS.map((c, i) => [c, i])) as Record<SumColumn, number>;

/** log2 histograms kept per row (32 slots each), each family's in registry order. */
export const HISTOGRAMS: readonly HistogramName[] = FAMILIES.flatMap(
  (f): readonly FamilyHistogram[] => f.columns.histograms,
);
export type HistogramName = FamilyHistogram;
export const HIST_SLOTS = 32;
export const NHIST = HISTOGRAMS.length * HIST_SLOTS;
/** Offset of each histogram's first slot in a row's histograms. */
export const H = Object.fromEntries(HISTOGRAMS.map((h, i) => [h, i * HIST_SLOTS])) as Record<
  HistogramName,
  number
>;

/** Quantile columns derived from the histograms; null when the histogram is empty. */
export const QUANTILE_COLUMNS: ReadonlyArray<{ name: string; hist: HistogramName; q: number }> =
  FAMILIES.flatMap(
    (f): ReadonlyArray<{ name: string; hist: HistogramName; q: number }> => f.columns.quantiles,
  );

/** Metrics computed from sum columns (their sum), as families declare them: `tcp_resets`. */
export const DERIVED_METRICS: ReadonlyMap<string, readonly SumColumn[]> = new Map(
  FAMILIES.flatMap((f) => Object.entries(f.columns.derived ?? {})),
);

/**
 * Completeness of a row, filled when its window closes. probe_* are the
 * node-level counters of the row's probe in the window (TF_OP_PROBE_STATS
 * records whose time falls in it): drops by reason, records the node dropped
 * after the ring, and the largest sampling in force. sample_weight_max is the
 * largest sample weight among the row's own records (1 = unsampled).
 *
 * coverage_ratio = delivered / (delivered + lost) for the row's probe on its
 * node in the window, where delivered = emitted - sink_dropped and lost =
 * ringbuf_full + sink_dropped: of the events the kernel decided to keep, the
 * share that reached Kafka. Sampled-out and filtered events do not lower it
 * (sampling is carried by the weights, filters are asked for). 1 when nothing
 * was lost, and for rows of source `cgroup` (read from files, not a ring).
 * probe_sample_n is 0 when no probe stats of that probe fell in the window.
 */
export const COMPLETENESS_COLUMNS = [
  'sample_weight_max',
  'probe_sample_n',
  'probe_overload_n',
  'probe_focus_count',
  'probe_ringbuf_full',
  'probe_filtered',
  'probe_sampled_out',
  'probe_map_full',
  'probe_sink_dropped',
  'coverage_ratio',
] as const;
export type CompletenessColumn = (typeof COMPLETENESS_COLUMNS)[number];

/** Per (window, probe) slab of TF_OP_PROBE_STATS values, in this order. */
export const PROBE_STAT_SLOTS = [
  'sample_n', // max in the window
  'overload_n', // max
  'focus_count', // max
  'emitted', // summed from here on
  'ringbuf_full',
  'filtered',
  'sampled_out',
  'map_full',
  'sink_dropped',
  'reports', // TF_OP_PROBE_STATS records seen
] as const;
export const NPS = PROBE_STAT_SLOTS.length;
export const PS = Object.fromEntries(PROBE_STAT_SLOTS.map((c, i) => [c, i])) as Record<
  (typeof PROBE_STAT_SLOTS)[number],
  number
>;

export const FEATURE_SCHEMA_VERSION = '4';
