/**
 * The process family: exec and exit of every process (bpf/process.bpf.c,
 * sched_process_exec/exit). On in steady state: crash loops show here first.
 */
import { EXEC_LAYOUT, EXIT_LAYOUT, Op, Probe, fieldOffset } from '../../wire/layout.js';
import { defineFamily } from '../family.js';

const EXIT = {
  code: fieldOffset(EXIT_LAYOUT, 'exit_code'),
  signal: fieldOffset(EXIT_LAYOUT, 'exit_signal'),
};

export const PROCESS_FAMILY = defineFamily({
  name: 'process',
  probeId: Probe.PROCESS,
  object: 'process',
  ops: [
    {
      op: Op.EXEC,
      type: 'process.exec',
      layout: EXEC_LAYOUT,
      attributes: (r) => ({
        'process.pid': r.u32('pid'),
        'process.parent_pid': r.u32('ppid'),
        'process.executable.name': r.cstr('comm'),
        'process.executable.path': r.cstr('filename'),
        'process.user.id': r.u32('uid'),
        'cgroup.id': r.id('cgroup_id'),
      }),
    },
    {
      op: Op.EXIT,
      type: 'process.exit',
      layout: EXIT_LAYOUT,
      attributes: (r) => ({
        'process.pid': r.u32('pid'),
        'process.parent_pid': r.u32('ppid'),
        'process.executable.name': r.cstr('comm'),
        'process.exit.code': r.s32('exit_code'),
        'process.exit.signal': r.u32('exit_signal'),
        'process.lifetime_ns': r.u64('lifetime_ns'),
        'cgroup.id': r.id('cgroup_id'),
      }),
    },
  ],
  columns: {
    sums: ['exec_count', 'exit_count', 'failed_exits'],
    histograms: [],
    quantiles: [],
  },
  aggregate: (ix) => {
    const exec = ix.sum('exec_count');
    const exit = ix.sum('exit_count');
    const failed = ix.sum('failed_exits');
    return (op, dv, off, weight, sums, b) => {
      if (op === Op.EXEC) {
        sums[b + exec]! += weight;
        return;
      }
      sums[b + exit]! += weight;
      if (dv.getInt32(off + EXIT.code, true) !== 0 || dv.getUint32(off + EXIT.signal, true) !== 0)
        sums[b + failed]! += weight;
    };
  },
  anomalyMetrics: [
    // Crash loop: 5 failed exits (non-zero code or signal) in one window is a loop, not a bad run.
    { metric: 'failed_exits', min_delta: 5, prior_min: 5 },
    // Exits alone are normal for batch and cron-like workloads: no prior, baseline and peers only.
    { metric: 'exit_count', min_delta: 20 },
    { metric: 'exec_count', min_delta: 50 },
  ],
  rules: [
    // Crash loop: syscall errors by errno (ENOENT, EACCES, ECONNREFUSED...) say why starts fail.
    {
      name: 'crash-loop',
      metric: 'failed_exits',
      action: 'enable',
      probe: 'syscalls',
      focus: 'workload',
      ttl_seconds: 300,
    },
  ],
  description: 'exec and exit of every process (sched_process_exec/exit)',
  agent: {
    countMetric: 'exec_count',
    metricPatterns: [
      [
        /(fail|crash|error)\w*\s+(exit|process)|exit\w*\s+(with\s+)?(an?\s+)?(error|fail|non-?zero)|crash|failed_exits/,
        'failed_exits',
      ],
      [
        /\bexec|spawn|process(es)?\s+(start|launch|creat)|start\w*\s+(the\s+most\s+)?(new\s+)?process|new process|\bfork|churn|exec_count/,
        'exec_count',
      ],
      [/\bexit/, 'exit_count'],
    ],
    correlated: ['exec_count', 'exit_count', 'failed_exits'],
    likelyCause(metric, up) {
      switch (metric) {
        case 'failed_exits':
          return up.has('exec_count')
            ? 'a crash loop: processes start and exit with errors'
            : 'processes exiting with errors (failing commands or crashes)';
        case 'exec_count':
        case 'exit_count':
          return up.has('failed_exits')
            ? 'a crash or retry loop: many short-lived processes, several of them failing'
            : 'process churn: a burst of short-lived processes (a batch job, a shell or health-check loop, or a restart storm)';
        default:
          return undefined;
      }
    },
  },
  defaultEnabled: true,
  summaries: [],
});
