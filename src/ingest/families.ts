/**
 * The probe families tracefeed ships and their defaults. Each is one object,
 * bpf/.output/<name>.bpf.o; every program in it is attached while enabled.
 */
import { Probe, type ProbeName } from './layout.js';
import type { NativeBpfObject } from './native.js';
import { DNS_FAMILY } from '../families/dns/index.js';

export interface FamilySpec {
  name: ProbeName;
  probeId: number;
  /** Kernel aggregation maps flushed into summary records every interval. */
  summaries: ReadonlyArray<{ map: string; kind: 'syscall' | 'errno' | 'runq' }>;
  /** Programs that may not attach on every kernel or architecture (their absence is logged, not fatal). */
  optionalPrograms?: readonly string[];
  /**
   * A per-CPU u64 array of the family's own losses, reported with its drops:
   * names by slot ('' skips a slot that counts no loss).
   */
  lossCounters?: { map: string; names: readonly string[] };
  /**
   * Records the family builds in user space every summary interval from its
   * maps (dns: timed-out queries), stamped `ktime` (CLOCK_MONOTONIC now).
   */
  flush?: (obj: NativeBpfObject, ktime: bigint) => { records: Buffer; count: number };
  /** Its programs attach to the cgroup v2 root (cgroup_skb), not by their section. */
  attachToCgroupRoot?: boolean;
  /** Enabled when the agent starts with no other instruction. */
  defaultEnabled: boolean;
  description: string;
}

export const FAMILIES: readonly FamilySpec[] = [
  {
    name: 'process',
    probeId: Probe.PROCESS,
    summaries: [],
    defaultEnabled: true,
    description: 'exec and exit of every process (sched_process_exec/exit)',
  },
  {
    name: 'tcp',
    probeId: Probe.TCP,
    summaries: [],
    defaultEnabled: true,
    description: 'TCP connect, accept, close with bytes and duration; retransmits and resets',
  },
  {
    name: 'syscalls',
    probeId: Probe.SYSCALLS,
    summaries: [
      { map: 'syscall_stats', kind: 'syscall' },
      { map: 'syscall_errno', kind: 'errno' },
    ],
    defaultEnabled: false,
    description:
      'per (cgroup, syscall) latency histograms and errors; optional slow-syscall stream',
  },
  {
    name: 'file',
    probeId: Probe.FILE,
    optionalPrograms: [
      'handle_open_enter',
      'handle_open_exit',
      'handle_openat2_enter',
      'handle_openat2_exit',
    ],
    summaries: [],
    defaultEnabled: false,
    description: 'file opens with path, flags and result',
  },
  {
    name: 'sched',
    probeId: Probe.SCHED,
    summaries: [{ map: 'runq_stats', kind: 'runq' }],
    defaultEnabled: false,
    description: 'run-queue latency per cgroup as log2 histograms',
  },
  DNS_FAMILY,
];

export function familySpec(name: string): FamilySpec | undefined {
  return FAMILIES.find((f) => f.name === name);
}
