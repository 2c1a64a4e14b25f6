#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
//
// One probe object against the same object built at another git revision,
// in one sitting: the ratio is what this noisy shared VM can tell, not
// either absolute figure. Each round loads one build with the current addon
// (config: enabled, no sampling, no filters, no scope; a ring drained at the
// node agent's settings), runs the same paced loopback connection churn
// (bench/c/tcp_churn.c) and reads each program's run count and run time
// from kernel.bpf_stats. Rounds alternate A/B, B/A.
//
// The older build is made here: `git worktree add` of --ref in a temporary
// directory and `make -C bpf` there (needs nothing from an earlier run).
//
// usage: sudo node bench/probe-ab.mjs --ref=REV [--object=tcp] [--rounds=6] [--seconds=5] [--conns=2600] [--json]

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  QUICK,
  argNum,
  argStr,
  benchBuild,
  bpfDelta,
  bpfProgStats,
  enableBpfStats,
  enabledConfig,
  ensureBuilt,
  log,
  machine,
  median,
  report,
  repoRoot,
  restoreBpfStats,
  sleep,
  u32,
} from './lib/common.mjs';

const REF = argStr('ref');
const OBJECT = argStr('object', 'tcp');
const ROUNDS = argNum('rounds', QUICK ? 2 : 6);
const SECONDS = argNum('seconds', QUICK ? 2 : 5);
const CONNS = argNum('conns', 2600);
if (!REF) {
  console.error(
    'usage: node bench/probe-ab.mjs --ref=REV [--object=tcp] [--rounds=6] [--seconds=5]',
  );
  process.exit(2);
}

ensureBuilt();
const addon = (await import(join(repoRoot, 'native', 'index.js'))).loadNative();

// The other build, in a worktree of its own.
const rev = execFileSync('git', ['-C', repoRoot, 'rev-parse', '--short', REF]).toString().trim();
const tree = mkdtempSync(join(tmpdir(), 'tf-probe-ab-'));
log(`building bpf/${OBJECT}.bpf.o at ${rev} in ${tree}`);
execFileSync('git', ['-C', repoRoot, 'worktree', 'add', '--detach', tree, rev], {
  stdio: 'ignore',
});
const cleanup = () => {
  try {
    execFileSync('git', ['-C', repoRoot, 'worktree', 'remove', '--force', tree], {
      stdio: 'ignore',
    });
  } catch {
    rmSync(tree, { recursive: true, force: true });
  }
};
try {
  execFileSync('make', ['-C', join(tree, 'bpf'), `.output/${OBJECT}.bpf.o`], { stdio: 'ignore' });
} catch (err) {
  cleanup();
  throw new Error(`make of bpf/${OBJECT}.bpf.o at ${rev} failed: ${err.message}`);
}
const builds = [
  { name: `HEAD`, path: join(repoRoot, 'bpf', '.output', `${OBJECT}.bpf.o`) },
  { name: rev, path: join(tree, 'bpf', '.output', `${OBJECT}.bpf.o`) },
];

function churn(connsPerSec, seconds) {
  const out = execFileSync(join(benchBuild, 'tcp_churn'), [
    String(connsPerSec),
    String(seconds),
  ]).toString();
  const [, n, , failed] = out.trim().split(' ').map(Number);
  return { conns: n, failed };
}

async function round(build) {
  const obj = new addon.BpfObject(build.path, {
    ringbufBytes: { rb: 4 * 1024 * 1024 },
    consts: { wakeup_bytes: 256n * 1024n },
  });
  obj.load();
  obj.mapUpdate('tf_config', u32(0), enabledConfig(obj));
  let records = 0;
  obj.startRing('rb', { flushMs: 20 }, (_batch, n) => (records += n));
  for (const p of obj.programs()) obj.attach(p.name);
  const ids = obj.programs().map((p) => p.id);
  await sleep(200);
  const k0 = bpfProgStats();
  const c = churn(CONNS, SECONDS);
  const k1 = bpfProgStats();
  await sleep(100);
  obj.stopRing();
  obj.close();
  const byProgram = {};
  for (const id of ids) {
    const d = bpfDelta(k0, k1, [id]);
    if (d.runCnt > 0) byProgram[k1.get(id)?.name ?? id] = d;
  }
  const all = bpfDelta(k0, k1, ids);
  return {
    conns: c.conns,
    failed: c.failed,
    records,
    nsPerRun: all.runCnt ? all.runTimeNs / all.runCnt : 0,
    nsPerConn: c.conns ? all.runTimeNs / c.conns : 0,
    runsPerConn: c.conns ? all.runCnt / c.conns : 0,
    byProgram,
  };
}

enableBpfStats();
const results = Object.fromEntries(builds.map((b) => [b.name, []]));
try {
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? builds : [...builds].reverse();
    for (const b of order) {
      const x = await round(b);
      results[b.name].push(x);
      log(
        `round ${r + 1}/${ROUNDS} ${b.name}: ${x.nsPerRun.toFixed(1)} ns/run, ${x.runsPerConn.toFixed(2)} runs and ${x.nsPerConn.toFixed(0)} ns per connection, ${x.records} records`,
      );
    }
  }
} finally {
  restoreBpfStats();
  cleanup();
}

const med = (name, k) => median(results[name].map((x) => x[k]));
const [a, b] = builds.map((x) => x.name);
const programs = [
  ...new Set(Object.values(results).flatMap((rs) => rs.flatMap((x) => Object.keys(x.byProgram)))),
].sort();
const progNs = (name, p) =>
  median(
    results[name].map((x) => {
      const d = x.byProgram[p];
      return d && d.runCnt ? d.runTimeNs / d.runCnt : 0;
    }),
  );
report({
  bench: 'probe-ab.mjs',
  machine: machine(),
  object: OBJECT,
  ref: rev,
  results,
  target: {
    ns_per_conn_ratio: med(a, 'nsPerConn') / med(b, 'nsPerConn'),
  },
  tables: [
    {
      title: `bpf/${OBJECT}.bpf.o at HEAD against ${rev}: ${CONNS} loopback connections/s for ${SECONDS} s, medians of ${ROUNDS} alternating rounds (kernel.bpf_stats, its own timing included)`,
      head: ['build', 'ns/run', 'runs/connection', 'ns/connection'],
      rows: builds.map((x) => [
        x.name,
        med(x.name, 'nsPerRun'),
        med(x.name, 'runsPerConn'),
        med(x.name, 'nsPerConn'),
      ]),
      notes: [
        `HEAD / ${rev} per connection: ${(med(a, 'nsPerConn') / med(b, 'nsPerConn')).toFixed(3)}x`,
        ...programs.map(
          (p) =>
            `${p}: ${progNs(a, p).toFixed(1)} ns/run at HEAD, ${progNs(b, p).toFixed(1)} at ${rev}`,
        ),
      ],
    },
  ],
});
