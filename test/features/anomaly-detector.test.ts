/**
 * The detector on feature rows: cold start against priors and peers, early fire
 * on partial windows (once per series and window), baselines that learn only
 * from closed windows. The partial windows come from the real aggregator, fed
 * encoded frames.
 */
import { describe, expect, it } from 'vitest';
import { WindowAggregator } from '../../src/features/aggregator.js';
import { AnomalyDetector, type FeatureRow } from '../../src/features/anomaly-detector.js';
import { anomalySchema } from '../../src/features/anomaly.js';
import { buildWindowBatch, featureSchema } from '../../src/features/arrow-batch.js';
import { encodeFrame } from '../../src/ingest/index.js';
import {
  CGROUP_INFO_LAYOUT,
  EXIT_LAYOUT,
  HEADER_LAYOUT,
  Op,
  fieldOffset,
} from '../../src/wire/layout.js';

const W = 10_000;
const t0 = Date.UTC(2026, 0, 1);

/** One feature row of window `i` (10 s windows from t0). */
function row(
  i: number,
  workload: string,
  probe: string,
  values: Record<string, number>,
  node = 'n1',
): FeatureRow {
  return {
    window_start: new Date(t0 + i * W).toISOString(),
    window_end: new Date(t0 + (i + 1) * W).toISOString(),
    node,
    workload,
    container_id: null,
    cgroup_id: String(1000 + workload.length),
    probe,
    ...values,
  };
}

describe('cold start: priors', () => {
  it('a new series crossing its prior fires in its first window, with basis prior', () => {
    const d = new AnomalyDetector();
    const [a, ...rest] = d.observe([row(0, '/new', 'tcp', { tcp_connect_failures: 30 })]);
    expect(rest).toEqual([]);
    expect(a).toMatchObject({
      basis: 'prior',
      partial: false,
      metric: 'tcp_connect_failures',
      probe: 'tcp',
      workload: '/new',
      observed: 30,
      baseline: 20,
      severity: 'warning',
    });
    expect(a!.score).toBeCloseTo(6); // threshold 4 x 30 / 20
    expect(() => anomalySchema.parse(a)).not.toThrow();
    // Twice the prior: critical.
    expect(d.observe([row(1, '/new2', 'process', { failed_exits: 10 })])[0]).toMatchObject({
      basis: 'prior',
      severity: 'critical',
    });
  });

  it('records written before basis and partial existed still parse, as baseline and closed', () => {
    const [a] = new AnomalyDetector().observe([
      row(0, '/new', 'tcp', { tcp_connect_failures: 30 }),
    ]);
    const { basis: _b, partial: _p, ...old } = a!;
    expect(anomalySchema.parse(old)).toMatchObject({ basis: 'baseline', partial: false });
  });

  it('a new series below its prior does not fire', () => {
    const d = new AnomalyDetector();
    expect(d.observe([row(0, '/new', 'tcp', { tcp_connect_failures: 19 })])).toEqual([]);
    expect(d.observe([row(0, '/new', 'process', { failed_exits: 4, exit_count: 400 })])).toEqual(
      [],
    );
  });

  it('time metrics of cgroup rows are judged as a share of the window', () => {
    const d = new AnomalyDetector();
    // 30 % of a 10 s window throttled: over the 20 % prior.
    const hot = d.observe([row(0, '/hog', 'cgroup', { cpu_throttled_us: 3_000_000 })]);
    expect(hot).toHaveLength(1);
    expect(hot[0]).toMatchObject({ basis: 'prior', probe: 'cgroup', baseline: 2_000_000 });
    // 10 %: under it.
    expect(d.observe([row(0, '/calm', 'cgroup', { cpu_throttled_us: 1_000_000 })])).toEqual([]);
    // The same share of a 1 s window is judged the same.
    const oneSecond: FeatureRow = {
      ...row(0, '/hog1s', 'cgroup', { cpu_throttled_us: 300_000 }),
      window_end: new Date(t0 + 1000).toISOString(),
    };
    expect(d.observe([oneSecond])).toHaveLength(1);
  });

  it('a window judged anomalous during warm-up teaches the baseline at most the prior', () => {
    const d = new AnomalyDetector({ warmup_windows: 2 });
    // Starts failing hard and keeps failing: every window is reported, warm-up or not.
    for (let i = 0; i < 6; i++) {
      const found = d.observe([row(i, '/loop', 'process', { failed_exits: 200 })]);
      expect(found, `window ${i}`).toHaveLength(1);
      expect(found[0]!.basis).toBe(i < 2 ? 'prior' : 'baseline');
    }
  });
});

