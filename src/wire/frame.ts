/**
 * The tracefeed event frame, v1: one Kafka record value carrying many kernel
 * records from one node. Layout (little-endian), documented in
 * docs/frame-format.md:
 *
 *   0  u32 magic          "TFEV" (0x56454654)
 *   4  u16 version        1
 *   6  u16 header_len     bytes before the first record, multiple of 8, >= 40
 *   8  u32 event_count    number of records
 *  12  u32 records_len    bytes of records after the header
 *  16  u64 boot_time_ns   wall-clock ns (Unix epoch) at ktime 0 on that node
 *  24  u64 sequence       per-agent frame sequence number
 *  32  u16 node_len       bytes of the UTF-8 node name
 *  34  u16 flags          0
 *  36  u32 reserved       0
 *  40  node name, zero-padded to header_len
 *  header_len: records, each starting with struct tf_event_header whose
 *              `size` is the whole record (multiple of 8)
 */
import { DecodeError } from '../common/errors.js';
import {
  CGROUP_INFO_LAYOUT,
  EVENT_HEADER_SIZE,
  FRAME_HEADER_LAYOUT,
  HEADER_LAYOUT,
  Op,
  fieldOffset,
} from './layout.js';
import { OP_TYPE, RECORD_SIZE_BY_OP } from '../families/registry.js';
import { TF_DEFINES } from './layout.generated.js';

const KNOWN_OPS = new Set(OP_TYPE.keys());

export const FRAME_MAGIC = TF_DEFINES.TF_FRAME_MAGIC;
export const FRAME_VERSION = TF_DEFINES.TF_FRAME_VERSION;
export const FRAME_FIXED_HEADER_SIZE = FRAME_HEADER_LAYOUT.size;
/** The largest node name a frame carries. */
export const MAX_NODE_NAME_BYTES = TF_DEFINES.TF_NODE_NAME_MAX;

/** Offsets of struct tf_frame_header. */
const H = {
  magic: fieldOffset(FRAME_HEADER_LAYOUT, 'magic'),
  version: fieldOffset(FRAME_HEADER_LAYOUT, 'version'),
  headerLen: fieldOffset(FRAME_HEADER_LAYOUT, 'header_len'),
  eventCount: fieldOffset(FRAME_HEADER_LAYOUT, 'event_count'),
  recordsLen: fieldOffset(FRAME_HEADER_LAYOUT, 'records_len'),
  bootTime: fieldOffset(FRAME_HEADER_LAYOUT, 'boot_time_ns'),
  sequence: fieldOffset(FRAME_HEADER_LAYOUT, 'sequence'),
  nodeLen: fieldOffset(FRAME_HEADER_LAYOUT, 'node_len'),
} as const;
const CGROUP_INFO_PATH_LEN = fieldOffset(CGROUP_INFO_LAYOUT, 'path_len');
/** Offsets of struct tf_event_header. */
const R = {
  op: fieldOffset(HEADER_LAYOUT, 'op'),
  size: fieldOffset(HEADER_LAYOUT, 'size'),
} as const;
/** Frames above this are refused by the decoder as absurd. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

export interface FrameHeader {
  version: number;
  headerLen: number;
  eventCount: number;
  recordsLen: number;
  /** Wall-clock Unix time in ns at the node's ktime 0: event time = bootTimeNs + ktime_ns. */
  bootTimeNs: bigint;
  sequence: bigint;
  node: string;
}

