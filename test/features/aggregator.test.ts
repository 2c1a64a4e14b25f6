/** Windowing, weighting, lateness and Arrow output of the aggregator, on encoded frames. */
import { tableFromIPC } from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { WindowAggregator } from '../../src/features/aggregator.js';
import { buildWindowBatch, featureSchema } from '../../src/features/arrow-batch.js';
import { selectRows, toIpcStream } from '../../src/features/feature-query.js';
import { S } from '../../src/features/columns.js';
import { encodeFrame, layout } from '../../src/ingest/index.js';

const { Op } = layout;
const WINDOW = 1000;
// Frames say where ktime 0 is; put it so that ktime k ms is `base + k` ms of wall time.
const base = Math.floor(Date.now() / WINDOW) * WINDOW - 60_000;
const boot = BigInt(base) * 1_000_000n;

function rec(
  op: number,
  size: number,
  ms: number,
  weight: number,
  fill: (b: Buffer) => void,
): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt8(op, 0);
  b.writeUInt32LE(size, 4);
  b.writeBigUInt64LE(BigInt(Math.round(ms * 1e6)), 8);
  b.writeUInt32LE(1, 16);
  b.writeUInt32LE(weight, 20);
  fill(b);
  return b;
}
const exec = (ms: number, cgroup: bigint, weight = 1) =>
  rec(Op.EXEC, 320, ms, weight, (b) => b.writeBigUInt64LE(cgroup, 40));
const exit = (ms: number, cgroup: bigint, code: number) =>
  rec(Op.EXIT, 72, ms, 1, (b) => {
    b.writeInt32LE(code, 32);
    b.writeBigUInt64LE(cgroup, 40);
  });
const tcpClose = (ms: number, cgroup: bigint, sent: number, recv: number, durNs: number) =>
  rec(Op.TCP_CLOSE, 120, ms, 1, (b) => {
    b.writeBigUInt64LE(cgroup, 40);
    b.writeBigUInt64LE(BigInt(durNs), 48);
    b.writeBigUInt64LE(BigInt(sent), 56);
    b.writeBigUInt64LE(BigInt(recv), 64);
  });
function info(cgroup: bigint, path: string): Buffer {
  const p = Buffer.from(path);
  const size = 40 + ((p.length + 7) & ~7);
  return rec(Op.CGROUP_INFO, size, 0, 1, (b) => {
    b.writeBigUInt64LE(cgroup, 24);
    b.writeUInt16LE(p.length, 32);
    p.copy(b, 40);
  });
}
const frame = (node: string, recs: Buffer[]) =>
  encodeFrame({ node, bootTimeNs: boot, sequence: 0n, chunks: recs, eventCount: recs.length });

