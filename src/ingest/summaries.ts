/**
 * Heavy signals (syscall latency, run-queue latency, dns lookups) aggregate in
 * kernel maps of counters; every interval user space reads them and turns each
 * entry that moved into one summary record (its increase since the previous
 * read) with the same header as kernel records. Which map, which record and
 * which field comes from where is the family's (FamilySummary).
 *
 * Entries are not deleted as they are read: a program that has looked an entry
 * up and is about to add to it would add to a deleted entry, and the count
 * would be lost without a trace. The counters only grow; user space keeps the
 * last value of each key and reports the difference. An entry that has not
 * moved for IDLE_NS_BEFORE_DELETE is deleted so the map does not fill with
 * workloads that are gone (a count landing in the microseconds between that
 * read and the delete is the one loss left, on a key idle for 15 s).
 */
import type { RecordLayout } from '../wire/layout.js';
import { writeRecordHeader } from '../wire/record-header.js';
import type { NativeBpfObject } from './native.js';
import type { FamilySummary } from '../families/family.js';

export interface SummaryBatch {
  records: Buffer;
  count: number;
}

/** One copy of a summary: record offset <- key or value offset, or the interval. */
export interface Step {
  to: number;
  from: 'key' | 'value' | 'interval';
  at: number;
  size: number;
}
export interface Plan {
  steps: Step[];
  keySize: number;
  valueSize: number;
}
const plans = new WeakMap<FamilySummary, Plan>();

/** The copies a summary's `fields` stand for, checked against the layouts once. */
export function summaryPlan(s: FamilySummary): Plan {
  let plan = plans.get(s);
  if (plan) return plan;
  const field = (l: RecordLayout, name: string) => {
    const f = l.fields.find((x) => x.name === name);
    if (!f) throw new Error(`${s.map}: no field ${name} in ${l.struct}`);
    return f;
  };
  const steps = Object.entries(s.fields).map(([name, source]): Step => {
    const to = field(s.layout, name);
    const [side, sub] = source.split('.') as ['key' | 'value' | 'interval', string | undefined];
    if (side === 'interval') return { to: to.offset, from: 'interval', at: 0, size: 8 };
    const layout = side === 'key' ? s.key : s.value;
    const from = sub === undefined ? { offset: 0, size: 8 } : layout && field(layout, sub);
    if (!from || (sub === undefined) !== (layout === null))
      throw new Error(`${s.map}: ${name} <- ${source} does not name a field of the map's ${side}`);
    if (from.size !== to.size)
      throw new Error(`${s.map}: ${name} is ${to.size} bytes, ${source} ${from.size}`);
    return { to: to.offset, from: side, at: from.offset, size: to.size };
  });
  plan = { steps, keySize: s.key?.size ?? 8, valueSize: s.value?.size ?? 8 };
  plans.set(s, plan);
  return plan;
}

/** An entry unchanged for this long (ns) is deleted from its map. */
export const IDLE_NS_BEFORE_DELETE = 15_000_000_000n;

interface Seen {
  /** Its value at the last read (a view of that read's dump). */
  value: Buffer;
  /** ktime of its last change. */
  since: bigint;
}
/** Last values read, by object, then map, then key (hex). */
const lastRead = new WeakMap<NativeBpfObject, Map<string, Map<string, Seen>>>();

const TWO32 = 2 ** 32;

/**
 * out[at..] = value - prev, u64 by u64 (each as two u32 with a borrow, no BigInt);
 * the whole value when there is no prev or a counter went down (the entry was
 * deleted and made again since: all of it is new).
 */
function subtractCounters(out: Buffer, at: number, value: Buffer, prev?: Buffer): void {
  if (prev) {
    for (let w = 0; w < value.length; w += 8) {
      let lo = value.readUInt32LE(w) - prev.readUInt32LE(w);
      const borrow = lo < 0 ? 1 : 0;
      const hi = value.readUInt32LE(w + 4) - prev.readUInt32LE(w + 4) - borrow;
      if (hi < 0) return void value.copy(out, at);
      if (borrow) lo += TWO32;
      out.writeUInt32LE(lo, at + w);
      out.writeUInt32LE(hi, at + w + 4);
    }
    return;
  }
  value.copy(out, at);
}

/**
 * Reads one aggregation map and encodes, for each entry that grew since the
 * previous read, its increase as a record. `ktime` is CLOCK_MONOTONIC now
 * (process.hrtime.bigint()), `intervalNs` the time since the previous flush.
 */
export function flushSummaryMap(
  obj: NativeBpfObject,
  summary: FamilySummary,
  ktime: bigint,
  intervalNs: bigint,
  generation: number,
  idleNs: bigint = IDLE_NS_BEFORE_DELETE,
): SummaryBatch {
  const plan = summaryPlan(summary);
  const dump = obj.mapDump(summary.map);
  let maps = lastRead.get(obj);
  if (!maps) lastRead.set(obj, (maps = new Map()));
  const before = maps.get(summary.map) ?? new Map<string, Seen>();
  const after = new Map<string, Seen>();
  maps.set(summary.map, after);
  if (dump.count === 0) return { records: Buffer.alloc(0), count: 0 };
  const keySize = dump.keys.byteLength / dump.count;
  const valueSize = dump.values.byteLength / dump.count;
  if (keySize < plan.keySize)
    throw new Error(`${summary.map}: key size ${keySize}, expected ${plan.keySize}`);
  if (valueSize < plan.valueSize || valueSize % 8 !== 0)
    throw new Error(
      `${summary.map}: value size ${valueSize}, expected ${plan.valueSize} (u64 counters)`,
    );

  // Increases since the last read; which entries moved.
  const deltas = Buffer.alloc(valueSize * dump.count);
  const moved: number[] = [];
  for (let i = 0; i < dump.count; i++) {
    const key = dump.keys.subarray(i * keySize, (i + 1) * keySize);
    const hex = key.toString('hex');
    const value = dump.values.subarray(i * valueSize, (i + 1) * valueSize);
    const seen = before.get(hex);
    if (seen && value.equals(seen.value)) {
      if (ktime - seen.since >= idleNs) obj.mapDelete(summary.map, key);
      else after.set(hex, { value, since: seen.since });
      continue;
    }
    subtractCounters(deltas, i * valueSize, value, seen?.value);
    moved.push(i);
    after.set(hex, { value, since: ktime });
  }

  const { op, size } = summary.layout;
  const out = Buffer.alloc(size * moved.length);
  moved.forEach((i, n) => {
    const o = n * size;
    writeRecordHeader(out, o, op, size, ktime, generation);
    for (const s of plan.steps) {
      if (s.from === 'interval') out.writeBigUInt64LE(intervalNs, o + s.to);
      else {
        const src = s.from === 'key' ? dump.keys : deltas;
        const base = i * (s.from === 'key' ? keySize : valueSize) + s.at;
        src.copy(out, o + s.to, base, base + s.size);
      }
    }
  });
  return { records: out, count: moved.length };
}
