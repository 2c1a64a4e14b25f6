/**
 * Event-time tumbling windows over decoded frames. Records are read straight
 * from the frame bytes into typed-array slabs: no JavaScript object per event.
 *
 * A window of a node closes when that node's watermark (latest event time
 * minus the allowed lateness) passes its end, or, once the node has sent no
 * frame for `idleCloseMs` of wall-clock time, when the wall clock is past its
 * end plus lateness (a quiet node still gets its windows). Events for a closed
 * window are counted as late and not added.
 */
import { decodeFrame } from '../wire/frame.js';
import {
  CGROUP_INFO_LAYOUT,
  DROP_REASON_MAX,
  HEADER_LAYOUT,
  Op,
  PROBE_MAX,
  PROBE_STATS_LAYOUT,
  fieldOffset,
} from '../wire/layout.js';
import { FAMILIES, OpTable } from '../families/registry.js';
import { log2Slot, u64, type AggregateFn } from '../families/family.js';
import { H, NHIST, NPS, NSUM, PS, S } from './columns.js';

export { log2Slot };

const textDecoder = new TextDecoder();

const PROBE_BY_OP = OpTable.probeIndex;
const CGROUP_OFFSET = OpTable.cgroupOffset;

/** Each op's family record -> row function (undefined: the op adds only to `events`). */
const AGGREGATE_BY_OP: ReadonlyArray<AggregateFn | undefined> = (() => {
  const out = new Array<AggregateFn | undefined>(256);
  for (const f of FAMILIES) {
    const fn = (f.aggregate as (ix: unknown) => AggregateFn)({
      sum: (name: string) => {
        const i = (S as Record<string, number>)[name];
        if (i === undefined) throw new Error(`family ${f.name}: no sum column ${name}`);
        return i;
      },
      hist: (name: string) => {
        const i = (H as Record<string, number>)[name];
        if (i === undefined) throw new Error(`family ${f.name}: no histogram ${name}`);
        return i;
      },
    });
    for (const o of f.ops) out[o.op] = fn;
  }
  return out;
})();

/** Field offsets the hot loop reads, from the generated layouts (bpf/events.h). */
const HDR = {
  op: fieldOffset(HEADER_LAYOUT, 'op'),
  size: fieldOffset(HEADER_LAYOUT, 'size'),
  ktime: fieldOffset(HEADER_LAYOUT, 'ktime_ns'),
  weight: fieldOffset(HEADER_LAYOUT, 'sample_weight'),
};
const INFO = {
  cgroup: fieldOffset(CGROUP_INFO_LAYOUT, 'cgroup_id'),
  pathLen: fieldOffset(CGROUP_INFO_LAYOUT, 'path_len'),
  path: CGROUP_INFO_LAYOUT.size,
};

const PSL = PROBE_STATS_LAYOUT;
const PS_OFF = {
  probe: fieldOffset(PSL, 'probe'),
  sample_n: fieldOffset(PSL, 'sample_n'),
  overload_n: fieldOffset(PSL, 'overload_n'),
  focus_count: fieldOffset(PSL, 'focus_count'),
  emitted: fieldOffset(PSL, 'emitted'),
  drops: fieldOffset(PSL, 'drops'),
  sink_dropped: fieldOffset(PSL, 'sink_dropped'),
};
/** drops[reason] -> probe stat slot, in tf_drop_reason order. */
const DROP_SLOTS = [PS.ringbuf_full, PS.filtered, PS.sampled_out, PS.map_full];

export interface AggregatorOptions {
  /** Window length, ms. Default 10000. */
  windowMs: number;
  /** How long after a window's end its events are still accepted (event time), ms. Default 5000. */
  allowedLatenessMs: number;
  /** A node that sent no frame for this long (wall clock) is quiet: its windows close by the wall clock, ms. Default 5000. */
  idleCloseMs: number;
  /** Events older than this (wall clock) are out of range and counted, ms. Default 1 day. */
  maxClockSkewMs: number;
  /**
   * Events later than the wall clock plus this are future-dated: counted, not added, and
   * never move a watermark (no node's watermark is ever above now plus this), ms. Default 5000.
   */
  maxFutureSkewMs: number;
}

export const DEFAULT_AGGREGATOR_OPTIONS: AggregatorOptions = {
  windowMs: 10_000,
  allowedLatenessMs: 5_000,
  idleCloseMs: 5_000,
  maxClockSkewMs: 86_400_000,
  maxFutureSkewMs: 5_000,
};