export interface Frame extends FrameHeader {
  /** The records region, a view into the frame's bytes (no copy). */
  records: Uint8Array;
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

export interface EncodeFrameInput {
  node: string;
  bootTimeNs: bigint;
  sequence: bigint;
  /** Raw record regions, each a concatenation of whole records. */
  chunks: readonly Uint8Array[];
  eventCount: number;
}

/** Encodes one frame. The chunks are copied once into the frame buffer. */
export function encodeFrame(input: EncodeFrameInput): Buffer {
  const node = Buffer.from(input.node, 'utf8');
  if (node.length === 0 || node.length > MAX_NODE_NAME_BYTES) {
    throw new RangeError(`node name must be 1..${MAX_NODE_NAME_BYTES} bytes, got ${node.length}`);
  }
  const headerLen = align8(FRAME_FIXED_HEADER_SIZE + node.length);
  let recordsLen = 0;
  for (const c of input.chunks) recordsLen += c.byteLength;
  const buf = Buffer.alloc(headerLen + recordsLen);
  buf.writeUInt32LE(FRAME_MAGIC, H.magic);
  buf.writeUInt16LE(FRAME_VERSION, H.version);
  buf.writeUInt16LE(headerLen, H.headerLen);
  buf.writeUInt32LE(input.eventCount, H.eventCount);
  buf.writeUInt32LE(recordsLen, H.recordsLen);
  buf.writeBigUInt64LE(input.bootTimeNs, H.bootTime);
  buf.writeBigUInt64LE(input.sequence, H.sequence);
  buf.writeUInt16LE(node.length, H.nodeLen);
  node.copy(buf, FRAME_FIXED_HEADER_SIZE);
  let off = headerLen;
  for (const c of input.chunks) {
    buf.set(c, off);
    off += c.byteLength;
  }
  return buf;
}

/**
 * Reads and validates a frame header. Throws DecodeError naming what is wrong;
 * never reads past the buffer.
 */
export function decodeFrameHeader(bytes: Uint8Array): FrameHeader {
  if (bytes.byteLength < FRAME_FIXED_HEADER_SIZE) {
    throw new DecodeError(
      `frame is ${bytes.byteLength} bytes, shorter than the ${FRAME_FIXED_HEADER_SIZE}-byte header`,
      'truncated',
      0,
    );
  }
  if (bytes.byteLength > MAX_FRAME_BYTES) {
    throw new DecodeError(
      `frame is ${bytes.byteLength} bytes, over ${MAX_FRAME_BYTES}`,
      'bad-header',
      0,
    );
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(H.magic, true);
  if (magic !== FRAME_MAGIC) {
    throw new DecodeError(
      `bad frame magic 0x${magic.toString(16)}, expected 0x${FRAME_MAGIC.toString(16)} ("TFEV")`,
      'bad-magic',
      0,
    );
  }
  const version = dv.getUint16(H.version, true);
  if (version !== FRAME_VERSION) {
    throw new DecodeError(
      `unsupported frame version ${version}; this decoder reads version ${FRAME_VERSION}`,
      'unsupported-version',
      H.version,
    );
  }
  const headerLen = dv.getUint16(H.headerLen, true);
  const eventCount = dv.getUint32(H.eventCount, true);
  const recordsLen = dv.getUint32(H.recordsLen, true);
  const nodeLen = dv.getUint16(H.nodeLen, true);
  if (
    headerLen < FRAME_FIXED_HEADER_SIZE ||
    headerLen % 8 !== 0 ||
    FRAME_FIXED_HEADER_SIZE + nodeLen > headerLen
  ) {
    throw new DecodeError(
      `bad header_len ${headerLen} for node_len ${nodeLen}`,
      'bad-header',
      H.headerLen,
    );
  }
  if (headerLen + recordsLen !== bytes.byteLength) {
    throw new DecodeError(
      `frame says ${headerLen} + ${recordsLen} bytes but has ${bytes.byteLength}`,
      headerLen + recordsLen > bytes.byteLength ? 'truncated' : 'bad-header',
      H.recordsLen,
    );
  }
  if (eventCount * EVENT_HEADER_SIZE > recordsLen) {
    throw new DecodeError(
      `event_count ${eventCount} cannot fit in ${recordsLen} bytes of records`,
      'count-mismatch',
      H.eventCount,
    );
  }
  const node = Buffer.from(
    bytes.buffer,
    bytes.byteOffset + FRAME_FIXED_HEADER_SIZE,
    nodeLen,
  ).toString('utf8');
  return {
    version,
    headerLen,
    eventCount,
    recordsLen,
    bootTimeNs: dv.getBigUint64(H.bootTime, true),
    sequence: dv.getBigUint64(H.sequence, true),
    node,
  };
}

/**
 * Decodes a frame and checks every record boundary. Records of unknown ops are
 * kept (their size says where the next starts) unless `knownOpsOnly` is set;
 * records of known ops must have their op's size.
 */
export function decodeFrame(bytes: Uint8Array, opts: { knownOpsOnly?: boolean } = {}): Frame {
  const header = decodeFrameHeader(bytes);
  const records = bytes.subarray(header.headerLen);
  const n = walkRecords(records, (op, off) => {
    if (opts.knownOpsOnly && !KNOWN_OPS.has(op)) {
      throw new DecodeError(
        `record at ${off} has op ${op}, which this decoder does not know`,
        'unknown-op',
        off,
      );
    }
  });
  if (n !== header.eventCount) {
    throw new DecodeError(
      `frame says ${header.eventCount} events but holds ${n}`,
      'count-mismatch',
      8,
    );
  }
  return { ...header, records };
}

/**
 * Calls `visit(op, offset, size)` for each record in a records region and
 * returns the count. Allocates nothing per record.
 */
export function walkRecords(
  records: Uint8Array,
  visit: (op: number, offset: number, size: number) => void,
): number {
  const dv = new DataView(records.buffer, records.byteOffset, records.byteLength);
  let off = 0;
  let n = 0;
  while (off < records.byteLength) {
    if (records.byteLength - off < EVENT_HEADER_SIZE) {
      throw new DecodeError(
        `record at ${off} is cut short (${records.byteLength - off} bytes left)`,
        'truncated',
        off,
      );
    }
    const op = dv.getUint8(off + R.op);
    const size = dv.getUint32(off + R.size, true);
    if (size < EVENT_HEADER_SIZE || size % 8 !== 0) {
      throw new DecodeError(
        `record at ${off} has size ${size}, not a multiple of 8 >= 16`,
        'bad-record-size',
        off,
      );
    }
    if (off + size > records.byteLength) {
      throw new DecodeError(
        `record at ${off} (size ${size}) runs past the frame`,
        'truncated',
        off,
      );
    }
    const expected = RECORD_SIZE_BY_OP.get(op);
    if (expected !== undefined && expected !== size) {
      throw new DecodeError(
        `record at ${off}: op ${op} must be ${expected} bytes, is ${size}`,
        'bad-record-size',
        off,
      );
    }
    if (
      op === Op.CGROUP_INFO &&
      (size < CGROUP_INFO_LAYOUT.size ||
        CGROUP_INFO_LAYOUT.size + dv.getUint16(off + CGROUP_INFO_PATH_LEN, true) > size)
    ) {
      throw new DecodeError(
        `cgroup info record at ${off}: path does not fit in ${size} bytes`,
        'bad-record-size',
        off,
      );
    }
    visit(op, off, size);
    off += size;
    n++;
  }
  return n;
}
