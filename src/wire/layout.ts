/**
 * The TypeScript view of `bpf/events.h`. Every size, offset and constant comes
 * from layout.generated.ts, which scripts/gen-layouts.mjs generates from the
 * BTF of the compiled objects (`npm run gen:layouts`; `npm test` fails when it
 * is out of date). This file only names things and groups them.
 */
import { TF_DEFINES as D, TF_ENUMS, TF_STRUCTS, type TfStructName } from './layout.generated.js';
export type { ProbeName, SourceName } from '../families/registry.js';

/** `enum NAME` with its common prefix cut: { TF_OP_EXEC: 1 } -> { EXEC: 1 }. */
type Unprefixed<E, P extends string> = {
  readonly [K in keyof E as K extends `${P}${infer R}` ? R : never]: E[K];
};
function unprefixed<E extends Record<string, number>, P extends string>(
  e: E,
  prefix: P,
): Unprefixed<E, P> {
  return Object.fromEntries(
    Object.entries(e).map(([k, v]) => [k.slice(prefix.length), v]),
  ) as Unprefixed<E, P>;
}

export const EVENT_HEADER_SIZE = TF_STRUCTS.tf_event_header.size;
export const COMM_LEN = D.TF_COMM_LEN;
export const FILENAME_LEN = D.TF_FILENAME_LEN;

/** Op codes (append-only), `enum tf_op`. */
export const Op = unprefixed(TF_ENUMS.tf_op, 'TF_OP_');

export type OpCode = (typeof Op)[keyof typeof Op];

/** Probe ids, `enum tf_probe`. CGROUP is user space only: the cgroup v2 files the node agent reads. */
const { MAX: PROBE_ENUM_MAX, ...ProbeIds } = unprefixed(TF_ENUMS.tf_probe, 'TF_PROBE_');
export const Probe = ProbeIds;
export const PROBE_MAX = PROBE_ENUM_MAX;

/** Drop reasons, `enum tf_drop_reason`. */
const { REASON_MAX: DROP_ENUM_MAX, ...DropReasons } = unprefixed(
  TF_ENUMS.tf_drop_reason,
  'TF_DROP_',
);
export const DropReason = DropReasons;
export const DROP_REASON_MAX = DROP_ENUM_MAX;
export const DROP_REASON_NAMES = ['ringbuf_full', 'filtered', 'sampled_out', 'map_full'] as const;
export const HIST_SLOTS = D.TF_HIST_SLOTS;
export const PATH_LEN = D.TF_PATH_LEN;
export const PATH_PREFIX_LEN = D.TF_PATH_PREFIX_LEN;
/** `TF_PATH_COMPONENTS`: root-most components a resolved file.open path keeps. */
export const PATH_COMPONENTS = D.TF_PATH_COMPONENTS;
/** `TF_PATH_WALK_MAX`: dentries and mount crossings the file probe walks to reach the root. */
export const PATH_WALK_MAX = D.TF_PATH_WALK_MAX;
/** `TF_FOCUS_MAX`: entries of a probe's tf_focus map (cgroups focused at once). */
export const FOCUS_MAX = D.TF_FOCUS_MAX;
/** `TF_SET_ID_MAX`: entries of tf_set_cgroup, tf_set_pid, tf_set_port (allow and deny together). */
export const SET_ID_MAX = D.TF_SET_ID_MAX;
/** `TF_SET_STR_MAX`: entries of tf_set_comm, tf_set_path (allow and deny together). */
export const SET_STR_MAX = D.TF_SET_STR_MAX;
/** Filter dimension -> its kernel set map and that map's entries. */
export const FILTER_SETS = {
  cgroup: { map: 'tf_set_cgroup', maxEntries: SET_ID_MAX },
  pid: { map: 'tf_set_pid', maxEntries: SET_ID_MAX },
  port: { map: 'tf_set_port', maxEntries: SET_ID_MAX },
  comm: { map: 'tf_set_comm', maxEntries: SET_STR_MAX },
  path_prefix: { map: 'tf_set_path', maxEntries: SET_STR_MAX },
} as const;
/** `TF_SK_*` slots of the tcp probe's tf_sk_lost counters (sockets whose close goes unreported). */
export const SK_LOST_NAMES = ['socket_evicted', 'socket_claim_lost'] as const;

/** `TF_FLAG_*` bits of the event header. */
export const Flag = {
  TRUNCATED: D.TF_FLAG_TRUNCATED,
  /** Collected under a per-cgroup focus. */
  FOCUS: D.TF_FLAG_FOCUS,
  /** file.open: the path is the caller's string (failed open), not the file the kernel opened. */
  PATH_UNVERIFIED: D.TF_FLAG_PATH_UNVERIFIED,
  /** file.open: the path walk found no mount namespace root; the path is relative, not judged by filters. */
  PATH_PARTIAL: D.TF_FLAG_PATH_PARTIAL,
} as const;

export type FieldKind = 'u8' | 'u16' | 'u32' | 'u64' | 's8' | 's16' | 's32' | 's64' | 'char';

export interface FieldLayout {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
  readonly kind: FieldKind;
  /** Elements: 1 for a scalar, N for an array (a nested struct counts bytes). */
  readonly count: number;
}

export interface RecordLayout {
  /** C struct name in bpf/events.h. */
  readonly struct: string;
  readonly op: number;
  readonly size: number;
  readonly fields: readonly FieldLayout[];
}

/** A struct of events.h as a RecordLayout (op 0: not a record of its own). */
export function layoutOf(struct: TfStructName, op = 0): RecordLayout {
  const s = TF_STRUCTS[struct];
  return { struct, op, size: s.size, fields: s.fields };
}