describe('window aggregator', () => {
  it('aggregates per window, node, workload and probe, weighted by sample weight', () => {
    const agg = new WindowAggregator({ windowMs: WINDOW, allowedLatenessMs: 0, idleCloseMs: 0 });
    agg.ingestFrame(
      frame('n1', [
        info(7n, '/svc/a'),
        exec(100, 7n),
        exec(200, 7n, 10),
        exit(300, 7n, 1),
        exit(400, 7n, 0),
        tcpClose(500, 7n, 1000, 200, 2_000_000),
        exec(1500, 8n),
      ]),
    );
    const closed = agg.closeDue(Date.now());
    expect(closed.map((w) => [w.node, w.windowStartMs - base, w.rows])).toEqual([
      ['n1', 0, 2],
      ['n1', 1000, 1],
    ]);
    const first = closed[0]!;
    const built = buildWindowBatch(first, agg.cgroupNames('n1'), featureSchema(WINDOW));
    const { batch } = built;
    const rows = built.rows();
    const proc = rows.find((r) => r.probe === 'process')!;
    expect(proc.workload).toBe('/svc/a');
    expect(proc.exec_count).toBe(11);
    expect(proc.exit_count).toBe(2);
    expect(proc.failed_exits).toBe(1);
    expect(proc.events).toBe(13);
    expect(proc.events_per_second).toBe(13);
    const tcp = rows.find((r) => r.probe === 'tcp')!;
    expect(tcp.tcp_bytes_sent).toBe(1000);
    expect(tcp.tcp_bytes_received).toBe(200);
    expect(tcp.tcp_duration_p50_ns).toBeGreaterThanOrEqual(2 ** 20);
    expect(tcp.tcp_duration_p50_ns).toBeLessThan(2 ** 22);
    expect(proc.tcp_duration_p50_ns).toBeNull();

    const table = tableFromIPC(toIpcStream(featureSchema(WINDOW), [batch]));
    expect(table.schema.metadata.get('tracefeed.schema_version')).toBe('4');
    expect(String(table.schema.fields.find((f) => f.name === 'window_start')!.type)).toBe(
      'Timestamp<NANOSECOND, UTC>',
    );
    expect(String(table.schema.fields.find((f) => f.name === 'workload')!.type)).toMatch(
      /^Dictionary<Int32, Utf8>/,
    );
    const back = table.toArray().map((r) => r.toJSON());
    expect(back.find((r) => r.probe === 'process')?.exec_count).toBe(11);

    const onlyTcp = selectRows(batch, { probe: 'tcp' })!;
    expect(onlyTcp.numRows).toBe(1);
    expect(onlyTcp.getChild('tcp_bytes_sent')?.get(0)).toBe(1000);
    expect(selectRows(batch, { workload: '/nope' })).toBeUndefined();
  });

  it('counts late events instead of adding them to a closed window', () => {
    const agg = new WindowAggregator({
      windowMs: WINDOW,
      allowedLatenessMs: 0,
      idleCloseMs: 60_000,
    });
    agg.ingestFrame(frame('n1', [exec(100, 1n), exec(2500, 1n)]));
    const closed = agg.closeDue(base); // watermark 2500 closes windows 0 and 1 only
    expect(closed.map((w) => w.windowStartMs - base)).toEqual([0]);
    agg.ingestFrame(frame('n1', [exec(900, 1n), exec(2600, 1n)]));
    expect(agg.counters.late).toBe(1);
    expect(agg.counters.events).toBe(4);
  });

  it('resumes from the persisted mark without counting written windows twice', () => {
    const agg = new WindowAggregator(
      { windowMs: WINDOW, allowedLatenessMs: 0, idleCloseMs: 0 },
      { n1: base + 1000 },
    );
    agg.ingestFrame(frame('n1', [exec(100, 1n), exec(1100, 1n)]));
    expect(agg.counters.alreadyEmitted).toBe(1);
    expect(agg.counters.late).toBe(0);
    const closed = agg.closeDue(Date.now());
    expect(closed).toHaveLength(1);
    expect(closed[0]!.windowStartMs).toBe(base + 1000);
  });

  it('keeps a future-dated record from moving the watermark, so later windows close whole', () => {
    const now = base + 60_000;
    const agg = new WindowAggregator({ windowMs: WINDOW, allowedLatenessMs: 0, idleCloseMs: 1e9 });
    agg.ingestFrame(frame('n1', [exec(100, 7n), exec(200, 7n)]), 0, 0, now);
    // One hour ahead: inside the old one-day skew, far beyond the default 5 s.
    agg.ingestFrame(frame('n1', [exec(now - base + 3_600_000, 7n)]), 0, 1, now);
    expect(agg.lastFrameFutureDated).toBe(1);
    expect(agg.counters.futureDated).toBe(1);
    expect(agg.closeDue(now)).toEqual([]); // nothing past window 0 seen yet
    agg.ingestFrame(frame('n1', [exec(1100, 7n)]), 0, 2, now);
    expect(agg.closeDue(now).map((w) => w.windowStartMs - base)).toEqual([0]);
    agg.ingestFrame(frame('n1', [exec(1200, 7n)]), 0, 3, now);
    agg.ingestFrame(frame('n1', [exec(2100, 7n)]), 0, 4, now);
    const closed = agg.closeDue(now);
    expect(closed.map((w) => w.windowStartMs - base)).toEqual([1000]);
    expect(closed[0]!.sums[S.exec_count]).toBe(2); // both records of window 1, none late
    expect(agg.counters.late).toBe(0);
    expect(agg.closedUpTo().n1! - base).toBe(2000);
  });

  it('clamps a saved closed-up-to time in the future to the wall clock, and counts it', () => {
    const now = base + 60_000;
    const agg = new WindowAggregator(
      { windowMs: WINDOW, allowedLatenessMs: 0, idleCloseMs: 1e9 },
      { n1: now + 86_000_000, n2: base },
      now,
    );
    expect(agg.counters.stateClamped).toBe(1);
    expect(agg.clampedState).toEqual({ n1: now + 86_000_000 });
    expect(agg.closedUpTo()).toEqual({ n1: now, n2: base });
    // A record a second ahead (inside the skew) is aggregated, not taken for a replay.
    agg.ingestFrame(frame('n1', [exec(now - base + 1000, 7n)]), 0, 0, now);
    expect(agg.counters.alreadyEmitted).toBe(0);
    expect(agg.openWindows()).toBe(1);
  });

  it('holds back commits to the lowest offset an open window needs', () => {
    const agg = new WindowAggregator({
      windowMs: WINDOW,
      allowedLatenessMs: 0,
      idleCloseMs: 60_000,
    });
    agg.ingestFrame(frame('n1', [exec(100, 1n)]), 0, 10);
    agg.ingestFrame(frame('n1', [exec(1200, 1n)]), 0, 11);
    expect(agg.pendingMinOffsets().get(0)).toBe(10);
    agg.closeDue(base); // watermark 1200 closes window 0
    expect(agg.pendingMinOffsets().get(0)).toBe(11);
  });

  it('keeps windows per input partition: one is dropped whole, another restored, none mixed', () => {
    const agg = new WindowAggregator({
      windowMs: WINDOW,
      allowedLatenessMs: 0,
      idleCloseMs: 60_000,
    });
    agg.ingestFrame(frame('n1', [exec(100, 1n)]), 0, 5);
    agg.ingestFrame(frame('n1', [exec(200, 1n)]), 1, 7); // the same node on another partition
    expect(agg.openWindows()).toBe(2);
    expect(agg.pendingMinOffsets()).toEqual(
      new Map([
        [0, 5],
        [1, 7],
      ]),
    );
    expect(agg.dropPartition(1)).toBe(1);
    expect(agg.pendingMinOffsets()).toEqual(new Map([[0, 5]]));
    // Partition 1 comes back with its committed closed-up-to time: earlier events are replays.
    agg.restorePartition(1, { n1: base + 1000 });
    agg.ingestFrame(frame('n1', [exec(200, 1n), exec(1100, 1n)]), 1, 7);
    expect(agg.counters.alreadyEmitted).toBe(1);
    expect(agg.closedUpTo(1)).toEqual({ n1: base + 1000 });
    expect(agg.closedUpTo(0)).toEqual({});
    const closed = agg.closeDue(base + 60_000, true);
    expect(closed.map((w) => [w.partition, w.windowStartMs - base, w.rows])).toEqual([
      [0, 0, 1],
      [1, 1000, 1],
    ]);
  });
});

