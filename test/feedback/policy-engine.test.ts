import { describe, expect, it } from 'vitest';
import { decide, decideAll, type PolicyContext } from '../../src/feedback/policy-engine.js';
import { parseThresholds, type Thresholds } from '../../src/feedback/thresholds.js';
import { report, request } from './helpers.js';
import type { NodeReport } from '../../src/feedback/node-report.js';

const T = parseThresholds(`
version: 1
budget: { events_per_second: 1000 }
probes:
  tcp: { min_sample_n: 1, max_sample_n: 64 }
  syscalls: { min_sample_n: 2, max_sample_n: 100, cooldown_seconds: 10 }
floors: [process]
cooldown_seconds: 60
default_ttl_seconds: 300
max_ttl_seconds: 600
loosen_factor: 4
approval: { actions: [disable], origins: [agent] }
`);

function ctx(
  over: Partial<PolicyContext> & { reports?: NodeReport[]; t?: Thresholds } = {},
): PolicyContext {
  const reports = over.reports ?? [
    report('node-a', [
      { probe: 'process', eps: 10 },
      { probe: 'tcp', eps: 100, settings: { sample_n: 4 } },
      { probe: 'syscalls', eps: 0, settings: { enabled: false } },
    ]),
  ];
  return {
    thresholds: over.t ?? T,
    knownNodes: over.knownNodes ?? ['node-a', 'node-b'],
    report: over.report ?? ((n) => reports.find((r) => r.node === n)),
    lastChange: over.lastChange ?? (() => undefined),
    now: over.now ?? Date.now(),
    approved: over.approved ?? false,
  };
}

