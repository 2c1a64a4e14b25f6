/**
 * Feedback latency: from an anomaly record published to tracefeed.anomalies.v1
 * to the change visible in the kernel (the tcp probe's tf_config generation
 * advancing with sample_n 1 and the cgroup allow bit set). Runs the real
 * path in one process: Kafka -> FeedbackController (rules, policy engine,
 * audit) -> BullMQ on Redis -> NodeFeedbackWorker -> NodeAgent.setProbe -> BPF map.
 * Prints p50, p95, max over N iterations. Needs root, Kafka, Redis, built probes.
 *
 * Run: bash bench/feedback-latency.sh [iterations]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logLevel } from 'kafkajs';
import { brokersFrom, ensureTopics, kafkaClient, Topics } from '../src/common/kafka.js';
import { createLogger } from '../src/common/logger.js';
import { AuditTrail, readAudit } from '../src/feedback/audit.js';
import { FeedbackController } from '../src/feedback/controller.js';
import { NodeFeedbackWorker } from '../src/feedback/node-worker.js';
import { redisUrlFrom } from '../src/feedback/redis.js';
import { FilterBit } from '../src/wire/layout.js';
import { DEFAULT_AGENT_OPTIONS, NodeAgent } from '../src/ingest/node-agent.js';
import type { Anomaly } from '../src/features/anomaly.js';

const iterations = Number(process.argv[2] ?? 50);
const log = createLogger('bench', process.env.TRACEFEED_LOG_LEVEL ?? 'warn');
const brokers = brokersFrom(undefined);
const redisUrl = redisUrlFrom(undefined);
const node = `bench-${randomBytes(3).toString('hex')}`;

function quantile(sorted: number[], q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

async function main(): Promise<void> {
  await ensureTopics(brokers, log);
  const dir = mkdtempSync(join(tmpdir(), 'tf-bench-'));
  const thresholdsPath = join(dir, 'thresholds.yaml');
  writeFileSync(
    thresholdsPath,
    'version: 1\ncooldown_seconds: 0\nrules:\n  - { name: retx, metric: tcp_retransmits, action: tighten, probe: tcp, focus: workload, ttl_seconds: 3600 }\n',
  );
  const agent = new NodeAgent({
    ...DEFAULT_AGENT_OPTIONS,
    nodeName: node,
    brokers,
    families: ['process', 'tcp'],
    log,
  });
  agent.start();
  const audit = new AuditTrail({ path: join(dir, 'feedback.jsonl'), brokers, log });
  const worker = await new NodeFeedbackWorker(agent, {
    node,
    redisUrl,
    audit,
    log,
    rateSettleMs: 2000,
  }).start();
  const controller = await new FeedbackController({
    brokers,
    redisUrl,
    thresholdsPath,
    audit,
    log,
    groupId: `tracefeed-feedback-bench-${node}`,
    budgetIntervalMs: 0,
  }).start();
  await controller.ready;
  // Anomalies are written by the feature stage: its role.
  const producer = kafkaClient({
    role: 'features',
    clientId: 'tracefeed-bench',
    brokers,
    logLevel: logLevel.NOTHING,
  }).producer();
  await producer.connect();
  const cgroupId = agent.cgroups.idOf('/') ?? 1n;
  const config = (): { generation: number; sample_n: number; mask: number } => {
    const b = agent.object('tcp').mapLookup('tf_config', Buffer.alloc(4))!;
    return { generation: b.readUInt32LE(4), sample_n: b.readUInt32LE(8), mask: b.readUInt32LE(12) };
  };

  const latencies: number[] = [];
  const sent: number[] = [];
  try {
    for (let i = 0; i < iterations; i++) {
      // Loosen first (outside the timing) so each tighten is a visible change.
      agent.setProbe('tcp', { sample_n: 16, clear_filters: true });
      const g0 = config().generation;
      const windowStart = new Date(Date.UTC(2030, 0, 1, 0, 0, i * 10)).toISOString();
      const series = `${node}|/|tcp|tcp_retransmits`;
      const anomaly: Anomaly = {
        schema_version: 1,
        id: `${series}@${windowStart}`,
        series_id: series,
        node,
        workload: '/',
        cgroup_id: String(cgroupId),
        container_id: null,
        probe: 'tcp',
        metric: 'tcp_retransmits',
        window_start: windowStart,
        window_end: windowStart,
        observed: 50,
        baseline: 1,
        spread: 1,
        score: 49,
        threshold: 4,
        direction: 'high',
        severity: 'warning',
        basis: 'baseline',
        partial: false,
        evidence: [],
        detected_at: new Date().toISOString(),
      };
      const t0 = process.hrtime.bigint();
      await producer.send({
        topic: Topics.anomalies,
        messages: [{ key: series, value: JSON.stringify(anomaly) }],
      });
      sent.push(Math.round(Number(process.hrtime.bigint() - t0) / 1e6));
      const deadline = Date.now() + 10_000;
      for (;;) {
        const c = config();
        if (c.generation > g0 && c.sample_n === 1 && (c.mask & FilterBit.ALLOW_CGROUP) !== 0) break;
        if (Date.now() > deadline)
          throw new Error(`iteration ${i}: change not seen in the kernel within 10 s`);
        await new Promise((r) => setImmediate(r));
      }
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await producer.disconnect();
    await controller.stop();
    await controller.service?.store.unregisterNode(node).catch(() => undefined);
    await worker.stop();
    await audit.close();
    await agent.stop(2000);
  }
  if (process.env.BENCH_DEBUG) {
    const recs = readAudit(join(dir, 'feedback.jsonl'));
    const by = new Map<string, Record<string, number>>();
    for (const r of recs) {
      const m = by.get(r.request_id) ?? {};
      m[r.state] ??= Date.parse(r.at);
      by.set(r.request_id, m);
    }
    for (const m of by.values())
      process.stderr.write(`submitted->delivered ${(m.delivered ?? 0) - (m.submitted ?? 0)} ms\n`);
    process.stderr.write(`sent at: ${sent.join(',')}\n`);
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  const mean = latencies.reduce((s, x) => s + x, 0) / latencies.length;
  const fmt = (x: number): string => `${x.toFixed(1)} ms`;
  process.stdout.write(
    `feedback latency, anomaly published -> tf_config in the kernel (${latencies.length} iterations)\n` +
      `  p50 ${fmt(quantile(sorted, 0.5))}  p95 ${fmt(quantile(sorted, 0.95))}  max ${fmt(sorted[sorted.length - 1]!)}  mean ${fmt(mean)}  min ${fmt(sorted[0]!)}\n` +
      `  target p95 < 1000 ms: ${quantile(sorted, 0.95) < 1000 ? 'met' : 'MISSED'}\n`,
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
