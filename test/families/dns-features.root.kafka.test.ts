/**
 * The dns family through the feature stage: a storm workload asks dnsmasq
 * for names that do not exist, a bystander asks for one that does. Feature
 * rows of source dns carry dns_queries, dns_failures, dns_nxdomain and
 * dns_p99_ns; the anomaly detector flags the storm's dns_failures and the
 * shipped dns-failures rule turns it into a tighten of the storm's dns; the
 * bystander gets no anomaly and no request.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import type { NodeAgent } from '../../src/ingest/index.js';
import { type Anomaly, type FeatureStage } from '../../src/features/index.js';
import { loadThresholds } from '../../src/feedback/thresholds.js';
import { requestsFromAnomaly } from '../../src/feedback/rules.js';
import { collectNodeOutputs, testAgent, testStage, type NodeOutputs } from '../helpers/pipeline.js';
import { makeCgroup, type TestCgroup } from '../helpers/cgroup.js';
import { startDnsServers, type DnsServers } from './dns-servers.js';

type Row = Record<string, unknown>;
const repoRoot = join(import.meta.dirname, '../..');

describe('dns features and the failure-storm rule', () => {
  const node = `dnsf-node-${randomBytes(3).toString('hex')}`;
  const tag = randomBytes(3).toString('hex');
  const log = createLogger('test', 'silent');
  let dns: DnsServers;
  let stage: FeatureStage;
  let agent: NodeAgent;
  let storm: TestCgroup;
  let bystander: TestCgroup;
  let slow: TestCgroup;
  let out: NodeOutputs;
  const rows = (): Row[] => out.rows;
  const anomalies = (): Anomaly[] => out.anomalies;

  beforeAll(async () => {
    dns = await startDnsServers(300);
    out = await collectNodeOutputs(node);
    stage = testStage('dns', log, { allowed_lateness_seconds: 0 });
    await stage.start();
    // The per-packet programs are off by default (the lookup counter runs alone): on here.
    agent = testAgent(node, ['dns'], log, { dns: { enabled: true } });
    storm = makeCgroup('tf-dns-storm');
    bystander = makeCgroup('tf-dns-bystander');
    slow = makeCgroup('tf-dns-slow');
  }, 60_000);

  afterAll(async () => {
    await agent?.stop(2000);
    await stage?.stop();
    await out?.stop();
    await dns?.stop();
    storm?.remove();
    bystander?.remove();
    slow?.remove();
  });

  it('rows of source dns count queries, failures and the p99; the storm fires, the bystander does not', async () => {
    // One dig process, 120 missing names in a row (dig -f: one query per line).
    const dir = mkdtempSync(join(tmpdir(), 'tf-dns-'));
    const names = join(dir, 'names.txt');
    writeFileSync(
      names,
      Array.from({ length: 120 }, (_, i) => `nx-${i}-${tag}.tf.test`).join('\n') + '\n',
    );
    const digOpts = `@${dns.address} +tries=1 +time=2`;
    const [s, b, sl] = await Promise.all([
      storm.run(`dig ${digOpts} -f ${names} > /dev/null`),
      bystander.run(`for i in 1 2 3 4 5; do dig ${digOpts} ok.tf.test > /dev/null; done`),
      // Answered after 300 ms by the slow upstream, in one window.
      slow.run(`dig ${digOpts} s1-${tag}.slow.tf.test s2-${tag}.slow.tf.test > /dev/null`),
    ]);
    expect(s.code).toBe(0);
    expect(b.code).toBe(0);
    expect(sl.code).toBe(0);

    const sum = (cg: TestCgroup, col: string) =>
      rows()
        .filter((r) => r.workload === cg.path && r.probe === 'dns')
        .reduce((a, r) => a + Number(r[col] ?? 0), 0);
    const deadline = Date.now() + 20_000;
    while (
      (sum(storm, 'dns_queries') < 120 ||
        sum(bystander, 'dns_queries') < 5 ||
        sum(slow, 'dns_queries') < 2) &&
      Date.now() < deadline
    )
      await new Promise((r) => setTimeout(r, 200));

    expect(sum(storm, 'dns_queries')).toBe(120);
    expect(sum(storm, 'dns_failures')).toBe(120);
    expect(sum(storm, 'dns_nxdomain')).toBe(120);
    expect(sum(storm, 'dns_servfail')).toBe(0);
    expect(sum(bystander, 'dns_queries')).toBe(5);
    expect(sum(bystander, 'dns_failures')).toBe(0);
    // 300 ms answers fall in the log2 slot [2^28, 2^29) ns: the p99 says so, the bystander's is far below.
    const p99 = (cg: TestCgroup) =>
      Math.max(
        ...rows()
          .filter((r) => r.workload === cg.path && r.probe === 'dns')
          .map((r) => Number(r.dns_p99_ns ?? 0)),
      );
    expect(sum(slow, 'dns_queries')).toBe(2);
    expect(p99(slow)).toBeGreaterThanOrEqual(2 ** 28);
    expect(p99(slow)).toBeLessThan(2 ** 29);
    expect(p99(bystander)).toBeLessThan(2 ** 26);
    const stormRows = rows().filter((r) => r.workload === storm.path && r.probe === 'dns');
    for (const r of stormRows) {
      expect(r.cgroup_id?.toString()).toBe(storm.id.toString());
      // A local NXDOMAIN on loopback: above zero, below the 2 s timeout.
      expect(Number(r.dns_p99_ns)).toBeGreaterThan(0);
      expect(Number(r.dns_p99_ns)).toBeLessThan(2e9);
      expect(Number(r.dns_p50_ns)).toBeLessThanOrEqual(Number(r.dns_p99_ns));
    }

    const hit = () =>
      anomalies().find((a) => a.workload === storm.path && a.metric === 'dns_failures');
    const until = Date.now() + 15_000;
    while (!hit() && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    const a = hit();
    expect(a, `anomalies: ${JSON.stringify(anomalies().map((x) => x.series_id))}`).toBeDefined();
    expect(a!.probe).toBe('dns');
    expect(a!.direction).toBe('high');
    expect(a!.observed).toBeGreaterThanOrEqual(20);
    expect(a!.cgroup_id).toBe(storm.id.toString());
    expect(anomalies().filter((x) => x.workload === bystander.path)).toEqual([]);

    // The shipped rules: the storm's anomaly asks for its dns at full detail, on its cgroup only.
    const shipped = loadThresholds(join(repoRoot, 'config/thresholds.yaml'));
    const reqs = requestsFromAnomaly(a!, shipped);
    expect(reqs.map((r) => [r.probe, r.action, r.workload])).toEqual([
      ['dns', 'tighten', storm.path],
    ]);
    expect(Object.keys(reqs[0]!.params.focus ?? {})).toEqual([storm.id.toString()]);
  }, 90_000);
});
