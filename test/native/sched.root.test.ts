// SPDX-License-Identifier: Apache-2.0
//
// End-to-end test of bpf/sched.bpf.c: CPU-bound processes in a fresh cgroup
// v2, more of them than CPUs, must wait on the run queue. Needs root,
// `make -C bpf` and `node native/build.mjs`.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cgroup2Mount,
  cgroupId,
  ownCgroupId,
  removeCgroup,
  u64Key,
} from '../helpers/native-test.js';

import type * as Native from '../../native/index.js';
import { encodeProbeConfig } from '../../src/ingest/probe-controller.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const probePath = path.join(root, 'bpf/.output/sched.bpf.o');
const addonPath = path.join(root, 'native/build/tracefeed.node');
const isRoot = process.getuid?.() === 0;

// events.h constants and offsets, duplicated on purpose: the test checks the layout.
const TF_FILTER_ALLOW_CGROUP = 0x0001;
const TF_SET_ALLOW = 0x1;
const TF_HIST_SLOTS = 32;
const HIST_VALUE_SIZE = 24 + 8 * TF_HIST_SLOTS;
const TF_PROBE_SCHED = 4;
const TF_DROP_REASON_MAX = 4;
const TF_DROP_FILTERED = 1;

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

function configBuf(enabled: number, mask: number): Buffer {
  return encodeProbeConfig({ enabled: enabled !== 0, generation: 1, filter_mask: mask });
}

function runIn(dir: string, cmd: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', `echo $$ > ${dir}/cgroup.procs && exec ${cmd}`], {
      stdio: 'ignore',
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve(code));
  });
}

describe.skipIf(!isRoot)('sched probe (root)', () => {
  let native: Native.NativeAddon;
  let mount: string;
  let cgDir: string;
  let cg: bigint;

  beforeAll(async () => {
    if (!existsSync(probePath)) throw new Error(`${probePath} missing: run \`make -C bpf\` first`);
    if (!existsSync(addonPath))
      throw new Error(`${addonPath} missing: run \`node native/build.mjs\` first`);
    native = (await import('../../native/index.js')).loadNative();
    mount = cgroup2Mount();
    cgDir = path.join(mount, `tf-test-${randomBytes(4).toString('hex')}`);
    mkdirSync(cgDir);
    cg = cgroupId(cgDir);
  });

  afterAll(async () => {
    if (cgDir) await removeCgroup(cgDir);
  });

  it('histograms run-queue latency of an oversubscribed cgroup', async () => {
    const obj = new native.BpfObject(probePath);
    try {
      obj.load();
      expect(
        obj
          .programs()
          .map((p) => p.name)
          .sort(),
      ).toEqual(['handle_sched_switch', 'handle_sched_wakeup', 'handle_sched_wakeup_new']);
      const stats = obj.maps().find((m) => m.name === 'runq_stats');
      expect(stats?.keySize).toBe(8);
      expect(stats?.valueSize).toBe(HIST_VALUE_SIZE);

      obj.mapUpdate('tf_config', Buffer.alloc(4), configBuf(1, TF_FILTER_ALLOW_CGROUP));
      obj.mapUpdate('tf_set_cgroup', u64Key(cg), Buffer.from([TF_SET_ALLOW]));
      obj.attach('handle_sched_wakeup');
      obj.attach('handle_sched_wakeup_new');
      obj.attach('handle_sched_switch');

      // Twice as many busy loops as CPUs (at least 4), for 1 s.
      const n = Math.max(4, 2 * availableParallelism());
      const codes = await Promise.all(
        Array.from({ length: n }, () => runIn(cgDir, `timeout 1 sh -c 'while :; do :; done'`)),
      );
      for (const c of codes) expect(c).toBe(124); // killed by timeout

      const raw = obj.mapLookup('runq_stats', u64Key(cg));
      expect(raw, 'runq_stats entry of the test cgroup').not.toBeNull();
      const h = decodeHist(raw!);
      expect(h.count).toBeGreaterThan(0n);
      expect(h.errorCount).toBe(0n);
      expect(h.hist.reduce((a, b) => a + b, 0n)).toBe(h.count);
      // n loops for 1 s on fewer CPUs: the waits add up to a good part of a second,
      // and never to more than every loop waiting the whole time.
      expect(h.totalNs).toBeGreaterThan(100_000_000n);
      expect(h.totalNs).toBeLessThan(BigInt(n) * 2_000_000_000n);
      const mean = h.totalNs / h.count;
      expect(mean).toBeGreaterThan(1_000n);
      expect(mean).toBeLessThan(1_000_000_000n);
      // The median wait is at least 2^10 ns.
      let acc = 0n;
      let p50 = -1;
      for (let i = 0; i < TF_HIST_SLOTS; i++) {
        acc += h.hist[i]!;
        if (2n * acc >= h.count) {
          p50 = i;
          break;
        }
      }
      expect(p50).toBeGreaterThanOrEqual(10);

      // Other cgroups are filtered, not counted.
      expect(obj.mapLookup('runq_stats', u64Key(ownCgroupId(mount)))).toBeNull();
      const drops = obj.sumPercpuCounters('tf_drops');
      expect(drops[TF_PROBE_SCHED * TF_DROP_REASON_MAX + TF_DROP_FILTERED]).toBeGreaterThan(0n);
    } finally {
      obj.close();
    }
  });

  it('counts nothing while disabled', async () => {
    const obj = new native.BpfObject(probePath);
    try {
      obj.load();
      obj.mapUpdate('tf_config', Buffer.alloc(4), configBuf(0, 0));
      obj.attach('handle_sched_wakeup');
      obj.attach('handle_sched_wakeup_new');
      obj.attach('handle_sched_switch');
      await runIn(cgDir, `timeout 0.3 sh -c 'while :; do :; done'`);
      expect(obj.mapLookup('runq_stats', u64Key(cg))).toBeNull();
    } finally {
      obj.close();
    }
  });
});
