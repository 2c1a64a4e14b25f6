/**
 * Completeness of each probe, per interval: one TF_OP_PROBE_STATS record per
 * loaded probe with the increases of its kernel counters (records emitted,
 * drops by reason), the records of that probe the frame sink dropped after the
 * ring, and the sampling in force at the end of the interval.
 */
import {
  DROP_REASON_MAX,
  Op,
  PROBE_STATS_LAYOUT,
  fieldOffset,
  type ProbeName,
} from '../wire/layout.js';
import { PROBE_OF_OP } from '../families/registry.js';
import type { SummaryBatch } from './summaries.js';
import { writeRecordHeader } from '../wire/record-header.js';

const L = PROBE_STATS_LAYOUT;
const OFF = {
  probe: fieldOffset(L, 'probe'),
  sample_n: fieldOffset(L, 'sample_n'),
  overload_n: fieldOffset(L, 'overload_n'),
  focus_count: fieldOffset(L, 'focus_count'),
  interval_ns: fieldOffset(L, 'interval_ns'),
  emitted: fieldOffset(L, 'emitted'),
  drops: fieldOffset(L, 'drops'),
  sink_dropped: fieldOffset(L, 'sink_dropped'),
};

/** What the agent knows of one probe at the end of an interval. */
export interface ProbeSnapshot {
  name: ProbeName;
  probeId: number;
  generation: number;
  /** sample_n the kernel applies (overload included). */
  sampleN: number;
  overloadN: number;
  focusCount: number;
  /** Kernel counters since load. */
  emitted: number;
  drops: readonly number[];
}

interface Previous {
  emitted: number;
  drops: number[];
  sinkDropped: number;
}

/** Records dropped by the sink after the ring, per probe, from its per-op counts. */
export function sinkDroppedByProbe(droppedByOp: Float64Array): Map<string, number> {
  const out = new Map<string, number>();
  for (let op = 0; op < 256; op++) {
    const n = droppedByOp[op] as number;
    if (n === 0) continue;
    const probe = PROBE_OF_OP.get(op);
    if (probe) out.set(probe, (out.get(probe) ?? 0) + n);
  }
  return out;
}

export class ProbeStatsReporter {
  private readonly prev = new Map<string, Previous>();

  /**
   * One record per probe with the increases since the previous call (the
   * first call reports the counters since load).
   */
  build(
    probes: readonly ProbeSnapshot[],
    droppedByOp: Float64Array,
    nowNs: bigint,
    intervalNs: bigint,
  ): SummaryBatch {
    const sink = sinkDroppedByProbe(droppedByOp);
    const size = L.size;
    const records = Buffer.alloc(size * probes.length);
    probes.forEach((p, i) => {
      const o = i * size;
      const before = this.prev.get(p.name) ?? {
        emitted: 0,
        drops: new Array<number>(DROP_REASON_MAX).fill(0),
        sinkDropped: 0,
      };
      const sinkDropped = sink.get(p.name) ?? 0;
      writeRecordHeader(records, o, Op.PROBE_STATS, size, nowNs, p.generation);
      records.writeUInt32LE(p.probeId, o + OFF.probe);
      records.writeUInt32LE(p.sampleN, o + OFF.sample_n);
      records.writeUInt32LE(p.overloadN, o + OFF.overload_n);
      records.writeUInt32LE(p.focusCount, o + OFF.focus_count);
      records.writeBigUInt64LE(intervalNs, o + OFF.interval_ns);
      records.writeBigUInt64LE(BigInt(Math.max(0, p.emitted - before.emitted)), o + OFF.emitted);
      for (let r = 0; r < DROP_REASON_MAX; r++)
        records.writeBigUInt64LE(
          BigInt(Math.max(0, (p.drops[r] ?? 0) - (before.drops[r] ?? 0))),
          o + OFF.drops + r * 8,
        );
      records.writeBigUInt64LE(
        BigInt(Math.max(0, sinkDropped - before.sinkDropped)),
        o + OFF.sink_dropped,
      );
      this.prev.set(p.name, { emitted: p.emitted, drops: [...p.drops], sinkDropped });
    });
    return { records, count: probes.length };
  }
}
