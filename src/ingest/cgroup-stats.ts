/**
 * Always-on per-workload signals from the cgroup files: cpu.stat (usage,
 * throttling), cpu/io/memory pressure (PSI `some` and `full` totals) and
 * memory.events, turned every summary interval into one TF_OP_CGROUP_STATS
 * record per active cgroup with the increases since its previous record.
 *
 * Which cgroups are read: the ones the node's records named in the interval
 * (the frame sink reports them, per frame), plus the ones whose cpu.stat usage
 * moved; a record is built only when one of its counters changed. A walk of the hierarchy every `discoverEveryIntervals` passes finds
 * busy cgroups no record names (a workload started before the agent, a CPU hog
 * that never execs or connects); a cgroup found busy stays tracked (its
 * cpu.stat read every pass) until it has been idle `idleIntervals` passes.
 *
 * On a hybrid host the cgroup v2 tree carries usage and pressure but the cpu
 * and memory controllers live in the v1 trees: throttling then comes from the
 * v1 `cpu` cgroup at the same path (cpu.stat throttled_time, nr_throttled) and
 * memory events from the v1 `memory` cgroup (memory.failcnt as `max`,
 * memory.oom_control oom_kill). A file that does not exist (the root has no
 * memory.events) is noted once and not read again: it is not an error.
 */
