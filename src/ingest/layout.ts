/**
 * TypeScript mirror of `bpf/events.h`. Offsets and sizes here are checked
 * against the BTF of the compiled objects by test/ingest/layout.test.ts:
 * a drift between the header and this file fails the suite.
 */

export const EVENT_HEADER_SIZE = 24;
export const COMM_LEN = 16;
export const FILENAME_LEN = 256;

/** Op codes (append-only), `enum tf_op`. */
export const Op = {
  EXEC: 1,
  EXIT: 2,
  TCP_CONNECT: 3,
  TCP_ACCEPT: 4,
  TCP_CLOSE: 5,
  TCP_CONNECT_FAIL: 6,
  TCP_RETRANSMIT: 7,
  TCP_RESET_SENT: 8,
  TCP_RESET_RECV: 9,
  SYSCALL_SUMMARY: 10,
  SYSCALL_SLOW: 11,
  FILE_OPEN: 12,
  RUNQ_SUMMARY: 13,
  SYSCALL_ERRNO: 14,
  CGROUP_INFO: 15,
  CGROUP_STATS: 16,
  PROBE_STATS: 17,
} as const;

/** Event type name of each op, as decoders and features name it. */
export const OP_TYPE: ReadonlyMap<number, string> = new Map([
  [1, 'process.exec'],
  [2, 'process.exit'],
  [3, 'tcp.connect'],
  [4, 'tcp.accept'],
  [5, 'tcp.close'],
  [6, 'tcp.connect_fail'],
  [7, 'tcp.retransmit'],
  [8, 'tcp.reset_sent'],
  [9, 'tcp.reset_received'],
  [10, 'syscall.summary'],
  [11, 'syscall.slow'],
  [12, 'file.open'],
  [13, 'sched.runq_summary'],
  [14, 'syscall.errno'],
  [15, 'cgroup.info'],
  [16, 'cgroup.stats'],
  [17, 'probe.stats'],
]);
export type OpCode = (typeof Op)[keyof typeof Op];

/** Probe ids, `enum tf_probe`. */
export const Probe = {
  PROCESS: 0,
  TCP: 1,
  SYSCALLS: 2,
  FILE: 3,
  SCHED: 4,
  /** User space only: the cgroup v2 files the node agent reads (no program, not a probe family). */
  CGROUP: 5,
} as const;
export type ProbeName = 'process' | 'tcp' | 'syscalls' | 'file' | 'sched';
/** The probe families (each a BPF object), indexed by probe id. */
export const PROBE_NAMES: readonly ProbeName[] = ['process', 'tcp', 'syscalls', 'file', 'sched'];
/** Where a feature row's records come from: the probe families, then user-space sources. Indexed by `enum tf_probe`. */
export type SourceName = ProbeName | 'cgroup';
export const SOURCE_NAMES: readonly SourceName[] = [...PROBE_NAMES, 'cgroup'];
export const PROBE_MAX = 8;

/** Drop reasons, `enum tf_drop_reason`. */
export const DropReason = {
  RINGBUF_FULL: 0,
  FILTERED: 1,
  SAMPLED: 2,
} as const;
export const DROP_REASON_MAX = 4;
export const DROP_REASON_NAMES = ['ringbuf_full', 'filtered', 'sampled_out', 'map_full'] as const;
export const HIST_SLOTS = 32;
export const PATH_LEN = 256;
export const PATH_PREFIX_LEN = 64;
/** `TF_PATH_COMPONENTS`: root-most components a resolved file.open path keeps. */
export const PATH_COMPONENTS = 64;
/** `TF_PATH_WALK_MAX`: dentries and mount crossings the file probe walks to reach the root. */
export const PATH_WALK_MAX = 256;
/** `TF_FOCUS_MAX`: entries of a probe's tf_focus map (cgroups focused at once). */
export const FOCUS_MAX = 256;
/** `TF_SET_ID_MAX`: entries of tf_set_cgroup, tf_set_pid, tf_set_port (allow and deny together). */
export const SET_ID_MAX = 1024;
/** `TF_SET_STR_MAX`: entries of tf_set_comm, tf_set_path (allow and deny together). */
export const SET_STR_MAX = 256;
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
  TRUNCATED: 0x01,
  /** Collected under a per-cgroup focus. */
  FOCUS: 0x02,
  /** file.open: the path is the caller's string (failed open), not the file the kernel opened. */
  PATH_UNVERIFIED: 0x04,
  /** file.open: the path walk found no mount namespace root; the path is relative, not judged by filters. */
  PATH_PARTIAL: 0x08,
} as const;