export interface AggregatorCounters {
  frames: number;
  events: number;
  /** Events for a window already closed. */
  late: number;
  /** Events whose time is absurdly far in the past. */
  outOfRange: number;
  /** Events later than the wall clock plus the future skew (not added, watermark unmoved). */
  futureDated: number;
  /** Nodes whose restored closed-up-to time lay in the future and was clamped to the wall clock. */
  stateClamped: number;
  /** Events of windows already emitted before a restart (replayed, not counted twice). */
  alreadyEmitted: number;
  windowsClosed: number;
  rowsEmitted: number;
}

/** The rows of one closed (node, window), in slab form. */
export interface ClosedWindow {
  node: string;
  windowStartMs: number;
  windowEndMs: number;
  rows: number;
  cgroupIds: Float64Array;
  probeIds: Uint8Array;
  sums: Float64Array; // rows * NSUM
  hists: Float64Array; // rows * NHIST
  /** Largest sample weight among each row's records (rows). */
  weightMax: Float64Array;
  /** TF_OP_PROBE_STATS of the window per probe id: PROBE_MAX * NPS, slots in PROBE_STAT_SLOTS order. */
  probeStats: Float64Array;
  /** The input partition whose records fed this window (windows are kept per node and partition). */
  partition: number;
  /** Lowest Kafka offset per partition that fed this window (for commits). */
  minOffsets: Map<number, number>;
}

interface OpenWindow {
  start: number; // ms
  rowsByKey: Map<number, number>; // cgroup*8+probe -> local row
  cgroupIds: number[];
  probeIds: number[];
  sums: Float64Array;
  hists: Float64Array;
  weightMax: Float64Array;
  probeStats: Float64Array;
  minOffsets: Map<number, number>;
}

interface NodeState {
  node: string;
  partition: number;
  windows: Map<number, OpenWindow>; // window index -> window
  maxEventMs: number;
  /** Event time (ms) below which windows are closed. */
  closedUpToMs: number;
  /** closedUpToMs as restored from a previous run: events below it are replays. */
  restoredUpToMs: number;
  /** Wall clock of the node's last frame. */
  lastFrameWallMs: number;
}

/** Node states are kept per input partition: a window is fed by one partition only. */
const stateKey = (partition: number, node: string): string => `${partition}\u0000${node}`;

export class WindowAggregator {
  readonly counters: AggregatorCounters = {
    frames: 0,
    events: 0,
    late: 0,
    outOfRange: 0,
    futureDated: 0,
    stateClamped: 0,
    alreadyEmitted: 0,
    windowsClosed: 0,
    rowsEmitted: 0,
  };
  private readonly nodes = new Map<string, NodeState>();
  private readonly opts: AggregatorOptions;

  /** Nodes whose restored state was clamped, with the time they held (ms). */
  readonly clampedState: Record<string, number> = {};
  /** Future-dated records of the last frame ingested (the stage dead-letters such frames). */
  lastFrameFutureDated = 0;

  /**
   * @param emittedUpTo per node, event time up to which windows of partition 0 were written
   *   by a previous run (see `restorePartition`).
   */
  constructor(
    opts: Partial<AggregatorOptions> = {},
    emittedUpTo: Record<string, number> = {},
    nowMs = Date.now(),
  ) {
    this.opts = { ...DEFAULT_AGGREGATOR_OPTIONS, ...opts };
    this.restorePartition(0, emittedUpTo, nowMs);
  }

  /**
   * Per node, the event time up to which the windows fed by `partition` were written (as
   * committed with the partition's offset). Events of that partition earlier than it are
   * replays: counted in `alreadyEmitted`, not added. A time beyond the wall clock plus the
   * future skew (saved after a future-dated record) is clamped to the wall clock and
   * counted in `stateClamped`.
   */
  restorePartition(
    partition: number,
    emittedUpTo: Record<string, number>,
    nowMs = Date.now(),
  ): void {
    for (const [node, saved] of Object.entries(emittedUpTo)) {
      if (typeof saved !== 'number' || !Number.isFinite(saved)) continue;
      let ms = saved;
      if (ms > nowMs + this.opts.maxFutureSkewMs) {
        this.clampedState[node] = ms;
        this.counters.stateClamped++;
        ms = nowMs;
      }
      const st = this.nodeState(node, partition);
      st.closedUpToMs = ms;
      st.restoredUpToMs = ms;
    }
  }

