// SPDX-License-Identifier: Apache-2.0
//
// End-to-end test of bpf/file.bpf.c with real opens run in a fresh cgroup
// v2: needs root, `make -C bpf` and `node native/build.mjs`.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cString,
  cgroup2Mount,
  cgroupId,
  ensureTracefs,
  removeCgroup,
  u64Key,
  waitFor,
} from '../helpers/native-test.js';

import type * as Native from '../../native/index.js';
import { encodeProbeConfig } from '../../src/ingest/probe-controller.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const probePath = path.join(root, 'bpf/.output/file.bpf.o');
const addonPath = path.join(root, 'native/build/tracefeed.node');
const isRoot = process.getuid?.() === 0;

// events.h constants and offsets, duplicated on purpose: the test checks the wire format.
const HDR_SIZE = 24;
const TF_OP_FILE_OPEN = 12;
const TF_PROBE_FILE = 3;
const TF_DROP_REASON_MAX = 4;
const TF_DROP_FILTERED = 1;
const TF_FILTER_ALLOW_CGROUP = 0x0001;
const TF_FILTER_ALLOW_PATH = 0x0010;
const TF_SET_ALLOW = 0x1;
const TF_PATH_LEN = 256;
const TF_PATH_PREFIX_LEN = 64;
const TF_FLAG_TRUNCATED = 0x01;
const TF_FLAG_PATH_UNVERIFIED = 0x04;
const TF_FLAG_PATH_PARTIAL = 0x08;
const PATH_COMPONENTS = 64;
const O_WRONLY = 0o1;
const O_CREAT = 0o100;
const O_TRUNC = 0o1000;

interface OpenRecord {
  flags: number;
  hdrPad: number;
  size: number;
  generation: number;
  weight: number;
  pid: number;
  openFlags: number;
  ret: number;
  pad: number;
  cgroupId: bigint;
  comm: string;
  path: string;
  pathTailZero: boolean;
}

function decodeBatch(batch: Buffer): OpenRecord[] {
  const out: OpenRecord[] = [];
  const dv = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  let off = 0;
  while (off < batch.length) {
    const op = dv.getUint8(off);
    const size = dv.getUint32(off + 4, true);
    expect(size).toBeGreaterThanOrEqual(HDR_SIZE);
    expect(size % 8).toBe(0);
    expect(op).toBe(TF_OP_FILE_OPEN);
    expect(size).toBe(320);
    const b = off + HDR_SIZE;
    const p = batch.subarray(b + 40, b + 40 + TF_PATH_LEN);
    const nul = p.indexOf(0);
    out.push({
      flags: dv.getUint8(off + 1),
      hdrPad: dv.getUint16(off + 2, true),
      size,
      generation: dv.getUint32(off + 16, true),
      weight: dv.getUint32(off + 20, true),
      pid: dv.getUint32(b, true),
      openFlags: dv.getInt32(b + 4, true),
      ret: dv.getInt32(b + 8, true),
      pad: dv.getUint32(b + 12, true),
      cgroupId: dv.getBigUint64(b + 16, true),
      comm: cString(batch, b + 24, 16),
      path: cString(batch, b + 40, TF_PATH_LEN),
      pathTailZero: nul >= 0 && p.subarray(nul).every((x) => x === 0),
    });
    off += size;
  }
  expect(off).toBe(batch.length);
  return out;
}

function configBuf(enabled: number, generation: number, sampleN: number, mask: number): Buffer {
  return encodeProbeConfig({
    enabled: enabled !== 0,
    generation,
    sample_n: sampleN,
    filter_mask: mask,
  });
}

// struct tf_path_key: prefixlen in bits, then TF_PATH_PREFIX_LEN path bytes.
function pathKey(prefix: string): Buffer {
  const bytes = Buffer.from(prefix);
  if (bytes.length > TF_PATH_PREFIX_LEN) throw new Error(`prefix too long: ${prefix}`);
  const b = Buffer.alloc(4 + TF_PATH_PREFIX_LEN);
  b.writeUInt32LE(bytes.length * 8, 0);
  bytes.copy(b, 4);
  return b;
}

// Runs the shell `script` inside the cgroup `dir`.
function runIn(dir: string, script: string): Promise<{ pid: number; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', `echo $$ > ${dir}/cgroup.procs && ${script}`], {
      stdio: 'ignore',
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ pid: child.pid ?? -1, code }));
  });
}

