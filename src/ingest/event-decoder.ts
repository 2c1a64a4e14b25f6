/**
 * Decodes records into plain objects with OpenTelemetry attribute names, for
 * people and for consumers that want objects. The feature stage does not use
 * this: it reads records straight into typed arrays.
 */
import { EXEC_LAYOUT, EXIT_LAYOUT, Flag, Op, PROBE_OF_OP, fieldOffset } from './layout.js';
import { decodeFrame, walkRecords, type Frame } from './frame.js';

export type AttributeValue = string | number | boolean;

export interface TracefeedEvent {
  /** `process.exec`, `process.exit`, or `unknown.<op>`. */
  type: string;
  /** Probe family that emitted it. */
  probe: string;
  /** Event time, Unix epoch ns, as a decimal string (it exceeds 2^53). */
  time_unix_nano: string;
  /** Event time, ISO 8601 (ms precision). */
  time: string;
  /** Kernel monotonic time, ns, as a decimal string. */
  ktime_ns: string;
  /** Node (host) name from the frame. */
  node: string;
  /** A string field was cut at its bound. */
  truncated: boolean;
  /** Filter generation the event passed in the kernel. */
  generation: number;
  /** Events this record stands for: N when sampled 1-in-N, else 1. */
  sample_weight: number;
  /** OpenTelemetry-style attributes. */
  attributes: Record<string, AttributeValue>;
}

const textDecoder = new TextDecoder('utf-8', { fatal: false });

/** Reads a NUL-terminated C string of at most `len` bytes. */
export function readCString(bytes: Uint8Array, offset: number, len: number): string {
  let end = offset;
  const stop = offset + len;
  while (end < stop && bytes[end] !== 0) end++;
  return textDecoder.decode(bytes.subarray(offset, end));
}

const EXEC = {
  pid: fieldOffset(EXEC_LAYOUT, 'pid'),
  ppid: fieldOffset(EXEC_LAYOUT, 'ppid'),
  uid: fieldOffset(EXEC_LAYOUT, 'uid'),
  cgroup: fieldOffset(EXEC_LAYOUT, 'cgroup_id'),
  comm: fieldOffset(EXEC_LAYOUT, 'comm'),
  filename: fieldOffset(EXEC_LAYOUT, 'filename'),
};
const EXIT = {
  pid: fieldOffset(EXIT_LAYOUT, 'pid'),
  ppid: fieldOffset(EXIT_LAYOUT, 'ppid'),
  code: fieldOffset(EXIT_LAYOUT, 'exit_code'),
  signal: fieldOffset(EXIT_LAYOUT, 'exit_signal'),
  cgroup: fieldOffset(EXIT_LAYOUT, 'cgroup_id'),
  lifetime: fieldOffset(EXIT_LAYOUT, 'lifetime_ns'),
  comm: fieldOffset(EXIT_LAYOUT, 'comm'),
};

/** Decodes one record at `offset` of a records region. */
export function decodeRecord(
  records: Uint8Array,
  offset: number,
  node: string,
  bootTimeNs: bigint,
): TracefeedEvent {
  const dv = new DataView(records.buffer, records.byteOffset + offset);
  const op = dv.getUint8(0);
  const flags = dv.getUint8(1);
  const ktime = dv.getBigUint64(8, true);
  const wall = bootTimeNs + ktime;
  const base = {
    probe: PROBE_OF_OP.get(op) ?? 'unknown',
    time_unix_nano: wall.toString(),
    time: new Date(Number(wall / 1_000_000n)).toISOString(),
    ktime_ns: ktime.toString(),
    node,
    truncated: (flags & Flag.TRUNCATED) !== 0,
    generation: dv.getUint32(16, true),
    sample_weight: dv.getUint32(20, true),
  };
  switch (op) {
    case Op.EXEC: {
      const path = readCString(records, offset + EXEC.filename, 256);
      return {
        ...base,
        type: 'process.exec',
        attributes: {
          'process.pid': dv.getUint32(EXEC.pid, true),
          'process.parent_pid': dv.getUint32(EXEC.ppid, true),
          'process.executable.name': readCString(records, offset + EXEC.comm, 16),
          'process.executable.path': path,
          'process.user.id': dv.getUint32(EXEC.uid, true),
          'cgroup.id': dv.getBigUint64(EXEC.cgroup, true).toString(),
          'host.name': node,
        },
      };
    }
    case Op.EXIT:
      return {
        ...base,
        type: 'process.exit',
        attributes: {
          'process.pid': dv.getUint32(EXIT.pid, true),
          'process.parent_pid': dv.getUint32(EXIT.ppid, true),
          'process.executable.name': readCString(records, offset + EXIT.comm, 16),
          'process.exit.code': dv.getInt32(EXIT.code, true),
          'process.exit.signal': dv.getUint32(EXIT.signal, true),
          'process.lifetime_ns': Number(dv.getBigUint64(EXIT.lifetime, true)),
          'cgroup.id': dv.getBigUint64(EXIT.cgroup, true).toString(),
          'host.name': node,
        },
      };
    default:
      return { ...base, type: `unknown.${op}`, attributes: { 'host.name': node } };
  }
}

/** Decodes every record of a frame into objects. */
export function decodeEvents(frame: Frame): TracefeedEvent[] {
  const out: TracefeedEvent[] = [];
  walkRecords(frame.records, (_op, off) => {
    out.push(decodeRecord(frame.records, off, frame.node, frame.bootTimeNs));
  });
  return out;
}

/** Decodes a Kafka record value (a frame) into events; throws DecodeError on bad bytes. */
export function decodeFrameEvents(value: Uint8Array): TracefeedEvent[] {
  return decodeEvents(decodeFrame(value));
}