  /**
   * Forgets everything fed by `partition` (open windows and closed-up-to times): another
   * consumer owns it now and re-reads it from its committed offset. Returns the open
   * windows dropped.
   */
  dropPartition(partition: number): number {
    let dropped = 0;
    for (const [key, st] of this.nodes) {
      if (st.partition !== partition) continue;
      dropped += st.windows.size;
      this.nodes.delete(key);
    }
    return dropped;
  }

  get windowMs(): number {
    return this.opts.windowMs;
  }

  /**
   * Event time up to which each node's windows are closed, of one partition or (highest)
   * over all; persist it with the partition's offset to resume without double counting.
   * `limit`: at most this many nodes, those heard from last.
   */
  closedUpTo(partition?: number, limit = Infinity): Record<string, number> {
    const states = [...this.nodes.values()]
      .filter(
        (st) => (partition === undefined || st.partition === partition) && st.closedUpToMs > 0,
      )
      .sort((a, b) => b.lastFrameWallMs - a.lastFrameWallMs)
      .slice(0, limit);
    const out: Record<string, number> = {};
    for (const st of states) out[st.node] = Math.max(out[st.node] ?? 0, st.closedUpToMs);
    return out;
  }

  /** Nodes with state fed by `partition`. */
  nodesOf(partition: number): number {
    let n = 0;
    for (const st of this.nodes.values()) if (st.partition === partition) n++;
    return n;
  }

  openWindows(): number {
    let n = 0;
    for (const st of this.nodes.values()) n += st.windows.size;
    return n;
  }

  /** Lowest offset per partition still needed by an open window. */
  pendingMinOffsets(): Map<number, number> {
    const out = new Map<number, number>();
    for (const st of this.nodes.values()) {
      for (const w of st.windows.values()) {
        for (const [p, o] of w.minOffsets)
          if (!out.has(p) || o < (out.get(p) as number)) out.set(p, o);
      }
    }
    return out;
  }

  private readonly names = new Map<string, Map<number, string>>();

  /** cgroup id -> path, as the node's agent named them. */
  cgroupNames(node: string): Map<number, string> {
    let m = this.names.get(node);
    if (!m) {
      m = new Map();
      this.names.set(node, m);
    }
    return m;
  }

  private nodeState(node: string, partition: number): NodeState {
    const key = stateKey(partition, node);
    let st = this.nodes.get(key);
    if (!st) {
      st = {
        node,
        partition,
        windows: new Map(),
        maxEventMs: 0,
        closedUpToMs: 0,
        restoredUpToMs: 0,
        lastFrameWallMs: 0,
      };
      this.nodes.set(key, st);
    }
    return st;
  }

