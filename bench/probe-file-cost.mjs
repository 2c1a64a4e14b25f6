#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
//
// Per-open cost of the file probe (bpf/file.bpf.c): an open()+close() loop
// with the probe attached and emitting every open of the loop, versus
// nothing attached, for a shallow and a deep path.
//
// usage: node bench/probe-file-cost.mjs [--json] [--quick] [--rounds=7] [--calls=200000]
//        [--object=bpf/.output/file.bpf.o]   (root; --object to measure another build)
//
// The probe is the product object, configured as the agent does (enabled,
// keep all) with a pid allow-set holding only the loop, so other processes'
// opens stop at the entry program. Rounds alternate none/probe (order
// rotated); the loop runs on the last CPU, this process (ring drain) on CPU
// 0. Figures are medians. "bpf ns/open" is the run time of the exit program
// (kernel.bpf_stats) over the loop's opens: it includes other processes'
// (early-out) runs in the same window, so it is an upper bound.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  QUICK,
  argNum,
  argStr,
  bpfDelta,
  bpfProgStats,
  cpuCount,
  enableBpfStats,
  ensureBuilt,
  log,
  machine,
  median,
  pin,
  repoRoot,
  report,
  restoreBpfStats,
  sleep,
  startSyscallLoop,
  u32,
} from './lib/common.mjs';

const ROUNDS = argNum('rounds', QUICK ? 3 : 7);
const CALLS = argNum('calls', QUICK ? 50_000 : 200_000);
const OBJECT = argStr('object', join(repoRoot, 'bpf/.output/file.bpf.o'));

async function main() {
  ensureBuilt();
  const { BpfObject } = (await import('../native/index.js')).loadNative();
  const { encodeProbeConfig } = await import('../dist/ingest/probe-controller.js');
  const { DROP_REASON_MAX, DropReason, FilterBit, Probe, SET_ALLOW } =
    await import('../dist/wire/layout.js');
  const ncpu = cpuCount();
  const loop = await startSyscallLoop(ncpu - 1);
  if (ncpu > 1) pin(process.pid, 0);

  const tmp = mkdtempSync('/tmp/tf-bench-file-');
  const deepDir = join(tmp, 'a', 'bb', 'ccc', 'dddd', 'eeeee', 'ffffff', 'ggggggg', 'hhhhhhhh');
  mkdirSync(deepDir, { recursive: true });
  const deep = join(deepDir, 'file.txt');
  writeFileSync(deep, 'x');
  const PATHS = [
    { name: 'shallow', path: '/dev/null' },
    { name: 'deep', path: deep, comps: deep.split('/').length - 1 },
  ];

  const obj = new BpfObject(OBJECT, {
    ringbufBytes: { rb: 4 << 20 },
    consts: { wakeup_bytes: BigInt(256 * 1024) },
  });
  obj.load();
  obj.mapUpdate(
    'tf_config',
    u32(0),
    encodeProbeConfig({
      enabled: true,
      generation: 1,
      sample_n: 1,
      filter_mask: FilterBit.ALLOW_PID,
    }),
  );
  obj.mapUpdate('tf_set_pid', u32(loop.pid), Buffer.from([SET_ALLOW]));
  let received = 0;
  obj.startRing('rb', { batchBytes: 256 * 1024, flushMs: 100 }, (_batch, n) => {
    received += n;
  });
  const progs = ['handle_openat_enter', 'handle_openat_exit'];
  const ids = () => obj.programs().filter((p) => progs.includes(p.name));
  const fullKey = Probe.FILE * DROP_REASON_MAX + DropReason.RINGBUF_FULL;
  const drops = () => Number(obj.sumPercpuCounters('tf_drops')[fullKey]);

  enableBpfStats();
  const window = async (attached, path, calls) => {
    const before = bpfProgStats();
    if (attached) for (const p of progs) obj.attach(p);
    const recv0 = received;
    const drop0 = drops();
    const ns = await loop.open(calls, path);
    if (attached) for (const p of progs) obj.detach(p);
    const after = bpfProgStats();
    await sleep(250);
    const exitId = ids().find((p) => p.name === 'handle_openat_exit').id;
    const enterId = ids().find((p) => p.name === 'handle_openat_enter').id;
    const ex = attached ? bpfDelta(before, after, [exitId]) : { runTimeNs: 0, runCnt: 0 };
    const en = attached ? bpfDelta(before, after, [enterId]) : { runTimeNs: 0, runCnt: 0 };
    return {
      nsPerOpen: ns / calls,
      exitNsPerOpen: ex.runTimeNs / calls,
      enterNsPerOpen: en.runTimeNs / calls,
      received: received - recv0,
      drops: drops() - drop0,
    };
  };

  const rows = [];
  for (const p of PATHS) {
    log(`${p.name} (${p.path}): warm-up`);
    await window(false, p.path, Math.min(CALLS, 20_000));
    await window(true, p.path, Math.min(CALLS, 20_000));
    const none = [];
    const probe = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (const attached of r % 2 === 0 ? [false, true] : [true, false]) {
        const w = await window(attached, p.path, CALLS);
        (attached ? probe : none).push(w);
      }
      log(
        `${p.name} round ${r + 1}/${ROUNDS}: none ${none.at(-1).nsPerOpen.toFixed(0)} ns, probe ${probe.at(-1).nsPerOpen.toFixed(0)} ns/open`,
      );
    }
    const m = (xs, k) => median(xs.map((x) => x[k]));
    rows.push({
      path: p.name,
      nsNone: m(none, 'nsPerOpen'),
      nsProbe: m(probe, 'nsPerOpen'),
      overheadNs: median(probe.map((x, i) => x.nsPerOpen - none[i].nsPerOpen)),
      exitNs: m(probe, 'exitNsPerOpen'),
      enterNs: m(probe, 'enterNsPerOpen'),
      received: probe.reduce((a, x) => a + x.received, 0),
      expected: ROUNDS * CALLS,
      drops: probe.reduce((a, x) => a + x.drops, 0),
    });
  }

  obj.stopRing();
  obj.close();
  restoreBpfStats();
  await loop.close();
  rmSync(tmp, { recursive: true, force: true });

  report({
    bench: 'probe-file-cost',
    machine: machine(),
    object: OBJECT,
    rounds: ROUNDS,
    calls: CALLS,
    results: rows,
    tables: [
      {
        title: `file probe: open()+close() per call, ${CALLS} calls x ${ROUNDS} rounds (medians)`,
        head: [
          'path',
          'ns none',
          'ns probe',
          'overhead ns',
          'bpf exit ns',
          'bpf enter ns',
          'records',
          'drops',
        ],
        rows: rows.map((r) => [
          r.path,
          r.nsNone,
          r.nsProbe,
          r.overheadNs,
          r.exitNs,
          r.enterNs,
          `${r.received}/${r.expected}`,
          String(r.drops),
        ]),
        notes: [
          `object: ${OBJECT}`,
          `shallow: /dev/null; deep: ${PATHS[1].comps} components under /tmp`,
          'bpf ns: program run time (kernel.bpf_stats) over the loop opens; other processes add early-out runs.',
        ],
      },
    ],
  });
}

main().catch((e) => {
  restoreBpfStats();
  console.error(e);
  process.exit(1);
});
