/**
 * How a scenario judges what it saw: the rules file it runs with, and when a
 * bystander counts as blinded. Rows here are built by hand on purpose: this
 * is the judgement, not the pipeline (the e2e suites run that).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createLogger } from '../../src/common/logger.js';
import { repoRoot } from '../../src/common/paths.js';
import { thresholdsSchema } from '../../src/feedback/thresholds.js';
import {
  ScenarioSession,
  markdownReport,
  scenarioThresholds,
  type ScenarioCgroup,
  type ScenarioReport,
} from '../../src/scenario/index.js';

const W = 2000;
const at = (ms: number): string => new Date(ms).toISOString();

describe('scenario thresholds', () => {
  it("keeps the project's rules and gives each the session's TTL and a 1 s cooldown", () => {
    const text = scenarioThresholds(join(repoRoot, 'config', 'thresholds.yaml'), 7);
    const t = thresholdsSchema.parse(parse(text));
    const base = parse(readFileSync(join(repoRoot, 'config', 'thresholds.yaml'), 'utf8')) as {
      rules: Array<{ name: string }>;
    };
    expect(t.rules.map((r) => r.name)).toEqual(base.rules.map((r) => r.name));
    for (const r of t.rules) expect(r.ttl_seconds).toBe(7);
    expect(t.cooldown_seconds).toBe(1);
  });
});

describe('bystander judgement', () => {
  let session: ScenarioSession;
  afterEach(async () => session?.stop());

  function withRows(rows: Array<[number, string, string]>): ScenarioSession {
    session = new ScenarioSession({
      brokers: ['x:1'],
      redisUrl: 'redis://x',
      log: createLogger('t', 'silent'),
    });
    session.bystanders.push(
      { name: 'service', cgroup: { path: '/svc' } as ScenarioCgroup },
      { name: 'cron', cgroup: { path: '/cron' } as ScenarioCgroup },
    );
    for (const [t, workload, probe] of rows) {
      const k = at(t);
      session.windows.set(k, [
        ...(session.windows.get(k) ?? []),
        { window_start: k, workload, probe },
      ]);
    }
    return session;
  }

  const steady = (t0: number): Array<[number, string, string]> =>
    [0, 1, 2].flatMap((i) => [
      [t0 + i * W, '/svc', 'tcp'] as [number, string, string],
      [t0 + i * W, '/cron', 'process'] as [number, string, string],
    ]);

  it('finds a bystander that lost a source it had in every steady window', () => {
    const t0 = 1_000_000_000_000;
    const ttl = [3, 4, 5].flatMap((i) => [
      [t0 + i * W, '/cron', 'process'] as [number, string, string],
    ]);
    const s = withRows([...steady(t0), ...ttl]);
    const checks = s.checkBystanders(t0 + 3 * W, t0 + 3 * W, t0 + 6 * W);
    const svc = checks.find((c) => c.name === 'service')!;
    expect(svc.sources).toEqual(['tcp']);
    expect(svc.windows).toBe(3);
    expect(svc.missing.map((m) => m.source)).toEqual(['tcp', 'tcp', 'tcp']);
    expect(checks.find((c) => c.name === 'cron')!.missing).toEqual([]);
  });

  it('does not hold a bystander to a source it had only now and then', () => {
    const t0 = 1_000_000_000_000;
    const rows = steady(t0).filter(([t, w]) => !(w === '/svc' && t === t0 + W));
    const s = withRows([...rows, [t0 + 3 * W, '/cron', 'process']]);
    const svc = s
      .checkBystanders(t0 + 3 * W, t0 + 3 * W, t0 + 4 * W)
      .find((c) => c.name === 'service')!;
    expect(svc.sources).toEqual([]);
    expect(svc.missing).toEqual([]);
  });
});

describe('markdown report', () => {
  it('says no, and who lost what, when a bystander was blinded', () => {
    const rep = {
      window_seconds: 2,
      ttl_seconds: 10,
      adaptive: {
        node: 'n',
        mode: 'adaptive',
        started_at: at(0),
        seconds: 10,
        bytes_sent: 100,
        bytes_per_second: 10,
        samples: [],
        spans: [],
        actions: [],
      },
      full: {
        node: 'm',
        mode: 'full',
        started_at: at(0),
        seconds: 10,
        bytes_sent: 1000,
        bytes_per_second: 100,
        samples: [],
        spans: [],
        actions: [],
      },
      bytes_ratio: 0.1,
      incidents: [
        {
          incident: 'packet-loss',
          title: 'packet loss',
          victim: '/v',
          victim_cgroup_id: '1',
          injected_at: at(0),
          cleared_at: at(1),
          detected: true,
          anomalies_elsewhere: [],
          anomaly: {
            id: 'a',
            metric: 'tcp_retransmits',
            probe: 'tcp',
            severity: 'warning',
            window_start: at(0),
            detected_at: at(1),
            observed: 9,
            baseline: 0,
          },
          windows_to_detection: 1,
          apply_ms: 100,
          revert_late_ms: 50,
          notes: [],
          changes: [
            {
              request_id: 'r',
              probe: 'tcp',
              action: 'tighten',
              rule_reason: '',
              params: { focus: { '1': {} } },
              applied_at: at(1),
            },
          ],
          bystanders: [
            {
              workload: '/svc',
              name: 'service',
              sources: ['tcp'],
              windows: 5,
              missing: [{ window_start: at(2), source: 'tcp' }],
            },
          ],
          bystanders_kept: false,
        },
      ],
    } as unknown as ScenarioReport;
    const md = markdownReport(rep, 'cmd');
    expect(md).toContain('**no**: service lost tcp in 1/5 windows');
    expect(md).toContain('10.0x fewer');
  });
});