  /**
   * Adds one frame. Throws DecodeError (from decodeFrame) on bad bytes before
   * anything is added: a frame is taken whole or not at all.
   */
  ingestFrame(bytes: Uint8Array, partition = 0, offset = 0, nowMs = Date.now()): number {
    const frame = decodeFrame(bytes, { knownOpsOnly: true });
    const st = this.nodeState(frame.node, partition);
    const rec = frame.records;
    const names = this.cgroupNames(frame.node);
    const dv = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
    const bootMs = Number(frame.bootTimeNs / 1000n) / 1000;
    const windowMs = this.opts.windowMs;
    const minMs = nowMs - this.opts.maxClockSkewMs;
    const maxMs = nowMs + this.opts.maxFutureSkewMs;
    let future = 0;
    const closedUpTo = st.closedUpToMs;
    let maxEvent = st.maxEventMs;
    let curIdx = -1;
    let cur: OpenWindow | undefined;
    let lastKey = -1;
    let lastRow = -1;
    let n = 0;
    const len = rec.byteLength;
    let off = 0;
    while (off < len) {
      const op = dv.getUint8(off + HDR.op);
      const size = dv.getUint32(off + HDR.size, true);
      const probe = PROBE_BY_OP[op] as number;
      if (op === Op.CGROUP_INFO) {
        const id = u64(dv, off + INFO.cgroup);
        const pathLen = dv.getUint16(off + INFO.pathLen, true);
        if (!names.has(id))
          names.set(
            id,
            textDecoder.decode(rec.subarray(off + INFO.path, off + INFO.path + pathLen)),
          );
        off += size;
        continue;
      }
      if (probe === 255) {
        // Node-level per probe: kept per (window, probe), filled into rows at close.
        if (
          op === Op.PROBE_STATS &&
          !this.addProbeStats(st, dv, off, bootMs, partition, offset, nowMs)
        )
          future++;
        off += size;
        continue; // decodeFrame accepted it: an op this stage does not aggregate
      }
      n++;
      const ktimeMs = u64(dv, off + HDR.ktime) / 1e6;
      const t = bootMs + ktimeMs;
      if (t > maxMs) {
        future++;
        off += size;
        continue;
      }
      if (t < minMs) {
        this.counters.outOfRange++;
        off += size;
        continue;
      }
      if (t < closedUpTo) {
        if (t < st.restoredUpToMs) this.counters.alreadyEmitted++;
        else this.counters.late++;
        off += size;
        continue;
      }
      if (t > maxEvent) maxEvent = t;
      const idx = Math.floor(t / windowMs);
      if (idx !== curIdx) {
        curIdx = idx;
        cur = this.windowAt(st, idx, partition, offset);
        lastKey = -1;
      }
      const w = cur as OpenWindow;
      const co = CGROUP_OFFSET[op] as number;
      const cgroup = u64(dv, off + co);
      const key = cgroup * 8 + probe;
      let row: number;
      if (key === lastKey) {
        row = lastRow;
      } else {
        const found = w.rowsByKey.get(key);
        if (found === undefined) {
          row = w.cgroupIds.length;
          w.cgroupIds.push(cgroup);
          w.probeIds.push(probe);
          w.rowsByKey.set(key, row);
          if ((row + 1) * NSUM > w.sums.length) {
            const s = new Float64Array(w.sums.length * 2);
            s.set(w.sums);
            w.sums = s;
            const h = new Float64Array(w.hists.length * 2);
            h.set(w.hists);
            w.hists = h;
            const m = new Float64Array(w.weightMax.length * 2);
            m.set(w.weightMax);
            w.weightMax = m;
          }
          w.weightMax[row] = 1;
        } else {
          row = found;
        }
        lastKey = key;
        lastRow = row;
      }
      const weight = dv.getUint32(off + HDR.weight, true) || 1;
      if (weight > (w.weightMax[row] as number)) w.weightMax[row] = weight;
      const sums = w.sums;
      const b = row * NSUM;
      sums[b + S.events]! += weight;
      AGGREGATE_BY_OP[op]?.(op, dv, off, weight, sums, b, w.hists, row * NHIST);
      off += size;
    }
    st.maxEventMs = maxEvent;
    st.lastFrameWallMs = nowMs;
    this.counters.futureDated += future;
    this.lastFrameFutureDated = future;
    this.counters.frames++;
    this.counters.events += n;
    return n;
  }

  /** The open window `idx` of a node (made if new), noting the offset that feeds it. */
  private windowAt(st: NodeState, idx: number, partition: number, offset: number): OpenWindow {
    let w = st.windows.get(idx);
    if (!w) {
      w = {
        start: idx * this.opts.windowMs,
        rowsByKey: new Map(),
        cgroupIds: [],
        probeIds: [],
        sums: new Float64Array(16 * NSUM),
        hists: new Float64Array(16 * NHIST),
        weightMax: new Float64Array(16),
        probeStats: new Float64Array(PROBE_MAX * NPS),
        minOffsets: new Map(),
      };
      st.windows.set(idx, w);
    }
    const prev = w.minOffsets.get(partition);
    if (prev === undefined || offset < prev) w.minOffsets.set(partition, offset);
    return w;
  }

  /**
   * Adds one TF_OP_PROBE_STATS record to its window's per-probe slab (late and out-of-range
   * ones are counted). Returns false for a future-dated record (the caller counts it).
   */
  private addProbeStats(
    st: NodeState,
    dv: DataView,
    off: number,
    bootMs: number,
    partition: number,
    offset: number,
    nowMs: number,
  ): boolean {
    const probe = dv.getUint32(off + PS_OFF.probe, true);
    if (probe >= PROBE_MAX) return true; // not a probe this stage knows; the record is still counted by decoders
    const t = bootMs + u64(dv, off + HDR.ktime) / 1e6;
    if (t > nowMs + this.opts.maxFutureSkewMs) return false;
    if (t < nowMs - this.opts.maxClockSkewMs) {
      this.counters.outOfRange++;
      return true;
    }
    if (t < st.closedUpToMs) {
      if (t < st.restoredUpToMs) this.counters.alreadyEmitted++;
      else this.counters.late++;
      return true;
    }
    if (t > st.maxEventMs) st.maxEventMs = t;
    const w = this.windowAt(st, Math.floor(t / this.opts.windowMs), partition, offset);
    const p = w.probeStats;
    const b = probe * NPS;
    const field = (at: number): number => u64(dv, off + at);
    p[b + PS.sample_n] = Math.max(p[b + PS.sample_n]!, dv.getUint32(off + PS_OFF.sample_n, true));
    p[b + PS.overload_n] = Math.max(
      p[b + PS.overload_n]!,
      dv.getUint32(off + PS_OFF.overload_n, true),
    );
    p[b + PS.focus_count] = Math.max(
      p[b + PS.focus_count]!,
      dv.getUint32(off + PS_OFF.focus_count, true),
    );
    p[b + PS.emitted]! += field(PS_OFF.emitted);
    for (let r = 0; r < DROP_REASON_MAX; r++) p[b + DROP_SLOTS[r]!]! += field(PS_OFF.drops + r * 8);
    p[b + PS.sink_dropped]! += field(PS_OFF.sink_dropped);
    p[b + PS.reports]! += 1;
    return true;
  }

