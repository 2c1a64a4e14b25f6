/**
 * Decodes records into plain objects with OpenTelemetry attribute names, for
 * people and for consumers that want objects. The feature stage does not use
 * this: it reads records straight into typed arrays.
 */
import {
  CGROUP_INFO_LAYOUT,
  CGROUP_STATS_LAYOUT,
  DROP_REASON_MAX,
  DROP_REASON_NAMES,
  Flag,
  HEADER_LAYOUT,
  Op,
  OP_TYPE,
  PROBE_OF_OP,
  RECORD_LAYOUTS,
  SOURCE_NAMES,
  type FieldLayout,
  type RecordLayout,
} from './layout.js';

const AF_INET6 = 10;
import { histogramQuantile } from './histogram.js';
import { dnsAttributes } from '../families/dns/index.js';
import { parseCgroupPath } from './cgroup-resolver.js';
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

/** Reads a NUL-terminated C string of at most `len` bytes. */
export function readCString(bytes: Uint8Array, offset: number, len: number): string {
  let end = offset;
  const stop = offset + len;
  while (end < stop && bytes[end] !== 0) end++;
  return textDecoder.decode(bytes.subarray(offset, end));
}

const TCP_STATES = [
  '',
  'ESTABLISHED',
  'SYN_SENT',
  'SYN_RECV',
  'FIN_WAIT1',
  'FIN_WAIT2',
  'TIME_WAIT',
  'CLOSE',
  'CLOSE_WAIT',
  'LAST_ACK',
  'LISTEN',
  'CLOSING',
  'NEW_SYN_RECV',
];

/** Formats a 16-byte address field as IPv4 or IPv6 text. */
export function formatAddress(bytes: Uint8Array, offset: number, family: number): string {
  if (family === 2)
    return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2)
    parts.push((((bytes[offset + i] ?? 0) << 8) | (bytes[offset + i + 1] ?? 0)).toString(16));
  // Compress the longest run of zero groups, as RFC 5952 asks.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (parts[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && parts[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return parts.join(':');
  return `${parts.slice(0, best).join(':')}::${parts.slice(best + bestLen).join(':')}`;
}

/** Reads the fields of one record by name, at the offsets and sizes of its layout. */
class RecordReader {
  private static readonly offsets = new Map<RecordLayout, Map<string, FieldLayout>>();
  private readonly fields: Map<string, FieldLayout>;

  constructor(
    layout: RecordLayout,
    private readonly dv: DataView,
    private readonly bytes: Uint8Array,
    private readonly at: number,
  ) {
    let fields = RecordReader.offsets.get(layout);
    if (!fields) {
      fields = new Map(layout.fields.map((f) => [f.name, f]));
      RecordReader.offsets.set(layout, fields);
    }
    this.fields = fields;
  }

  field(name: string): FieldLayout {
    const f = this.fields.get(name);
    if (!f) throw new Error(`no field ${name}`);
    return f;
  }
  u8(name: string): number {
    return this.dv.getUint8(this.field(name).offset);
  }
  u16(name: string): number {
    return this.dv.getUint16(this.field(name).offset, true);
  }
  u32(name: string): number {
    return this.dv.getUint32(this.field(name).offset, true);
  }
  s32(name: string): number {
    return this.dv.getInt32(this.field(name).offset, true);
  }
  /** A u64 as a number (counters and durations stay far below 2^53). */
  u64(name: string, index = 0): number {
    return Number(this.dv.getBigUint64(this.field(name).offset + index * 8, true));
  }
  s64(name: string): number {
    return Number(this.dv.getBigInt64(this.field(name).offset, true));
  }
  /** A u64 id (cgroup ids exceed 2^53) as a decimal string. */
  id(name: string): string {
    return this.dv.getBigUint64(this.field(name).offset, true).toString();
  }
  cstr(name: string): string {
    const f = this.field(name);
    return readCString(this.bytes, this.at + f.offset, f.size);
  }
  address(name: string, family: number): string {
    return formatAddress(this.bytes, this.at + this.field(name).offset, family);
  }
  hist(name: string): number[] {
    const f = this.field(name);
    return Array.from({ length: f.count }, (_, i) => this.u64(name, i));
  }
}

const layoutByOp = new Map<number, RecordLayout>([
  ...RECORD_LAYOUTS.map((l) => [l.op, l] as const),
  [Op.CGROUP_INFO, CGROUP_INFO_LAYOUT],
]);

/** TF_OP_CGROUP_STATS counters (after cgroup_id), as `cgroup.<field>` attributes. */
const CGROUP_STATS_COUNTERS = CGROUP_STATS_LAYOUT.fields
  .filter((f) => f.name !== 'hdr' && f.name !== 'cgroup_id')
  .map((f) => f.name);

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
  const base = {
    probe: PROBE_OF_OP.get(op) ?? 'unknown',
    time_unix_nano: wall.toString(),
    time: new Date(Number(wall / 1_000_000n)).toISOString(),
    ktime_ns: ktime.toString(),
    node,
    truncated: (flags & Flag.TRUNCATED) !== 0,
    focused: (flags & Flag.FOCUS) !== 0,
    generation: h.u32('generation'),
    sample_weight: h.u32('sample_weight'),
  };
  const layout = layoutByOp.get(op);
  if (!layout) return { ...base, type: `unknown.${op}`, attributes: { 'host.name': node } };
  const r = new RecordReader(layout, dv, records, offset);
  const type = OP_TYPE.get(op) ?? `unknown.${op}`;
  const attributes = decodeAttributes(op, flags, r, records, offset);
  attributes['host.name'] = node;
  if (op === Op.PROBE_STATS) {
    const probeId = r.u32('probe');
    return { ...base, probe: SOURCE_NAMES[probeId] ?? `probe.${probeId}`, type, attributes };
  }
  return { ...base, type, attributes };
}