export type FieldKind = 'u8' | 'u16' | 'u32' | 's32' | 'u64' | 'char';

export interface FieldLayout {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
  readonly kind: FieldKind;
}

export interface RecordLayout {
  /** C struct name in bpf/events.h. */
  readonly struct: string;
  readonly op: number;
  readonly size: number;
  readonly fields: readonly FieldLayout[];
}

export const HEADER_LAYOUT: RecordLayout = {
  struct: 'tf_event_header',
  op: 0,
  size: EVENT_HEADER_SIZE,
  fields: [
    { name: 'op', offset: 0, size: 1, kind: 'u8' },
    { name: 'flags', offset: 1, size: 1, kind: 'u8' },
    { name: 'pad', offset: 2, size: 2, kind: 'u16' },
    { name: 'size', offset: 4, size: 4, kind: 'u32' },
    { name: 'ktime_ns', offset: 8, size: 8, kind: 'u64' },
    { name: 'generation', offset: 16, size: 4, kind: 'u32' },
    { name: 'sample_weight', offset: 20, size: 4, kind: 'u32' },
  ],
};

export const EXEC_LAYOUT: RecordLayout = {
  struct: 'tf_exec_event',
  op: Op.EXEC,
  size: 320,
  fields: [
    { name: 'hdr', offset: 0, size: 24, kind: 'u8' },
    { name: 'pid', offset: 24, size: 4, kind: 'u32' },
    { name: 'ppid', offset: 28, size: 4, kind: 'u32' },
    { name: 'uid', offset: 32, size: 4, kind: 'u32' },
    { name: 'pad', offset: 36, size: 4, kind: 'u32' },
    { name: 'cgroup_id', offset: 40, size: 8, kind: 'u64' },
    { name: 'comm', offset: 48, size: COMM_LEN, kind: 'char' },
    { name: 'filename', offset: 64, size: FILENAME_LEN, kind: 'char' },
  ],
};

export const EXIT_LAYOUT: RecordLayout = {
  struct: 'tf_exit_event',
  op: Op.EXIT,
  size: 72,
  fields: [
    { name: 'hdr', offset: 0, size: 24, kind: 'u8' },
    { name: 'pid', offset: 24, size: 4, kind: 'u32' },
    { name: 'ppid', offset: 28, size: 4, kind: 'u32' },
    { name: 'exit_code', offset: 32, size: 4, kind: 's32' },
    { name: 'exit_signal', offset: 36, size: 4, kind: 'u32' },
    { name: 'cgroup_id', offset: 40, size: 8, kind: 'u64' },
    { name: 'lifetime_ns', offset: 48, size: 8, kind: 'u64' },
    { name: 'comm', offset: 56, size: COMM_LEN, kind: 'char' },
  ],
};