  /**
   * The open windows as they stand now, in the shape of closed ones (copies; nothing is
   * removed or closed). For scoring partial windows: a sum can only grow until the close.
   */
  snapshotOpen(): ClosedWindow[] {
    const out: ClosedWindow[] = [];
    const { windowMs } = this.opts;
    for (const st of this.nodes.values()) {
      for (const [idx, w] of st.windows) {
        const rows = w.cgroupIds.length;
        out.push({
          node: st.node,
          partition: st.partition,
          windowStartMs: w.start,
          windowEndMs: (idx + 1) * windowMs,
          rows,
          cgroupIds: Float64Array.from(w.cgroupIds),
          probeIds: Uint8Array.from(w.probeIds),
          sums: w.sums.slice(0, rows * NSUM),
          hists: w.hists.slice(0, rows * NHIST),
          weightMax: w.weightMax.slice(0, rows),
          probeStats: w.probeStats.slice(),
          minOffsets: new Map(w.minOffsets),
        });
      }
    }
    return out.sort((a, b) => a.windowStartMs - b.windowStartMs);
  }

  /** Closes every window whose time has come and returns them, oldest first. */
  /**
   * @param caughtUp whether a partition's consumer has read all there is: a node is only
   *   "quiet" (windows closed by the wall clock) on a partition read to its end. A partition
   *   with a backlog (after a rebalance, a take-over, a stall) is left to the watermark, so
   *   the events still to be read are not made late. Default: every partition is.
   */
  closeDue(
    nowMs = Date.now(),
    force = false,
    caughtUp: (partition: number) => boolean = () => true,
  ): ClosedWindow[] {
    const out: ClosedWindow[] = [];
    const { windowMs, allowedLatenessMs, idleCloseMs, maxFutureSkewMs } = this.opts;
    for (const st of this.nodes.values()) {
      // Never above the wall clock plus the future skew, whatever a record claimed.
      const watermark = Math.min(st.maxEventMs, nowMs + maxFutureSkewMs) - allowedLatenessMs;
      const indices = [...st.windows.keys()].sort((a, b) => a - b);
      for (const idx of indices) {
        const end = (idx + 1) * windowMs;
        // By event time (the watermark), or, for a node gone quiet, by the wall clock. A node
        // whose frames keep coming (a live stream, or a backlog being read) is left to its
        // watermark, so catching up does not close windows early.
        const quiet = nowMs - st.lastFrameWallMs >= idleCloseMs && caughtUp(st.partition);
        const due = force || end <= watermark || (quiet && end + allowedLatenessMs <= nowMs);
        if (!due) break; // windows close in order per node
        const w = st.windows.get(idx) as OpenWindow;
        st.windows.delete(idx);
        if (end > st.closedUpToMs) st.closedUpToMs = end;
        const rows = w.cgroupIds.length;
        out.push({
          node: st.node,
          partition: st.partition,
          windowStartMs: w.start,
          windowEndMs: end,
          rows,
          cgroupIds: Float64Array.from(w.cgroupIds),
          probeIds: Uint8Array.from(w.probeIds),
          sums: w.sums.subarray(0, rows * NSUM),
          hists: w.hists.subarray(0, rows * NHIST),
          weightMax: w.weightMax.subarray(0, rows),
          probeStats: w.probeStats,
          minOffsets: w.minOffsets,
        });
        this.counters.windowsClosed++;
        this.counters.rowsEmitted += rows;
      }
    }
    return out.sort((a, b) => a.windowStartMs - b.windowStartMs);
  }
}
