import { DNS_HISTOGRAM, DNS_QUANTILES, DNS_SUM_COLUMNS } from '../families/dns/index.js';

/**
 * The feature columns: one row per (window, node, workload, probe). Counts are
 * weighted by the records' sample weight, so sampling does not bias them.
 * Names carry their unit.
 */

/** Summed columns, in slab order. */
export const SUM_COLUMNS = [
  'events',
  'exec_count',
  'exit_count',
  'failed_exits',
  'tcp_connects',
  'tcp_accepts',
  'tcp_closes',
  'tcp_connect_failures',
  'tcp_retransmits',
  'tcp_resets_sent',
  'tcp_resets_received',
  'tcp_bytes_sent',
  'tcp_bytes_received',
  'syscall_count',
  'syscall_errors',
  'syscall_total_ns',
  'syscall_slow_count',
  'file_opens',
  'file_open_errors',
  'runq_count',
  'runq_total_ns',
  // Rows of source `cgroup` (TF_OP_CGROUP_STATS): increases over the window.
  'cpu_usage_us',
  'cpu_throttled_us',
  'cpu_nr_throttled',
  'cpu_pressure_some_us',
  'cpu_pressure_full_us',
  'io_pressure_some_us',
  'io_pressure_full_us',
  'memory_pressure_some_us',
  'memory_pressure_full_us',
  'memory_high_events',
  'memory_max_events',
  'memory_oom_events',
  'memory_oom_kills',
  // Rows of source `dns` (src/families/dns).
  ...DNS_SUM_COLUMNS,
] as const;
export type SumColumn = (typeof SUM_COLUMNS)[number];
export const NSUM = SUM_COLUMNS.length;
export const S = Object.fromEntries(SUM_COLUMNS.map((c, i) => [c, i])) as Record<SumColumn, number>;

/** log2 histograms kept per row (32 slots each). */
export const HISTOGRAMS = ['tcp_duration', 'syscall', 'runq', DNS_HISTOGRAM] as const;
export type HistogramName = (typeof HISTOGRAMS)[number];
export const HIST_SLOTS = 32;
export const NHIST = HISTOGRAMS.length * HIST_SLOTS;
export const H: Record<HistogramName, number> = {
  tcp_duration: 0,
  syscall: HIST_SLOTS,
  runq: 2 * HIST_SLOTS,
  [DNS_HISTOGRAM]: 3 * HIST_SLOTS,
};

/** Quantile columns derived from the histograms; null when the histogram is empty. */
export const QUANTILE_COLUMNS: ReadonlyArray<{ name: string; hist: HistogramName; q: number }> = [
  { name: 'tcp_duration_p50_ns', hist: 'tcp_duration', q: 0.5 },
  { name: 'tcp_duration_p95_ns', hist: 'tcp_duration', q: 0.95 },
  { name: 'tcp_duration_p99_ns', hist: 'tcp_duration', q: 0.99 },
  { name: 'syscall_p50_ns', hist: 'syscall', q: 0.5 },
  { name: 'syscall_p95_ns', hist: 'syscall', q: 0.95 },
  { name: 'syscall_p99_ns', hist: 'syscall', q: 0.99 },
  { name: 'runq_p50_ns', hist: 'runq', q: 0.5 },
  { name: 'runq_p95_ns', hist: 'runq', q: 0.95 },
  { name: 'runq_p99_ns', hist: 'runq', q: 0.99 },
  ...DNS_QUANTILES,
];

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

export const FEATURE_SCHEMA_VERSION = '3';