import { closeSync, openSync, readSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { walkCgroupTree } from './cgroup-resolver.js';
import { CGROUP_STATS_LAYOUT, CGROUP_STAT_FIELDS, Op, fieldOffset } from '../wire/layout.js';
import type { SummaryBatch } from './summaries.js';
import { writeRecordHeader } from '../wire/record-header.js';

export { CGROUP_STAT_FIELDS };
const NF = CGROUP_STAT_FIELDS.length;
const F = Object.fromEntries(CGROUP_STAT_FIELDS.map((n, i) => [n, i])) as Record<
  (typeof CGROUP_STAT_FIELDS)[number],
  number
>;
const L = CGROUP_STATS_LAYOUT;
const OFF_CGROUP = fieldOffset(L, 'cgroup_id');
const OFF_INTERVAL = fieldOffset(L, 'interval_ns');
const OFF_FIELDS = CGROUP_STAT_FIELDS.map((n) => fieldOffset(L, n));
const TWO32 = 4294967296;

export interface CgroupStatsOptions {
  /** Walk the whole hierarchy for busy cgroups no record named every this many passes. Default 6 (30 s at the 5-s interval). */
  discoverEveryIntervals: number;
  /** A tracked cgroup idle (no usage, no records) for this many passes is only looked at by walks again. Default 12. */
  idleIntervals: number;
  /** Files kept open between passes (re-read with pread, one syscall each); past it files are opened per read. Default 8192. */
  maxOpenFiles: number;
  /** The node's cgroup scope (path relative to the root): only it and its descendants are read. Default "/" (all). */
  scope: string;
}

export const DEFAULT_CGROUP_STATS_OPTIONS: CgroupStatsOptions = {
  discoverEveryIntervals: 6,
  idleIntervals: 12,
  maxOpenFiles: 8192,
  scope: '/',
};

export interface CgroupStatsCounters {
  passes: number;
  /** TF_OP_CGROUP_STATS records built. */
  records: number;
  /** cgroups read in full (all files) over all passes. */
  reads: number;
  /** Reads that failed for a reason other than the file not existing (counted, not logged each time). */
  readFailures: number;
  /** Files found absent (each counted once per cgroup). */
  missingFiles: number;
  /** Counters that went backwards: the base restarted. */
  baseRestarts: number;
  walks: number;
  /** cgroups tracked now (read every pass). */
  tracked: number;
}

/** The v1 controller mounts of a hybrid host (cpu and memory), if any. */
export function cgroupV1Mounts(mountsText = readFileSync('/proc/mounts', 'utf8')): {
  cpu?: string;
  memory?: string;
} {
  const out: { cpu?: string; memory?: string } = {};
  for (const line of mountsText.split('\n')) {
    const [, dir, type, options] = line.split(' ');
    if (type !== 'cgroup' || !dir || !options) continue;
    const opts = options.split(',');
    if (opts.includes('cpu') && !out.cpu) out.cpu = dir;
    if (opts.includes('memory') && !out.memory) out.memory = dir;
  }
  return out;
}

interface CgroupState {
  rel: string;
  abs: string;
  /** Files known absent, by name. */
  absent: Set<string>;
  /** Files kept open, by name. */
  fds: Map<string, number>;
  base: Float64Array;
  hasBase: boolean;
  baseAtNs: bigint;
  tracked: boolean;
  seen: boolean;
  idle: number;
  walkMark: number;
}

const ENOENT_CODES = new Set(['ENOENT', 'ENODEV', 'ENOTDIR']);

export class CgroupStatsCollector {
  readonly counters: CgroupStatsCounters = {
    passes: 0,
    records: 0,
    reads: 0,
    readFailures: 0,
    missingFiles: 0,
    baseRestarts: 0,
    walks: 0,
    tracked: 0,
  };
  private readonly states = new Map<bigint, CgroupState>();
  private readonly opts: CgroupStatsOptions;
  private readonly buf = Buffer.alloc(4096);
  private readonly vals = new Float64Array(NF);
  private walkNo = 0;
  private openFiles = 0;
  /** When the last walk ran (CLOCK_MONOTONIC ns); undefined before the first. */
  private lastWalkNs: bigint | undefined;

  /**
   * @param root the cgroup v2 mount (see cgroup2Root)
   * @param nameOf cgroup id -> path relative to the root (the agent's resolver)
   */
  constructor(
    private readonly root: string,
    private readonly nameOf: (id: bigint) => string | undefined,
    opts: Partial<CgroupStatsOptions> = {},
    private readonly v1: { cpu?: string; memory?: string } = cgroupV1Mounts(),
  ) {
    this.opts = { ...DEFAULT_CGROUP_STATS_OPTIONS, ...opts };
  }

  /**
   * One pass: `seen` are the cgroup ids the node's records named since the
   * previous pass, `nowNs` CLOCK_MONOTONIC now. Returns the records to append.
   */
  collect(seen: Iterable<bigint>, nowNs: bigint): SummaryBatch {
    const c = this.counters;
    for (const id of seen) {
      let st = this.states.get(id);
      if (!st) {
        const rel = this.nameOf(id);
        if (rel === undefined) continue; // gone before it could be named
        if (!this.inScope(rel)) continue; // another node's
        st = this.newState(rel);
        this.bornSinceWalk(st);
        this.states.set(id, st);
      }
      st.tracked = true;
      st.seen = true;
    }
    if (c.passes % this.opts.discoverEveryIntervals === 0) this.walk(nowNs);
    c.passes++;

    const out: Array<[bigint, CgroupState, Float64Array, Float64Array]> = [];
    let tracked = 0;
    for (const [id, st] of this.states) {
      // Not tracked, or its base was set by this pass's walk (nothing to report yet).
      if (!st.tracked || (st.hasBase && st.baseAtNs === nowNs)) continue;
      const seenNow = st.seen;
      st.seen = false;
      if (st.hasBase && !seenNow) {
        // Idle check on cpu.stat alone: the other files only when usage moved.
        const usage = this.readUsage(st);
        if (usage === undefined) {
          this.forget(id, st);
          continue;
        }
        if (usage <= (st.base[F.cpu_usage_us] as number)) {
          if (++st.idle >= this.opts.idleIntervals) st.tracked = false;
          else tracked++;
          continue;
        }
      }
      tracked++;
      if (!this.readAll(st)) {
        this.forget(id, st);
        continue;
      }
      const v = this.vals;
      if (!st.hasBase) {
        this.setBase(st, nowNs);
        continue;
      }
      let backwards = false;
      for (let i = 0; i < NF; i++) if ((v[i] as number) < (st.base[i] as number)) backwards = true;
      if (backwards) {
        c.baseRestarts++;
        this.setBase(st, nowNs);
        continue;
      }
      const delta = new Float64Array(NF);
      let moved = false;
      for (let i = 0; i < NF; i++) {
        delta[i] = (v[i] as number) - (st.base[i] as number);
        if (delta[i] !== 0) moved = true;
      }
      // Nothing changed: no record (this collector's own records name the cgroup too).
      if (!moved) {
        if (++st.idle >= this.opts.idleIntervals) st.tracked = false;
        continue;
      }
      out.push([id, st, delta, Float64Array.from(v)]);
      st.idle = 0;
    }
    c.tracked = tracked;
    if (out.length === 0) return { records: Buffer.alloc(0), count: 0 };
    const size = L.size;
    const records = Buffer.alloc(size * out.length);
    out.forEach(([id, st, delta, values], i) => {
      const o = i * size;
      writeRecordHeader(records, o, Op.CGROUP_STATS, size, nowNs, 0);
      records.writeBigUInt64LE(id, o + OFF_CGROUP);
      records.writeBigUInt64LE(nowNs - st.baseAtNs, o + OFF_INTERVAL);
      for (let f = 0; f < NF; f++) {
        const x = delta[f] as number;
        const at = o + (OFF_FIELDS[f] as number);
        records.writeUInt32LE(x % TWO32, at);
        records.writeUInt32LE(Math.floor(x / TWO32), at + 4);
      }
      st.base.set(values);
      st.baseAtNs = nowNs;
    });
    c.records += out.length;
    return { records, count: out.length };
  }

  private inScope(rel: string): boolean {
    const s = this.opts.scope;
    return s === '/' || rel === s || rel.startsWith(`${s}/`);
  }

  /** Closes the files kept open. The collector can still be used (files reopen). */
  close(): void {
    for (const st of this.states.values()) this.closeFiles(st);
  }

  /** Files kept open now. */
  get openFileCount(): number {
    return this.openFiles;
  }

  private forget(id: bigint, st: CgroupState): void {
    this.closeFiles(st);
    this.states.delete(id);
  }

  private closeFiles(st: CgroupState): void {
    for (const fd of st.fds.values()) {
      try {
        closeSync(fd);
      } catch {
        /* already gone */
      }
    }
    this.openFiles -= st.fds.size;
    st.fds.clear();
  }

  /** cgroups known (tracked or not). */
  get size(): number {
    return this.states.size;
  }

  private newState(rel: string): CgroupState {
    return {
      rel,
      abs: join(this.root, rel),
      absent: new Set(),
      fds: new Map(),
      base: new Float64Array(NF),
      hasBase: false,
      baseAtNs: 0n,
      tracked: false,
      seen: false,
      idle: 0,
      walkMark: 0,
    };
  }

  private setBase(st: CgroupState, nowNs: bigint): void {
    st.base.set(this.vals);
    st.hasBase = true;
    st.baseAtNs = nowNs;
  }

  /**
   * Walks the v2 hierarchy: new cgroups get their base (no record), known
   * untracked ones whose usage moved become tracked; vanished ones are forgotten.
   */
  private walk(nowNs: bigint): void {
    this.counters.walks++;
    const mark = ++this.walkNo;
    for (const { rel, ino: id } of walkCgroupTree(this.root, this.opts.scope)) {
      let st = this.states.get(id);
      if (!st) {
        st = this.newState(rel);
        if (mark > 1) {
          // Made since the previous walk: everything it counted happened in the interval.
          this.bornSinceWalk(st);
          st.tracked = true;
        }
        this.states.set(id, st);
      }
      st.walkMark = mark;
      if (!st.hasBase) {
        if (this.readAll(st)) this.setBase(st, nowNs);
      } else if (!st.tracked) {
        const usage = this.readUsage(st);
        if (usage !== undefined && usage > (st.base[F.cpu_usage_us] as number)) {
          st.tracked = true;
          st.idle = 0;
        }
      }
    }
    for (const [id, st] of this.states) if (st.walkMark !== mark) this.forget(id, st);
    this.lastWalkNs = nowNs;
  }

  /**
   * A cgroup the last walk did not see was made since: its counters started
   * at 0, so they are all increases (a crash in its first second still counts).
   */
  private bornSinceWalk(st: CgroupState): void {
    if (this.lastWalkNs === undefined) return; // before the first walk: the walk sets the base
    st.hasBase = true;
    st.baseAtNs = this.lastWalkNs;
  }

  /**
   * Reads a small file into the shared buffer; undefined when absent (or the
   * cgroup is gone), null on another failure. Files stay open between passes
   * (up to maxOpenFiles) and are re-read from offset 0: one syscall a read.
   */
  private read(st: CgroupState, key: string): string | undefined | null {
    let fd = st.fds.get(key);
    let kept = fd !== undefined;
    if (fd === undefined) {
      if (st.absent.has(key)) return undefined;
      try {
        fd = openSync(this.pathOf(st, key), 'r');
      } catch (err) {
        if (ENOENT_CODES.has((err as NodeJS.ErrnoException).code ?? '')) {
          st.absent.add(key);
          this.counters.missingFiles++;
          return undefined;
        }
        this.counters.readFailures++;
        return null;
      }
      if (this.openFiles < this.opts.maxOpenFiles) {
        st.fds.set(key, fd);
        this.openFiles++;
        kept = true;
      }
    }
    try {
      const n = readSync(fd, this.buf, 0, this.buf.length, 0);
      if (!kept) closeSync(fd);
      return this.buf.toString('latin1', 0, n);
    } catch (err) {
      if (kept) {
        st.fds.delete(key);
        this.openFiles--;
      }
      try {
        closeSync(fd);
      } catch {
        /* already closed */
      }
      // ENODEV: the cgroup was removed under the open file.
      if (ENOENT_CODES.has((err as NodeJS.ErrnoException).code ?? '')) return undefined;
      this.counters.readFailures++;
      return null;
    }
  }

  /** A file's path from its key: `name` in the v2 cgroup, `v1:<controller>.<file>` in the v1 one. */
  private pathOf(st: CgroupState, key: string): string {
    if (!key.startsWith('v1:')) return join(st.abs, key);
    const file = key.slice(3);
    const mount = file.startsWith('cpu.') ? this.v1.cpu : this.v1.memory;
    return join(mount ?? '/nonexistent', st.rel, file);
  }

  private readUsage(st: CgroupState): number | undefined {
    const text = this.read(st, 'cpu.stat');
    if (text === undefined) return undefined;
    if (text === null) return st.base[F.cpu_usage_us] as number;
    return keyed(text, 'usage_usec');
  }

  /** Reads every file of a cgroup into this.vals; false when the cgroup is gone. */
  private readAll(st: CgroupState): boolean {
    this.counters.reads++;
    const v = this.vals;
    // A file that cannot be read this time keeps its previous value (no spurious increase).
    v.set(st.base);
    const cpu = this.read(st, 'cpu.stat');
    if (cpu === undefined) return false; // every v2 cgroup has cpu.stat: the cgroup is gone
    if (cpu !== null) {
      v[F.cpu_usage_us] = keyed(cpu, 'usage_usec');
      if (cpu.includes('throttled_usec')) {
        v[F.cpu_throttled_us] = keyed(cpu, 'throttled_usec');
        v[F.cpu_nr_throttled] = keyed(cpu, 'nr_throttled');
      } else if (this.v1.cpu) {
        const c1 = this.read(st, 'v1:cpu.stat');
        if (c1) {
          v[F.cpu_throttled_us] = Math.floor(keyed(c1, 'throttled_time') / 1000);
          v[F.cpu_nr_throttled] = keyed(c1, 'nr_throttled');
        }
      }
    }
    for (const [file, some, full] of [
      ['cpu.pressure', F.cpu_some_us, F.cpu_full_us],
      ['io.pressure', F.io_some_us, F.io_full_us],
      ['memory.pressure', F.memory_some_us, F.memory_full_us],
    ] as const) {
      const text = this.read(st, file);
      if (!text) continue;
      const [s, f] = pressureTotals(text);
      v[some] = s;
      v[full] = f;
    }
    const ev = this.read(st, 'memory.events');
    if (ev) {
      v[F.memory_high] = keyed(ev, 'high');
      v[F.memory_max] = keyed(ev, 'max');
      v[F.memory_oom] = keyed(ev, 'oom');
      v[F.memory_oom_kill] = keyed(ev, 'oom_kill');
    } else if (ev === undefined && this.v1.memory) {
      const fail = this.read(st, 'v1:memory.failcnt');
      if (fail) v[F.memory_max] = Number(fail.trim()) || 0;
      const oom = this.read(st, 'v1:memory.oom_control');
      if (oom) v[F.memory_oom_kill] = keyed(oom, 'oom_kill');
    }
    return true;
  }
}

/** The value of a `key value` line (0 when absent). */
function keyed(text: string, key: string): number {
  let at = 0;
  for (;;) {
    at = text.indexOf(key, at);
    if (at < 0) return 0;
    const start = at === 0 || text.charCodeAt(at - 1) === 10;
    const end = at + key.length;
    if (start && text.charCodeAt(end) === 32) {
      let nl = text.indexOf('\n', end);
      if (nl < 0) nl = text.length;
      return Number(text.slice(end + 1, nl)) || 0;
    }
    at = end;
  }
}

/** `some` and `full` total= values of a PSI file, in µs. */
function pressureTotals(text: string): [number, number] {
  // "some avg10=.. avg60=.. avg300=.. total=N\nfull avg10=.. total=N\n"
  const a = text.indexOf('total=');
  if (a < 0) return [0, 0];
  const aEnd = text.indexOf('\n', a);
  const some = Number(text.slice(a + 6, aEnd < 0 ? text.length : aEnd)) || 0;
  if (aEnd < 0) return [some, 0];
  const b = text.indexOf('total=', aEnd);
  if (b < 0 || !text.startsWith('full', aEnd + 1)) return [some, 0];
  const bEnd = text.indexOf('\n', b);
  return [some, Number(text.slice(b + 6, bEnd < 0 ? text.length : bEnd)) || 0];
}
