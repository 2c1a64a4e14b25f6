/**
 * Decodes records into plain objects with OpenTelemetry attribute names, for
 * people and for consumers that want objects. The feature stage does not use
 * this: it reads records straight into typed arrays.
 */
import {
  CGROUP_STATS_LAYOUT,
  DROP_REASON_MAX,
  DROP_REASON_NAMES,
  PROBE_STATS_LAYOUT,
  SOURCE_NAMES,
  EXEC_LAYOUT,
  EXIT_LAYOUT,
  COMM_LEN,
  FILE_OPEN_LAYOUT,
  PATH_LEN,
  Flag,
  HIST_SLOTS,
  Op,
  OP_TYPE,
  PROBE_OF_OP,
  TCP_LAYOUT,
  fieldOffset,
} from './layout.js';
import { histogramQuantile } from './histogram.js';
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

const EXEC = {
  pid: fieldOffset(EXEC_LAYOUT, 'pid'),
  ppid: fieldOffset(EXEC_LAYOUT, 'ppid'),
  uid: fieldOffset(EXEC_LAYOUT, 'uid'),
  cgroup: fieldOffset(EXEC_LAYOUT, 'cgroup_id'),
  comm: fieldOffset(EXEC_LAYOUT, 'comm'),
  filename: fieldOffset(EXEC_LAYOUT, 'filename'),
};
const FILE = {
  pid: fieldOffset(FILE_OPEN_LAYOUT, 'pid'),
  flags: fieldOffset(FILE_OPEN_LAYOUT, 'flags'),
  ret: fieldOffset(FILE_OPEN_LAYOUT, 'ret'),
  cgroup: fieldOffset(FILE_OPEN_LAYOUT, 'cgroup_id'),
  comm: fieldOffset(FILE_OPEN_LAYOUT, 'comm'),
  path: fieldOffset(FILE_OPEN_LAYOUT, 'path'),
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

function readHist(dv: DataView, at: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < HIST_SLOTS; i++) out.push(Number(dv.getBigUint64(at + i * 8, true)));
  return out;
}

const T = (name: string): number => fieldOffset(TCP_LAYOUT, name);

/** TF_OP_CGROUP_STATS counters (after cgroup_id), as `cgroup.<field>` attributes. */
const CGROUP_STATS_FIELDS = CGROUP_STATS_LAYOUT.fields
  .filter((f) => f.name !== 'hdr' && f.name !== 'cgroup_id')
  .map((f) => [`cgroup.${f.name}`, f.offset] as const);
