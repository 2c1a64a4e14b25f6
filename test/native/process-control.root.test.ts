// SPDX-License-Identifier: Apache-2.0
//
// Live control of bpf/process.bpf.c through the control.h maps: enable,
// sampling, pid/comm/cgroup allow-sets and disable, all on one loaded object
// (no reload), each step checked against real processes. Needs root, the
// built probe (`make -C bpf .output/process.bpf.o`) and the addon.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cString, cgroup2Mount, ensureTracefs, waitFor } from '../helpers/native-test.js';

import type * as Native from '../../native/index.js';
import { encodeProbeConfig } from '../../src/ingest/probe-controller.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const probePath = path.join(root, 'bpf/.output/process.bpf.o');
const addonPath = path.join(root, 'native/build/tracefeed.node');
const isRoot = process.getuid?.() === 0;

// events.h, duplicated on purpose.
const TF_OP_EXEC = 1;
const TF_OP_EXIT = 2;
const TF_PROBE_PROCESS = 0;
const TF_DROP_FILTERED = 1;
const TF_DROP_SAMPLED = 2;
const TF_FILTER_ALLOW_CGROUP = 0x0001;
const TF_FILTER_ALLOW_PID = 0x0002;
const TF_FILTER_ALLOW_COMM = 0x0008;
const TF_SET_ALLOW = 0x1;
const HDR_SIZE = 24;

interface ProcRecord {
  op: number;
  size: number;
  generation: number;
  weight: number;
  pid: number;
  cgroupId: bigint;
  comm: string;
  filename: string; // exec only
}

function decodeBatch(batch: Buffer): ProcRecord[] {
  const out: ProcRecord[] = [];
  const dv = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  let off = 0;
  while (off < batch.length) {
    const op = dv.getUint8(off);
    const size = dv.getUint32(off + 4, true);
    const b = off + HDR_SIZE;
    expect([TF_OP_EXEC, TF_OP_EXIT]).toContain(op);
    out.push({
      op,
      size,
      generation: dv.getUint32(off + 16, true),
      weight: dv.getUint32(off + 20, true),
      pid: dv.getUint32(b, true),
      cgroupId: dv.getBigUint64(b + 16, true),
      comm: op === TF_OP_EXEC ? cString(batch, b + 24, 16) : cString(batch, b + 32, 16),
      filename: op === TF_OP_EXEC ? cString(batch, b + 40, 256) : '',
    });
    off += size;
  }
  expect(off).toBe(batch.length);
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function run(file: string, args: string[] = []): Promise<{ pid: number; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ pid: child.pid ?? -1, code }));
  });
}

