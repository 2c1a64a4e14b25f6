/**
 * Reads a record's fields by name, at the offsets and sizes of its generated
 * layout (bpf/events.h): what every family's decode uses.
 */
import type { FieldLayout, RecordLayout } from './layout.js';

/** What a family's decode reads a record with. */
export interface FieldReader {
  u8(name: string): number;
  u16(name: string): number;
  u32(name: string): number;
  s32(name: string): number;
  /** A u64 as a number (counters and durations stay far below 2^53); `index` for an array. */
  u64(name: string, index?: number): number;
  s64(name: string): number;
  /** A u64 id (cgroup ids exceed 2^53) as a decimal string. */
  id(name: string): string;
  cstr(name: string): string;
  address(name: string, family: number): string;
  /** An array of u64 (a log2 histogram) as numbers. */
  hist(name: string): number[];
}

const textDecoder = new TextDecoder('utf-8', { fatal: false });

/** Reads a NUL-terminated C string of at most `len` bytes. */
export function readCString(bytes: Uint8Array, offset: number, len: number): string {
  let end = offset;
  const stop = offset + len;
  while (end < stop && bytes[end] !== 0) end++;
  return textDecoder.decode(bytes.subarray(offset, end));
}

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
export class RecordReader implements FieldReader {
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