export const FRAME_HEADER_LAYOUT: RecordLayout = layoutOf('tf_frame_header');

export const HEADER_LAYOUT: RecordLayout = layoutOf('tf_event_header', 0);

export const EXEC_LAYOUT: RecordLayout = layoutOf('tf_exec_event', Op.EXEC);

export const EXIT_LAYOUT: RecordLayout = layoutOf('tf_exit_event', Op.EXIT);

/** struct tf_tcp_event: one layout for ops 3..9. */
export const TCP_LAYOUT: RecordLayout = layoutOf('tf_tcp_event', Op.TCP_CONNECT);

export const SYSCALL_SUMMARY_LAYOUT: RecordLayout = layoutOf(
  'tf_syscall_summary',
  Op.SYSCALL_SUMMARY,
);

export const SYSCALL_ERRNO_LAYOUT: RecordLayout = layoutOf('tf_syscall_errno', Op.SYSCALL_ERRNO);

export const SYSCALL_SLOW_LAYOUT: RecordLayout = layoutOf('tf_syscall_slow', Op.SYSCALL_SLOW);

export const FILE_OPEN_LAYOUT: RecordLayout = layoutOf('tf_file_open', Op.FILE_OPEN);

export const RUNQ_SUMMARY_LAYOUT: RecordLayout = layoutOf('tf_runq_summary', Op.RUNQ_SUMMARY);

/** struct tf_cgroup_info: fixed part; the path follows (variable size). */
export const CGROUP_INFO_LAYOUT: RecordLayout = layoutOf('tf_cgroup_info', Op.CGROUP_INFO);

/** struct tf_cgroup_stats: a cgroup's pressure, cpu.stat and memory.events increases over an interval. */
/** The counters of struct tf_cgroup_stats, in struct order (after cgroup_id and interval_ns). */
export const CGROUP_STAT_FIELDS = [
  'cpu_usage_us',
  'cpu_throttled_us',
  'cpu_nr_throttled',
  'cpu_some_us',
  'cpu_full_us',
  'io_some_us',
  'io_full_us',
  'memory_some_us',
  'memory_full_us',
  'memory_high',
  'memory_max',
  'memory_oom',
  'memory_oom_kill',
] as const;

export const CGROUP_STATS_LAYOUT: RecordLayout = layoutOf('tf_cgroup_stats', Op.CGROUP_STATS);

/** struct tf_probe_stats: one probe's emitted and lost records and its sampling over an interval. */
export const PROBE_STATS_LAYOUT: RecordLayout = layoutOf('tf_probe_stats', Op.PROBE_STATS);

/** Kernel map value struct tf_focus: a per-cgroup focus (key: cgroup id). */
export const FOCUS_LAYOUT: RecordLayout = layoutOf('tf_focus', 0);

/** Kernel map value struct tf_hist_value (syscall_stats, runq_stats). */
export const HIST_VALUE_LAYOUT: RecordLayout = layoutOf('tf_hist_value', 0);

/** Kernel map key struct tf_errno_key (syscall_errno). */
export const ERRNO_KEY_LAYOUT: RecordLayout = layoutOf('tf_errno_key', 0);

/** Kernel map key struct tf_syscall_key (syscall_stats). */
export const SYSCALL_KEY_LAYOUT: RecordLayout = layoutOf('tf_syscall_key', 0);

/** struct tf_probe_config, the live control entry. */
export const PROBE_CONFIG_LAYOUT: RecordLayout = layoutOf('tf_probe_config', 0);

/**
 * Ops of the frame itself, not of a family: a cgroup's name (TF_OP_CGROUP_INFO)
 * and a probe's counters (TF_OP_PROBE_STATS, about the probe named in its body).
 * Every other op belongs to one family (src/families/registry.ts).
 */
export const CORE_OP_TYPES: ReadonlyMap<number, string> = new Map([
  [Op.CGROUP_INFO, 'cgroup.info'],
  [Op.PROBE_STATS, 'probe.stats'],
]);

/** The structs of events.h that belong to no family, checked against BTF with the families' own. */
export const CORE_LAYOUTS = {
  HEADER: HEADER_LAYOUT,
  HIST_VALUE: HIST_VALUE_LAYOUT,
  PROBE_CONFIG: PROBE_CONFIG_LAYOUT,
  CGROUP_INFO: CGROUP_INFO_LAYOUT,
  PROBE_STATS: PROBE_STATS_LAYOUT,
  FOCUS: FOCUS_LAYOUT,
} as const;

/** Filter mask bits (TF_FILTER_*). */
export const FilterBit = {
  ALLOW_CGROUP: D.TF_FILTER_ALLOW_CGROUP,
  ALLOW_PID: D.TF_FILTER_ALLOW_PID,
  ALLOW_PORT: D.TF_FILTER_ALLOW_PORT,
  ALLOW_COMM: D.TF_FILTER_ALLOW_COMM,
  ALLOW_PATH: D.TF_FILTER_ALLOW_PATH,
  DENY_CGROUP: D.TF_FILTER_DENY_CGROUP,
  DENY_PID: D.TF_FILTER_DENY_PID,
  DENY_PORT: D.TF_FILTER_DENY_PORT,
  DENY_COMM: D.TF_FILTER_DENY_COMM,
  DENY_PATH: D.TF_FILTER_DENY_PATH,
} as const;
export const SET_ALLOW = D.TF_SET_ALLOW;
export const SET_DENY = D.TF_SET_DENY;

export function fieldOffset(layout: RecordLayout, name: string): number {
  const f = layout.fields.find((x) => x.name === name);
  if (!f) throw new Error(`no field ${name} in ${layout.struct}`);
  return f.offset;
}