const TCP_FIELDS: readonly FieldLayout[] = [
  { name: 'hdr', offset: 0, size: 24, kind: 'u8' },
  { name: 'pid', offset: 24, size: 4, kind: 'u32' },
  { name: 'family', offset: 28, size: 2, kind: 'u16' },
  { name: 'sport', offset: 30, size: 2, kind: 'u16' },
  { name: 'dport', offset: 32, size: 2, kind: 'u16' },
  { name: 'oldstate', offset: 34, size: 1, kind: 'u8' },
  { name: 'newstate', offset: 35, size: 1, kind: 'u8' },
  { name: 'pad', offset: 36, size: 4, kind: 'u32' },
  { name: 'cgroup_id', offset: 40, size: 8, kind: 'u64' },
  { name: 'duration_ns', offset: 48, size: 8, kind: 'u64' },
  { name: 'bytes_sent', offset: 56, size: 8, kind: 'u64' },
  { name: 'bytes_received', offset: 64, size: 8, kind: 'u64' },
  { name: 'saddr', offset: 72, size: 16, kind: 'u8' },
  { name: 'daddr', offset: 88, size: 16, kind: 'u8' },
  { name: 'comm', offset: 104, size: COMM_LEN, kind: 'char' },
];

/** struct tf_tcp_event: one layout for ops 3..9. */
export const TCP_LAYOUT: RecordLayout = {
  struct: 'tf_tcp_event',
  op: Op.TCP_CONNECT,
  size: 120,
  fields: TCP_FIELDS,
};

export const SYSCALL_SUMMARY_LAYOUT: RecordLayout = {
  struct: 'tf_syscall_summary',
  op: Op.SYSCALL_SUMMARY,
  size: 328,
  fields: [
    { name: 'hdr', offset: 0, size: 24, kind: 'u8' },
    { name: 'cgroup_id', offset: 24, size: 8, kind: 'u64' },
    { name: 'syscall_nr', offset: 32, size: 4, kind: 'u32' },
    { name: 'pad', offset: 36, size: 4, kind: 'u32' },
    { name: 'interval_ns', offset: 40, size: 8, kind: 'u64' },
    { name: 'count', offset: 48, size: 8, kind: 'u64' },
    { name: 'error_count', offset: 56, size: 8, kind: 'u64' },
    { name: 'total_ns', offset: 64, size: 8, kind: 'u64' },
    { name: 'hist', offset: 72, size: 256, kind: 'u64' },
  ],
};

export const SYSCALL_ERRNO_LAYOUT: RecordLayout = {
  struct: 'tf_syscall_errno',
  op: Op.SYSCALL_ERRNO,
  size: 56,
  fields: [
    { name: 'hdr', offset: 0, size: 24, kind: 'u8' },
    { name: 'cgroup_id', offset: 24, size: 8, kind: 'u64' },
    { name: 'syscall_nr', offset: 32, size: 4, kind: 'u32' },
    { name: 'err', offset: 36, size: 4, kind: 'u32' },
    { name: 'count', offset: 40, size: 8, kind: 'u64' },
    { name: 'interval_ns', offset: 48, size: 8, kind: 'u64' },
  ],
};

export const SYSCALL_SLOW_LAYOUT: RecordLayout = {
  struct: 'tf_syscall_slow',
  op: Op.SYSCALL_SLOW,
  size: 80,
  fields: [
    { name: 'hdr', offset: 0, size: 24, kind: 'u8' },
    { name: 'pid', offset: 24, size: 4, kind: 'u32' },
    { name: 'tid', offset: 28, size: 4, kind: 'u32' },
    { name: 'cgroup_id', offset: 32, size: 8, kind: 'u64' },
    { name: 'syscall_nr', offset: 40, size: 4, kind: 'u32' },
    { name: 'pad', offset: 44, size: 4, kind: 'u32' },
    { name: 'ret', offset: 48, size: 8, kind: 'u64' },
    { name: 'duration_ns', offset: 56, size: 8, kind: 'u64' },
    { name: 'comm', offset: 64, size: COMM_LEN, kind: 'char' },
  ],
};

