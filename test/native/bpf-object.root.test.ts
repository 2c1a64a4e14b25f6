// SPDX-License-Identifier: Apache-2.0
//
// End-to-end test of the kernel probe and the native addon: needs root, the
// built probe (`make -C bpf`) and the built addon (`node native/build.mjs`).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cString, ensureTracefs, waitFor } from '../helpers/native-test.js';

import type * as Native from '../../native/index.js';
import { encodeProbeConfig } from '../../src/ingest/probe-controller.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const probePath = path.join(root, 'bpf/.output/process.bpf.o');
const addonPath = path.join(root, 'native/build/tracefeed.node');
const isRoot = process.getuid?.() === 0;

// events.h constants and offsets, duplicated on purpose: the test checks the wire format.
const TF_OP_EXEC = 1;
const TF_OP_EXIT = 2;
const TF_DROPS_ENTRIES = 8 * 4;
const TF_EMITTED_ENTRIES = 8;
const HDR_SIZE = 24;

interface ExecRecord {
  op: typeof TF_OP_EXEC;
  flags: number;
  hdrPad: number;
  size: number;
  ktime: bigint;
  generation: number;
  sampleWeight: number;
  pid: number;
  ppid: number;
  uid: number;
  pad: number;
  cgroupId: bigint;
  comm: string;
  filename: string;
}

interface ExitRecord {
  op: typeof TF_OP_EXIT;
  flags: number;
  hdrPad: number;
  size: number;
  ktime: bigint;
  generation: number;
  sampleWeight: number;
  pid: number;
  ppid: number;
  exitCode: number;
  exitSignal: number;
  cgroupId: bigint;
  lifetimeNs: bigint;
  comm: string;
}

type EventRecord = ExecRecord | ExitRecord;

function decodeBatch(batch: Buffer): EventRecord[] {
  const out: EventRecord[] = [];
  const dv = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  let off = 0;
  while (off < batch.length) {
    const op = dv.getUint8(off);
    const flags = dv.getUint8(off + 1);
    const hdrPad = dv.getUint16(off + 2, true);
    const size = dv.getUint32(off + 4, true);
    const ktime = dv.getBigUint64(off + 8, true);
    const generation = dv.getUint32(off + 16, true);
    const sampleWeight = dv.getUint32(off + 20, true);
    expect(size).toBeGreaterThanOrEqual(HDR_SIZE);
    expect(size % 8).toBe(0);
    const b = off + HDR_SIZE;
    if (op === TF_OP_EXEC) {
      out.push({
        op,
        flags,
        hdrPad,
        size,
        ktime,
        generation,
        sampleWeight,
        pid: dv.getUint32(b, true),
        ppid: dv.getUint32(b + 4, true),
        uid: dv.getUint32(b + 8, true),
        pad: dv.getUint32(b + 12, true),
        cgroupId: dv.getBigUint64(b + 16, true),
        comm: cString(batch, b + 24, 16),
        filename: cString(batch, b + 40, 256),
      });
    } else if (op === TF_OP_EXIT) {
      out.push({
        op,
        flags,
        hdrPad,
        size,
        ktime,
        generation,
        sampleWeight,
        pid: dv.getUint32(b, true),
        ppid: dv.getUint32(b + 4, true),
        exitCode: dv.getInt32(b + 8, true),
        exitSignal: dv.getUint32(b + 12, true),
        cgroupId: dv.getBigUint64(b + 16, true),
        lifetimeNs: dv.getBigUint64(b + 24, true),
        comm: cString(batch, b + 32, 16),
      });
    }
    off += size;
  }
  expect(off).toBe(batch.length);
  return out;
}

// control.h: the probe emits nothing until tf_config[0] says enabled.
function enable(obj: Native.BpfObject, generation = 1): void {
  obj.mapUpdate('tf_config', Buffer.alloc(4), encodeProbeConfig({ enabled: true, generation }));
}

// A uniquely named script: its exec filename and comm identify our child.
function makeScript(dir: string, body: string): string {
  const name = `tf-skel-${randomBytes(3).toString('hex')}`;
  const file = path.join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

function run(file: string): Promise<{ pid: number; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ pid: child.pid ?? -1, code }));
  });
}

