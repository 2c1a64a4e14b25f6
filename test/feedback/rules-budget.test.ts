import { describe, expect, it } from 'vitest';
import { PROBE_FAMILIES as FAMILIES } from '../../src/families/registry.js';
import { budgetCheck } from '../../src/feedback/budget.js';
import { revertPatch } from '../../src/feedback/node-worker.js';
import { requestsFromAnomaly } from '../../src/feedback/rules.js';
import { parseFeedbackRequest } from '../../src/feedback/request.js';
import { join } from 'node:path';
import { repoRoot } from '../../src/common/paths.js';
import { loadThresholds, parseThresholds } from '../../src/feedback/thresholds.js';
import { AnomalyDetector } from '../../src/features/anomaly-detector.js';
import type { Anomaly } from '../../src/features/anomaly.js';
import { applyPatch, defaultSettings } from '../../src/wire/probe-settings.js';
import { report } from './helpers.js';

const T = parseThresholds(`
version: 1
budget: { events_per_second: 1000 }
probes: { syscalls: { max_sample_n: 64 } }
rules:
  - { name: retx, metric: tcp_retransmits, action: tighten, probe: tcp, focus: workload, ttl_seconds: 120 }
  - { name: slow, metric: syscall_p99_ns, min_severity: critical, action: enable, probe: syscalls, slow_ms: 10 }
`);

const anomaly = (over: Partial<Anomaly> = {}): Anomaly => ({
  schema_version: 1,
  id: 'n1|/w|tcp|tcp_retransmits@2025-01-01T00:00:00.000Z',
  series_id: 'n1|/w|tcp|tcp_retransmits',
  node: 'n1',
  workload: '/system.slice/w.service',
  cgroup_id: '1234',
  container_id: null,
  probe: 'tcp',
  metric: 'tcp_retransmits',
  window_start: '2025-01-01T00:00:00.000Z',
  window_end: '2025-01-01T00:00:10.000Z',
  observed: 40,
  baseline: 1,
  spread: 1,
  score: 39,
  threshold: 4,
  direction: 'high',
  severity: 'warning',
  basis: 'baseline',
  partial: false,
  evidence: [],
  detected_at: '2025-01-01T00:00:11.000Z',
  ...over,
});

describe('rules', () => {
  it('a retransmit anomaly tightens tcp on that node, focused on the cgroup, for the rule TTL', () => {
    const [r, ...rest] = requestsFromAnomaly(anomaly(), T, 0);
    expect(rest).toEqual([]);
    expect(r).toMatchObject({
      target: { nodes: ['n1'] },
      probe: 'tcp',
      action: 'tighten',
      // A focus on the workload's cgroup, never a filter: other workloads keep the baseline.
      params: { focus: { '1234': {} } },
      ttl_seconds: 120,
      origin: 'rule',
      evidence: { anomaly_id: anomaly().id },
      workload: '/system.slice/w.service',
    });
    expect(r?.params.filters).toBeUndefined();
    expect(r?.params.sample_n).toBeUndefined();
    expect(() => parseFeedbackRequest(r)).not.toThrow();
    // No cgroup id: the workload's path is the key; neither: the whole node.
    expect(requestsFromAnomaly(anomaly({ cgroup_id: '' }), T, 0)[0]?.params).toEqual({
      focus: { '/system.slice/w.service': {} },
    });
    // cgroup 0 (no owner: e.g. the reset a closed port sends) never widens to the whole node.
    expect(requestsFromAnomaly(anomaly({ cgroup_id: '0', workload: 'cgroup:0' }), T, 0)).toEqual(
      [],
    );
    // Same anomaly read twice: same id.
    expect(requestsFromAnomaly(anomaly(), T, 999)[0]?.id).toBe(r?.id);
    expect(
      requestsFromAnomaly(anomaly({ window_start: '2025-01-01T00:00:10.000Z' }), T)[0]?.id,
    ).not.toBe(r?.id);
  });

  it('severity, metric and direction must match', () => {
    const slow = anomaly({ metric: 'syscall_p99_ns', probe: 'syscalls' });
    expect(requestsFromAnomaly(slow, T)).toEqual([]);
    expect(requestsFromAnomaly({ ...slow, severity: 'critical' }, T)[0]).toMatchObject({
      probe: 'syscalls',
      action: 'enable',
      // The rule's settings go into the workload's focus, not the baseline.
      params: { focus: { '1234': { slow_ms: 10 } } },
    });
    expect(requestsFromAnomaly(anomaly({ direction: 'low' }), T)).toEqual([]);
    expect(requestsFromAnomaly(anomaly({ metric: 'exec_count' }), T)).toEqual([]);
  });
});

