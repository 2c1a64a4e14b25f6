// SPDX-License-Identifier: Apache-2.0
//
// End-to-end test of bpf/syscalls.bpf.c with real workloads run in a fresh
// cgroup v2: needs root, `make -C bpf` and `node native/build.mjs`.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cString,
  cgroup2Mount,
  cgroupId,
  ensureTracefs,
  ownCgroupId,
  removeCgroup,
  u64Key,
  waitFor,
} from '../helpers/native-test.js';

import type * as Native from '../../native/index.js';
import { encodeProbeConfig } from '../../src/ingest/probe-controller.js';
import { FOCUS_LAYOUT, fieldOffset } from '../../src/wire/layout.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const probePath = path.join(root, 'bpf/.output/syscalls.bpf.o');
const addonPath = path.join(root, 'native/build/tracefeed.node');
const isRoot = process.getuid?.() === 0;

// events.h constants and offsets, duplicated on purpose: the test checks the wire format.
const HDR_SIZE = 24;
const TF_OP_SYSCALL_SLOW = 11;
const TF_PROBE_SYSCALLS = 2;
const TF_DROP_REASON_MAX = 4;
const TF_DROP_FILTERED = 1;
const TF_DROP_MAP_FULL = 3; // TF_DROP_REASON_MAX - 1: no name in events.h yet
const TF_FILTER_ALLOW_CGROUP = 0x0001;
const TF_SET_ALLOW = 0x1;
const TF_HIST_SLOTS = 32;
const HIST_VALUE_SIZE = 24 + 8 * TF_HIST_SLOTS;
// x86_64 syscall numbers.
const NR = { read: 0, write: 1, close: 3, nanosleep: 35, clock_nanosleep: 230, openat: 257 };
const ENOENT = 2;

interface SlowRecord {
  flags: number;
  size: number;
  generation: number;
  weight: number;
  pid: number;
  tid: number;
  cgroupId: bigint;
  nr: number;
  pad: number;
  ret: bigint;
  durationNs: bigint;
  comm: string;
}

function decodeSlow(batch: Buffer): SlowRecord[] {
  const out: SlowRecord[] = [];
  const dv = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  let off = 0;
  while (off < batch.length) {
    const op = dv.getUint8(off);
    const size = dv.getUint32(off + 4, true);
    expect(size).toBeGreaterThanOrEqual(HDR_SIZE);
    expect(size % 8).toBe(0);
    expect(op).toBe(TF_OP_SYSCALL_SLOW);
    expect(size).toBe(80);
    const b = off + HDR_SIZE;
    out.push({
      flags: dv.getUint8(off + 1),
      size,
      generation: dv.getUint32(off + 16, true),
      weight: dv.getUint32(off + 20, true),
      pid: dv.getUint32(b, true),
      tid: dv.getUint32(b + 4, true),
      cgroupId: dv.getBigUint64(b + 8, true),
      nr: dv.getUint32(b + 16, true),
      pad: dv.getUint32(b + 20, true),
      ret: dv.getBigInt64(b + 24, true),
      durationNs: dv.getBigUint64(b + 32, true),
      comm: cString(batch, b + 40, 16),
    });
    off += size;
  }
  expect(off).toBe(batch.length);
  return out;
}

interface ConfigFields {
  enabled: number;
  generation: number;
  sampleN: number;
  filterMask: number;
  minDurationNs: bigint;
  slowNs: bigint;
  focusCount?: number;
}

function configBuf(c: ConfigFields): Buffer {
  return encodeProbeConfig({
    enabled: c.enabled !== 0,
    generation: c.generation,
    sample_n: c.sampleN,
    filter_mask: c.filterMask,
    min_duration_ns: c.minDurationNs,
    slow_ns: c.slowNs,
    focus_count: c.focusCount ?? 0,
  });
}

function syscallKey(cgroupId: bigint, nr: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(cgroupId, 0);
  b.writeUInt32LE(nr, 8);
  return b;
}

function errnoKey(cgroupId: bigint, nr: number, err: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(cgroupId, 0);
  b.writeUInt32LE(nr, 8);
  b.writeUInt32LE(err, 12);
  return b;
}

interface Hist {
  count: bigint;
  errorCount: bigint;
  totalNs: bigint;
  hist: bigint[];
}

function decodeHist(b: Buffer): Hist {
  expect(b.length).toBe(HIST_VALUE_SIZE);
  const hist: bigint[] = [];
  for (let i = 0; i < TF_HIST_SLOTS; i++) hist.push(b.readBigUInt64LE(24 + 8 * i));
  return {
    count: b.readBigUInt64LE(0),
    errorCount: b.readBigUInt64LE(8),
    totalNs: b.readBigUInt64LE(16),
    hist,
  };
}

