/** Windowing, weighting, lateness and Arrow output of the aggregator, on encoded frames. */
import { tableFromIPC } from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { WindowAggregator } from '../../src/features/aggregator.js';
import { buildWindowBatch, featureSchema } from '../../src/features/arrow-batch.js';
import { selectRows, toIpcStream } from '../../src/features/feature-query.js';
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
    expect(table.schema.metadata.get('tracefeed.schema_version')).toBe('1');
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
});