describe('tiered rules: every incident class', () => {
  const shipped = loadThresholds(join(repoRoot, 'config/thresholds.yaml'));
  const cases: Array<{
    incident: string;
    source: string;
    values: Record<string, number>;
    rule: string;
    probe: string;
    action: string;
  }> = [
    {
      incident: 'packet loss',
      source: 'tcp',
      values: { tcp_retransmits: 60 },
      rule: 'tcp-retransmits',
      probe: 'tcp',
      action: 'tighten',
    },
    {
      incident: 'connection-refused storm',
      source: 'tcp',
      values: { tcp_connect_failures: 300 },
      rule: 'tcp-connect-failures',
      probe: 'tcp',
      action: 'tighten',
    },
    {
      incident: 'crash loop',
      source: 'process',
      values: { failed_exits: 12, exit_count: 12 },
      rule: 'crash-loop',
      probe: 'syscalls',
      action: 'enable',
    },
    {
      incident: 'CPU hog',
      source: 'cgroup',
      values: { cpu_throttled_us: 6_000_000 },
      rule: 'cpu-hog',
      probe: 'sched',
      action: 'enable',
    },
    {
      incident: 'CPU starvation',
      source: 'cgroup',
      values: { cpu_pressure_some_us: 7_000_000 },
      rule: 'cpu-hog',
      probe: 'sched',
      action: 'enable',
    },
    {
      incident: 'sync-write storm',
      source: 'cgroup',
      values: { io_pressure_some_us: 4_000_000 },
      rule: 'sync-write-storm',
      probe: 'syscalls',
      action: 'enable',
    },
    {
      incident: 'memory pressure',
      source: 'cgroup',
      values: { memory_pressure_some_us: 3_000_000 },
      rule: 'memory-pressure',
      probe: 'syscalls',
      action: 'enable',
    },
    {
      incident: 'OOM kills',
      source: 'cgroup',
      values: { memory_oom_kills: 2 },
      rule: 'memory-pressure',
      probe: 'syscalls',
      action: 'enable',
    },
  ];

  for (const c of cases)
    it(`${c.incident}: a new workload's first ${c.source} window fires and rule ${c.rule} raises ${c.probe} on it`, () => {
      const d = new AnomalyDetector();
      const found = d.observe([
        {
          window_start: '2026-01-01T00:00:00.000Z',
          window_end: '2026-01-01T00:00:10.000Z',
          node: 'n1',
          workload: '/victim',
          container_id: null,
          cgroup_id: '4242',
          probe: c.source,
          ...c.values,
        },
      ]);
      expect(found.length).toBeGreaterThan(0);
      const reqs = found.flatMap((a) => requestsFromAnomaly(a, shipped, 0));
      const mine = reqs.filter((r) => r.reason.startsWith(`rule ${c.rule}:`));
      expect(mine.length, JSON.stringify(reqs.map((r) => r.reason))).toBeGreaterThan(0);
      for (const r of mine) {
        expect(r).toMatchObject({
          probe: c.probe,
          action: c.action,
          target: { nodes: ['n1'] },
          workload: '/victim',
        });
        expect(() => parseFeedbackRequest(r)).not.toThrow();
      }
      // Nothing node-wide, whatever matched.
      expect(reqs.every((r) => r.workload === '/victim')).toBe(true);
      // The same signal in a row of another source matches no tier.
      const other = c.source === 'cgroup' ? 'tcp' : 'cgroup';
      expect(
        found.flatMap((a) =>
          requestsFromAnomaly({ ...a, probe: other as Anomaly['probe'] }, shipped),
        ),
      ).toEqual([]);
    });

  it('a reset storm on an unresolved workload (cgroup:0) makes no request, least of all node-wide', () => {
    const a = anomaly({
      metric: 'tcp_resets',
      workload: 'cgroup:0',
      cgroup_id: '0',
      severity: 'critical',
      series_id: 'n1|cgroup:0|tcp|tcp_resets',
    });
    expect(requestsFromAnomaly(a, shipped)).toEqual([]);
    expect(requestsFromAnomaly({ ...a, workload: '/t', cgroup_id: '77' }, shipped)).toHaveLength(1);
  });

  it('steady-state triggers only: every shipped rule fires on a steady-state signal, or on a family such a rule turns on', () => {
    const metrics = new AnomalyDetector().config.metrics;
    // Collected with no rule in force: the families on by default, the cgroup rows, and
    // what a family off by default still collects (dns: its lookup counter).
    const steady = new Set(
      metrics
        .filter(
          (m) =>
            [...FAMILIES.filter((f) => f.defaultEnabled).map((f) => f.name), 'cgroup'].includes(
              m.probe,
            ) || FAMILIES.find((f) => f.name === m.probe)?.steadyStateMetrics?.includes(m.metric),
        )
        .map((m) => m.metric),
    );
    // A rule whose metrics are all reachable makes its family's metrics reachable too.
    const reachable = new Set(steady);
    const metricsOf = (r: (typeof shipped.rules)[number]) =>
      typeof r.metric === 'string' ? [r.metric] : r.metric;
    for (let grew = true; grew;) {
      grew = false;
      for (const r of shipped.rules) {
        if (!metricsOf(r).every((m) => reachable.has(m))) continue;
        for (const m of metrics.filter((x) => x.probe === r.probe))
          if (!reachable.has(m.metric)) {
            reachable.add(m.metric);
            grew = true;
          }
      }
    }
    for (const r of shipped.rules)
      for (const m of metricsOf(r)) expect(reachable.has(m), `${r.name}: ${m}`).toBe(true);
    // Steady state alone starts the dns tier: its lookups, not its failures.
    expect(steady.has('dns_lookups')).toBe(true);
    expect(steady.has('dns_failures')).toBe(false);
  });
});

