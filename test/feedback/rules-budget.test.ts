import { describe, expect, it } from 'vitest';
import { budgetCheck } from '../../src/feedback/budget.js';
import { revertPatch } from '../../src/feedback/node-worker.js';
import { requestsFromAnomaly } from '../../src/feedback/rules.js';
import { parseFeedbackRequest } from '../../src/feedback/request.js';
import { parseThresholds } from '../../src/feedback/thresholds.js';
import type { Anomaly } from '../../src/features/anomaly.js';
import { applyPatch, defaultSettings } from '../../src/ingest/probe-settings.js';
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
    // excess 5200 >> 900: as far as the bounds allow
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
    expect(v.reason).toMatch(/every non-floor probe is off, idle or at max_sample_n/);
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
