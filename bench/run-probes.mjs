#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
//
// Runs the probe benches of issue 3 one after another, each in its own
// process, and prints their tables (or, with --json, one JSON document).
//
// usage: sudo node bench/run-probes.mjs [--json] [--quick]
//   bench/probe-emit-cost.mjs    per-event cost: ring emit vs count only
//   bench/probe-default-set.mjs  default probe set: syscall slowdown, CPU at 10k events/s
//   bench/ring-drain.mjs         ring buffer -> JS drain rate with zero drops
//   bench/probe-file-cost.mjs    file probe: per-open cost, path resolved from the fd
//   bench/dns-cost.mjs           dns probe: ns per packet (not dns, dns query, dns answer)
// Extra flags are passed to every bench. Exits non-zero only if a bench fails
// to run; missed targets are reported, not failed.

import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { JSON_OUT, ensureBuilt, log, machine, renderTable, repoRoot } from './lib/common.mjs';

const BENCHES = [
  'probe-emit-cost.mjs',
  'probe-default-set.mjs',
  'ring-drain.mjs',
  'probe-file-cost.mjs',
  'dns-cost.mjs',
];
const passthrough = process.argv.slice(2).filter((a) => a !== '--json');

ensureBuilt();
const results = [];
let failed = false;
for (const b of BENCHES) {
  log(`running ${b}`);
  const r = spawnSync(process.execPath, [join(repoRoot, 'bench', b), '--json', ...passthrough], {
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) {
    failed = true;
    results.push({ bench: b, error: `exit ${r.status ?? r.signal}` });
    continue;
  }
  results.push(JSON.parse(r.stdout.toString()));
}

const summary = results.filter((r) => r.target).map((r) => ({ bench: r.bench, ...r.target }));
if (JSON_OUT) {
  process.stdout.write(
    `${JSON.stringify({ machine: machine(), git: gitRev(), summary, results }, null, 2)}\n`,
  );
} else {
  for (const r of results) {
    if (r.error) process.stdout.write(`## ${r.bench}: FAILED (${r.error})\n\n`);
    else process.stdout.write(`${r.tables.map(renderTable).join('\n\n')}\n\n`);
  }
  process.stdout.write(`## Targets\n${JSON.stringify(summary, null, 1)}\n`);
}
process.exit(failed ? 1 : 0);

function gitRev() {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot })
      .toString()
      .trim();
  } catch {
    return null;
  }
}