describe.skipIf(!isRoot)('process probe live control (root)', () => {
  let native: Native.NativeAddon;
  let obj: Native.BpfObject;
  let tmp: string;
  let progIds: number[];
  const records: ProcRecord[] = [];

  function config(c: {
    enabled?: number;
    generation: number;
    sampleN?: number;
    filterMask?: number;
  }) {
    const v = encodeProbeConfig({
      enabled: (c.enabled ?? 1) !== 0,
      generation: c.generation,
      sample_n: c.sampleN ?? 1,
      filter_mask: c.filterMask ?? 0,
    });
    obj.mapUpdate('tf_config', Buffer.alloc(4), v);
  }
  const drops = (reason: number) =>
    obj.sumPercpuCounters('tf_drops')[TF_PROBE_PROCESS * 4 + reason]!;
  const emitted = () => obj.sumPercpuCounters('tf_emitted')[TF_PROBE_PROCESS]!;

  // A uniquely named script (comm = its name, at most 15 bytes).
  function script(body = 'exit 0'): { file: string; name: string } {
    const name = `tf-pc-${randomBytes(4).toString('hex')}`;
    const file = path.join(tmp, name);
    writeFileSync(file, `#!/bin/sh\n${body}\n`);
    chmodSync(file, 0o755);
    return { file, name };
  }
  const byName = (name: string) => records.filter((r) => r.comm === name);

  beforeAll(async () => {
    if (!existsSync(probePath)) throw new Error(`${probePath} missing: run \`make -C bpf\` first`);
    if (!existsSync(addonPath))
      throw new Error(`${addonPath} missing: run \`node native/build.mjs\` first`);
    ensureTracefs();
    native = (await import('../../native/index.js')).loadNative();
    tmp = mkdtempSync(path.join(tmpdir(), 'tf-pctl-'));
    obj = new native.BpfObject(probePath, {
      ringbufBytes: { rb: 1 << 22 },
      consts: { wakeup_bytes: 1n },
    });
    obj.load();
    obj.attach('handle_exec');
    obj.attach('handle_exit');
    progIds = obj.programs().map((p) => p.id);
    obj.startRing('rb', { flushMs: 10 }, (batch) => records.push(...decodeBatch(batch)));
  });

  afterAll(() => {
    obj?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('emits nothing before tf_config is written', async () => {
    const s = script();
    await run(s.file);
    await sleep(150);
    expect(byName(s.name)).toHaveLength(0);
    expect(emitted()).toBe(0n);
  });

  it('enable: a unique program exec appears with generation and weight 1', async () => {
    config({ generation: 1 });
    const s = script();
    const { pid } = await run(s.file);
    expect(await waitFor(() => byName(s.name).length >= 2, 5000)).toBe(true);
    const exec = byName(s.name).find((r) => r.op === TF_OP_EXEC)!;
    expect(exec).toMatchObject({ pid, filename: s.file, generation: 1, weight: 1, size: 320 });
    const exit = byName(s.name).find((r) => r.op === TF_OP_EXIT)!;
    expect(exit).toMatchObject({ pid, generation: 1, weight: 1, size: 72 });
  });

  it('sample_n=1000000: events become rare, sampled drops grow, kept records carry the weight', async () => {
    const sampledBefore = drops(TF_DROP_SAMPLED);
    config({ generation: 2, sampleN: 1_000_000 });
    const s = script();
    for (let i = 0; i < 50; i++) execFileSync(s.file);
    await sleep(200);
    // 100 events at 1 in a million: keeping even one is a 1e-4 event.
    expect(byName(s.name).length).toBeLessThanOrEqual(1);
    const sampled = drops(TF_DROP_SAMPLED) - sampledBefore;
    // Each run is an exec and an exit (plus whatever else the host does).
    expect(sampled).toBeGreaterThanOrEqual(99n);
    for (const r of records.filter((x) => x.generation === 2)) expect(r.weight).toBe(1_000_000);
    console.log(
      `sampling 1/1e6: ${sampled} sampled out, ${records.filter((x) => x.generation === 2).length} kept`,
    );

    // 1 in 3 keeps enough to see the weight on real records.
    config({ generation: 20, sampleN: 3 });
    const t = script();
    for (let i = 0; i < 60; i++) execFileSync(t.file);
    await sleep(200);
    const kept = byName(t.name);
    console.log(`sampling 1/3: ${kept.length} of 120 events kept`);
    // Binomial(120, 1/3): mean 40, sd ~5.2; these bounds are > 4 sd away.
    expect(kept.length).toBeGreaterThanOrEqual(18);
    expect(kept.length).toBeLessThanOrEqual(62);
    for (const r of kept) expect(r).toMatchObject({ weight: 3, generation: 20 });
  });

  it('pid allow-set: only the allowed process passes', async () => {
    const allowed = script();
    const other = script();
    // The shell's pid survives its exec: allow it before the exec happens.
    const child = spawn('/bin/sh', ['-c', `read x; exec ${allowed.file}`], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    const exited = new Promise((r) => child.on('exit', r));
    const key = Buffer.alloc(4);
    key.writeUInt32LE(child.pid!);
    obj.mapUpdate('tf_set_pid', key, Buffer.from([TF_SET_ALLOW]));
    const filteredBefore = drops(TF_DROP_FILTERED);
    config({ generation: 3, filterMask: TF_FILTER_ALLOW_PID });
    try {
      await run(other.file);
      child.stdin!.end('go\n');
      await exited;
      expect(await waitFor(() => byName(allowed.name).length >= 2, 5000)).toBe(true);
      for (const r of byName(allowed.name))
        expect(r).toMatchObject({ pid: child.pid, generation: 3 });
      await sleep(100);
      expect(byName(other.name)).toHaveLength(0);
      expect(drops(TF_DROP_FILTERED) - filteredBefore).toBeGreaterThanOrEqual(2n);
      // mapDump sees exactly the one entry; delete clears the set.
      const dump = obj.mapDump('tf_set_pid', { delete: true });
      expect(dump.count).toBe(1);
      expect(dump.keys.readUInt32LE(0)).toBe(child.pid);
      expect(dump.values).toEqual(Buffer.from([TF_SET_ALLOW]));
      expect(obj.mapDump('tf_set_pid').count).toBe(0);
    } finally {
      obj.mapDelete('tf_set_pid', key);
    }
  });

  it('comm allow-set: only the allowed program name passes', async () => {
    const allowed = script();
    const other = script();
    const key = Buffer.alloc(16);
    key.write(allowed.name);
    obj.mapUpdate('tf_set_comm', key, Buffer.from([TF_SET_ALLOW]));
    const filteredBefore = drops(TF_DROP_FILTERED);
    config({ generation: 4, filterMask: TF_FILTER_ALLOW_COMM });
    try {
      const a = await run(allowed.file);
      const b = await run(other.file);
      expect(await waitFor(() => byName(allowed.name).length >= 2, 5000)).toBe(true);
      for (const r of byName(allowed.name)) expect(r).toMatchObject({ pid: a.pid, generation: 4 });
      await sleep(100);
      expect(records.filter((r) => r.pid === b.pid)).toHaveLength(0);
      expect(drops(TF_DROP_FILTERED) - filteredBefore).toBeGreaterThanOrEqual(2n);
    } finally {
      obj.mapDelete('tf_set_comm', key);
    }
  });

  it('cgroup allow-set: only the workload in its own cgroup passes', async () => {
    const dir = path.join(cgroup2Mount(), `tf-pctl-${randomBytes(4).toString('hex')}`);
    mkdirSync(dir);
    try {
      // A cgroup v2 id is the inode number of its directory.
      const id = statSync(dir, { bigint: true }).ino;
      const key = Buffer.alloc(8);
      key.writeBigUInt64LE(id);
      obj.mapUpdate('tf_set_cgroup', key, Buffer.from([TF_SET_ALLOW]));
      const filteredBefore = drops(TF_DROP_FILTERED);
      config({ generation: 5, filterMask: TF_FILTER_ALLOW_CGROUP });
      const inside = script();
      const outside = script();
      const a = await run('/bin/sh', ['-c', `echo $$ > ${dir}/cgroup.procs; exec ${inside.file}`]);
      expect(a.code).toBe(0);
      await run(outside.file);
      expect(await waitFor(() => byName(inside.name).length >= 2, 5000)).toBe(true);
      for (const r of byName(inside.name))
        expect(r).toMatchObject({ pid: a.pid, cgroupId: id, generation: 5 });
      await sleep(100);
      expect(byName(outside.name)).toHaveLength(0);
      expect(drops(TF_DROP_FILTERED) - filteredBefore).toBeGreaterThanOrEqual(2n);
      obj.mapDelete('tf_set_cgroup', key);
    } finally {
      // The workload has exited: the cgroup is empty and can go.
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(dir);
          break;
        } catch {
          await sleep(20);
        }
      }
    }
  });

  it('disable: nothing is emitted or counted; programs were never reloaded', async () => {
    config({ enabled: 0, generation: 6 });
    await sleep(50); // let in-flight events of the previous config land
    const e0 = emitted();
    const d0 = obj.sumPercpuCounters('tf_drops');
    const s = script();
    for (let i = 0; i < 5; i++) await run(s.file);
    await sleep(150);
    expect(byName(s.name)).toHaveLength(0);
    expect(emitted()).toBe(e0);
    expect(obj.sumPercpuCounters('tf_drops')).toEqual(d0);
    expect(records.some((r) => r.generation === 6)).toBe(false);

    // Re-enable with a new generation: the same programs resume.
    config({ generation: 7 });
    const again = script();
    await run(again.file);
    expect(await waitFor(() => byName(again.name).length >= 2, 5000)).toBe(true);
    for (const r of byName(again.name)) expect(r.generation).toBe(7);

    expect(obj.programs().map((p) => p.id)).toEqual(progIds);
    for (const p of obj.programs()) expect(p.attached).toBe(true);
    // Generations only ever took values we wrote.
    for (const r of records) expect([1, 2, 20, 3, 4, 5, 7]).toContain(r.generation);
  });

  it('mapDump reads per-CPU counters like mapLookup', () => {
    config({ enabled: 0, generation: 8 });
    const dump = obj.mapDump('tf_drops');
    const info = obj.maps().find((m) => m.name === 'tf_drops')!;
    expect(dump.count).toBe(info.maxEntries);
    expect(dump.keys.length).toBe(dump.count * 4);
    const per = dump.values.length / dump.count;
    expect(per % 8).toBe(0);
    const sums = obj.sumPercpuCounters('tf_drops');
    for (let i = 0; i < dump.count; i++) {
      const k = dump.keys.readUInt32LE(i * 4);
      let sum = 0n;
      for (let o = 0; o < per; o += 8) sum += dump.values.readBigUInt64LE(i * per + o);
      // Disabled: the counters are stable between the two reads.
      expect(sum).toBe(sums[k]);
    }
    expect(obj.mapDump('tf_drops', { max: 3 }).count).toBe(3);
    expect(() => obj.mapDump('tf_drops', { delete: true })).toThrowError(
      expect.objectContaining({ step: 'map', map: 'tf_drops' }),
    );
    expect(() => obj.mapDump('rb')).toThrowError(
      expect.objectContaining({ step: 'map', map: 'rb' }),
    );
  });
});