/** The OpenTelemetry-style attributes of one known record. */
function decodeAttributes(
  op: number,
  flags: number,
  r: RecordReader,
  records: Uint8Array,
  offset: number,
): Record<string, AttributeValue> {
  switch (op) {
    case Op.EXEC:
      return {
        'process.pid': r.u32('pid'),
        'process.parent_pid': r.u32('ppid'),
        'process.executable.name': r.cstr('comm'),
        'process.executable.path': r.cstr('filename'),
        'process.user.id': r.u32('uid'),
        'cgroup.id': r.id('cgroup_id'),
      };
    case Op.EXIT:
      return {
        'process.pid': r.u32('pid'),
        'process.parent_pid': r.u32('ppid'),
        'process.executable.name': r.cstr('comm'),
        'process.exit.code': r.s32('exit_code'),
        'process.exit.signal': r.u32('exit_signal'),
        'process.lifetime_ns': r.u64('lifetime_ns'),
        'cgroup.id': r.id('cgroup_id'),
      };
    case Op.TCP_CONNECT:
    case Op.TCP_ACCEPT:
    case Op.TCP_CLOSE:
    case Op.TCP_CONNECT_FAIL:
    case Op.TCP_RETRANSMIT:
    case Op.TCP_RESET_SENT:
    case Op.TCP_RESET_RECV: {
      const family = r.u16('family');
      return {
        'process.pid': r.u32('pid'),
        'process.executable.name': r.cstr('comm'),
        'network.transport': 'tcp',
        'network.type': family === AF_INET6 ? 'ipv6' : 'ipv4',
        'network.local.address': r.address('saddr', family),
        'network.local.port': r.u16('sport'),
        'network.peer.address': r.address('daddr', family),
        'network.peer.port': r.u16('dport'),
        'tcp.state.old': TCP_STATES[r.u8('oldstate')] ?? String(r.u8('oldstate')),
        'tcp.state.new': TCP_STATES[r.u8('newstate')] ?? String(r.u8('newstate')),
        'tcp.duration_ns': r.u64('duration_ns'),
        'tcp.bytes_sent': r.u64('bytes_sent'),
        'tcp.bytes_received': r.u64('bytes_received'),
        'cgroup.id': r.id('cgroup_id'),
      };
    }
    case Op.SYSCALL_SUMMARY: {
      const hist = r.hist('hist');
      return {
        'cgroup.id': r.id('cgroup_id'),
        'syscall.nr': r.u32('syscall_nr'),
        'summary.interval_ns': r.u64('interval_ns'),
        'syscall.count': r.u64('count'),
        'syscall.error_count': r.u64('error_count'),
        'syscall.total_ns': r.u64('total_ns'),
        'syscall.p50_ns': histogramQuantile(hist, 0.5),
        'syscall.p99_ns': histogramQuantile(hist, 0.99),
        'syscall.histogram_log2_ns': JSON.stringify(hist),
      };
    }
    case Op.SYSCALL_ERRNO:
      return {
        'cgroup.id': r.id('cgroup_id'),
        'syscall.nr': r.u32('syscall_nr'),
        'error.errno': r.u32('err'),
        'syscall.error_count': r.u64('count'),
        'summary.interval_ns': r.u64('interval_ns'),
      };
    case Op.SYSCALL_SLOW:
      return {
        'process.pid': r.u32('pid'),
        'thread.id': r.u32('tid'),
        'cgroup.id': r.id('cgroup_id'),
        'syscall.nr': r.u32('syscall_nr'),
        'syscall.return': r.s64('ret'),
        'syscall.duration_ns': r.u64('duration_ns'),
        'process.executable.name': r.cstr('comm'),
      };
    case Op.FILE_OPEN:
      return {
        'process.pid': r.u32('pid'),
        'file.open.flags': r.s32('flags'),
        'file.open.result': r.s32('ret'),
        'cgroup.id': r.id('cgroup_id'),
        'process.executable.name': r.cstr('comm'),
        'file.path': r.cstr('path'),
        // Failed opens carry the caller's string; successful ones the file the kernel opened.
        'file.path.verified': (flags & Flag.PATH_UNVERIFIED) === 0,
        'file.path.partial': (flags & Flag.PATH_PARTIAL) !== 0,
      };
    case Op.RUNQ_SUMMARY: {
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
    }
    case Op.DNS_RESPONSE:
      return dnsAttributes(r);
    case Op.DNS_TIMEOUT:
      return { ...dnsAttributes(r), 'dns.response_code': 'TIMEOUT' };
    case Op.CGROUP_INFO: {
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
    case Op.CGROUP_STATS: {
      const attributes: Record<string, AttributeValue> = { 'cgroup.id': r.id('cgroup_id') };
      for (const name of CGROUP_STATS_COUNTERS) attributes[`cgroup.${name}`] = r.u64(name);
      return attributes;
    }
    case Op.PROBE_STATS: {
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
    default:
      return {};
  }
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
