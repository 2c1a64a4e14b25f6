/**
 * TypeScript mirror of `bpf/events.h`. Offsets and sizes here are checked
 * against the BTF of the compiled objects by test/ingest/layout.root.test.ts:
 * a drift between the header and this file fails the suite.
 */

export const EVENT_HEADER_SIZE = 24;
export const COMM_LEN = 16;
export const FILENAME_LEN = 256;

/** Op codes (append-only), `enum tf_op`. */
export const Op = {
  EXEC: 1,
  EXIT: 2,
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];

/** Probe ids, `enum tf_probe`. */
export const Probe = {
  PROCESS: 0,
} as const;
export const PROBE_MAX = 8;

/** Drop reasons, `enum tf_drop_reason`. */
export const DropReason = {
  RINGBUF_FULL: 0,
  FILTERED: 1,
  SAMPLED: 2,
} as const;
export const DROP_REASON_MAX = 4;
export const DROP_REASON_NAMES = ['ringbuf_full', 'filtered', 'sampled_out', 'reserved'] as const;

/** `TF_FLAG_*` bits of the event header. */
export const Flag = {
  TRUNCATED: 0x01,
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

export const RECORD_LAYOUTS: readonly RecordLayout[] = [EXEC_LAYOUT, EXIT_LAYOUT];

/** Record size by op; undefined for an unknown op. */
export const RECORD_SIZE_BY_OP: ReadonlyMap<number, number> = new Map(
  RECORD_LAYOUTS.map((l) => [l.op, l.size]),
);

export function fieldOffset(layout: RecordLayout, name: string): number {
  const f = layout.fields.find((x) => x.name === name);
  if (!f) throw new Error(`no field ${name} in ${layout.struct}`);
  return f.offset;
}

/** Probe name for each op, used for per-probe counters. */
export const PROBE_OF_OP: ReadonlyMap<number, string> = new Map([
  [Op.EXEC, 'process'],
  [Op.EXIT, 'process'],
]);