describe('cold start: peers', () => {
  // Three established workloads with a few exits per window.
  const established = (d: AnomalyDetector, windows: number): void => {
    for (let i = 0; i < windows; i++)
      d.observe(['/a', '/b', '/c'].map((w, k) => row(i, w, 'process', { exit_count: 2 + k })));
  };

  it('a new series far above the median of the node fires with basis peers', () => {
    const d = new AnomalyDetector();
    established(d, 6);
    const [a] = d.observe([row(6, '/new', 'process', { exit_count: 300 })]);
    expect(a).toMatchObject({ basis: 'peers', metric: 'exit_count', workload: '/new' });
    expect(a!.baseline).toBeCloseTo(3, 0); // the median of 2, 3, 4
    // Near its peers: nothing.
    expect(d.observe([row(6, '/new2', 'process', { exit_count: 20 })])).toEqual([]);
  });

  it('needs enough established peers on the same node', () => {
    const d = new AnomalyDetector();
    established(d, 3); // still warming up (warmup_windows 5)
    expect(d.observe([row(3, '/new', 'process', { exit_count: 300 })])).toEqual([]);
    const e = new AnomalyDetector();
    established(e, 6);
    expect(e.observe([row(6, '/new', 'process', { exit_count: 300 }, 'other-node')])).toEqual([]);
  });
});

describe('early fire', () => {
  const warm = (d: AnomalyDetector): void => {
    for (let i = 0; i < 5; i++) d.observe([row(i, '/w', 'tcp', { tcp_retransmits: 0 })]);
  };

  it('fires on a partial window that already crosses, then not again at its close', () => {
    const d = new AnomalyDetector();
    warm(d);
    expect(d.observePartial([row(5, '/w', 'tcp', { tcp_retransmits: 3 })])).toEqual([]);
    const [early] = d.observePartial([row(5, '/w', 'tcp', { tcp_retransmits: 25 })]);
    expect(early).toMatchObject({ partial: true, basis: 'baseline', observed: 25 });
    expect(d.firedEarly).toBe(1);
    // Still open and still higher: fired once.
    expect(d.observePartial([row(5, '/w', 'tcp', { tcp_retransmits: 60 })])).toEqual([]);
    // The close: nothing new; the early one comes back as such.
    const closed = d.observeClosed([row(5, '/w', 'tcp', { tcp_retransmits: 80 })]);
    expect(closed.fresh).toEqual([]);
    expect(closed.early.map((a) => a.id)).toEqual([early!.id]);
    // The next window fires again (at its close, with no partial look).
    expect(d.observe([row(6, '/w', 'tcp', { tcp_retransmits: 80 })])).toHaveLength(1);
  });

  it('a new series crossing its prior fires on its first partial window', () => {
    const d = new AnomalyDetector();
    const [a] = d.observePartial([row(0, '/new', 'cgroup', { memory_oom_kills: 1 })]);
    expect(a).toMatchObject({ basis: 'prior', partial: true, metric: 'memory_oom_kills' });
  });

  it('quantiles wait for the close (a partial quantile can fall)', () => {
    const d = new AnomalyDetector();
    for (let i = 0; i < 5; i++) d.observe([row(i, '/w', 'syscalls', { syscall_p99_ns: 1000 })]);
    expect(d.observePartial([row(5, '/w', 'syscalls', { syscall_p99_ns: 1e9 })])).toEqual([]);
    expect(d.observe([row(5, '/w', 'syscalls', { syscall_p99_ns: 1e9 })])).toHaveLength(1);
  });

  it('baselines learn only from closed windows', () => {
    const d = new AnomalyDetector();
    warm(d);
    // Many partial looks at 15 (under the 20 that fires over a baseline of 0).
    for (let i = 5; i < 40; i++)
      expect(d.observePartial([row(i, '/w', 'tcp', { tcp_retransmits: 15 })])).toEqual([]);
    // Had they been learned, the baseline would be near 15 and 20 would not fire.
    expect(d.observe([row(5, '/w', 'tcp', { tcp_retransmits: 20 })])).toHaveLength(1);
  });
});

