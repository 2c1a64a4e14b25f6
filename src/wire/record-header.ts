/**
 * The common header of a record built in user space (summaries, cgroup info,
 * probe stats, DNS timeouts): the same header the kernel writes, offsets from
 * the generated layout.
 */
import { HEADER_LAYOUT, fieldOffset } from './layout.js';

const HDR = {
  op: fieldOffset(HEADER_LAYOUT, 'op'),
  size: fieldOffset(HEADER_LAYOUT, 'size'),
  ktime: fieldOffset(HEADER_LAYOUT, 'ktime_ns'),
  generation: fieldOffset(HEADER_LAYOUT, 'generation'),
  weight: fieldOffset(HEADER_LAYOUT, 'sample_weight'),
};

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
  b.writeUInt8(op, off + HDR.op);
  b.writeUInt32LE(size, off + HDR.size);
  b.writeBigUInt64LE(ktime, off + HDR.ktime);
  b.writeUInt32LE(generation, off + HDR.generation);
  b.writeUInt32LE(1, off + HDR.weight);
}
