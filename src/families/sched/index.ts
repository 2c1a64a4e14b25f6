/**
 * The sched family: run-queue latency per cgroup as log2 histograms
 * aggregated in a kernel map and flushed as summaries every interval
 * (bpf/sched.bpf.c). Off in steady state; the cpu-hog rule turns it on.
 */
import {
  HIST_SLOTS,
  HIST_VALUE_LAYOUT,
  Op,
  Probe,
  RUNQ_SUMMARY_LAYOUT,
  fieldOffset,
} from '../../wire/layout.js';
import { histogramQuantile } from '../../wire/histogram.js';
import { addHistogram, defineFamily, percentiles, u64 } from '../family.js';

const RUNQ = {
  count: fieldOffset(RUNQ_SUMMARY_LAYOUT, 'count'),
  total: fieldOffset(RUNQ_SUMMARY_LAYOUT, 'total_ns'),
  hist: fieldOffset(RUNQ_SUMMARY_LAYOUT, 'hist'),
};

export const SCHED_FAMILY = defineFamily({
  name: 'sched',
  probeId: Probe.SCHED,
  object: 'sched',
  ops: [
    {
      op: Op.RUNQ_SUMMARY,
      type: 'sched.runq_summary',
      layout: RUNQ_SUMMARY_LAYOUT,
      attributes: (r) => {
        const hist = r.hist('hist');
        return {
          'cgroup.id': r.id('cgroup_id'),
          'summary.interval_ns': r.u64('interval_ns'),
          'sched.runq.count': r.u64('count'),
          'sched.runq.total_ns': r.u64('total_ns'),
          'sched.runq.p50_ns': histogramQuantile(hist, 0.5),
          'sched.runq.p99_ns': histogramQuantile(hist, 0.99),
          'sched.runq.histogram_log2_ns': JSON.stringify(hist),
        };
      },
    },
  ],
  columns: {
    sums: ['runq_count', 'runq_total_ns'],
    histograms: ['runq'],
    quantiles: percentiles('runq', 'runq'),
  },
  aggregate: (ix) => {
    const count = ix.sum('runq_count');
    const total = ix.sum('runq_total_ns');
    const h = ix.hist('runq');
    return (_op, dv, off, _weight, sums, b, hists, hb) => {
      // Summaries are exact counts from the kernel map, not sampled records.
      sums[b + count]! += u64(dv, off + RUNQ.count);
      sums[b + total]! += u64(dv, off + RUNQ.total);
      addHistogram(hists, hb + h, dv, off + RUNQ.hist, HIST_SLOTS);
    };
  },
  anomalyMetrics: [{ metric: 'runq_p99_ns', min_delta: 1_000_000 }],
  rules: [],
  description: 'run-queue latency per cgroup as log2 histograms',
  agent: {
    countMetric: 'runq_count',
    metricPatterns: [
      [/run.?queue|\brunq|schedul|cpu\s+(wait|contention|latency|starv|pressure)/, 'runq_p99_ns'],
    ],
    correlated: ['runq_p99_ns'],
    likelyCause: (metric) =>
      metric === 'runq_p99_ns'
        ? 'CPU saturation or throttling: runnable threads wait for a CPU (check CPU limits and noisy neighbours)'
        : undefined,
  },
  defaultEnabled: false,
  summaries: [
    {
      // cgroup v2 id -> histogram (error_count stays 0 there).
      map: 'runq_stats',
      layout: RUNQ_SUMMARY_LAYOUT,
      key: null,
      value: HIST_VALUE_LAYOUT,
      fields: {
        cgroup_id: 'key',
        interval_ns: 'interval',
        count: 'value.count',
        total_ns: 'value.total_ns',
        hist: 'value.hist',
      },
    },
  ],
});
