/**
 * dns in steady state: the per-packet programs are off and only the lookup
 * counter (cgroup/connect and cgroup/sendmsg programs) runs. Real dig
 * processes in their own cgroups ask dnsmasq on loopback; the feature rows
 * carry each workload's exact `dns_lookups` and no per-query records. A
 * lookup storm fires an anomaly, the shipped `dns-lookups` rule asks to
 * enable dns on the storm's cgroup, the policy turns that into a focus, and
 * from then on the storm's queries arrive as dns.response records while the
 * bystander's do not, and the bystander's lookups are still counted: the
 * focus adds detail for one workload and takes nothing from the others.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import type { NodeAgent, TracefeedEvent } from '../../src/ingest/index.js';
import { type Anomaly, type FeatureStage } from '../../src/features/index.js';
import { loadThresholds } from '../../src/feedback/thresholds.js';
import { requestsFromAnomaly } from '../../src/feedback/rules.js';
import { decide } from '../../src/feedback/policy-engine.js';
import { collectNodeOutputs, testAgent, testStage, type NodeOutputs } from '../helpers/pipeline.js';
import { startCollector } from '../helpers/kafka.js';
import { makeCgroup, type TestCgroup } from '../helpers/cgroup.js';
import { startDnsServers, type DnsServers } from './dns-servers.js';

type Row = Record<string, unknown>;
type Collector = Awaited<ReturnType<typeof startCollector>>;
const repoRoot = join(import.meta.dirname, '../..');

async function until<T>(what: string, ms: number, f: () => T | undefined): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('dns lookup counter and the lookup-storm rule', () => {
  const node = `dnsl-node-${randomBytes(3).toString('hex')}`;
  const tag = randomBytes(3).toString('hex');
  const log = createLogger('test', 'silent');
  let dns: DnsServers;
  let stage: FeatureStage;
  let agent: NodeAgent;
  let events: Collector;
  let storm: TestCgroup;
  let bystander: TestCgroup;
  let out: NodeOutputs;
  const rows = (): Row[] => out.rows;
  const anomalies = (): Anomaly[] => out.anomalies;

  const dig = (names: string) => `dig @${dns.address} +tries=1 +time=2 -f ${names} > /dev/null`;
  const namesFile = (prefix: string, n: number): string => {
    const file = join(mkdtempSync(join(tmpdir(), 'tf-dnsl-')), 'names.txt');
    writeFileSync(
      file,
      Array.from({ length: n }, (_, i) => `${prefix}-${i}-${tag}.tf.test`).join('\n') + '\n',
    );
    return file;
  };
  const sum = (cg: TestCgroup, col: string) =>
    rows()
      .filter((r) => r.workload === cg.path && r.probe === 'dns')
      .reduce((a, r) => a + Number(r[col] ?? 0), 0);
  const responses = (cg: TestCgroup) =>
    events
      .events()
      .filter(
        (e: TracefeedEvent) =>
          e.node === node &&
          e.type === 'dns.response' &&
          e.attributes['cgroup.id'] === cg.id.toString(),
      );

  beforeAll(async () => {
    dns = await startDnsServers(300);
    events = await startCollector();
    out = await collectNodeOutputs(node);
    stage = testStage('dns', log, { allowed_lateness_seconds: 0 });
    await stage.start();
    // Default settings: dns off, its lookup counter on.
    agent = testAgent(node, ['dns'], log);
    storm = makeCgroup('tf-dnsl-storm');
    bystander = makeCgroup('tf-dnsl-bystander');
  }, 60_000);

  afterAll(async () => {
    await agent?.stop(2000);
    await stage?.stop();
    await events?.stop();
    await out?.stop();
    await dns?.stop();
    storm?.remove();
    bystander?.remove();
  });

  it('counts every lookup per workload with the per-packet programs off, and a storm turns dns on for the storm only', async () => {
    const state = agent.probes().find((p) => p.probe === 'dns')!;
    expect(state.enabled).toBe(false);
    expect(state.attached).toBe(false); // the per-packet programs are detached

    const STORM = 600;
    const [s, b] = await Promise.all([
      storm.run(dig(namesFile('nx', STORM))),
      bystander.run(dig(namesFile('by', 5))),
    ]);
    expect(s.code).toBe(0);
    expect(b.code).toBe(0);
    // dig connects one UDP socket per query: one lookup each, counted exactly.
    await until('the lookups in feature rows', 30_000, () =>
      sum(storm, 'dns_lookups') >= STORM && sum(bystander, 'dns_lookups') >= 5 ? true : undefined,
    );
    expect(sum(storm, 'dns_lookups')).toBe(STORM);
    expect(sum(bystander, 'dns_lookups')).toBe(5);
    // Off: no per-query records, so no queries in the rows.
    expect(sum(storm, 'dns_queries')).toBe(0);
    expect(responses(storm)).toEqual([]);

    const a = await until('a dns_lookups anomaly on the storm', 20_000, () =>
      anomalies().find((x) => x.workload === storm.path && x.metric === 'dns_lookups'),
    );
    expect(a.probe).toBe('dns');
    expect(a.direction).toBe('high');
    expect(a.cgroup_id).toBe(storm.id.toString());
    expect(anomalies().filter((x) => x.workload === bystander.path)).toEqual([]);

    // The shipped rule: enable dns on the storm's cgroup; the policy makes it a focus.
    const shipped = loadThresholds(join(repoRoot, 'config/thresholds.yaml'));
    const reqs = requestsFromAnomaly(a, shipped);
    expect(reqs.map((r) => [r.probe, r.action, r.workload])).toEqual([
      ['dns', 'enable', storm.path],
    ]);
    const d = decide(reqs[0]!, node, {
      thresholds: shipped,
      knownNodes: [node],
      report: () => undefined,
      lastChange: () => undefined,
      now: Date.now(),
    });
    expect(d.outcome, JSON.stringify(d)).toBe('accept');
    expect(d.patch?.enabled).toBeUndefined(); // the baseline stays off
    expect(Object.keys(d.patch?.focus ?? {})).toEqual([storm.id.toString()]);
    const after = agent.setProbe('dns', d.patch);
    expect(after.enabled).toBe(false);
    expect(after.attached).toBe(true);

    const lookupsBefore = sum(bystander, 'dns_lookups');
    const [s2, b2] = await Promise.all([
      storm.run(dig(namesFile('focus', 3))),
      bystander.run(dig(namesFile('by2', 3))),
    ]);
    expect(s2.code).toBe(0);
    expect(b2.code).toBe(0);
    const focused = await until('the storm’s dns.response records', 20_000, () =>
      responses(storm).length >= 3 ? responses(storm) : undefined,
    );
    expect(focused).toHaveLength(3);
    for (const e of focused) {
      expect(e.attributes['dns.response_code']).toBe('NXDOMAIN');
      expect(String(e.attributes['dns.question.name'])).toMatch(/^focus-\d-/);
    }
    // The bystander: no per-query records, its lookups still counted.
    await until('the bystander’s later lookups', 20_000, () =>
      sum(bystander, 'dns_lookups') >= lookupsBefore + 3 ? true : undefined,
    );
    expect(sum(bystander, 'dns_lookups')).toBe(lookupsBefore + 3);
    expect(responses(bystander)).toEqual([]);

    // The focus removed: the per-packet programs detach, the counter stays.
    const off = agent.setProbe('dns', { focus: { [storm.id.toString()]: null } });
    expect(off.attached).toBe(false);
    const r3 = await storm.run(dig(namesFile('after', 2)));
    expect(r3.code).toBe(0);
    await until('lookups after the focus', 20_000, () =>
      sum(storm, 'dns_lookups') >= STORM + 3 + 2 ? true : undefined,
    );
    expect(sum(storm, 'dns_lookups')).toBe(STORM + 3 + 2);
    expect(responses(storm)).toHaveLength(3);
  }, 120_000);
});
