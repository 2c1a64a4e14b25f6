/**
 * Heavy signals (syscall latency, run-queue latency) aggregate in kernel maps;
 * every interval user space reads and deletes the entries and turns each into
 * one summary record with the same header as kernel records. Which map, which
 * record and which field comes from where is the family's (FamilySummary).
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

/**
 * Reads and deletes one aggregation map and encodes its entries as records.
 * `ktime` is CLOCK_MONOTONIC now (process.hrtime.bigint()), `intervalNs` the
 * time since the previous flush.
 */
export function flushSummaryMap(
  obj: NativeBpfObject,
  summary: FamilySummary,
  ktime: bigint,
  intervalNs: bigint,
  generation: number,
): SummaryBatch {
  const plan = summaryPlan(summary);
  const dump = obj.mapDump(summary.map, { delete: true });
  if (dump.count === 0) return { records: Buffer.alloc(0), count: 0 };
  const keySize = dump.keys.byteLength / dump.count;
  const valueSize = dump.values.byteLength / dump.count;
  if (keySize < plan.keySize)
    throw new Error(`${summary.map}: key size ${keySize}, expected ${plan.keySize}`);
  if (valueSize < plan.valueSize)
    throw new Error(`${summary.map}: value size ${valueSize}, expected ${plan.valueSize}`);
  const { op, size } = summary.layout;
  const out = Buffer.alloc(size * dump.count);
  for (let i = 0; i < dump.count; i++) {
    const o = i * size;
    writeRecordHeader(out, o, op, size, ktime, generation);
    for (const s of plan.steps) {
      if (s.from === 'interval') out.writeBigUInt64LE(intervalNs, o + s.to);
      else {
        const src = s.from === 'key' ? dump.keys : dump.values;
        const base = i * (s.from === 'key' ? keySize : valueSize) + s.at;
        src.copy(out, o + s.to, base, base + s.size);
      }
    }
  }
  return { records: out, count: dump.count };
}
