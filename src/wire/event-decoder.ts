/**
 * Decodes records into plain objects with OpenTelemetry attribute names, for
 * people and for consumers that want objects. The feature stage does not use
 * this: it reads records straight into typed arrays.
 */
import {
  CGROUP_INFO_LAYOUT,
  CORE_OP_TYPES,
  DROP_REASON_MAX,
  DROP_REASON_NAMES,
  HEADER_LAYOUT,
  Flag,
  Op,
  PROBE_STATS_LAYOUT,
} from './layout.js';
import { FAMILY_OPS, SOURCE_NAMES } from '../families/registry.js';
import type { AttributeValue, FamilyOp } from '../families/family.js';
import { RecordReader, type FieldReader } from './record-reader.js';
import { parseCgroupPath } from './cgroup-path.js';
import { decodeFrame, walkRecords, type Frame } from './frame.js';

export { formatAddress, readCString } from './record-reader.js';
export type { AttributeValue };

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
  /** Collected under a per-cgroup focus (TF_FLAG_FOCUS), not the probe's baseline. */
  focused: boolean;
  /** Filter generation the event passed in the kernel. */
  generation: number;
  /** Events this record stands for: N when sampled 1-in-N, else 1. */
  sample_weight: number;
  /** OpenTelemetry-style attributes. */
  attributes: Record<string, AttributeValue>;
}

const textDecoder = new TextDecoder('utf-8', { fatal: false });

/** What the frame's own ops (CGROUP_INFO, PROBE_STATS) read as. */
const CORE_OPS: readonly FamilyOp[] = [
  {
    op: Op.CGROUP_INFO,
    type: CORE_OP_TYPES.get(Op.CGROUP_INFO)!,
    layout: CGROUP_INFO_LAYOUT,
    attributes: () => ({}), // read with the path that follows the struct (decodeAttributes)
  },
  {
    op: Op.PROBE_STATS,
    type: CORE_OP_TYPES.get(Op.PROBE_STATS)!,
    layout: PROBE_STATS_LAYOUT,
    attributes: probeStatsAttributes,
  },
];

/** Every known op by code: the families' and the frame's. */
const OPS = new Map<number, FamilyOp & { family?: string }>(
  [...FAMILY_OPS, ...CORE_OPS].map((o) => [o.op, o]),
);

/** Decodes one record at `offset` of a records region. */
export function decodeRecord(
  records: Uint8Array,
  offset: number,
  node: string,
  bootTimeNs: bigint,
): TracefeedEvent {
  const dv = new DataView(records.buffer, records.byteOffset + offset);
  const h = new RecordReader(HEADER_LAYOUT, dv, records, offset);
  const op = h.u8('op');
  const flags = h.u8('flags');
  const ktime = dv.getBigUint64(h.field('ktime_ns').offset, true);
  const wall = bootTimeNs + ktime;
  const known = OPS.get(op);
  const base = {
    probe: known?.family ?? 'unknown',
    time_unix_nano: wall.toString(),
    time: new Date(Number(wall / 1_000_000n)).toISOString(),
    ktime_ns: ktime.toString(),
    node,
    truncated: (flags & Flag.TRUNCATED) !== 0,
    focused: (flags & Flag.FOCUS) !== 0,
    generation: h.u32('generation'),
    sample_weight: h.u32('sample_weight'),
  };
  if (!known) return { ...base, type: `unknown.${op}`, attributes: { 'host.name': node } };
  const r = new RecordReader(known.layout, dv, records, offset);
  const type = known.type;
  const attributes =
    op === Op.CGROUP_INFO ? cgroupInfoAttributes(r, records, offset) : known.attributes(r, flags);
  attributes['host.name'] = node;
  if (op === Op.PROBE_STATS) {
    const probeId = r.u32('probe');
    return { ...base, probe: SOURCE_NAMES[probeId] ?? `probe.${probeId}`, type, attributes };
  }
  return { ...base, type, attributes };
}

/** TF_OP_CGROUP_INFO: the cgroup's path follows the struct. */
function cgroupInfoAttributes(
  r: RecordReader,
  records: Uint8Array,
  offset: number,
): Record<string, AttributeValue> {
  const at = offset + CGROUP_INFO_LAYOUT.size;
  const path = textDecoder.decode(records.subarray(at, at + r.u16('path_len')));
  const info = parseCgroupPath(path);
  return {
    'cgroup.id': r.id('cgroup_id'),
    'cgroup.path': path,
    ...(info.containerId ? { 'container.id': info.containerId } : {}),
    ...(info.podUid ? { 'k8s.pod.uid': info.podUid } : {}),
  };
}

/** TF_OP_PROBE_STATS: one probe's counters over an interval. */
function probeStatsAttributes(r: FieldReader): Record<string, AttributeValue> {
  const attributes: Record<string, AttributeValue> = {
    'probe.sample_n': r.u32('sample_n'),
    'probe.overload_n': r.u32('overload_n'),
    'probe.focus_count': r.u32('focus_count'),
    'probe.interval_ns': r.u64('interval_ns'),
    'probe.emitted': r.u64('emitted'),
  };
  for (let i = 0; i < DROP_REASON_MAX; i++)
    attributes[`probe.drops.${DROP_REASON_NAMES[i] ?? i}`] = r.u64('drops', i);
  attributes['probe.sink_dropped'] = r.u64('sink_dropped');
  return attributes;
}

/**
 * Decodes every record of a frame into objects. Events that carry a cgroup id
 * named by the frame's cgroup.info records get `cgroup.path` (and
 * `container.id`, `k8s.pod.uid` when the path holds them).
 */
export function decodeEvents(frame: Frame): TracefeedEvent[] {
  const out: TracefeedEvent[] = [];
  const names = new Map<string, Record<string, AttributeValue>>();
  walkRecords(frame.records, (_op, off) => {
    const e = decodeRecord(frame.records, off, frame.node, frame.bootTimeNs);
    if (e.type === 'cgroup.info') {
      const { 'cgroup.id': id, 'host.name': _h, ...rest } = e.attributes;
      names.set(String(id), rest);
    }
    out.push(e);
  });
  if (names.size > 0) {
    for (const e of out) {
      if (e.type === 'cgroup.info') continue;
      const extra = names.get(String(e.attributes['cgroup.id']));
      if (extra) Object.assign(e.attributes, extra);
    }
  }
  return out;
}

/** Decodes a Kafka record value (a frame) into events; throws DecodeError on bad bytes. */
export function decodeFrameEvents(value: Uint8Array): TracefeedEvent[] {
  return decodeEvents(decodeFrame(value));
}
