/**
 * The closed loop on real parts. A workload in its own cgroup streams TCP
 * through a veth pair; nftables in the server's namespace drops packets; the
 * kernel reports retransmits; the feature stage raises a retransmit anomaly;
 * the rule focuses tcp collection on that workload in the kernel (a tf_focus
 * entry at full rate, map state and event stream) while every other workload
 * keeps the baseline; the loss is removed; the TTL reverts the change; the
 * audit trail holds every step.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { DEFAULT_AGENT_OPTIONS, NodeAgent, layout } from '../../src/ingest/index.js';
import { FeatureStage, type Anomaly } from '../../src/features/index.js';
import {
  AuditTrail,
  FeedbackController,
  NodeFeedbackWorker,
  readAudit,
} from '../../src/feedback/index.js';
import { BROKERS, startCollector } from '../helpers/kafka.js';
import { makeCgroup, type TestCgroup } from '../helpers/cgroup.js';
import { LossyLink } from '../../src/scenario/index.js';
import { redisUrlFrom } from '../../src/feedback/redis.js';

const REDIS = redisUrlFrom(undefined);
const TTL_S = 8;

function tcpConfig(agent: NodeAgent): {
  generation: number;
  sample_n: number;
  mask: number;
  focus_count: number;
} {
  const v = agent.object('tcp').mapLookup('tf_config', Buffer.alloc(4))!;
  const o = (n: string) => layout.fieldOffset(layout.PROBE_CONFIG_LAYOUT, n);
  return {
    generation: v.readUInt32LE(o('generation')),
    sample_n: v.readUInt32LE(o('sample_n')),
    mask: v.readUInt32LE(o('filter_mask')),
    focus_count: v.readUInt32LE(o('focus_count')),
  };
}

/** The sample_n of a cgroup's tf_focus entry, or undefined when it has none. */
function focusSampleN(agent: NodeAgent, cgroupId: bigint): number | undefined {
  const key = Buffer.alloc(8);
  key.writeBigUInt64LE(cgroupId);
  const v = agent.object('tcp').mapLookup('tf_focus', key);
  return v ? v.readUInt32LE(layout.fieldOffset(layout.FOCUS_LAYOUT, 'sample_n')) : undefined;
}

