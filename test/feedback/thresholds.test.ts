import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { format } from 'prettier';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { repoRoot } from '../../src/common/paths.js';
import {
  DEFAULT_THRESHOLDS,
  loadThresholds,
  parseThresholds,
  thresholdsJsonSchema,
  ThresholdsWatcher,
} from '../../src/feedback/thresholds.js';

const log = createLogger('test', 'silent');
const prettierConfig = JSON.parse(
  readFileSync(join(repoRoot, '.prettierrc.json'), 'utf8'),
) as Record<string, unknown>;
const msg = (text: string): string => {
  try {
    parseThresholds(text, 't.yaml');
  } catch (err) {
    return (err as Error).message;
  }
  return 'valid';
};

describe('thresholds file', () => {
  it('the example is valid and means what it says', () => {
    const t = loadThresholds(join(repoRoot, 'examples/thresholds.yaml'));
    expect(t.floors).toEqual(['process']);
    expect(t.probes.tcp?.max_sample_n).toBe(100);
    expect(t.rules.find((r) => r.metric === 'tcp_retransmits')).toMatchObject({
      action: 'tighten',
      probe: 'tcp',
      focus: 'workload',
      ttl_seconds: 300,
    });
    expect(t.node_budgets['small-node']?.events_per_second).toBe(5000);
  });

  it('defaults: process is a floor, disable and every agent change need approval, the tiered rules, none node-wide', () => {
    expect(DEFAULT_THRESHOLDS.floors).toEqual(['process']);
    expect(DEFAULT_THRESHOLDS.approval.actions).toEqual(['disable']);
    expect(DEFAULT_THRESHOLDS.approval.origins).toEqual(['agent']);
    expect(DEFAULT_THRESHOLDS.rules.map((r) => r.name)).toEqual([
      'crash-loop',
      'tcp-retransmits',
      'tcp-connect-failures',
      'tcp-resets',
      'cpu-hog',
      'sync-write-storm',
      'memory-pressure',
      'dns-lookups',
      'dns-failures',
      'dns-slow',
    ]);
    expect(DEFAULT_THRESHOLDS.rules.every((r) => r.focus === 'workload')).toBe(true);
    // The shipped file and the built-in rules are the same tiers.
    expect(loadThresholds(join(repoRoot, 'config/thresholds.yaml')).rules).toEqual(
      DEFAULT_THRESHOLDS.rules,
    );
    expect(parseThresholds('version: 1\nrules: []\n').rules).toEqual([]);
    expect(DEFAULT_THRESHOLDS.probes.tcp).toBeUndefined();
    expect(
      parseThresholds('version: 1\nprobes: { tcp: {} }\n').probes.tcp?.budget_max_sample_n,
    ).toBe(64);
  });

  it('refuses a node-wide rule below critical, naming the rule', () => {
    expect(
      msg(
        'version: 1\nrules: [{ name: everything, metric: tcp_resets, action: tighten, probe: tcp, focus: node }]\n',
      ),
    ).toMatch(
      /rules\.0\.min_severity: rule everything: focus node changes the whole node and needs min_severity critical \(got warning\)/,
    );
    expect(
      msg('version: 1\nrules: [{ metric: tcp_resets, action: loosen, probe: tcp }]\n'),
    ).toMatch(/rule tcp-resets-loosen-tcp: a loosen changes the whole node/);
    expect(
      msg(
        'version: 1\nrules: [{ metric: runq_p99_ns, min_severity: critical, action: enable, probe: sched, focus: node }]\n',
      ),
    ).toBe('valid');
    expect(
      msg('version: 1\nprobes: { tcp: { min_sample_n: 10, budget_max_sample_n: 4 } }\n'),
    ).toMatch(
      /probes\.tcp\.budget_max_sample_n: budget_max_sample_n \(4\) is below min_sample_n \(10\)/,
    );
    expect(
      msg('version: 1\nrules: [{ metric: x, source: kprobe, action: tighten, probe: tcp }]\n'),
    ).toMatch(/rules\.0\.source/);
  });

  it('rejects unknown keys, bad values and inconsistent bounds with the path', () => {
    expect(msg('version: 1\nbudgets: {}\n')).toMatch(/t\.yaml: .*budgets/);
    expect(msg('version: 1\nprobes: { tcp: { max_sample: 3 } }\n')).toMatch(
      /probes\.tcp.*max_sample/,
    );
    expect(msg('version: 1\nprobes: { kprobe: {} }\n')).toMatch(/probes/);
    expect(msg('version: 1\nprobes: { tcp: { min_sample_n: 10, max_sample_n: 2 } }\n')).toMatch(
      /probes\.tcp\.min_sample_n: min_sample_n \(10\) is above max_sample_n \(2\)/,
    );
    expect(msg('version: 1\nfloors: [nope]\n')).toMatch(/floors\.0/);
    expect(msg('version: 2\n')).toMatch(/version/);
    expect(msg('version: 1\nrules: [{ metric: x, action: disable, probe: tcp }]\n')).toMatch(
      /rules\.0\.action/,
    );
    expect(msg('version: 1\nrules: [{ metric: x, action: tighten, probe: process }]\n')).toMatch(
      /rules\.0\.focus: probe process is a floor/,
    );
    expect(msg('version: 1\nbudget: [\n')).toMatch(/YAML/);
  });

  it('docs/thresholds.schema.json is current (regenerate: UPDATE_SCHEMA=1 npx vitest run test/feedback/thresholds.test.ts)', async () => {
    const path = join(repoRoot, 'docs/thresholds.schema.json');
    const generated = thresholdsJsonSchema();
    if (process.env.UPDATE_SCHEMA === '1')
      writeFileSync(
        path,
        await format(JSON.stringify(generated), { parser: 'json', ...prettierConfig }),
      );
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(generated);
    const want = JSON.stringify(generated);
    const schema = JSON.parse(want) as { additionalProperties?: boolean; required?: string[] };
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(['version']);
  });

  it('hot reload takes a valid edit, keeps the old config on an invalid one and says why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-thr-'));
    const path = join(dir, 'thresholds.yaml');
    writeFileSync(path, 'version: 1\ncooldown_seconds: 10\n');
    const changes: number[] = [];
    const errors: string[] = [];
    const w = new ThresholdsWatcher(path, {
      log,
      debounceMs: 50,
      onChange: (t) => changes.push(t.cooldown_seconds),
      onError: (e) => errors.push(e.message),
    }).start();
    try {
      expect(w.current.cooldown_seconds).toBe(10);
      writeFileSync(path, 'version: 1\ncooldown_seconds: 20\n');
      await until(() => changes.includes(20));
      expect(w.current.cooldown_seconds).toBe(20);
      writeFileSync(path, 'version: 1\ncooldown_seconds: -5\n');
      await until(() => errors.length > 0);
      expect(w.current.cooldown_seconds).toBe(20);
      expect(w.status().lastError?.message).toMatch(/cooldown_seconds/);
      writeFileSync(path, 'version: 1\ncooldown_seconds: 30\n');
      await until(() => changes.includes(30));
      expect(w.status().lastError).toBeUndefined();
    } finally {
      w.stop();
    }
  });
});

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