const PS = (name: string): number => fieldOffset(PROBE_STATS_LAYOUT, name);

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
    focused: (flags & Flag.FOCUS) !== 0,
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
    case Op.TCP_CONNECT:
    case Op.TCP_ACCEPT:
    case Op.TCP_CLOSE:
    case Op.TCP_CONNECT_FAIL:
    case Op.TCP_RETRANSMIT:
    case Op.TCP_RESET_SENT:
    case Op.TCP_RESET_RECV: {
      const family = dv.getUint16(T('family'), true);
      return {
        ...base,
        type: OP_TYPE.get(op) ?? `tcp.${op}`,
        attributes: {
          'process.pid': dv.getUint32(T('pid'), true),
          'process.executable.name': readCString(records, offset + T('comm'), 16),
          'network.transport': 'tcp',
          'network.type': family === 10 ? 'ipv6' : 'ipv4',
          'network.local.address': formatAddress(records, offset + T('saddr'), family),
          'network.local.port': dv.getUint16(T('sport'), true),
          'network.peer.address': formatAddress(records, offset + T('daddr'), family),
          'network.peer.port': dv.getUint16(T('dport'), true),
          'tcp.state.old':
            TCP_STATES[dv.getUint8(T('oldstate'))] ?? String(dv.getUint8(T('oldstate'))),
          'tcp.state.new':
            TCP_STATES[dv.getUint8(T('newstate'))] ?? String(dv.getUint8(T('newstate'))),
          'tcp.duration_ns': Number(dv.getBigUint64(T('duration_ns'), true)),
          'tcp.bytes_sent': Number(dv.getBigUint64(T('bytes_sent'), true)),
          'tcp.bytes_received': Number(dv.getBigUint64(T('bytes_received'), true)),
          'cgroup.id': dv.getBigUint64(T('cgroup_id'), true).toString(),
          'host.name': node,
        },
      };
    }
    case Op.SYSCALL_SUMMARY: {
      const hist = readHist(dv, 72);
      return {
        ...base,
        type: 'syscall.summary',
        attributes: {
          'cgroup.id': dv.getBigUint64(24, true).toString(),
          'syscall.nr': dv.getUint32(32, true),
          'summary.interval_ns': Number(dv.getBigUint64(40, true)),
          'syscall.count': Number(dv.getBigUint64(48, true)),
          'syscall.error_count': Number(dv.getBigUint64(56, true)),
          'syscall.total_ns': Number(dv.getBigUint64(64, true)),
          'syscall.p50_ns': histogramQuantile(hist, 0.5),
          'syscall.p99_ns': histogramQuantile(hist, 0.99),
          'syscall.histogram_log2_ns': JSON.stringify(hist),
          'host.name': node,
        },
      };
    }
    case Op.SYSCALL_ERRNO:
      return {
        ...base,
        type: 'syscall.errno',
        attributes: {
          'cgroup.id': dv.getBigUint64(24, true).toString(),
          'syscall.nr': dv.getUint32(32, true),
          'error.errno': dv.getUint32(36, true),
          'syscall.error_count': Number(dv.getBigUint64(40, true)),
          'summary.interval_ns': Number(dv.getBigUint64(48, true)),
          'host.name': node,
        },
      };
    case Op.SYSCALL_SLOW:
      return {
        ...base,
        type: 'syscall.slow',
        attributes: {
          'process.pid': dv.getUint32(24, true),
          'thread.id': dv.getUint32(28, true),
          'cgroup.id': dv.getBigUint64(32, true).toString(),
          'syscall.nr': dv.getUint32(40, true),
          'syscall.return': Number(dv.getBigInt64(48, true)),
          'syscall.duration_ns': Number(dv.getBigUint64(56, true)),
          'process.executable.name': readCString(records, offset + 64, 16),
          'host.name': node,
        },
      };
    case Op.FILE_OPEN:
      return {
        ...base,
        type: 'file.open',
        attributes: {
          'process.pid': dv.getUint32(FILE.pid, true),
          'file.open.flags': dv.getInt32(FILE.flags, true),
          'file.open.result': dv.getInt32(FILE.ret, true),
          'cgroup.id': dv.getBigUint64(FILE.cgroup, true).toString(),
          'process.executable.name': readCString(records, offset + FILE.comm, COMM_LEN),
          'file.path': readCString(records, offset + FILE.path, PATH_LEN),
          // Failed opens carry the caller's string; successful ones the file the kernel opened.
          'file.path.verified': (flags & Flag.PATH_UNVERIFIED) === 0,
          'file.path.partial': (flags & Flag.PATH_PARTIAL) !== 0,
          'host.name': node,
        },
      };
    case Op.RUNQ_SUMMARY: {
      const hist = readHist(dv, 56);
      return {
        ...base,
        type: 'sched.runq_summary',
        attributes: {
          'cgroup.id': dv.getBigUint64(24, true).toString(),
          'summary.interval_ns': Number(dv.getBigUint64(32, true)),
          'sched.runq.count': Number(dv.getBigUint64(40, true)),
          'sched.runq.total_ns': Number(dv.getBigUint64(48, true)),
          'sched.runq.p50_ns': histogramQuantile(hist, 0.5),
          'sched.runq.p99_ns': histogramQuantile(hist, 0.99),
          'sched.runq.histogram_log2_ns': JSON.stringify(hist),
          'host.name': node,
        },
      };
    }
    case Op.CGROUP_INFO: {
      const path = textDecoder.decode(
        records.subarray(offset + 40, offset + 40 + dv.getUint16(32, true)),
      );
      const info = parseCgroupPath(path);
      return {
        ...base,
        type: 'cgroup.info',
        attributes: {
          'cgroup.id': dv.getBigUint64(24, true).toString(),
          'cgroup.path': path,
          ...(info.containerId ? { 'container.id': info.containerId } : {}),
          ...(info.podUid ? { 'k8s.pod.uid': info.podUid } : {}),
          'host.name': node,
        },
      };
    }
    case Op.CGROUP_STATS: {
      const attributes: Record<string, AttributeValue> = {
        'cgroup.id': dv
          .getBigUint64(fieldOffset(CGROUP_STATS_LAYOUT, 'cgroup_id'), true)
          .toString(),
      };
      for (const [name, at] of CGROUP_STATS_FIELDS)
        attributes[name] = Number(dv.getBigUint64(at, true));
      attributes['host.name'] = node;
      return { ...base, type: 'cgroup.stats', attributes };
    }
    case Op.PROBE_STATS: {
      const probeId = dv.getUint32(PS('probe'), true);
      const attributes: Record<string, AttributeValue> = {
        'probe.sample_n': dv.getUint32(PS('sample_n'), true),
        'probe.overload_n': dv.getUint32(PS('overload_n'), true),
        'probe.focus_count': dv.getUint32(PS('focus_count'), true),
        'probe.interval_ns': Number(dv.getBigUint64(PS('interval_ns'), true)),
        'probe.emitted': Number(dv.getBigUint64(PS('emitted'), true)),
      };
      for (let r = 0; r < DROP_REASON_MAX; r++)
        attributes[`probe.drops.${DROP_REASON_NAMES[r] ?? r}`] = Number(
          dv.getBigUint64(PS('drops') + r * 8, true),
        );
      attributes['probe.sink_dropped'] = Number(dv.getBigUint64(PS('sink_dropped'), true));
      attributes['host.name'] = node;
      return {
        ...base,
        probe: SOURCE_NAMES[probeId] ?? `probe.${probeId}`,
        type: 'probe.stats',
        attributes,
      };
    }
    default:
      return { ...base, type: `unknown.${op}`, attributes: { 'host.name': node } };
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