export const FILE_OPEN_LAYOUT: RecordLayout = {
  struct: 'tf_file_open',
  op: Op.FILE_OPEN,
  size: 320,
  fields: [
    { name: 'hdr', offset: 0, size: 24, kind: 'u8' },
    { name: 'pid', offset: 24, size: 4, kind: 'u32' },
    { name: 'flags', offset: 28, size: 4, kind: 's32' },
    { name: 'ret', offset: 32, size: 4, kind: 's32' },
    { name: 'pad', offset: 36, size: 4, kind: 'u32' },
    { name: 'cgroup_id', offset: 40, size: 8, kind: 'u64' },
    { name: 'comm', offset: 48, size: COMM_LEN, kind: 'char' },
    { name: 'path', offset: 64, size: PATH_LEN, kind: 'char' },
  ],
};

export const RUNQ_SUMMARY_LAYOUT: RecordLayout = {
  struct: 'tf_runq_summary',
  op: Op.RUNQ_SUMMARY,
  size: 312,
  fields: [
    { name: 'hdr', offset: 0, size: 24, kind: 'u8' },
    { name: 'cgroup_id', offset: 24, size: 8, kind: 'u64' },
    { name: 'interval_ns', offset: 32, size: 8, kind: 'u64' },
    { name: 'count', offset: 40, size: 8, kind: 'u64' },
    { name: 'total_ns', offset: 48, size: 8, kind: 'u64' },
    { name: 'hist', offset: 56, size: 256, kind: 'u64' },
  ],
};

/** struct tf_cgroup_info: fixed part; the path follows (variable size). */
export const CGROUP_INFO_LAYOUT: RecordLayout = {
  struct: 'tf_cgroup_info',
  op: Op.CGROUP_INFO,
  size: 40,
  fields: [
    { name: 'hdr', offset: 0, size: 24, kind: 'u8' },
    { name: 'cgroup_id', offset: 24, size: 8, kind: 'u64' },
    { name: 'path_len', offset: 32, size: 2, kind: 'u16' },
    { name: 'pad', offset: 34, size: 6, kind: 'u8' },
  ],
};

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

export const CGROUP_STATS_LAYOUT: RecordLayout = {
  struct: 'tf_cgroup_stats',
  op: Op.CGROUP_STATS,
  size: 144,
  fields: [
    { name: 'hdr', offset: 0, size: 24, kind: 'u8' },
    ...['cgroup_id', 'interval_ns', ...CGROUP_STAT_FIELDS].map((name, i) => ({
      name,
      offset: 24 + i * 8,
      size: 8,
      kind: 'u64' as const,
    })),
  ],
};

/** struct tf_probe_stats: one probe's emitted and lost records and its sampling over an interval. */
export const PROBE_STATS_LAYOUT: RecordLayout = {
  struct: 'tf_probe_stats',
  op: Op.PROBE_STATS,
  size: 104,
  fields: [
    { name: 'hdr', offset: 0, size: 24, kind: 'u8' },
    { name: 'probe', offset: 24, size: 4, kind: 'u32' },
    { name: 'sample_n', offset: 28, size: 4, kind: 'u32' },
    { name: 'overload_n', offset: 32, size: 4, kind: 'u32' },
    { name: 'focus_count', offset: 36, size: 4, kind: 'u32' },
    { name: 'interval_ns', offset: 40, size: 8, kind: 'u64' },
    { name: 'emitted', offset: 48, size: 8, kind: 'u64' },
    { name: 'drops', offset: 56, size: 32, kind: 'u64' },
    { name: 'sink_dropped', offset: 88, size: 8, kind: 'u64' },
    { name: 'pad', offset: 96, size: 8, kind: 'u64' },
  ],
};

/** Kernel map value struct tf_focus: a per-cgroup focus (key: cgroup id). */
export const FOCUS_LAYOUT: RecordLayout = {
  struct: 'tf_focus',
  op: 0,
  size: 24,
  fields: [
    { name: 'sample_n', offset: 0, size: 4, kind: 'u32' },
    { name: 'pad', offset: 4, size: 4, kind: 'u32' },
    { name: 'min_duration_ns', offset: 8, size: 8, kind: 'u64' },
    { name: 'slow_ns', offset: 16, size: 8, kind: 'u64' },
  ],
};