describe('policy engine', () => {
  it('accepts a focused tighten: the focus only, at min_sample_n, baseline untouched, default TTL', () => {
    const d = decide(request({ params: { focus: { '/w': { slow_ms: 5 } } } }), 'node-a', ctx());
    expect(d.outcome).toBe('accept');
    // No enabled, no baseline sample_n, no filter: the other workloads keep the baseline.
    expect(d.patch).toEqual({ focus: { '/w': { slow_ms: 5, sample_n: 1 } } });
    expect(d.ttl_seconds).toBe(300);
    expect(d.reason).toMatch(/tighten tcp on node-a for 300 s/);
    // syscalls' min_sample_n is 2; a focus's own sample_n is clamped into the bounds.
    expect(
      decide(request({ probe: 'syscalls', params: { focus: { '42': {} } } }), 'node-a', ctx())
        .patch,
    ).toEqual({ focus: { '42': { sample_n: 2 } } });
    const c = decide(
      request({ probe: 'syscalls', params: { focus: { '42': { sample_n: 1 } } } }),
      'node-a',
      ctx(),
    );
    expect(c.outcome).toBe('clamp');
    expect(c.patch).toEqual({ focus: { '42': { sample_n: 2 } } });
    // A focused enable adds the focus only.
    expect(
      decide(request({ action: 'enable', params: { focus: { '42': {} } } }), 'node-a', ctx()).patch,
    ).toEqual({ focus: { '42': {} } });
    // The request itself is not changed by the decision.
    const r = request({ params: { focus: { '/w': {} } } });
    decide(r, 'node-a', ctx());
    expect(r.params).toEqual({ focus: { '/w': {} } });
  });

  it('an unfocused tighten still raises the baseline node-wide', () => {
    const d = decide(request({ params: {} }), 'node-a', ctx());
    expect(d.patch).toEqual({ enabled: true, sample_n: 1 });
  });

  it('tighten uses the probe min bound', () => {
    const d = decide(request({ probe: 'syscalls', params: { slow_ms: 10 } }), 'node-a', ctx());
    expect(d.patch).toMatchObject({ enabled: true, sample_n: 2, slow_ms: 10 });
  });

  it('rejects unknown nodes and probes not loaded on the node, naming what exists', () => {
    const d = decide(request({ target: { nodes: ['ghost'] } }), 'ghost', ctx());
    expect(d).toMatchObject({ outcome: 'reject' });
    expect(d.reason).toMatch(/unknown node "ghost"; known nodes: node-a, node-b/);
    const f = decide(request({ probe: 'file' }), 'node-a', ctx());
    expect(f.outcome).toBe('reject');
    expect(f.reason).toMatch(
      /probe file is not loaded on node node-a; loaded: process, tcp, syscalls/,
    );
  });

  it('never disables a floor, even for an operator', () => {
    const d = decide(
      request({ probe: 'process', action: 'disable', origin: 'operator' }),
      'node-a',
      ctx(),
    );
    expect(d.outcome).toBe('reject');
    expect(d.reason).toMatch(/floor/);
  });

  it('never narrows a floor: filters dropped, outcome clamp', () => {
    const d = decide(
      request({
        probe: 'process',
        action: 'set',
        params: { sample_n: 2, filters: { pid: { deny: [1] } } },
      }),
      'node-a',
      ctx(),
    );
    expect(d.outcome).toBe('clamp');
    expect(d.patch).toEqual({ sample_n: 2 });
    expect(d.reason).toMatch(/floor: filters dropped/);
  });

  it('clamps sample_n into the bounds and TTL to the maximum', () => {
    const d = decide(
      request({ action: 'set', params: { sample_n: 5000 }, ttl_seconds: 10_000 }),
      'node-a',
      ctx(),
    );
    expect(d.outcome).toBe('clamp');
    expect(d.patch?.sample_n).toBe(64);
    expect(d.ttl_seconds).toBe(600);
    expect(d.reason).toMatch(/sample_n 5000 clamped to 64 \(bounds 1..64\)/);
    expect(d.reason).toMatch(/ttl 10000 s clamped to max_ttl_seconds 600/);
  });

  it('ttl 0 (never revert) is for operators only', () => {
    expect(
      decide(request({ ttl_seconds: 0, origin: 'operator' }), 'node-a', ctx()).ttl_seconds,
    ).toBe(0);
    const d = decide(request({ ttl_seconds: 0 }), 'node-a', ctx());
    expect(d.outcome).toBe('clamp');
    expect(d.ttl_seconds).toBe(300);
  });

  it('loosen multiplies the current sample_n up to the max bound, and refuses past it', () => {
    const d = decide(request({ action: 'loosen' }), 'node-a', ctx());
    expect(d.outcome).toBe('accept');
    expect(d.patch).toEqual({ sample_n: 16 });
    const atMax = ctx({
      reports: [report('node-a', [{ probe: 'tcp', eps: 100, settings: { sample_n: 64 } }])],
    });
    const r = decide(request({ action: 'loosen' }), 'node-a', atMax);
    expect(r.outcome).toBe('reject');
    expect(r.reason).toMatch(/at max_sample_n 64/);
    const big = decide(request({ action: 'loosen', params: { sample_n: 1000 } }), 'node-a', ctx());
    expect(big).toMatchObject({ outcome: 'clamp', patch: { sample_n: 64 } });
    const off = decide(request({ action: 'loosen', probe: 'syscalls' }), 'node-a', ctx());
    expect(off.reason).toMatch(/disabled: nothing to loosen/);
  });

  it('loosen needs a state report', () => {
    const d = decide(request({ action: 'loosen' }), 'node-b', ctx());
    expect(d.outcome).toBe('reject');
    expect(d.reason).toMatch(/no state report/);
  });

  it('queues for approval by action and by origin; operators and approved requests pass', () => {
    expect(decide(request({ action: 'disable' }), 'node-a', ctx()).outcome).toBe(
      'queue_for_approval',
    );
    expect(decide(request({ origin: 'agent' }), 'node-a', ctx()).outcome).toBe(
      'queue_for_approval',
    );
    expect(decide(request({ origin: 'agent' }), 'node-a', ctx({ approved: true })).outcome).toBe(
      'accept',
    );
    expect(
      decide(request({ action: 'disable', origin: 'operator' }), 'node-a', ctx()),
    ).toMatchObject({ outcome: 'accept', patch: { enabled: false } });
  });

  it('applies cooldowns per probe and workload to rules, not to operators', () => {
    const now = 1_000_000;
    const c = ctx({
      now,
      lastChange: (_n, p, w) => (p === 'tcp' && w === '/w' ? now - 30_000 : undefined),
    });
    const d = decide(request({ workload: '/w' }), 'node-a', c);
    expect(d.outcome).toBe('reject');
    expect(d.reason).toMatch(/cooldown: tcp on node-a for \/w changed 30 s ago, cooldown 60 s/);
    expect(decide(request({ workload: '/other' }), 'node-a', c).outcome).toBe('accept');
    expect(decide(request({ workload: '/w', origin: 'operator' }), 'node-a', c).outcome).toBe(
      'accept',
    );
    // per-probe cooldown override: syscalls 10 s
    const s = ctx({ now, lastChange: () => now - 15_000 });
    expect(decide(request({ probe: 'syscalls' }), 'node-a', s).outcome).toBe('accept');
  });

  it('over budget: refuses unfocused increases, allows focused ones and decreases', () => {
    const hot = ctx({
      reports: [
        report('node-a', [
          { probe: 'process', eps: 100 },
          { probe: 'tcp', eps: 5000, settings: { sample_n: 4 } },
          { probe: 'syscalls', eps: 0, settings: { enabled: false } },
        ]),
      ],
    });
    const d = decide(request({ probe: 'syscalls', action: 'enable' }), 'node-a', hot);
    expect(d.outcome).toBe('reject');
    expect(d.reason).toMatch(/over its budget \(5100 events\/s of 1000/);
    expect(
      decide(request({ params: { filters: { cgroup: { allow: [42] } } } }), 'node-a', hot).outcome,
    ).toBe('accept');
    expect(decide(request({ params: { focus: { '42': {} } } }), 'node-a', hot).outcome).toBe(
      'accept',
    );
    expect(decide(request({ action: 'loosen' }), 'node-a', hot).outcome).toBe('accept');
  });

  it('set with nothing to set is rejected; {all:true} expands to the known nodes', () => {
    expect(decide(request({ action: 'set' }), 'node-a', ctx()).reason).toMatch(/nothing to change/);
    const ds = decideAll(request({ target: { all: true } }), ctx());
    expect(ds.map((d) => [d.node, d.outcome])).toEqual([
      ['node-a', 'accept'],
      ['node-b', 'accept'],
    ]);
    expect(decideAll(request({ target: { all: true } }), ctx({ knownNodes: [] }))[0]?.outcome).toBe(
      'reject',
    );
  });
});
