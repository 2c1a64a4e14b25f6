/**
 * A future-dated record on the raw topic: a frame under a real node's name
 * with one exec dated an hour ahead (inside the old one-day skew) is counted
 * and dead-lettered, and does not move that node's watermark: the node's
 * real events keep closing their windows whole. A committed closed-up-to
 * time in the future is clamped when the partition is taken over.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { Topics } from '../../src/common/kafka.js';
import { NodeAgent, encodeFrame, layout } from '../../src/ingest/index.js';
import { FeatureStage } from '../../src/features/index.js';
import { testAgent, testStage } from '../helpers/pipeline.js';
import { BROKERS, subscribe, testKafka } from '../helpers/kafka.js';
import { makeCgroup, type TestCgroup } from '../helpers/cgroup.js';

const { fieldOffset, EXEC_LAYOUT, HEADER_LAYOUT } = layout;

/** A frame of `node` with one exec of `cgroup`, dated `aheadMs` past the wall clock. */
function futureFrame(node: string, cgroup: bigint, aheadMs: number): Buffer {
  const nowMs = Date.now();
  const rec = Buffer.alloc(EXEC_LAYOUT.size);
  rec.writeUInt8(layout.Op.EXEC, fieldOffset(HEADER_LAYOUT, 'op'));
  rec.writeUInt32LE(rec.length, fieldOffset(HEADER_LAYOUT, 'size'));
  // ktime counts from boot: boot "now", ktime = the skew ahead.
  rec.writeBigUInt64LE(BigInt(aheadMs) * 1_000_000n, fieldOffset(HEADER_LAYOUT, 'ktime_ns'));
  rec.writeBigUInt64LE(cgroup, fieldOffset(EXEC_LAYOUT, 'cgroup_id'));
  return encodeFrame({
    node,
    bootTimeNs: BigInt(nowMs) * 1_000_000n,
    sequence: 0n,
    chunks: [rec],
    eventCount: 1,
  });
}

describe('future-dated records', () => {
  const node = `future-node-${randomBytes(3).toString('hex')}`;
  const tag = randomUUID();
  const log = createLogger('test', 'silent');
  // Bad records arrive where a node writes: the node's role.
  const kafka = testKafka('node', 'tf-test-future');
  let stage: FeatureStage;
  let agent: NodeAgent;
  let cg: TestCgroup;
  const dlq: Array<{ reason: string; error: string }> = [];
  const windows: Array<Record<string, string | number | null>> = [];
  let stopDlq: () => Promise<void>;

  beforeAll(async () => {
    stopDlq = await subscribe(Topics.eventsDlq, (message) => {
      const h = message.headers ?? {};
      if (String(h.test_tag) !== tag) return;
      dlq.push({ reason: String(h.tracefeed_dlq_reason), error: String(h.tracefeed_dlq_error) });
    });
    stage = testStage('future', log);
    stage.onWindow(({ rows }) => windows.push(...rows.filter((r) => r.node === node)));
    await stage.start();
    agent = testAgent(node, ['process'], log);
    cg = makeCgroup('tf-future');
  }, 60_000);

  afterAll(async () => {
    await agent?.stop(2000);
    await stage?.stop();
    await stopDlq?.();
    cg?.remove();
  });

  it('counts and dead-letters it, and later windows close with their full data', async () => {
    await cg.run('for i in 1 2 3; do /bin/true; done');
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic: Topics.events,
      messages: [
        { key: node, value: futureFrame(node, cg.id, 3_600_000), headers: { test_tag: tag } },
      ],
    });
    await producer.disconnect();
    // Real events spread over several one-second windows, in many frames each: with the
    // watermark an hour ahead, each window would close at its first frame and lose the rest.
    for (let i = 0; i < 12; i++) {
      await cg.run('/bin/true; /bin/true');
      await new Promise((r) => setTimeout(r, 250));
    }
    const expected = 3 + 24;
    const execs = () =>
      windows
        .filter((r) => r.workload === cg.path && r.probe === 'process')
        .reduce((a, r) => a + Number(r.exec_count), 0);
    const deadline = Date.now() + 30_000;
    while ((dlq.length < 1 || execs() < expected) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));

    const s = stage.stats();
    expect(s.futureDated).toBe(1);
    expect(s.deadLettered.future_dated).toBe(1);
    expect(dlq).toEqual([
      {
        reason: 'future_dated',
        error: expect.stringMatching(/^1 record\(s\) later than the wall clock plus 5 s/),
      },
    ]);
    expect(s.late).toBe(0);
    expect(execs()).toBe(expected);
    // No window of the node in the future was written.
    const ends = windows.map((r) => Date.parse(String(r.window_end)));
    expect(Math.max(...ends)).toBeLessThan(Date.now() + 5_000);
  }, 90_000);

  it('clamps a committed closed-up-to time in the future at take-over, and counts it', async () => {
    // The stage keeps each node's closed-up-to time as its partition offset's metadata.
    const topic = `tracefeed.test.future-state-${tag}`;
    const group = `tracefeed-features-test-future-2-${tag}`;
    const admin = testKafka('admin', 'tf-test-future-admin').admin();
    await admin.connect();
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: 1, replicationFactor: 1 }],
    });
    await admin.disconnect();
    // The committed offset is written as the feature stage writes it: its role, in a transaction.
    const producer = testKafka('features', 'tf-test-future-txn').producer({
      transactionalId: `tracefeed-features-test-${tag}`,
      idempotent: true,
      maxInFlightRequests: 1,
    });
    await producer.connect();
    const txn = await producer.transaction();
    const metadata = JSON.stringify({ v: 1, closed_up_to_ms: { [node]: Date.now() + 86_000_000 } });
    await txn.sendOffsets({
      consumerGroupId: group,
      topics: [{ topic, partitions: [{ partition: 0, offset: '0', metadata } as never] }],
    });
    await txn.commit();
    await producer.disconnect();
    const restarted = new FeatureStage(
      {
        brokers: BROKERS,
        group_id: group,
        topics: { events: topic },
        data_dir: mkdtempSync(join(tmpdir(), 'tf-future-state-')),
        http_port: 0,
      },
      log,
    );
    await restarted.start();
    try {
      const deadline = Date.now() + 30_000;
      while (restarted.stats().partitionsAssigned < 1 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 200));
      expect(restarted.stats().stateClamped).toBe(1);
    } finally {
      await restarted.stop();
    }
  });
});