// Runs `cmd` (a shell command line) inside the cgroup `dir`.
function runIn(dir: string, cmd: string): Promise<{ pid: number; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', `echo $$ > ${dir}/cgroup.procs && exec ${cmd}`], {
      stdio: 'ignore',
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ pid: child.pid ?? -1, code }));
  });
}

describe.skipIf(!isRoot)('syscalls probe (root)', () => {
  let native: Native.NativeAddon;
  let mount: string;
  let cgDir: string;
  let cg: bigint;

  beforeAll(async () => {
    if (!existsSync(probePath)) throw new Error(`${probePath} missing: run \`make -C bpf\` first`);
    if (!existsSync(addonPath))
      throw new Error(`${addonPath} missing: run \`node native/build.mjs\` first`);
    ensureTracefs();
    native = (await import('../../native/index.js')).loadNative();
    mount = cgroup2Mount();
    cgDir = path.join(mount, `tf-test-${randomBytes(4).toString('hex')}`);
    mkdirSync(cgDir);
    cg = cgroupId(cgDir);
  });

  afterAll(async () => {
    if (cgDir) await removeCgroup(cgDir);
  });

  it('aggregates latency and errors per (cgroup, syscall) and streams slow syscalls', async () => {
    const obj = new native.BpfObject(probePath, {
      ringbufBytes: { rb: 1 << 20 },
      consts: { wakeup_bytes: 1n },
    });
    try {
      obj.load();
      const progs = obj
        .programs()
        .map((p) => p.name)
        .sort();
      expect(progs).toEqual(['handle_sys_enter', 'handle_sys_exit']);
      const maps = new Map(obj.maps().map((m) => [m.name, m]));
      expect(maps.get('syscall_stats')?.maxEntries).toBe(16384);
      expect(maps.get('syscall_stats')?.valueSize).toBe(HIST_VALUE_SIZE);
      expect(maps.get('syscall_errno')?.maxEntries).toBe(16384);

      const generation = 7;
      obj.mapUpdate(
        'tf_config',
        Buffer.alloc(4),
        configBuf({
          enabled: 1,
          generation,
          sampleN: 1,
          filterMask: TF_FILTER_ALLOW_CGROUP,
          minDurationNs: 0n,
          slowNs: 50_000_000n,
        }),
      );
      obj.mapUpdate('tf_set_cgroup', u64Key(cg), Buffer.from([TF_SET_ALLOW]));
      obj.attach('handle_sys_enter');
      obj.attach('handle_sys_exit');

      const slow: SlowRecord[] = [];
      obj.startRing('rb', { flushMs: 10 }, (batch) => slow.push(...decodeSlow(batch)));

      const sleep = await runIn(cgDir, 'sleep 0.2');
      expect(sleep.code).toBe(0);
      const cat = await runIn(cgDir, 'cat /nonexistent');
      expect(cat.code).toBe(1);

      const sleepNrs = [NR.clock_nanosleep, NR.nanosleep];
      await waitFor(() => slow.some((r) => r.pid === sleep.pid), 3000);
      obj.stopRing();

      // Histogram of the 200 ms sleep: counted, in slot floor(log2(2e8)) = 27.
      const sleepStats = sleepNrs
        .map((nr) => obj.mapLookup('syscall_stats', syscallKey(cg, nr)))
        .filter((b): b is Buffer => b !== null)
        .map(decodeHist);
      expect(sleepStats.length, 'a (nano)sleep entry for the test cgroup').toBeGreaterThan(0);
      const s = sleepStats[0]!;
      expect(s.count).toBeGreaterThanOrEqual(1n);
      expect(s.hist[27]).toBeGreaterThanOrEqual(1n);
      expect(s.hist.reduce((a, b) => a + b, 0n)).toBe(s.count);
      expect(s.totalNs).toBeGreaterThanOrEqual(200_000_000n);
      expect(s.errorCount).toBe(0n);

      // The slow stream: one record for the sleep, ~200 ms.
      const rec = slow.find((r) => r.pid === sleep.pid && sleepNrs.includes(r.nr));
      expect(rec, 'slow record of the sleep').toBeDefined();
      expect(rec!.tid).toBe(sleep.pid);
      expect(rec!.cgroupId).toBe(cg);
      expect(rec!.comm).toBe('sleep');
      expect(rec!.ret).toBe(0n);
      expect(rec!.pad).toBe(0);
      expect(rec!.flags).toBe(0);
      expect(rec!.generation).toBe(generation);
      expect(rec!.weight).toBe(1);
      expect(rec!.durationNs).toBeGreaterThanOrEqual(195_000_000n);
      expect(rec!.durationNs).toBeLessThan(2_000_000_000n);
      // Only our cgroup streams, and only slow syscalls.
      for (const r of slow) {
        expect(r.cgroupId).toBe(cg);
        expect(r.durationNs).toBeGreaterThanOrEqual(50_000_000n);
      }

      // The failing open of cat: error_count and the errno map.
      const open = obj.mapLookup('syscall_stats', syscallKey(cg, NR.openat));
      expect(open).not.toBeNull();
      const o = decodeHist(open!);
      expect(o.count).toBeGreaterThanOrEqual(2n); // ld.so, libc and the file
      expect(o.errorCount).toBeGreaterThanOrEqual(1n);
      expect(o.errorCount).toBeLessThanOrEqual(o.count);
      const enoent = obj.mapLookup('syscall_errno', errnoKey(cg, NR.openat, ENOENT));
      expect(enoent).not.toBeNull();
      expect(enoent!.readBigUInt64LE(0)).toBeGreaterThanOrEqual(1n);

      // Outside the cgroup nothing is counted, though this process made such syscalls.
      const own = ownCgroupId(mount);
      expect(own).not.toBe(cg);
      for (const nr of [NR.read, NR.write, NR.close, NR.openat, ...sleepNrs])
        expect(obj.mapLookup('syscall_stats', syscallKey(own, nr))).toBeNull();
      const drops = obj.sumPercpuCounters('tf_drops');
      expect(drops[TF_PROBE_SYSCALLS * TF_DROP_REASON_MAX + TF_DROP_FILTERED]).toBeGreaterThan(0n);
      expect(obj.sumPercpuCounters('tf_emitted')[TF_PROBE_SYSCALLS]).toBeGreaterThanOrEqual(1n);
    } finally {
      obj.close();
    }
  });

  it('counts a map-full drop when syscall_stats has no room', async () => {
    const obj = new native.BpfObject(probePath);
    try {
      obj.load();
      obj.mapUpdate(
        'tf_config',
        Buffer.alloc(4),
        configBuf({
          enabled: 1,
          generation: 1,
          sampleN: 1,
          filterMask: TF_FILTER_ALLOW_CGROUP,
          minDurationNs: 0n,
          slowNs: 0n,
        }),
      );
      obj.mapUpdate('tf_set_cgroup', u64Key(cg), Buffer.from([TF_SET_ALLOW]));
      // Fill the map with keys of a cgroup id no real cgroup has.
      const zero = Buffer.alloc(HIST_VALUE_SIZE);
      for (let i = 0; i < 16384; i++)
        obj.mapUpdate('syscall_stats', syscallKey(1n << 62n, i), zero);
      obj.attach('handle_sys_enter');
      obj.attach('handle_sys_exit');
      const cat = await runIn(cgDir, 'cat /nonexistent');
      expect(cat.code).toBe(1);
      expect(obj.mapLookup('syscall_stats', syscallKey(cg, NR.openat))).toBeNull();
      const drops = obj.sumPercpuCounters('tf_drops');
      expect(drops[TF_PROBE_SYSCALLS * TF_DROP_REASON_MAX + TF_DROP_MAP_FULL]).toBeGreaterThan(0n);
      // The errno map still had room.
      expect(obj.mapLookup('syscall_errno', errnoKey(cg, NR.openat, ENOENT))).not.toBeNull();
    } finally {
      obj.close();
    }
  });

  it('counts nothing while disabled and samples only the slow stream', async () => {
    const obj = new native.BpfObject(probePath, { consts: { wakeup_bytes: 1n } });
    try {
      obj.load();
      obj.mapUpdate('tf_set_cgroup', u64Key(cg), Buffer.from([TF_SET_ALLOW]));
      const cfg = {
        enabled: 0,
        generation: 1,
        sampleN: 1,
        filterMask: TF_FILTER_ALLOW_CGROUP,
        minDurationNs: 0n,
        slowNs: 1n,
      };
      obj.mapUpdate('tf_config', Buffer.alloc(4), configBuf(cfg));
      obj.attach('handle_sys_enter');
      obj.attach('handle_sys_exit');
      await runIn(cgDir, 'true');
      expect(obj.mapLookup('syscall_stats', syscallKey(cg, NR.openat))).toBeNull();

      // Every syscall is "slow" at 1 ns; 1-in-1000 sampling keeps few of them,
      // while the histograms stay exact.
      obj.mapUpdate(
        'tf_config',
        Buffer.alloc(4),
        configBuf({ ...cfg, enabled: 1, generation: 2, sampleN: 1000 }),
      );
      const slow: SlowRecord[] = [];
      obj.startRing('rb', { flushMs: 10 }, (batch) => slow.push(...decodeSlow(batch)));
      for (let i = 0; i < 3; i++) await runIn(cgDir, 'cat /nonexistent');
      await new Promise((r) => setTimeout(r, 100));
      obj.stopRing();
      const o = decodeHist(obj.mapLookup('syscall_stats', syscallKey(cg, NR.openat))!);
      expect(o.errorCount).toBeGreaterThanOrEqual(3n);
      const drops = obj.sumPercpuCounters('tf_drops');
      const sampled = drops[TF_PROBE_SYSCALLS * TF_DROP_REASON_MAX + 2]!;
      expect(sampled).toBeGreaterThan(0n);
      for (const r of slow) {
        expect(r.weight).toBe(1000);
        expect(r.generation).toBe(2);
      }
      expect(BigInt(slow.length)).toBeLessThan(sampled);
    } finally {
      obj.close();
    }
  });
  it('with the baseline off, aggregates and streams only a focused cgroup, by its own slow_ns', async () => {
    const other = path.join(mount, `tf-test-${randomBytes(4).toString('hex')}`);
    mkdirSync(other);
    const otherId = cgroupId(other);
    const obj = new native.BpfObject(probePath, {
      ringbufBytes: { rb: 1 << 20 },
      consts: { wakeup_bytes: 1n },
    });
    try {
      obj.load();
      const focus = Buffer.alloc(FOCUS_LAYOUT.size);
      focus.writeUInt32LE(1, fieldOffset(FOCUS_LAYOUT, 'sample_n'));
      focus.writeBigUInt64LE(50_000_000n, fieldOffset(FOCUS_LAYOUT, 'slow_ns'));
      obj.mapUpdate('tf_focus', u64Key(cg), focus);
      // Baseline off, a 1 ns slow threshold the focus must override.
      obj.mapUpdate(
        'tf_config',
        Buffer.alloc(4),
        configBuf({
          enabled: 0,
          generation: 3,
          sampleN: 1,
          filterMask: 0,
          minDurationNs: 0n,
          slowNs: 1n,
          focusCount: 1,
        }),
      );
      obj.attach('handle_sys_enter');
      obj.attach('handle_sys_exit');
      const slow: SlowRecord[] = [];
      obj.startRing('rb', { flushMs: 10 }, (batch) => slow.push(...decodeSlow(batch)));
      const mine = await runIn(cgDir, 'sleep 0.1');
      await runIn(other, 'sleep 0.1');
      await waitFor(() => slow.some((r) => r.pid === mine.pid), 3000);
      obj.stopRing();

      // The focused cgroup: histograms, and its 100 ms sleep streamed (above its 50 ms).
      const sleeps = [NR.clock_nanosleep, NR.nanosleep]
        .map((nr) => obj.mapLookup('syscall_stats', syscallKey(cg, nr)))
        .filter((b): b is Buffer => b !== null);
      expect(sleeps.length).toBeGreaterThan(0);
      expect(slow.length).toBeGreaterThan(0);
      for (const r of slow) {
        expect(r.cgroupId).toBe(cg);
        expect(r.durationNs).toBeGreaterThanOrEqual(50_000_000n);
        expect(r.flags & 0x02).toBe(0x02); // TF_FLAG_FOCUS
        expect(r.weight).toBe(1);
      }
      // The other cgroup: nothing aggregated, nothing streamed, and no drop counted for it.
      const { count } = obj.mapDump('syscall_stats');
      const keys = obj.mapDump('syscall_stats').keys;
      for (let i = 0; i < count; i++) expect(keys.readBigUInt64LE(i * 16)).toBe(cg);
      expect(obj.mapLookup('syscall_stats', syscallKey(otherId, NR.openat))).toBeNull();
      const drops = obj.sumPercpuCounters('tf_drops');
      expect(drops[TF_PROBE_SYSCALLS * TF_DROP_REASON_MAX + TF_DROP_FILTERED]).toBe(0n);
    } finally {
      obj.close();
      await removeCgroup(other);
    }
  });
});