describe.skipIf(!isRoot)('native BpfObject (root)', () => {
  let native: Native.NativeAddon;
  let tmp: string;

  beforeAll(async () => {
    if (!existsSync(probePath)) throw new Error(`${probePath} missing: run \`make -C bpf\` first`);
    if (!existsSync(addonPath))
      throw new Error(`${addonPath} missing: run \`node native/build.mjs\` first`);
    ensureTracefs();
    native = (await import('../../native/index.js')).loadNative();
    tmp = mkdtempSync(path.join(tmpdir(), 'tf-native-'));
  });

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('reports the libbpf version', () => {
    expect(native.libbpfVersion()).toMatch(/^\d+\.\d+$/);
  });

  it('streams exec and exit events of a real process in batches', async () => {
    const obj = new native.BpfObject(probePath, {
      ringbufBytes: { rb: 1 << 20 },
      consts: { wakeup_bytes: 4096n },
    });
    try {
      obj.load();
      enable(obj);
      obj.attach('handle_exec');
      obj.attach('handle_exit');
      obj.attach('handle_exit'); // no-op

      const progs = obj.programs();
      expect(progs.map((p) => p.name).sort()).toEqual(['handle_exec', 'handle_exit']);
      for (const p of progs) {
        expect(p.id).toBeGreaterThan(0);
        expect(p.attached).toBe(true);
        expect(p.section).toMatch(/^tracepoint\/sched\/sched_process_(exec|exit)$/);
      }
      const maps = obj.maps();
      expect(maps.find((m) => m.name === 'rb')?.maxEntries).toBe(1 << 20);
      expect(maps.find((m) => m.name === 'tf_drops')?.id).toBeGreaterThan(0);

      const records: EventRecord[] = [];
      let calls = 0;
      let eventsReported = 0;
      obj.startRing('rb', { flushMs: 20 }, (batch, events) => {
        calls++;
        eventsReported += events;
        const decoded = decodeBatch(batch);
        expect(decoded.length).toBeLessThanOrEqual(events);
        records.push(...decoded);
      });

      const script = makeScript(tmp, 'exit 7');
      const name = path.basename(script);
      const { pid, code } = await run(script);
      expect(code).toBe(7);

      const isOurs = (r: EventRecord) => r.pid === pid;
      await waitFor(
        () =>
          records.some((r) => isOurs(r) && r.op === TF_OP_EXEC) &&
          records.some((r) => isOurs(r) && r.op === TF_OP_EXIT),
        5000,
      );
      obj.stopRing();

      const exec = records.find((r): r is ExecRecord => isOurs(r) && r.op === TF_OP_EXEC);
      expect(exec, 'exec event of the child').toBeDefined();
      expect(exec!.filename).toBe(script);
      expect(exec!.comm).toBe(name);
      expect(exec!.ppid).toBe(process.pid);
      expect(exec!.uid).toBe(0);
      expect(exec!.hdrPad).toBe(0);
      expect(exec!.pad).toBe(0);
      expect(exec!.flags).toBe(0);
      expect(exec!.cgroupId).toBeGreaterThan(0n);
      expect(exec!.generation).toBe(1);
      expect(exec!.sampleWeight).toBe(1);

      const exit = records.find((r): r is ExitRecord => isOurs(r) && r.op === TF_OP_EXIT);
      expect(exit, 'exit event of the child').toBeDefined();
      expect(exit!.size).toBe(72);
      expect(exit!.exitCode).toBe(7);
      expect(exit!.exitSignal).toBe(0);
      expect(exit!.comm).toBe(name);
      expect(exit!.ppid).toBe(process.pid);
      expect(exit!.hdrPad).toBe(0);
      expect(exit!.lifetimeNs).toBeGreaterThan(0n);
      expect(exit!.ktime).toBeGreaterThan(exec!.ktime);
      expect(exit!.generation).toBe(1);
      expect(exit!.sampleWeight).toBe(1);

      // Batches, not one call per event.
      const stats = obj.ringStats();
      expect(stats.events).toBe(eventsReported);
      expect(stats.batches).toBe(calls);
      expect(stats.malformed).toBe(0);
      expect(stats.pollErrors).toBe(0);
      expect(records.length).toBe(eventsReported);

      const emitted = obj.sumPercpuCounters('tf_emitted');
      expect(emitted).toHaveLength(TF_EMITTED_ENTRIES);
      expect(emitted[0]).toBeGreaterThanOrEqual(2n);
      const drops = obj.sumPercpuCounters('tf_drops');
      expect(drops).toHaveLength(TF_DROPS_ENTRIES);
      for (const d of drops) expect(typeof d).toBe('bigint');

      // Raw per-CPU lookup: one 8-byte slot per possible CPU.
      const key = Buffer.alloc(4);
      const raw = obj.mapLookup('tf_emitted', key);
      expect(raw).not.toBeNull();
      expect(raw!.length % 8).toBe(0);
      let sum = 0n;
      for (let i = 0; i < raw!.length; i += 8) sum += raw!.readBigUInt64LE(i);
      expect(sum).toBeGreaterThanOrEqual(emitted[0]!);

      obj.detach('handle_exit');
      obj.detach('handle_exit'); // no-op
      const after = obj.programs();
      expect(after.find((p) => p.name === 'handle_exit')?.attached).toBe(false);
      expect(after.find((p) => p.name === 'handle_exec')?.attached).toBe(true);
    } finally {
      obj.close();
      obj.close(); // idempotent
    }
    expect(obj.programs()).toEqual([]);
  });

  it('delivers the last partial batch on stopRing', async () => {
    const obj = new native.BpfObject(probePath);
    try {
      obj.load();
      enable(obj);
      obj.attach('handle_exec');
      obj.attach('handle_exit');
      const seen: EventRecord[] = [];
      // flushMs far away: only stopRing can hand the batch over.
      obj.startRing('rb', { flushMs: 60_000 }, (batch) => seen.push(...decodeBatch(batch)));
      const { pid } = await run(makeScript(tmp, 'exit 3'));
      await new Promise((r) => setTimeout(r, 300)); // consumed into the open batch
      expect(seen.some((r) => r.pid === pid)).toBe(false);
      obj.stopRing();
      const exit = seen.find((r): r is ExitRecord => r.pid === pid && r.op === TF_OP_EXIT);
      expect(exit?.exitCode).toBe(3);
    } finally {
      obj.close();
    }
  });

  it('bounds memory under a stalled consumer: the kernel counts drops', async () => {
    // One page of ring, one pending batch of one event: a busy JS thread
    // must make the ring thread wait and the kernel drop, never buffer.
    const obj = new native.BpfObject(probePath, { ringbufBytes: { rb: 4096 } });
    try {
      obj.load();
      enable(obj);
      obj.attach('handle_exec');
      obj.attach('handle_exit');
      let delivered = 0;
      obj.startRing('rb', { batchBytes: 64, flushMs: 1, maxPendingBatches: 1 }, (_b, n) => {
        delivered += n;
      });
      // spawnSync keeps the JS thread busy: nothing is delivered meanwhile.
      for (let i = 0; i < 60; i++) execFileSync('/bin/true');
      const stalled = obj.ringStats();
      // Pending batch + the one being filled + what fits in 4 KiB of ring.
      expect(stalled.events).toBeLessThan(40);
      const drops = obj.sumPercpuCounters('tf_drops');
      expect(drops[0]).toBeGreaterThan(0n); // TF_PROBE_PROCESS, TF_DROP_RINGBUF_FULL
      await new Promise((r) => setTimeout(r, 100));
      obj.stopRing();
      expect(delivered).toBe(obj.ringStats().events);
    } finally {
      obj.close();
    }
  });

  it('forwards libbpf logs to setLogger', async () => {
    const lines: Array<[string, string]> = [];
    native.setLogger((level, message) => lines.push([level, message]));
    try {
      const obj = new native.BpfObject(probePath);
      obj.close();
      await waitFor(() => lines.length > 0, 2000);
    } finally {
      native.setLogger(null);
    }
    expect(lines.length).toBeGreaterThan(0);
    for (const [level] of lines) expect(['warn', 'info', 'debug']).toContain(level);
    expect(lines.some(([, m]) => m.includes('process'))).toBe(true);
  });

  it('survives close() while the ring thread is running', async () => {
    for (let i = 0; i < 5; i++) {
      const obj = new native.BpfObject(probePath);
      obj.load();
      enable(obj);
      obj.attach('handle_exec');
      obj.attach('handle_exit');
      obj.startRing('rb', { flushMs: 1 }, () => {});
      if (i % 2) execFileSync('/bin/true');
      obj.close();
      obj.close();
      expect(() => obj.startRing('rb', {}, () => {})).toThrowError(/closed/);
    }
  });

  it('throws errors naming the step and errno', () => {
    const missing = path.join(tmp, 'does-not-exist.bpf.o');
    let err: Native.BpfError | undefined;
    native.setLogger(() => {}); // the expected libbpf warning is not news
    try {
      new native.BpfObject(missing);
    } catch (e) {
      err = e as Native.BpfError;
    } finally {
      native.setLogger(null);
    }
    expect(err).toBeInstanceOf(Error);
    expect(err!.step).toBe('open');
    expect(err!.code).toBe('ENOENT');
    expect(err!.errno).toBe(2);
    expect(err!.object).toBe(missing);
    expect(err!.message).toContain('bpf open failed');
    expect(err!.message).toContain('(ENOENT, errno 2)');

    const obj = new native.BpfObject(probePath);
    try {
      expect(() => obj.attach('no_such_prog')).toThrowError(
        expect.objectContaining({ step: 'attach', code: 'ENOENT', program: 'no_such_prog' }),
      );
      expect(() => obj.mapLookup('rb', Buffer.alloc(0))).toThrowError(
        expect.objectContaining({ step: 'map', map: 'rb' }),
      );
      expect(() => new native.BpfObject(probePath, { consts: { no_such_const: 1 } })).toThrowError(
        expect.objectContaining({ step: 'open', code: 'ENOENT' }),
      );
    } finally {
      obj.close();
    }
  });
});