describe('early fire on the aggregator snapshot', () => {
  const off = (name: string): number => fieldOffset(EXIT_LAYOUT, name);
  const hdr = (b: Buffer, op: number, ms: number): void => {
    b.writeUInt8(op, fieldOffset(HEADER_LAYOUT, 'op'));
    b.writeUInt32LE(b.length, fieldOffset(HEADER_LAYOUT, 'size'));
    b.writeBigUInt64LE(BigInt(Math.round(ms * 1e6)), fieldOffset(HEADER_LAYOUT, 'ktime_ns'));
    b.writeUInt32LE(1, fieldOffset(HEADER_LAYOUT, 'sample_weight'));
  };
  const failedExit = (ms: number, cgroup: bigint): Buffer => {
    const b = Buffer.alloc(EXIT_LAYOUT.size);
    hdr(b, Op.EXIT, ms);
    b.writeInt32LE(1, off('exit_code'));
    b.writeBigUInt64LE(cgroup, off('cgroup_id'));
    return b;
  };
  const info = (cgroup: bigint, path: string): Buffer => {
    const p = Buffer.from(path);
    const b = Buffer.alloc(CGROUP_INFO_LAYOUT.size + ((p.length + 7) & ~7));
    hdr(b, Op.CGROUP_INFO, 0);
    b.writeBigUInt64LE(cgroup, fieldOffset(CGROUP_INFO_LAYOUT, 'cgroup_id'));
    b.writeUInt16LE(p.length, fieldOffset(CGROUP_INFO_LAYOUT, 'path_len'));
    p.copy(b, CGROUP_INFO_LAYOUT.size);
    return b;
  };

  it('a crash loop in a new workload fires from the open window; the close does not repeat it', () => {
    const base = Math.floor(Date.now() / W) * W - 60_000;
    const frame = (recs: Buffer[]) =>
      encodeFrame({
        node: 'snap',
        bootTimeNs: BigInt(base) * 1_000_000n,
        sequence: 0n,
        chunks: recs,
        eventCount: recs.length,
      });
    const agg = new WindowAggregator({ windowMs: W, allowedLatenessMs: 0, idleCloseMs: 60_000 });
    const schema = featureSchema(W);
    const d = new AnomalyDetector();
    const rowsOf = (w: ReturnType<WindowAggregator['snapshotOpen']>[number]) =>
      buildWindowBatch(w, agg.cgroupNames(w.node), schema).rows();
    // Three failed exits in the first second: under the prior of 5.
    agg.ingestFrame(
      frame([info(77n, '/crashy'), ...[100, 200, 300].map((t) => failedExit(t, 77n))]),
    );
    const snap1 = agg.snapshotOpen();
    expect(snap1).toHaveLength(1);
    expect(d.observePartial(snap1.flatMap(rowsOf))).toEqual([]);
    // Three more: six, over it, while the window is open.
    agg.ingestFrame(frame([400, 500, 600].map((t) => failedExit(t, 77n))));
    expect(agg.closeDue(base + 700, false)).toEqual([]);
    const [a, ...rest] = d.observePartial(agg.snapshotOpen().flatMap(rowsOf));
    expect(rest).toEqual([]);
    expect(a).toMatchObject({
      workload: '/crashy',
      metric: 'failed_exits',
      observed: 6,
      partial: true,
      basis: 'prior',
    });
    // The snapshot removed nothing: the close has every event, and does not fire again.
    agg.ingestFrame(frame([failedExit(W + 100, 77n)])); // moves the watermark past the window
    const closed = agg.closeDue();
    expect(closed).toHaveLength(1);
    const rows = closed.flatMap((w) => buildWindowBatch(w, agg.cgroupNames(w.node), schema).rows());
    expect(rows[0]?.failed_exits).toBe(6);
    const r = d.observeClosed(rows);
    expect(r.fresh).toEqual([]);
    expect(r.early.map((x) => x.id)).toEqual([a!.id]);
  });
});