describe('budget', () => {
  it('under budget: nothing', () => {
    expect(budgetCheck(report('n', [{ probe: 'tcp', eps: 10 }]), T, 0, 0)).toEqual({ over: false });
  });

  it('over budget: loosens the noisiest non-floor probe enough to get under, never the floor', () => {
    const r = report('n', [
      { probe: 'process', eps: 5000 },
      { probe: 'tcp', eps: 300 },
      { probe: 'syscalls', eps: 900 },
    ]);
    const v = budgetCheck(r, T, 0, 7);
    expect(v.over).toBe(true);
    expect(v.request).toMatchObject({
      probe: 'syscalls',
      action: 'loosen',
      target: { nodes: ['n'] },
    });
    // excess 5200 >> 900: as far as the coverage floor allows
    expect(v.request?.params.sample_n).toBe(64);
    expect(budgetCheck(r, T, 0, 7).request?.id).toBe(v.request?.id);
    expect(budgetCheck(r, T, 0, 8).request?.id).not.toBe(v.request?.id);
  });

  it('over budget with only the floor noisy: says so, loosens nothing', () => {
    const v = budgetCheck(
      report('n', [
        { probe: 'process', eps: 5000 },
        { probe: 'syscalls', eps: 900, settings: { sample_n: 64 } },
      ]),
      T,
      0,
      0,
    );
    expect(v.request).toBeUndefined();
    expect(v.reason).toMatch(
      /every loosenable probe is at or past its coverage floor \(budget_max_sample_n\): syscalls at 1\/64 \(floor 1\/64\)/,
    );
    const idle = budgetCheck(report('n', [{ probe: 'process', eps: 5000 }]), T, 0, 0);
    expect(idle.reason).toMatch(/every non-floor probe is off or idle/);
  });

  it('never loosens past the coverage floor, even when max_sample_n allows far more', () => {
    const wide = parseThresholds(`
version: 1
budget: { events_per_second: 1000 }
probes: { tcp: { max_sample_n: 100000, budget_max_sample_n: 50 }, syscalls: { max_sample_n: 100000 } }
`);
    const r = report('n', [
      { probe: 'tcp', eps: 800, settings: { sample_n: 10 } },
      { probe: 'syscalls', eps: 90_000 },
    ]);
    // syscalls is the noisiest: 1/1 -> as sparse as the default floor, 64, not 100000.
    expect(budgetCheck(r, wide, 0, 0).request).toMatchObject({
      probe: 'syscalls',
      params: { sample_n: 64 },
    });
    // Once syscalls sits at its floor the next noisiest gives way, to its own floor.
    const next = report('n', [
      { probe: 'tcp', eps: 800, settings: { sample_n: 10 } },
      { probe: 'syscalls', eps: 90_000, settings: { sample_n: 64 } },
    ]);
    const v = budgetCheck(next, wide, 0, 1);
    expect(v.request).toMatchObject({ probe: 'tcp', params: { sample_n: 50 } });
    expect(v.request?.reason).toMatch(/coverage floor 1\/50/);
    // Both at their floors: still over budget, nothing loosened, and the verdict says why.
    const stuck = budgetCheck(
      report('n', [
        { probe: 'tcp', eps: 800, settings: { sample_n: 50 } },
        { probe: 'syscalls', eps: 90_000, settings: { sample_n: 64 } },
      ]),
      wide,
      0,
      2,
    );
    expect(stuck.over).toBe(true);
    expect(stuck.request).toBeUndefined();
    expect(stuck.reason).toMatch(/tcp at 1\/50 \(floor 1\/50\), syscalls at 1\/64 \(floor 1\/64\)/);
  });
});

