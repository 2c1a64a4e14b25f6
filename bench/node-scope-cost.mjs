#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
//
// Cost of a node's cgroup scope (bpf/control.h, tf_probe_config.scope_*) on the
// hottest path, the syscalls probe (tp_btf sys_enter + sys_exit, on every
// syscall of the host): kernel run time per syscall (kernel.bpf_stats) of the
// getppid() loop (bench/c/syscall_loop.c) on the last CPU, the loop in a cgroup
// of its own, with
//   host        no scope (the default: the whole host)
//   scoped-in   a scope that holds the loop's cgroup (the loop is collected)
//   scoped-out  a scope elsewhere (the loop is another node's: nothing collected)
//   baseline    --baseline-object=PATH: another build of syscalls.bpf.o (e.g. the
//               commit before the scope), no scope, for the before/after figure
// Windows alternate the variants per round; medians are printed.
//
// usage: sudo node bench/node-scope-cost.mjs [--json] [--quick] [--rounds=5] [--calls=2000000]
//        [--baseline-object=PATH]

import { mkdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  QUICK,
  argNum,
  argStr,
  bpfDelta,
  bpfProgStats,
  cpuCount,
  enableBpfStats,
  enabledConfig,
  ensureBuilt,
  log,
  machine,
  median,
  pin,
  repoRoot,
  report,
  restoreBpfStats,
  startSyscallLoop,
  u32,
} from './lib/common.mjs';

const ROUNDS = argNum('rounds', QUICK ? 2 : 5);
const CALLS = argNum('calls', QUICK ? 500_000 : 2_000_000);
const BASELINE = argStr('baseline-object');

async function main() {
  ensureBuilt();
  const { BpfObject } = (await import('../native/index.js')).loadNative();
  const { encodeProbeConfig } = await import('../dist/ingest/probe-controller.js');
  const { cgroup2Root } = await import('../dist/ingest/cgroup-resolver.js');
  const root = cgroup2Root();
  if (!root) throw new Error('no cgroup v2 mount');
  const tag = `tf-bench-scope-${process.pid}`;
  const scopeDir = join(root, tag);
  const inDir = join(scopeDir, 'in');
  const otherDir = join(root, `${tag}-other`);
  for (const d of [scopeDir, inDir, otherDir]) mkdirSync(d);
  const idOf = (d) => statSync(d, { bigint: true }).ino;

  const ncpu = cpuCount();
  const loop = await startSyscallLoop(ncpu - 1);
  if (ncpu > 1) pin(process.pid, 0);
  writeFileSync(join(inDir, 'cgroup.procs'), String(loop.pid));

  const open = (path, config) => {
    const obj = new BpfObject(path, {});
    obj.load();
    obj.mapUpdate('tf_config', u32(0), config(obj));
    return obj;
  };
  const mine = join(repoRoot, 'bpf', '.output', 'syscalls.bpf.o');
  const cfg = (scope) => () => encodeProbeConfig({ enabled: true, generation: 1, scope });
  const variants = [
    { name: 'host', obj: open(mine, cfg(undefined)) },
    { name: 'scoped-in', obj: open(mine, cfg({ id: idOf(scopeDir), level: 1 })) },
    { name: 'scoped-out', obj: open(mine, cfg({ id: idOf(otherDir), level: 1 })) },
  ];
  if (BASELINE) variants.push({ name: 'baseline', obj: open(BASELINE, enabledConfig) });

  enableBpfStats();
  const samples = new Map(variants.map((v) => [v.name, []]));
  const window = async (v, calls) => {
    const progs = v.obj.programs();
    const before = bpfProgStats();
    for (const p of progs) v.obj.attach(p.name);
    const ns = await loop.run(calls);
    for (const p of progs) v.obj.detach(p.name);
    const k = bpfDelta(
      before,
      bpfProgStats(),
      progs.map((p) => p.id),
    );
    return { nsPerCall: ns / calls, bpfNsPerCall: k.runTimeNs / calls, runs: k.runCnt };
  };
  log('warm-up');
  for (const v of variants) await window(v, Math.min(CALLS, 200_000));
  for (let r = 0; r < ROUNDS; r++) {
    const order = variants.map((_, i) => variants[(i + r) % variants.length]);
    for (const v of order) samples.get(v.name).push(await window(v, CALLS));
    log(
      `round ${r + 1}/${ROUNDS}: ` +
        order
          .map((v) => `${v.name}=${samples.get(v.name).at(-1).bpfNsPerCall.toFixed(1)}ns`)
          .join(' '),
    );
  }
  restoreBpfStats();
  await loop.close();
  for (const v of variants) v.obj.close();
  await new Promise((r) => setTimeout(r, 200));
  for (const d of [inDir, scopeDir, otherDir]) {
    try {
      rmdirSync(d);
    } catch {
      /* the loop's exit is still being reaped */
    }
  }

  const rows = variants.map((v) => {
    const s = samples.get(v.name);
    return [
      v.name,
      median(s.map((x) => x.bpfNsPerCall)),
      median(s.map((x) => x.nsPerCall)),
      median(s.map((x) => x.runs / CALLS)),
    ];
  });
  report({
    bench: 'node-scope-cost',
    machine: machine(),
    calls: CALLS,
    rounds: ROUNDS,
    results: Object.fromEntries(rows.map((r) => [r[0], { bpfNsPerCall: r[1], nsPerCall: r[2] }])),
    tables: [
      {
        title: `syscalls probe with and without a node scope (${CALLS} getppid calls x ${ROUNDS} rounds, medians)`,
        head: ['variant', 'bpf ns/call', 'wall ns/call', 'runs/call'],
        rows,
        digits: 1,
        notes: [
          'bpf ns/call: run time of sys_enter + sys_exit (kernel.bpf_stats) over the loop calls (other syscalls of the host included)',
        ],
      },
    ],
  });
}

main().catch((err) => {
  restoreBpfStats();
  console.error(err);
  process.exit(1);
});
