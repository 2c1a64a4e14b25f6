/**
 * The cgroup source: each workload's pressure (PSI), cpu.stat and
 * memory.events increases over an interval, read by the node agent from the
 * cgroup v2 files (src/ingest/cgroup-stats.ts) and sent as TF_OP_CGROUP_STATS
 * records. No BPF object: always on, and no ring to lose records in.
 */
import { CGROUP_STATS_LAYOUT, Op, Probe, fieldOffset } from '../../wire/layout.js';
import { defineFamily, u64 } from '../family.js';

/** Record field -> sum column, in column order. */
const STAT_COLUMNS = [
  ['cpu_usage_us', 'cpu_usage_us'],
  ['cpu_throttled_us', 'cpu_throttled_us'],
  ['cpu_nr_throttled', 'cpu_nr_throttled'],
  ['cpu_some_us', 'cpu_pressure_some_us'],
  ['cpu_full_us', 'cpu_pressure_full_us'],
  ['io_some_us', 'io_pressure_some_us'],
  ['io_full_us', 'io_pressure_full_us'],
  ['memory_some_us', 'memory_pressure_some_us'],
  ['memory_full_us', 'memory_pressure_full_us'],
  ['memory_high', 'memory_high_events'],
  ['memory_max', 'memory_max_events'],
  ['memory_oom', 'memory_oom_events'],
  ['memory_oom_kill', 'memory_oom_kills'],
] as const;

/** TF_OP_CGROUP_STATS counters (after cgroup_id), as `cgroup.<field>` attributes. */
const COUNTERS = CGROUP_STATS_LAYOUT.fields
  .filter((f) => f.name !== 'hdr' && f.name !== 'cgroup_id')
  .map((f) => f.name);

export const CGROUP_FAMILY = defineFamily({
  name: 'cgroup',
  probeId: Probe.CGROUP,
  object: null,
  ops: [
    {
      op: Op.CGROUP_STATS,
      type: 'cgroup.stats',
      layout: CGROUP_STATS_LAYOUT,
      attributes: (r) => {
        const attributes: Record<string, string | number> = { 'cgroup.id': r.id('cgroup_id') };
        for (const name of COUNTERS) attributes[`cgroup.${name}`] = r.u64(name);
        return attributes;
      },
    },
  ],
  columns: {
    sums: STAT_COLUMNS.map(([, column]) => column),
    histograms: [],
    quantiles: [],
  },
  aggregate: (ix) => {
    const fields = STAT_COLUMNS.map(
      ([field, column]) => [fieldOffset(CGROUP_STATS_LAYOUT, field), ix.sum(column)] as const,
    );
    // Increases read from files: not sampled, no weight.
    return (_op, dv, off, _weight, sums, b) => {
      for (const [at, col] of fields) sums[b + col]! += u64(dv, off + at);
    };
  },
  anomalyMetrics: [
    // CPU hog. Throttled 20 % of the window: the workload wants far more than its cpu.max.
    { metric: 'cpu_throttled_us', min_delta: 0.05, share_of_window: true, prior_min: 0.2 },
    // Runnable but waiting half the window: starved. Lower would fire on every busy node.
    { metric: 'cpu_pressure_some_us', min_delta: 0.05, share_of_window: true, prior_min: 0.5 },
    // Usage is normal for batch jobs: no prior; a jump of a quarter core over the baseline counts.
    { metric: 'cpu_usage_us', min_delta: 0.25, share_of_window: true },
    // Synchronous-write storm: stalled on IO 10 % of the window (a healthy service stalls < 1 %).
    { metric: 'io_pressure_some_us', min_delta: 0.02, share_of_window: true, prior_min: 0.1 },
    // Memory pressure: stalled on reclaim 10 % of the window.
    { metric: 'memory_pressure_some_us', min_delta: 0.02, share_of_window: true, prior_min: 0.1 },
    // Any OOM kill is an incident: a new series fires on its first kill (the prior), an
    // established one on one kill over its baseline (0.25 x the default threshold of 4).
    { metric: 'memory_oom_kills', min_delta: 0.25, prior_min: 1 },
  ],
  rules: [
    // CPU hog: run-queue latency of the workload (who waits, how long) from in-kernel histograms.
    {
      name: 'cpu-hog',
      metric: ['cpu_throttled_us', 'cpu_pressure_some_us', 'cpu_usage_us'],
      action: 'enable',
      probe: 'sched',
      focus: 'workload',
      ttl_seconds: 120,
    },
    // Synchronous-write storm: which syscalls stall (fsync, write, ...) and for how long.
    {
      name: 'sync-write-storm',
      metric: 'io_pressure_some_us',
      action: 'enable',
      probe: 'syscalls',
      slow_ms: 5,
      focus: 'workload',
      ttl_seconds: 300,
    },
    // Memory pressure and OOM kills: syscalls stalled in reclaim, ENOMEM by errno (the kills
    // themselves are already in the process stream, a floor).
    {
      name: 'memory-pressure',
      metric: ['memory_pressure_some_us', 'memory_oom_kills'],
      action: 'enable',
      probe: 'syscalls',
      slow_ms: 10,
      focus: 'workload',
      ttl_seconds: 300,
    },
  ],
  description:
    'cgroup v2 pressure (cpu, io, memory), cpu.stat throttling and memory.events of every workload, read from files',
  agent: {
    likelyCause(metric) {
      switch (metric) {
        case 'cpu_throttled_us':
        case 'cpu_pressure_some_us':
        case 'cpu_usage_us':
          return 'CPU saturation: the workload runs into its CPU quota or waits for a CPU (a busy loop, a hot path, or a quota set too low)';
        case 'io_pressure_some_us':
          return 'storage stalls: tasks wait on I/O (synchronous writes, fsync storms, or a slow disk)';
        case 'memory_pressure_some_us':
        case 'memory_oom_kills':
          return 'memory pressure: the workload is at its memory limit; reclaim stalls it and the kernel kills its processes (OOM)';
        default:
          return undefined;
      }
    },
  },
  defaultEnabled: true,
  summaries: [],
});