/** Kernel map value struct tf_hist_value (syscall_stats, runq_stats). */
export const HIST_VALUE_LAYOUT: RecordLayout = {
  struct: 'tf_hist_value',
  op: 0,
  size: 280,
  fields: [
    { name: 'count', offset: 0, size: 8, kind: 'u64' },
    { name: 'error_count', offset: 8, size: 8, kind: 'u64' },
    { name: 'total_ns', offset: 16, size: 8, kind: 'u64' },
    { name: 'hist', offset: 24, size: 256, kind: 'u64' },
  ],
};

/** Kernel map key struct tf_syscall_key (syscall_stats). */
export const SYSCALL_KEY_LAYOUT: RecordLayout = {
  struct: 'tf_syscall_key',
  op: 0,
  size: 16,
  fields: [
    { name: 'cgroup_id', offset: 0, size: 8, kind: 'u64' },
    { name: 'syscall_nr', offset: 8, size: 4, kind: 'u32' },
    { name: 'pad', offset: 12, size: 4, kind: 'u32' },
  ],
};

/** struct tf_probe_config, the live control entry. */
export const PROBE_CONFIG_LAYOUT: RecordLayout = {
  struct: 'tf_probe_config',
  op: 0,
  size: 40,
  fields: [
    { name: 'enabled', offset: 0, size: 4, kind: 'u32' },
    { name: 'generation', offset: 4, size: 4, kind: 'u32' },
    { name: 'sample_n', offset: 8, size: 4, kind: 'u32' },
    { name: 'filter_mask', offset: 12, size: 4, kind: 'u32' },
    { name: 'min_duration_ns', offset: 16, size: 8, kind: 'u64' },
    { name: 'slow_ns', offset: 24, size: 8, kind: 'u64' },
    { name: 'focus_count', offset: 32, size: 4, kind: 'u32' },
    { name: 'pad', offset: 36, size: 4, kind: 'u32' },
  ],
};

/** Record layouts by op (tcp ops share one layout). */
export const RECORD_LAYOUTS: readonly RecordLayout[] = [
  EXEC_LAYOUT,
  EXIT_LAYOUT,
  ...[
    Op.TCP_CONNECT,
    Op.TCP_ACCEPT,
    Op.TCP_CLOSE,
    Op.TCP_CONNECT_FAIL,
    Op.TCP_RETRANSMIT,
    Op.TCP_RESET_SENT,
    Op.TCP_RESET_RECV,
  ].map((op) => ({ ...TCP_LAYOUT, op })),
  SYSCALL_SUMMARY_LAYOUT,
  SYSCALL_SLOW_LAYOUT,
  FILE_OPEN_LAYOUT,
  RUNQ_SUMMARY_LAYOUT,
  SYSCALL_ERRNO_LAYOUT,
  CGROUP_STATS_LAYOUT,
  PROBE_STATS_LAYOUT,
];

/** Layouts checked against the BTF of the compiled objects. */
export const CHECKED_LAYOUTS: readonly RecordLayout[] = [
  HEADER_LAYOUT,
  EXEC_LAYOUT,
  EXIT_LAYOUT,
  TCP_LAYOUT,
  SYSCALL_SUMMARY_LAYOUT,
  SYSCALL_ERRNO_LAYOUT,
  SYSCALL_SLOW_LAYOUT,
  FILE_OPEN_LAYOUT,
  RUNQ_SUMMARY_LAYOUT,
  HIST_VALUE_LAYOUT,
  SYSCALL_KEY_LAYOUT,
  PROBE_CONFIG_LAYOUT,
  CGROUP_INFO_LAYOUT,
  CGROUP_STATS_LAYOUT,
  PROBE_STATS_LAYOUT,
  FOCUS_LAYOUT,
];