describe('cgroup signals and completeness columns', () => {
  const { CGROUP_STATS_LAYOUT, PROBE_STATS_LAYOUT, Probe, fieldOffset } = layout;
  const cgStats = (ms: number, cgroup: bigint, values: Record<string, number>) =>
    rec(Op.CGROUP_STATS, CGROUP_STATS_LAYOUT.size, ms, 1, (b) => {
      b.writeBigUInt64LE(cgroup, fieldOffset(CGROUP_STATS_LAYOUT, 'cgroup_id'));
      for (const [k, v] of Object.entries(values))
        b.writeBigUInt64LE(BigInt(v), fieldOffset(CGROUP_STATS_LAYOUT, k));
    });
  const probeStats = (
    ms: number,
    probe: number,
    v: { sample_n: number; overload_n: number; emitted: number; drops: number[]; sink: number },
  ) =>
    rec(Op.PROBE_STATS, PROBE_STATS_LAYOUT.size, ms, 1, (b) => {
      const at = (n: string) => fieldOffset(PROBE_STATS_LAYOUT, n);
      b.writeUInt32LE(probe, at('probe'));
      b.writeUInt32LE(v.sample_n, at('sample_n'));
      b.writeUInt32LE(v.overload_n, at('overload_n'));
      b.writeBigUInt64LE(BigInt(v.emitted), at('emitted'));
      v.drops.forEach((d, i) => b.writeBigUInt64LE(BigInt(d), at('drops') + i * 8));
      b.writeBigUInt64LE(BigInt(v.sink), at('sink_dropped'));
    });

  it('puts cgroup stats in rows of source cgroup and probe stats in every row of that probe', () => {
    const agg = new WindowAggregator({ windowMs: WINDOW, allowedLatenessMs: 0, idleCloseMs: 0 });
    agg.ingestFrame(
      frame('n1', [
        info(7n, '/svc/a'),
        exec(100, 7n, 4),
        exec(150, 8n),
        cgStats(200, 7n, { cpu_usage_us: 900, cpu_throttled_us: 300, memory_oom_kill: 1 }),
        cgStats(600, 7n, { cpu_usage_us: 100, cpu_some_us: 50, memory_oom_kill: 1 }),
        // Two reports of the process probe in the window: counters add, sampling takes the max.
        probeStats(300, Probe.PROCESS, {
          sample_n: 1,
          overload_n: 1,
          emitted: 60,
          drops: [10, 5, 0, 0],
          sink: 0,
        }),
        probeStats(800, Probe.PROCESS, {
          sample_n: 4,
          overload_n: 4,
          emitted: 40,
          drops: [10, 0, 30, 0],
          sink: 20,
        }),
        probeStats(900, Probe.TCP, {
          sample_n: 1,
          overload_n: 1,
          emitted: 0,
          drops: [0, 0, 0, 0],
          sink: 0,
        }),
      ]),
    );
    const [w] = agg.closeDue(Date.now());
    const rows = buildWindowBatch(w!, agg.cgroupNames('n1'), featureSchema(WINDOW)).rows();
    const cg = rows.find((r) => r.probe === 'cgroup')!;
    expect(cg).toMatchObject({
      workload: '/svc/a',
      events: 2,
      cpu_usage_us: 1000,
      cpu_throttled_us: 300,
      cpu_pressure_some_us: 50,
      memory_oom_kills: 2,
      exec_count: 0,
      sample_weight_max: 1,
      probe_sample_n: 0,
      coverage_ratio: 1,
    });
    const procA = rows.find((r) => r.probe === 'process' && r.workload === '/svc/a')!;
    const procB = rows.find((r) => r.probe === 'process' && r.cgroup_id === '8')!;
    expect(procA.exec_count).toBe(4);
    expect(procA.sample_weight_max).toBe(4);
    expect(procB.sample_weight_max).toBe(1);
    for (const r of [procA, procB]) {
      expect(r).toMatchObject({
        probe_sample_n: 4,
        probe_overload_n: 4,
        probe_ringbuf_full: 20,
        probe_filtered: 5,
        probe_sampled_out: 30,
        probe_map_full: 0,
        probe_sink_dropped: 20,
      });
      // delivered (100 emitted - 20 dropped by the sink) / (100 emitted + 20 ringbuf_full)
      expect(r.coverage_ratio).toBeCloseTo(80 / 120, 10);
    }
    expect(rows.some((r) => r.probe === 'tcp')).toBe(false); // stats alone make no row
  });

  it('keeps coverage 1 when nothing was lost, whatever was sampled or filtered', () => {
    const agg = new WindowAggregator({ windowMs: WINDOW, allowedLatenessMs: 0, idleCloseMs: 0 });
    agg.ingestFrame(
      frame('n1', [
        exec(100, 7n, 8),
        probeStats(300, Probe.PROCESS, {
          sample_n: 8,
          overload_n: 1,
          emitted: 10,
          drops: [0, 50, 70, 0],
          sink: 0,
        }),
      ]),
    );
    const [w] = agg.closeDue(Date.now());
    const [row] = buildWindowBatch(w!, agg.cgroupNames('n1'), featureSchema(WINDOW)).rows();
    expect(row).toMatchObject({ coverage_ratio: 1, probe_sampled_out: 70, probe_filtered: 50 });
  });
});
