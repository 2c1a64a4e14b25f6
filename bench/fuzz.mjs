#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
//
// Long fuzzing run: every target of bench/lib/fuzz-targets.mjs (TypeScript
// frame decoders on arbitrary and mutated frames, the thresholds parser, the
// feedback request parser) and the Python frame decoder, a million cases each
// by default, against dist/. Prints cases, seconds, cases/s and the first
// failure (shrunk) per target; exits 1 when any target failed.
//
// usage: node bench/fuzz.mjs [--json] [--quick] [--cases=1000000] [--seed=N] [--only=substring]
//        (no root, no Kafka; --quick runs 20,000 cases per target)

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { JSON_OUT, QUICK, argNum, argStr, log, renderTable, repoRoot } from './lib/common.mjs';
import { fuzzTargets, pythonDriverInput, pythonFrameCases } from './lib/fuzz-targets.mjs';

const CASES = argNum('cases', QUICK ? 20_000 : 1_000_000);
const SEED = argNum('seed', Date.now() % 2 ** 31);
const ONLY = argStr('only', '');

// A stale dist/ would fuzz old code.
execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: repoRoot, stdio: 'inherit' });
const dist = (p) => import(join(repoRoot, 'dist', p));
const { ConfigError, DecodeError } = await dist('common/errors.js');
const { parseFeedbackRequest, parseThresholds } = await dist('feedback/index.js');
const { decodeFrame, decodeFrameEvents, encodeFrame, layout, RECORD_SIZE_BY_OP } =
  await dist('ingest/index.js');
const modules = {
  encodeFrame,
  decodeFrame,
  decodeFrameEvents,
  DecodeError,
  layout,
  RECORD_SIZE_BY_OP,
  parseThresholds,
  parseFeedbackRequest,
  ConfigError,
  stringifyYaml,
  parseYaml,
  thresholdsYaml: readFileSync(join(repoRoot, 'config', 'thresholds.yaml'), 'utf8'),
};

const rows = [];
for (const [name, property] of Object.entries(fuzzTargets(modules))) {
  if (ONLY && !name.includes(ONLY)) continue;
  log(`fuzz: ${name}: ${CASES} cases, seed ${SEED}`);
  const t0 = performance.now();
  const r = fc.check(property, { numRuns: CASES, seed: SEED });
  const s = (performance.now() - t0) / 1000;
  const cases = r.failed ? r.numRuns : CASES;
  rows.push({
    target: name,
    cases,
    seconds: Number(s.toFixed(1)),
    cases_per_second: Math.round(cases / s),
    failure: r.failed ? fc.defaultReportMessage(r) : null,
  });
}

function python() {
  const venv = join(repoRoot, '.tracefeed', 'venv', 'bin', 'python');
  return process.env.TRACEFEED_PYTHON ?? (existsSync(venv) ? venv : 'python3');
}

if (!ONLY || 'python frame decoder'.includes(ONLY)) {
  const name = 'python frame decoder';
  log(`fuzz: ${name}: ${CASES} cases, seed ${SEED}`);
  const arb = pythonFrameCases(modules);
  const CHUNK = 50_000;
  let cases = 0;
  let pySeconds = 0;
  let failure = null;
  const t0 = performance.now();
  for (let done = 0; done < CASES && failure === null; done += CHUNK) {
    const n = Math.min(CHUNK, CASES - done);
    const input = pythonDriverInput(fc.sample(arb, { numRuns: n, seed: SEED + done }));
    const p = spawnSync(python(), [join(repoRoot, 'bench/lib/python-frame-fuzz.py')], {
      input,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    if (p.status !== 0) {
      failure = `driver exited ${p.status}: ${p.stderr.slice(-2000)}`;
      break;
    }
    const summary = JSON.parse(p.stdout);
    cases += summary.cases;
    pySeconds += summary.seconds;
    if (summary.failure_count > 0) failure = JSON.stringify(summary.failures[0]);
  }
  const s = (performance.now() - t0) / 1000;
  rows.push({
    target: name,
    cases,
    seconds: Number(s.toFixed(1)),
    cases_per_second: Math.round(cases / pySeconds),
    failure,
  });
}

if (JSON_OUT) process.stdout.write(`${JSON.stringify({ seed: SEED, targets: rows }, null, 2)}\n`);
else {
  process.stdout.write(
    renderTable({
      title: `fuzzing (fast-check), seed ${SEED}`,
      head: ['target', 'cases', 'seconds', 'cases/s', 'result'],
      rows: rows.map((r) => [
        r.target,
        r.cases,
        r.seconds,
        r.cases_per_second,
        r.failure ? 'FAILED' : 'ok',
      ]),
      digits: 0,
    }) + '\n',
  );
  for (const r of rows) if (r.failure) process.stdout.write(`\n${r.target}:\n${r.failure}\n`);
}
process.exitCode = rows.some((r) => r.failure) ? 1 : 0;