async function until<T>(
  what: string,
  timeoutMs: number,
  f: () => T | undefined | false,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('retransmits tighten tcp collection on the workload, then the TTL reverts it', () => {
  const node = `loop-${randomBytes(3).toString('hex')}`;
  const log = createLogger('test', 'silent');
  const dir = mkdtempSync(join(tmpdir(), 'tf-loop-'));
  const link = new LossyLink();
  const port = 20000 + (randomBytes(2).readUInt16LE(0) % 20000);
  let agent: NodeAgent;
  let stage: FeatureStage;
  let audit: AuditTrail;
  let worker: NodeFeedbackWorker;
  let controller: FeedbackController;
  let cg: TestCgroup;
  let collector: Awaited<ReturnType<typeof startCollector>>;
  const anomalies: Anomaly[] = [];

  beforeAll(async () => {
    link.create();
    await link.startSink(port, 170_000);
    const thresholds = join(dir, 'thresholds.yaml');
    writeFileSync(
      thresholds,
      [
        'version: 1',
        'floors: [process]',
        'cooldown_seconds: 1',
        `default_ttl_seconds: ${TTL_S}`,
        'probes:',
        '  tcp: { min_sample_n: 1, max_sample_n: 100 }',
        'rules:',
        '  - name: tcp-retransmits',
        '    metric: tcp_retransmits',
        '    min_severity: warning',
        '    action: tighten',
        '    probe: tcp',
        '    focus: workload',
        `    ttl_seconds: ${TTL_S}`,
        '',
      ].join('\n'),
    );
    collector = await startCollector();
    stage = new FeatureStage(
      {
        brokers: BROKERS,
        group_id: `tracefeed-features-test-loop-${randomUUID()}`,
        window_seconds: 1,
        allowed_lateness_seconds: 0,
        idle_close_seconds: 1,
        data_dir: join(dir, 'features'),
        http_port: 0,
        anomaly: { warmup_windows: 3 },
      },
      log,
    );
    stage.onWindow((w) => anomalies.push(...w.anomalies));
    await stage.start();
    // Little collection while all is well: tcp keeps 1 in 10 events.
    agent = new NodeAgent({
      ...DEFAULT_AGENT_OPTIONS,
      nodeName: node,
      brokers: BROKERS,
      lingerMs: 50,
      log,
      families: ['process', 'tcp'],
      probes: { tcp: { sample_n: 10 } },
    });
    agent.start();
    audit = new AuditTrail({ brokers: BROKERS, log, path: join(dir, 'audit.jsonl') });
    worker = await new NodeFeedbackWorker(agent, { node, redisUrl: REDIS, audit, log }).start();
    controller = await new FeedbackController({
      brokers: BROKERS,
      redisUrl: REDIS,
      thresholdsPath: thresholds,
      audit,
      log,
      groupId: `tracefeed-feedback-test-loop-${randomUUID()}`,
    }).start();
    await controller.ready;
    cg = makeCgroup('tf-loop');
  }, 90_000);

  afterAll(async () => {
    await controller?.stop();
    await worker?.stop();
    await audit?.close();
    await agent?.stop(2000);
    await stage?.stop();
    await collector?.stop();
    link.destroy();
    cg?.remove();
  });

  it('closes the loop', async () => {
    const before = tcpConfig(agent);
    expect(before.sample_n).toBe(10);
    expect(before.mask).toBe(0);

    // The workload: a client in the client namespace and in its own cgroup, for 40 s: one
    // connection streaming data, and a short connection every 50 ms (so every window has
    // tcp rows for the workload, with no retransmits while the link is healthy).
    const clientJs = [
      `const net=require('net');const dst=[${port},'${link.serverIp}'];`,
      `const s=net.connect(...dst);s.on('error',()=>{});const b=Buffer.alloc(16384,7);const t=setInterval(()=>s.write(b),20);`,
      `const u=setInterval(()=>{const c=net.connect(...dst,()=>c.end('x'));c.on('error',()=>{})},50);`,
      `setTimeout(()=>{clearInterval(t);clearInterval(u);s.end()},40000)`,
    ].join('');
    const running = cg.run(
      `exec ip netns exec ${link.clientNs} ${process.execPath} -e "${clientJs}"`,
    );
    // Healthy windows first (warm-up), then 20% loss.
    await new Promise((r) => setTimeout(r, 6000));
    link.setLoss(20);
    const lossAt = Date.now();

    const anomaly = await until('a retransmit anomaly on the workload', 30_000, () =>
      anomalies.find(
        (a) => a.node === node && a.workload === cg.path && a.metric === 'tcp_retransmits',
      ),
    );
    expect(anomaly.probe).toBe('tcp');

    // Tightened in the kernel: a focus on this workload's cgroup at full rate, the baseline
    // (1 in 10 for everyone else) and the filters untouched. (Other workloads may see
    // retransmits too, e.g. the sink's FIN retransmits, and get focuses of their own from
    // their own requests; this test follows the workload's own request.)
    const tight = await until('tcp focused on the workload in the kernel', 15_000, () => {
      const c = tcpConfig(agent);
      return focusSampleN(agent, cg.id) === 1 && c.focus_count >= 1 ? c : undefined;
    });
    expect(tight.sample_n).toBe(10);
    expect(tight.mask).toBe(0);
    expect(tight.generation).toBeGreaterThan(before.generation);
    const tightenedAt = Date.now();
    expect(tightenedAt - lossAt).toBeLessThan(30_000);

    // The event stream follows: retransmits of the workload at weight 1, flagged as focused.
    await collector.waitFor(
      (e) =>
        e.node === node &&
        e.type === 'tcp.retransmit' &&
        e.generation >= tight.generation &&
        e.sample_weight === 1 &&
        e.focused &&
        e.attributes['cgroup.id'] === cg.id.toString(),
      15_000,
    );
    // Nobody is blinded: the sink (another workload) keeps its records at the baseline.
    await collector.waitFor(
      (e) =>
        e.node === node &&
        e.probe === 'tcp' &&
        e.generation >= tight.generation &&
        e.sample_weight === 10 &&
        !e.focused &&
        e.attributes['cgroup.id'] !== cg.id.toString(),
      15_000,
    );
    for (const e of collector.events())
      if (e.node === node && e.attributes['cgroup.id'] === cg.id.toString() && e.focused)
        expect(e.sample_weight).toBe(1);

    // The fault goes away; the TTL brings the old settings back.
    link.setLoss(0);
    const reverted = await until('the TTL revert', (TTL_S + 20) * 1000, () => {
      const c = tcpConfig(agent);
      return focusSampleN(agent, cg.id) === undefined ? c : undefined;
    });
    expect(reverted.sample_n).toBe(10);
    expect(reverted.mask).toBe(0);
    expect(reverted.generation).toBeGreaterThan(tight.generation);

    // Every step is in the audit trail, in order.
    // This workload's request (other workloads may have focuses of their own meanwhile).
    const requestId = await until(
      'the audited request',
      5000,
      () =>
        readAudit(audit.path).find(
          (r) => r.state === 'submitted' && JSON.stringify(r.data).includes(anomaly.id),
        )?.request_id,
    );
    const states = await until('the revert in the audit', 10_000, () => {
      const s = readAudit(audit.path, requestId).map((r) => r.state);
      return s.includes('reverted') ? s : undefined;
    });
    for (const s of ['submitted', 'accepted', 'delivered', 'applied', 'reverted'])
      expect(states).toContain(s);
    expect(states.indexOf('submitted')).toBeLessThan(states.indexOf('applied'));
    expect(states.indexOf('applied')).toBeLessThan(states.indexOf('reverted'));
    const submitted = readAudit(audit.path, requestId).find((r) => r.state === 'submitted');
    expect(JSON.stringify(submitted?.data)).toContain(anomaly.id);
    await running;
  }, 180_000);
});
