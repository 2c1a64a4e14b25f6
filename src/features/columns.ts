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
] as const;
export type SumColumn = (typeof SUM_COLUMNS)[number];
export const NSUM = SUM_COLUMNS.length;
export const S = Object.fromEntries(SUM_COLUMNS.map((c, i) => [c, i])) as Record<SumColumn, number>;

/** log2 histograms kept per row (32 slots each). */
export const HISTOGRAMS = ['tcp_duration', 'syscall', 'runq'] as const;
export type HistogramName = (typeof HISTOGRAMS)[number];
export const HIST_SLOTS = 32;
export const NHIST = HISTOGRAMS.length * HIST_SLOTS;
export const H: Record<HistogramName, number> = {
  tcp_duration: 0,
  syscall: HIST_SLOTS,
  runq: 2 * HIST_SLOTS,
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
];

export const FEATURE_SCHEMA_VERSION = '1';
