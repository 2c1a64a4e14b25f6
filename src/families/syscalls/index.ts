/**
 * The syscalls family: per (cgroup, syscall) latency histograms and error
 * counts aggregated in kernel maps and flushed as summaries every interval,
 * errors by errno, and an optional stream of slow syscalls (bpf/syscalls.bpf.c).
 * Off in steady state; rules turn it on for a workload.
 */
import {
  ERRNO_KEY_LAYOUT,
  HIST_SLOTS,
  HIST_VALUE_LAYOUT,
  Op,
  Probe,
  SYSCALL_ERRNO_LAYOUT,
  SYSCALL_KEY_LAYOUT,
  SYSCALL_SLOW_LAYOUT,
  SYSCALL_SUMMARY_LAYOUT,
  fieldOffset,
} from '../../wire/layout.js';
import { histogramQuantile } from '../../wire/histogram.js';
import { addHistogram, defineFamily, percentiles, u64 } from '../family.js';

const SYS = {
  count: fieldOffset(SYSCALL_SUMMARY_LAYOUT, 'count'),
  errors: fieldOffset(SYSCALL_SUMMARY_LAYOUT, 'error_count'),
  total: fieldOffset(SYSCALL_SUMMARY_LAYOUT, 'total_ns'),
  hist: fieldOffset(SYSCALL_SUMMARY_LAYOUT, 'hist'),
};

export const SYSCALLS_FAMILY = defineFamily({
  name: 'syscalls',
  probeId: Probe.SYSCALLS,
  object: 'syscalls',
  ops: [
    {
      op: Op.SYSCALL_SUMMARY,
      type: 'syscall.summary',
      layout: SYSCALL_SUMMARY_LAYOUT,
      attributes: (r) => {
        const hist = r.hist('hist');
        return {
          'cgroup.id': r.id('cgroup_id'),
          'syscall.nr': r.u32('syscall_nr'),
          'summary.interval_ns': r.u64('interval_ns'),
          'syscall.count': r.u64('count'),
          'syscall.error_count': r.u64('error_count'),
          'syscall.total_ns': r.u64('total_ns'),
          'syscall.p50_ns': histogramQuantile(hist, 0.5),
          'syscall.p99_ns': histogramQuantile(hist, 0.99),
          'syscall.histogram_log2_ns': JSON.stringify(hist),
        };
      },
    },
    {
      op: Op.SYSCALL_SLOW,
      type: 'syscall.slow',
      layout: SYSCALL_SLOW_LAYOUT,
      attributes: (r) => ({
        'process.pid': r.u32('pid'),
        'thread.id': r.u32('tid'),
        'cgroup.id': r.id('cgroup_id'),
        'syscall.nr': r.u32('syscall_nr'),
        'syscall.return': r.s64('ret'),
        'syscall.duration_ns': r.u64('duration_ns'),
        'process.executable.name': r.cstr('comm'),
      }),
    },
    {
      op: Op.SYSCALL_ERRNO,
      type: 'syscall.errno',
      layout: SYSCALL_ERRNO_LAYOUT,
      attributes: (r) => ({
        'cgroup.id': r.id('cgroup_id'),
        'syscall.nr': r.u32('syscall_nr'),
        'error.errno': r.u32('err'),
        'syscall.error_count': r.u64('count'),
        'summary.interval_ns': r.u64('interval_ns'),
      }),
    },
  ],
  layouts: [SYSCALL_KEY_LAYOUT, ERRNO_KEY_LAYOUT],
  columns: {
    sums: ['syscall_count', 'syscall_errors', 'syscall_total_ns', 'syscall_slow_count'],
    histograms: ['syscall'],
    quantiles: percentiles('syscall', 'syscall'),
  },
  aggregate: (ix) => {
    const count = ix.sum('syscall_count');
    const errors = ix.sum('syscall_errors');
    const total = ix.sum('syscall_total_ns');
    const slow = ix.sum('syscall_slow_count');
    const h = ix.hist('syscall');
    return (op, dv, off, weight, sums, b, hists, hb) => {
      if (op === Op.SYSCALL_SLOW) {
        sums[b + slow]! += weight;
        return;
      }
      if (op !== Op.SYSCALL_SUMMARY) return; // errno records: already in the summary's error_count
      // Summaries are exact counts from the kernel maps, not sampled records.
      sums[b + count]! += u64(dv, off + SYS.count);
      sums[b + errors]! += u64(dv, off + SYS.errors);
      sums[b + total]! += u64(dv, off + SYS.total);
      addHistogram(hists, hb + h, dv, off + SYS.hist, HIST_SLOTS);
    };
  },
  anomalyMetrics: [
    { metric: 'syscall_errors', min_delta: 50 },
    { metric: 'syscall_p99_ns', min_delta: 1_000_000 },
  ],
  rules: [],
  description: 'per (cgroup, syscall) latency histograms and errors; optional slow-syscall stream',
  agent: {
    countMetric: 'syscall_count',
    metricPatterns: [
      [/syscall\w*\s+(error|fail)|(error|fail)\w*\s+syscall|errno/, 'syscall_errors'],
      [/slow\s+syscall|syscall\w*\s+(latency|slow|p99|p95|duration|time)/, 'syscall_p99_ns'],
      [/syscall/, 'syscall_count'],
    ],
    correlated: ['syscall_errors', 'syscall_p99_ns'],
    likelyCause(metric, up) {
      switch (metric) {
        case 'syscall_p99_ns':
          return up.has('runq_p99_ns')
            ? 'CPU saturation: syscalls slowed while threads waited for a CPU'
            : 'slow syscalls: blocking I/O, lock contention, or a slow filesystem or network call';
        case 'syscall_errors':
          return 'an operation failing repeatedly (for example a retry loop on a missing file or a refused connection)';
        default:
          return undefined;
      }
    },
  },
  defaultEnabled: false,
  summaries: [
    {
      map: 'syscall_stats',
      layout: SYSCALL_SUMMARY_LAYOUT,
      key: SYSCALL_KEY_LAYOUT,
      value: HIST_VALUE_LAYOUT,
      fields: {
        cgroup_id: 'key.cgroup_id',
        syscall_nr: 'key.syscall_nr',
        interval_ns: 'interval',
        count: 'value.count',
        error_count: 'value.error_count',
        total_ns: 'value.total_ns',
        hist: 'value.hist',
      },
    },
    {
      map: 'syscall_errno',
      layout: SYSCALL_ERRNO_LAYOUT,
      key: ERRNO_KEY_LAYOUT,
      value: null,
      fields: {
        cgroup_id: 'key.cgroup_id',
        syscall_nr: 'key.syscall_nr',
        err: 'key.err',
        count: 'value',
        interval_ns: 'interval',
      },
    },
  ],
});