describe('revert patch', () => {
  it('takes back only its own focus, key by key', () => {
    const base = applyPatch(defaultSettings(false), { focus: { '7': { sample_n: 4 } } });
    const mine = applyPatch(base, { focus: { '1234': { slow_ms: 5 } } });
    // Someone focused another workload meanwhile.
    const now = applyPatch(mine, { focus: { '99': {} } });
    const { patch, restored } = revertPatch(base, mine, now);
    expect(restored).toEqual(['focus.1234']);
    expect(applyPatch(now, patch).focus).toEqual({
      '7': { sample_n: 4, slow_ms: 0, min_duration_ms: 0 },
      '99': { sample_n: 1, slow_ms: 0, min_duration_ms: 0 },
    });
  });

  const prev = defaultSettings(true);
  const applied = applyPatch(prev, {
    sample_n: 1,
    filters: { cgroup: { allow: ['/w'] } },
    slow_ms: 5,
  });

  it('restores exactly what the request changed', () => {
    const { patch, restored, kept } = revertPatch(prev, applied, applied);
    expect(restored.sort()).toEqual(['filters.cgroup', 'slow_ms']);
    expect(kept).toEqual([]);
    expect(applyPatch(applied, patch)).toEqual(prev);
  });

  it('keeps fields a later change replaced', () => {
    const later = applyPatch(applied, { slow_ms: 50 });
    const { patch, restored, kept } = revertPatch(prev, applied, later);
    expect(restored).toEqual(['filters.cgroup']);
    expect(kept).toEqual(['slow_ms']);
    expect(applyPatch(later, patch).slow_ms).toBe(50);
  });
});