describe.skipIf(!isRoot)('file probe (root)', () => {
  let native: Native.NativeAddon;
  let cgDir: string;
  let cg: bigint;
  let tmp: string;

  beforeAll(async () => {
    if (!existsSync(probePath)) throw new Error(`${probePath} missing: run \`make -C bpf\` first`);
    if (!existsSync(addonPath))
      throw new Error(`${addonPath} missing: run \`node native/build.mjs\` first`);
    ensureTracefs();
    native = (await import('../../native/index.js')).loadNative();
    cgDir = path.join(cgroup2Mount(), `tf-test-${randomBytes(4).toString('hex')}`);
    mkdirSync(cgDir);
    cg = cgroupId(cgDir);
    tmp = mkdtempSync('/tmp/tf-file-');
  });

  afterAll(async () => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    if (cgDir) await removeCgroup(cgDir);
  });

  it('streams opens under an allowed prefix with flags and result', async () => {
    const obj = new native.BpfObject(probePath, {
      ringbufBytes: { rb: 1 << 20 },
      consts: { wakeup_bytes: 1n },
    });
    try {
      obj.load();
      const generation = 3;
      obj.mapUpdate(
        'tf_config',
        Buffer.alloc(4),
        configBuf(1, generation, 1, TF_FILTER_ALLOW_CGROUP | TF_FILTER_ALLOW_PATH),
      );
      obj.mapUpdate('tf_set_cgroup', u64Key(cg), Buffer.from([TF_SET_ALLOW]));
      obj.mapUpdate('tf_set_path', pathKey(`${tmp}/`), Buffer.from([TF_SET_ALLOW]));
      // open(2) exists only on some arches: attach it when its tracepoint does.
      const names = obj.programs().map((p) => p.name);
      for (const n of names) {
        if (
          n.startsWith('handle_open_') &&
          !existsSync('/sys/kernel/tracing/events/syscalls/sys_enter_open')
        )
          continue;
        obj.attach(n);
      }
      expect(names.sort()).toEqual([
        'handle_open_enter',
        'handle_open_exit',
        'handle_openat2_enter',
        'handle_openat2_exit',
        'handle_openat_enter',
        'handle_openat_exit',
      ]);

      const records: OpenRecord[] = [];
      obj.startRing('rb', { flushMs: 10 }, (batch) => records.push(...decodeBatch(batch)));
      const filteredKey = TF_PROBE_FILE * TF_DROP_REASON_MAX + TF_DROP_FILTERED;
      const filteredBefore = obj.sumPercpuCounters('tf_drops')[filteredKey]!;

      const known = path.join(tmp, 'known.txt');
      const missing = path.join(tmp, 'missing.txt');
      const outside = `${tmp}x/not-in-prefix`; // shares the bytes but not the '/'
      const write = await runIn(cgDir, `echo hi > ${known}`);
      expect(write.code).toBe(0);
      const read = await runIn(cgDir, `exec cat ${known}`);
      expect(read.code).toBe(0);
      const fail = await runIn(cgDir, `exec cat ${missing}`);
      expect(fail.code).toBe(1);
      const out = await runIn(cgDir, `exec cat ${outside} /etc/hostname`);
      expect(out.code).toBe(1);

      await waitFor(() => records.some((r) => r.pid === fail.pid), 3000);
      await new Promise((r) => setTimeout(r, 100));
      obj.stopRing();

      const w = records.find((r) => r.pid === write.pid);
      expect(w, 'open of the shell redirect').toBeDefined();
      expect(w!.path).toBe(known);
      expect(w!.openFlags).toBe(O_WRONLY | O_CREAT | O_TRUNC);
      expect(w!.ret).toBeGreaterThanOrEqual(0);
      expect(w!.comm).toBe('sh');
      expect(w!.cgroupId).toBe(cg);
      expect(w!.generation).toBe(generation);
      expect(w!.weight).toBe(1);
      expect(w!.flags).toBe(0);
      expect(w!.hdrPad).toBe(0);
      expect(w!.pad).toBe(0);
      expect(w!.pathTailZero).toBe(true);

      const r = records.find((x) => x.pid === read.pid);
      expect(r, 'open by cat').toBeDefined();
      expect(r!.path).toBe(known);
      expect(r!.openFlags & 3).toBe(0); // O_RDONLY
      expect(r!.ret).toBeGreaterThanOrEqual(3);
      expect(r!.comm).toBe('cat');

      const f = records.find((x) => x.pid === fail.pid);
      expect(f, 'failed open').toBeDefined();
      expect(f!.path).toBe(missing);
      expect(f!.ret).toBe(-2); // -ENOENT
      expect(f!.flags).toBe(TF_FLAG_PATH_UNVERIFIED); // no file: the caller's string

      // Only our prefix, only our cgroup: the loader's and the outside opens are filtered.
      expect(records.some((x) => x.pid === out.pid)).toBe(false);
      for (const x of records) {
        expect(x.path.startsWith(`${tmp}/`)).toBe(true);
        expect(x.cgroupId).toBe(cg);
      }
      expect(records).toHaveLength(3);
      const filteredAfter = obj.sumPercpuCounters('tf_drops')[filteredKey]!;
      expect(filteredAfter).toBeGreaterThan(filteredBefore);
      expect(obj.sumPercpuCounters('tf_emitted')[TF_PROBE_FILE]).toBe(3n);
    } finally {
      obj.close();
    }
  });

  /** Loads the probe for this test's cgroup (plus `mask`), runs `fn` with the records seen. */
  async function withProbe(
    mask: number,
    setup: (obj: Native.BpfObject) => void,
    fn: (records: OpenRecord[]) => Promise<void>,
  ): Promise<void> {
    const obj = new native.BpfObject(probePath, { consts: { wakeup_bytes: 1n } });
    try {
      obj.load();
      obj.mapUpdate(
        'tf_config',
        Buffer.alloc(4),
        configBuf(1, 1, 1, TF_FILTER_ALLOW_CGROUP | mask),
      );
      obj.mapUpdate('tf_set_cgroup', u64Key(cg), Buffer.from([TF_SET_ALLOW]));
      setup(obj);
      obj.attach('handle_openat_enter');
      obj.attach('handle_openat_exit');
      const records: OpenRecord[] = [];
      obj.startRing('rb', { flushMs: 10 }, (batch) => records.push(...decodeBatch(batch)));
      await fn(records);
      obj.stopRing();
    } finally {
      obj.close();
    }
  }

  it('reports the resolved path, cut at the buffer with its leading part kept', async () => {
    // "/./././...": a 300-byte spelling the kernel resolves to known.txt; reported resolved.
    const dotted = `${tmp}${'/.'.repeat(150)}/known.txt`;
    // A real path over the buffer: 30 directories of 10 bytes.
    const deepDir = path.join(
      tmp,
      ...Array.from({ length: 30 }, (_, i) => `d${String(i).padStart(9, '0')}`),
    );
    mkdirSync(deepDir, { recursive: true });
    const deep = path.join(deepDir, 'f.txt');
    writeFileSync(deep, 'x');
    await withProbe(
      0,
      () => {},
      async (records) => {
        const a = await runIn(cgDir, `exec cat ${dotted}`);
        const b = await runIn(cgDir, `exec cat ${deep}`);
        expect([a.code, b.code]).toEqual([0, 0]);
        await waitFor(() => records.some((x) => x.pid === b.pid && x.path.startsWith(tmp)), 3000);
        const ra = records.find((x) => x.pid === a.pid && x.path.startsWith(tmp));
        expect(ra?.path).toBe(path.join(realpathSync(tmp), 'known.txt'));
        expect(ra!.flags & (TF_FLAG_TRUNCATED | TF_FLAG_PATH_UNVERIFIED)).toBe(0);
        const rb = records.find((x) => x.pid === b.pid && x.path.startsWith(tmp));
        expect(rb).toBeDefined();
        expect(rb!.flags & TF_FLAG_TRUNCATED).toBe(TF_FLAG_TRUNCATED);
        expect(rb!.flags & (TF_FLAG_PATH_UNVERIFIED | TF_FLAG_PATH_PARTIAL)).toBe(0);
        expect(rb!.path).toBe(realpathSync(deep).slice(0, TF_PATH_LEN - 1));
        expect(rb!.pathTailZero).toBe(true);
        expect(rb!.ret).toBeGreaterThanOrEqual(3);
      },
    );
  });

  it('copies long names, and flags a path whose directories fill the buffer exactly', async () => {
    const real = realpathSync(tmp);
    // Names over the 40 bytes a dentry holds inline are copied another way.
    const longName = path.join(real, `${'L'.repeat(60)}.txt`);
    writeFileSync(longName, 'x');
    // Directories that end exactly at byte 255, then one more component.
    const segs: string[] = [];
    for (let rem = TF_PATH_LEN - 1 - `${real}/e`.length; rem > 0;) {
      const n = Math.min(rem - 1, 50);
      const name = n >= 1 ? 'e'.repeat(n) : '';
      segs.push(name);
      rem -= n + 1;
    }
    const full = path.join(real, 'e', ...segs.filter(Boolean));
    expect(Buffer.byteLength(full)).toBe(TF_PATH_LEN - 1);
    mkdirSync(full, { recursive: true });
    writeFileSync(path.join(full, 'f'), 'x');
    await withProbe(
      0,
      () => {},
      async (records) => {
        const a = await runIn(cgDir, `exec cat ${longName}`);
        const b = await runIn(cgDir, `exec cat ${path.join(full, 'f')}`);
        expect([a.code, b.code]).toEqual([0, 0]);
        await waitFor(() => records.some((x) => x.pid === b.pid && x.path.startsWith(real)), 3000);
        const ra = records.find((x) => x.pid === a.pid && x.path.startsWith(real));
        expect(ra?.path).toBe(longName);
        expect(ra!.pathTailZero).toBe(true);
        expect(ra!.flags).toBe(0);
        const rb = records.find((x) => x.pid === b.pid && x.path.startsWith(real));
        expect(rb?.path).toBe(full);
        expect(rb!.flags).toBe(TF_FLAG_TRUNCATED);
      },
    );
  });

  it('keeps the root-most components of a deep path; past the walk bound the path is partial and passes path filters', async () => {
    const real = realpathSync(tmp);
    // 70 one-byte directories: 140 bytes, more components than a path keeps.
    const d70 = path.join(real, 'c', ...Array.from({ length: 69 }, () => 'a'));
    mkdirSync(d70, { recursive: true });
    writeFileSync(path.join(d70, 'f'), 'x');
    // 300 directories: more steps than the walk takes (openat from a directory fd).
    const d300 = path.join(real, 'w', ...Array.from({ length: 299 }, () => 'b'));
    mkdirSync(d300, { recursive: true });
    writeFileSync(path.join(d300, 'f'), 'x');
    const comps = path.join(d70, 'f').split('/').filter(Boolean);
    const allowOnly = `${real}/c/`;
    await withProbe(
      TF_FILTER_ALLOW_PATH,
      (obj) => obj.mapUpdate('tf_set_path', pathKey(allowOnly), Buffer.from([TF_SET_ALLOW])),
      async (records) => {
        const a = await runIn(cgDir, `exec cat ${path.join(d70, 'f')}`);
        const b = await runIn(cgDir, `cd ${d300} && exec cat f`);
        expect([a.code, b.code]).toEqual([0, 0]);
        await waitFor(() => records.some((x) => x.pid === b.pid), 3000);
        const ra = records.filter((x) => x.pid === a.pid);
        expect(ra).toHaveLength(1);
        expect(ra[0]!.path).toBe(`/${comps.slice(0, PATH_COMPONENTS).join('/')}`);
        expect(ra[0]!.flags & (TF_FLAG_TRUNCATED | TF_FLAG_PATH_PARTIAL)).toBe(TF_FLAG_TRUNCATED);
        // Outside the allowed prefix, but the walk cannot reach the root: reported, flagged.
        const rb = records.filter((x) => x.pid === b.pid && x.ret >= 0);
        expect(rb.some((x) => x.path.startsWith('/'))).toBe(false);
        const deepOpen = rb.find((x) => x.path.endsWith('b/b/b'));
        expect(deepOpen, rb.map((x) => `${x.flags} ${x.path}`).join('\n')).toBeDefined();
        expect(deepOpen!.flags & TF_FLAG_PATH_PARTIAL).toBe(TF_FLAG_PATH_PARTIAL);
        expect(deepOpen!.flags & TF_FLAG_PATH_UNVERIFIED).toBe(0);
      },
    );
  });
});