/** Filter mask bits (TF_FILTER_*). */
export const FilterBit = {
  ALLOW_CGROUP: 0x0001,
  ALLOW_PID: 0x0002,
  ALLOW_PORT: 0x0004,
  ALLOW_COMM: 0x0008,
  ALLOW_PATH: 0x0010,
  DENY_CGROUP: 0x0100,
  DENY_PID: 0x0200,
  DENY_PORT: 0x0400,
  DENY_COMM: 0x0800,
  DENY_PATH: 0x1000,
} as const;
export const SET_ALLOW = 0x1;
export const SET_DENY = 0x2;

/** Record size by op; undefined for an unknown op. */
export const RECORD_SIZE_BY_OP: ReadonlyMap<number, number> = new Map(
  RECORD_LAYOUTS.map((l) => [l.op, l.size]),
);

export function fieldOffset(layout: RecordLayout, name: string): number {
  const f = layout.fields.find((x) => x.name === name);
  if (!f) throw new Error(`no field ${name} in ${layout.struct}`);
  return f.offset;
}

/**
 * Source (probe family or user-space source) of each op, used for per-probe
 * counters and feature rows. TF_OP_PROBE_STATS belongs to none: it describes
 * the probe named in its body.
 */
export const PROBE_OF_OP: ReadonlyMap<number, SourceName> = new Map<number, SourceName>([
  [Op.EXEC, 'process'],
  [Op.EXIT, 'process'],
  [Op.TCP_CONNECT, 'tcp'],
  [Op.TCP_ACCEPT, 'tcp'],
  [Op.TCP_CLOSE, 'tcp'],
  [Op.TCP_CONNECT_FAIL, 'tcp'],
  [Op.TCP_RETRANSMIT, 'tcp'],
  [Op.TCP_RESET_SENT, 'tcp'],
  [Op.TCP_RESET_RECV, 'tcp'],
  [Op.SYSCALL_SUMMARY, 'syscalls'],
  [Op.SYSCALL_SLOW, 'syscalls'],
  [Op.SYSCALL_ERRNO, 'syscalls'],
  [Op.FILE_OPEN, 'file'],
  [Op.RUNQ_SUMMARY, 'sched'],
  [Op.CGROUP_STATS, 'cgroup'],
]);

/** Offset of the cgroup id in each op's record (absent: the op carries none). */
export const CGROUP_OFFSET_BY_OP: ReadonlyMap<number, number> = new Map([
  [Op.EXEC, 40],
  [Op.EXIT, 40],
  [Op.TCP_CONNECT, 40],
  [Op.TCP_ACCEPT, 40],
  [Op.TCP_CLOSE, 40],
  [Op.TCP_CONNECT_FAIL, 40],
  [Op.TCP_RETRANSMIT, 40],
  [Op.TCP_RESET_SENT, 40],
  [Op.TCP_RESET_RECV, 40],
  [Op.SYSCALL_SUMMARY, 24],
  [Op.SYSCALL_ERRNO, 24],
  [Op.SYSCALL_SLOW, 32],
  [Op.FILE_OPEN, 40],
  [Op.RUNQ_SUMMARY, 24],
  [Op.CGROUP_INFO, 24],
  [Op.CGROUP_STATS, fieldOffset(CGROUP_STATS_LAYOUT, 'cgroup_id')],
]);

/** Hot-path forms of the maps above, indexed by op (0..255). */
export const OpTable = {
  /** Offset of the cgroup id; 0 when the op carries none. */
  cgroupOffset: Uint8Array.from({ length: 256 }, (_, op) => CGROUP_OFFSET_BY_OP.get(op) ?? 0),
  /** Index into SOURCE_NAMES of the op's source; 255 when the op belongs to none. */
  probeIndex: Uint8Array.from({ length: 256 }, (_, op) => {
    const probe = PROBE_OF_OP.get(op);
    return probe === undefined ? 255 : SOURCE_NAMES.indexOf(probe);
  }),
} as const;
