/**
 * Bad records on the raw topic: each kind goes to the dead-letter topic with
 * its reason in the headers, the counters go up, the partition keeps flowing
 * and the real events around them still make correct features.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { Topics } from '../../src/common/kafka.js';
import { NodeAgent, encodeFrame, layout } from '../../src/ingest/index.js';
import { FeatureStage } from '../../src/features/index.js';
import { testAgent, testStage } from '../helpers/pipeline.js';
import { subscribe, testKafka } from '../helpers/kafka.js';
import { makeCgroup, type TestCgroup } from '../helpers/cgroup.js';

function frameWith(records: Buffer[]): Buffer {
  return encodeFrame({
    node: 'bad-node',
    bootTimeNs: 1n,
    sequence: 0n,
    chunks: records,
    eventCount: records.length,
  });
}
function exitRecord(): Buffer {
  const b = Buffer.alloc(layout.EXIT_LAYOUT.size);
  b.writeUInt8(layout.Op.EXIT, 0);
  b.writeUInt32LE(b.length, 4);
  return b;
}

describe('dead letters', () => {
  const node = `dlq-node-${randomBytes(3).toString('hex')}`;
  const tag = randomUUID();
  const log = createLogger('test', 'silent');
  // Bad records arrive where a node writes: the node's role.
  const kafka = testKafka('node', 'tf-test-dlq');
  let stage: FeatureStage;
  let agent: NodeAgent;
  let cg: TestCgroup;
  const dlq: Array<{ reason: string; error: string; tag: string; value: Buffer | null }> = [];
  const windows: Array<Record<string, string | number | null>> = [];
  let stopDlq: () => Promise<void>;

  beforeAll(async () => {
    stopDlq = await subscribe(Topics.eventsDlq, (message) => {
      const h = message.headers ?? {};
      if (String(h.test_tag) !== tag) return;
      dlq.push({
        reason: String(h.tracefeed_dlq_reason),
        error: String(h.tracefeed_dlq_error),
        tag: String(h.test_tag),
        value: message.value,
      });
    });
    stage = testStage('dlq', log);
    stage.onWindow(({ rows }) => windows.push(...rows.filter((r) => r.node === node)));
    await stage.start();
    agent = testAgent(node, ['process'], log);
    cg = makeCgroup('tf-dlq');
  }, 60_000);

  afterAll(async () => {
    await agent?.stop(2000);
    await stage?.stop();
    await stopDlq?.();
    cg?.remove();
  });

  it('dead-letters every kind of bad record and keeps counting the good ones', async () => {
    const good = frameWith([exitRecord()]);
    const truncated = good.subarray(0, good.length - 8);
    const version = Buffer.from(good);
    version.writeUInt16LE(7, 4);
    const absurd = Buffer.from(good);
    absurd.writeUInt32LE(0xffffffff, 8);
    const unknownOp = Buffer.from(good);
    unknownOp.writeUInt8(250, 48);
    const bad: Array<[string, Buffer | null]> = [
      ['bad-magic', randomBytes(200)],
      ['truncated', truncated],
      ['unsupported-version', version],
      ['count-mismatch', absurd],
      ['unknown-op', unknownOp],
      ['empty', null],
    ];
    const producer = kafka.producer();
    await producer.connect();
    // Real events before, between and after the bad records.
    await cg.run('for i in 1 2 3 4 5; do /bin/true; done');
    for (const [, value] of bad) {
      await producer.send({
        topic: Topics.events,
        messages: [{ key: node, value, headers: { test_tag: tag } }],
      });
      await cg.run('/bin/true');
    }
    await cg.run('for i in 1 2 3 4; do /bin/true; done');
    await producer.disconnect();

    const deadline = Date.now() + 30_000;
    const execs = () =>
      windows
        .filter((r) => r.workload === cg.path && r.probe === 'process')
        .reduce((a, r) => a + Number(r.exec_count), 0);
    while ((dlq.length < bad.length || execs() < 15) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));

    expect(dlq.map((d) => d.reason).sort()).toEqual(bad.map(([r]) => r).sort());
    for (const d of dlq) expect(d.error.length).toBeGreaterThan(10);
    expect(dlq.find((d) => d.reason === 'bad-magic')?.value?.equals(bad[0]![1] as Buffer)).toBe(
      true,
    );
    const counted = stage.stats().deadLettered;
    for (const [reason] of bad) expect(counted[reason]).toBeGreaterThanOrEqual(1);
    expect(execs()).toBe(15);
  }, 60_000);
});
