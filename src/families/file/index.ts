/**
 * The file family: file opens with the path the kernel opened, flags and
 * result (bpf/file.bpf.c; docs/file-probe.md says what it sees and what it
 * cannot). Off in steady state.
 */
import { FILE_OPEN_LAYOUT, Flag, Op, Probe, fieldOffset } from '../../wire/layout.js';
import { defineFamily } from '../family.js';

/** Offset of file.open's result (fd or -errno). */
const FILE_RET = fieldOffset(FILE_OPEN_LAYOUT, 'ret');

export const FILE_FAMILY = defineFamily({
  name: 'file',
  probeId: Probe.FILE,
  object: 'file',
  ops: [
    {
      op: Op.FILE_OPEN,
      type: 'file.open',
      layout: FILE_OPEN_LAYOUT,
      attributes: (r, flags) => ({
        'process.pid': r.u32('pid'),
        'file.open.flags': r.s32('flags'),
        'file.open.result': r.s32('ret'),
        'cgroup.id': r.id('cgroup_id'),
        'process.executable.name': r.cstr('comm'),
        'file.path': r.cstr('path'),
        // Failed opens carry the caller's string; successful ones the file the kernel opened.
        'file.path.verified': (flags & Flag.PATH_UNVERIFIED) === 0,
        'file.path.partial': (flags & Flag.PATH_PARTIAL) !== 0,
      }),
    },
  ],
  columns: {
    sums: ['file_opens', 'file_open_errors'],
    histograms: [],
    quantiles: [],
  },
  aggregate: (ix) => {
    const opens = ix.sum('file_opens');
    const errors = ix.sum('file_open_errors');
    return (_op, dv, off, weight, sums, b) => {
      sums[b + opens]! += weight;
      if (dv.getInt32(off + FILE_RET, true) < 0) sums[b + errors]! += weight;
    };
  },
  anomalyMetrics: [],
  rules: [],
  description: 'file opens with path, flags and result',
  agent: {
    countMetric: 'file_opens',
    metricPatterns: [
      [/file\w*\s+(open\s+)?(error|fail)|(fail|error)\w*\s+(file|open)/, 'file_open_errors'],
      [/\bfiles?\b|\bopens?\b/, 'file_opens'],
    ],
    correlated: ['file_open_errors'],
  },
  defaultEnabled: false,
  summaries: [],
  optionalPrograms: [
    'handle_open_enter',
    'handle_open_exit',
    'handle_openat2_enter',
    'handle_openat2_exit',
  ],
});
