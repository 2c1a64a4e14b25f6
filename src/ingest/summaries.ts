/**
 * Heavy signals (syscall latency, run-queue latency) aggregate in kernel maps;
 * every interval user space reads and deletes the entries and turns each into
 * one summary record with the same header as kernel records.
 */
import {
  HIST_SLOTS,
  Op,
  RUNQ_SUMMARY_LAYOUT,
  SYSCALL_ERRNO_LAYOUT,
  SYSCALL_SUMMARY_LAYOUT,
} from './layout.js';
import type { NativeBpfObject } from './native.js';

export interface SummaryBatch {
  records: Buffer;
  count: number;
}

const HIST_VALUE_SIZE = 24 + HIST_SLOTS * 8;

/**
 * Writes the common event header of a record user space builds (summary and
 * cgroup-info records): the same header the kernel writes, pads zeroed by alloc.
 */
export function writeRecordHeader(
  b: Buffer,
  off: number,
  op: number,
  size: number,
  ktime: bigint,
  generation: number,
): void {
  b.writeUInt8(op, off);
  b.writeUInt32LE(size, off + 4);
  b.writeBigUInt64LE(ktime, off + 8);
  b.writeUInt32LE(generation, off + 16);
  b.writeUInt32LE(1, off + 20);
}

/**
 * Reads and deletes one aggregation map and encodes its entries as records.
 * `ktime` is CLOCK_MONOTONIC now (process.hrtime.bigint()), `intervalNs` the
 * time since the previous flush.
 */
export function flushSummaryMap(
  obj: NativeBpfObject,
  map: string,
  kind: 'syscall' | 'errno' | 'runq',
  ktime: bigint,
  intervalNs: bigint,
  generation: number,
): SummaryBatch {
  const dump = obj.mapDump(map, { delete: true });
  if (dump.count === 0) return { records: Buffer.alloc(0), count: 0 };
  const keySize = dump.keys.byteLength / dump.count;
  const valueSize = dump.values.byteLength / dump.count;
  if (kind === 'errno') {
    const size = SYSCALL_ERRNO_LAYOUT.size;
    const out = Buffer.alloc(size * dump.count);
    for (let i = 0; i < dump.count; i++) {
      const k = i * keySize;
      const o = i * size;
      writeRecordHeader(out, o, Op.SYSCALL_ERRNO, size, ktime, generation);
      out.writeBigUInt64LE(dump.keys.readBigUInt64LE(k), o + 24); // cgroup_id
      out.writeUInt32LE(dump.keys.readUInt32LE(k + 8), o + 32); // syscall_nr
      out.writeUInt32LE(dump.keys.readUInt32LE(k + 12), o + 36); // errno
      out.writeBigUInt64LE(dump.values.readBigUInt64LE(i * valueSize), o + 40);
      out.writeBigUInt64LE(intervalNs, o + 48);
    }
    return { records: out, count: dump.count };
  }
  if (valueSize < HIST_VALUE_SIZE)
    throw new Error(`${map}: value size ${valueSize}, expected ${HIST_VALUE_SIZE}`);
  const layout = kind === 'syscall' ? SYSCALL_SUMMARY_LAYOUT : RUNQ_SUMMARY_LAYOUT;
  const size = layout.size;
  const out = Buffer.alloc(size * dump.count);
  for (let i = 0; i < dump.count; i++) {
    const k = i * keySize;
    const v = i * valueSize;
    const o = i * size;
    writeRecordHeader(out, o, layout.op, size, ktime, generation);
    const cgroup = dump.keys.readBigUInt64LE(k);
    const count = dump.values.readBigUInt64LE(v);
    const errors = dump.values.readBigUInt64LE(v + 8);
    const total = dump.values.readBigUInt64LE(v + 16);
    let histAt: number;
    if (kind === 'syscall') {
      out.writeBigUInt64LE(cgroup, o + 24);
      out.writeUInt32LE(dump.keys.readUInt32LE(k + 8), o + 32);
      out.writeBigUInt64LE(intervalNs, o + 40);
      out.writeBigUInt64LE(count, o + 48);
      out.writeBigUInt64LE(errors, o + 56);
      out.writeBigUInt64LE(total, o + 64);
      histAt = o + 72;
    } else {
      out.writeBigUInt64LE(cgroup, o + 24);
      out.writeBigUInt64LE(intervalNs, o + 32);
      out.writeBigUInt64LE(count, o + 40);
      out.writeBigUInt64LE(total, o + 48);
      histAt = o + 56;
    }
    dump.values.copy(out, histAt, v + 24, v + 24 + HIST_SLOTS * 8);
  }
  return { records: out, count: dump.count };
}
