/**
 * Kafka goes away while the node agent runs: frames are buffered up to the
 * configured bound, then dropped and counted; nothing crashes; publishing
 * resumes when the broker returns, and what was buffered is delivered.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { repoRoot } from '../../src/common/paths.js';
import { DEFAULT_AGENT_OPTIONS, NodeAgent } from '../../src/ingest/index.js';
import { BROKERS, startCollector, testKafka } from '../helpers/kafka.js';
import { churn, uniqueProgram } from '../helpers/workload.js';

function kafka(action: string): void {
  const r = spawnSync('bash', [`${repoRoot}/infra/kafka.sh`, action], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status !== 0)
    throw new Error(`infra/kafka.sh ${action} failed (${r.status}): ${r.stderr}${r.stdout}`);
}

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('broker outage', () => {
  afterAll(() => {
    kafka('start'); // leave the broker up for the suites after this one
  });

  it('buffers up to the bound, counts drops, and recovers', async () => {
    const bufferMaxBytes = 64 * 1024;
    const agent = new NodeAgent({
      ...DEFAULT_AGENT_OPTIONS,
      nodeName: 'outage-node',
      brokers: BROKERS,
      bufferMaxBytes,
      frameMaxBytes: 8 * 1024,
      lingerMs: 50,
      log: createLogger('test', 'silent'),
    });
    agent.start();
    try {
      // Healthy first: events flow.
      await churn(5);
      await until(() => agent.stats().publisher.eventsSent > 0, 15_000, 'first events sent');

      kafka('stop');
      const beforeOutage = agent.stats().publisher;

      // A program run early in the outage fits in the buffer and must arrive later.
      const early = uniqueProgram('tf-outage');
      const { pid: earlyPid } = await early.run(0);
      await until(
        () => !agent.stats().publisher.connected || agent.stats().publisher.sendErrors > 0,
        30_000,
        'send failure noticed',
      );

      // Process churn until the buffer is full and frames are dropped.
      for (let i = 0; i < 40 && agent.stats().publisher.eventsDropped === 0; i++)
        await churn(100, 8);
      const during = agent.stats().publisher;
      expect(during.connected).toBe(false);
      expect(during.eventsDropped).toBeGreaterThan(0);
      expect(during.framesDropped).toBeGreaterThan(0);
      expect(during.bufferedBytes).toBeLessThanOrEqual(bufferMaxBytes);
      expect(during.bufferedEvents).toBeGreaterThan(0);
      expect(during.eventsSent).toBe(beforeOutage.eventsSent);

      // Every event received from the kernel is sent, buffered, dropped or still being framed.
      const s = agent.stats();
      const received = s.probes.reduce((a, p) => a + p.events, 0);
      expect(
        s.publisher.eventsSent + s.publisher.bufferedEvents + s.publisher.eventsDropped,
      ).toBeLessThanOrEqual(received);

      const collector = await (async () => {
        kafka('start');
        return startCollector();
      })();
      try {
        await until(
          () => agent.stats().publisher.connected && agent.stats().publisher.bufferedFrames === 0,
          90_000,
          'buffer drained',
        );
        const after = agent.stats().publisher;
        expect(after.eventsSent).toBeGreaterThan(during.eventsSent);
        // Drops go on while the buffer is full (the host keeps exec'ing), and stop once it drains.
        expect(after.eventsDropped).toBeGreaterThanOrEqual(during.eventsDropped);

        // Fresh events flow again after recovery.
        const late = uniqueProgram('tf-recover');
        const { pid: latePid } = await late.run(3);
        const exit = await collector.waitFor(
          (e) => e.type === 'process.exit' && e.attributes['process.pid'] === latePid,
          20_000,
        );
        expect(exit.attributes['process.exit.code']).toBe(3);
        expect(agent.stats().publisher.eventsDropped).toBe(after.eventsDropped);
      } finally {
        await collector.stop();
      }

      // The early program's events were buffered, not lost: find them from the start of the topic.
      const all = await readAllEvents();
      expect(
        all.some(
          (e) =>
            e.type === 'process.exec' &&
            e.attributes['process.pid'] === earlyPid &&
            e.attributes['process.executable.path'] === early.path,
        ),
      ).toBe(true);
    } finally {
      const final = await agent.stop(2000);
      expect(final.publisher.eventsDropped).toBeGreaterThan(0);
    }
  }, 300_000);
});

async function readAllEvents() {
  const { decodeFrameEvents } = await import('../../src/ingest/index.js');
  const kafka = testKafka('agent', 'tf-test-scan');
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets('tracefeed.events.v1');
  await admin.disconnect();
  const consumer = kafka.consumer({ groupId: `tracefeed-test-scan-${Date.now()}` });
  await consumer.connect();
  await consumer.subscribe({ topic: 'tracefeed.events.v1', fromBeginning: true });
  const events: ReturnType<typeof decodeFrameEvents> = [];
  const remaining = new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  if ([...remaining.values()].every((h) => h === 0n)) done();
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      // This agent's frames only (keyed by node): the topic holds every suite's.
      if (message.value && message.key?.toString() === 'outage-node') {
        try {
          events.push(...decodeFrameEvents(message.value));
        } catch {
          // other suites put bad records on purpose; not ours to judge here
        }
      }
      if (BigInt(message.offset) + 1n >= (remaining.get(partition) ?? 0n))
        remaining.delete(partition);
      if (remaining.size === 0) done();
    },
  });
  for (const [p, h] of remaining) if (h === 0n) remaining.delete(p);
  if (remaining.size === 0) done();
  await Promise.race([finished, new Promise((r) => setTimeout(r, 60_000))]);
  await consumer.disconnect();
  return events;
}
