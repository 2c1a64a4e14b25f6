/**
 * Property-based fuzzing (fast-check), short run: the frame decoders
 * (TypeScript and Python), the thresholds parser and the feedback request
 * parser meet arbitrary and mutated inputs and answer only with their typed
 * errors (DecodeError, FrameError, ConfigError naming a path), quickly, and
 * never read outside the bytes they were given. The long run (a million cases
 * per target) is `npm run bench:fuzz`.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { fuzzTargets, pythonDriverInput, pythonFrameCases } from '../../bench/lib/fuzz-targets.mjs';
import { ConfigError, DecodeError } from '../../src/common/errors.js';
import { repoRoot } from '../../src/common/paths.js';
import { parseFeedbackRequest, parseThresholds } from '../../src/feedback/index.js';
import {
  RECORD_SIZE_BY_OP,
  decodeFrame,
  decodeFrameEvents,
  encodeFrame,
  layout,
} from '../../src/ingest/index.js';

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
const RUNS = Number(process.env.TRACEFEED_FUZZ_RUNS ?? 2000);

describe('fuzzing, short run', () => {
  const targets = fuzzTargets(modules);
  for (const [name, property] of Object.entries(targets))
    it(name, () => {
      const r = fc.check(property, { numRuns: RUNS });
      // A failing case is printed whole (fast-check shrinks it first).
      expect(r.failed ? `${fc.defaultReportMessage(r)}` : undefined).toBeUndefined();
    });

  it('python frame decoder: only FrameError, never another exception', () => {
    const cases = fc.sample(pythonFrameCases(modules), { numRuns: RUNS, seed: Date.now() | 0 });
    const out = execFileSync(
      process.env.TRACEFEED_PYTHON ?? 'python3',
      [join(repoRoot, 'bench/lib/python-frame-fuzz.py')],
      { input: pythonDriverInput(cases), encoding: 'utf8' },
    );
    const summary = JSON.parse(out) as {
      cases: number;
      ok: number;
      frame_errors: number;
      failures: unknown[];
    };
    expect(summary.cases).toBe(RUNS);
    expect(summary.failures).toEqual([]);
    // Both kinds of case occurred: the generator reaches valid frames too.
    expect(summary.ok).toBeGreaterThan(0);
    expect(summary.frame_errors).toBeGreaterThan(0);
  });
});
