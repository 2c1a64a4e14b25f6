/**
 * A replicated cluster loses the leader of the events partition while a node publishes:
 * a cluster of three KRaft nodes of the test's own (infra/kafka.sh start --brokers 3,
 * temporary TRACEFEED_HOME, free ports), a real node agent publishing the kernel's
 * process events of a steady process churn, and SIGKILL to the broker that leads the
 * node's partition of tracefeed.events.v1. Publishing goes on against the new leader;
 * the killed broker is started again and catches up. Then every frame is read back:
 * the node's frame sequence numbers are 0..n-1 with none missing and none twice, n is
 * what the node counted as sent, and it counted nothing dropped.
 */
import { randomUUID } from 'node:crypto';
import { logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTopics, kafkaClient, Topics } from '../../src/common/kafka.js';
import { createLogger } from '../../src/common/logger.js';
import { decodeFrameHeader } from '../../src/wire/frame.js';
import { DEFAULT_AGENT_OPTIONS, NodeAgent } from '../../src/ingest/index.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { churn } from '../helpers/workload.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

describe('a broker of three is SIGKILLed under a publishing node', () => {
  let cluster: TestCluster | undefined;
  let agent: NodeAgent | undefined;
  const savedHome = process.env.TRACEFEED_HOME;
  const node = `bk-${randomUUID().slice(0, 8)}`;
  const log = createLogger('test', 'silent');

  const client = (role: 'admin' | 'agent') =>
    kafkaClient({
      role,
      clientId: `tf-test-${node}`,
      brokers: cluster!.brokers,
      logLevel: logLevel.NOTHING,
      retry: { retries: 8, initialRetryTime: 200 },
    });

  beforeAll(async () => {
    cluster = await startTestCluster(3);
    for (const p of cluster.ports.values()) expect([9092, 9093, 6379]).not.toContain(p);
    // The clients of this file authenticate with the cluster's own passwords.
    process.env.TRACEFEED_HOME = cluster.home;
  }, 180_000);

  afterAll(async () => {
    try {
      await agent?.stop(0);
    } finally {
      if (savedHome === undefined) delete process.env.TRACEFEED_HOME;
      else process.env.TRACEFEED_HOME = savedHome;
      await cluster?.destroy();
    }
  }, 120_000);

  it('loses no frame and duplicates none; the killed broker rejoins the ISR', async () => {
    const c = cluster!;
    const layout = await ensureTopics(c.brokers, log, undefined, [Topics.events]);
    expect(layout).toEqual({ partitions: 3, replicationFactor: 3, minInsyncReplicas: 2 });

    const admin = client('admin').admin();
    await admin.connect();
    try {
      const described = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [
          { type: 2 /* TOPIC */, name: Topics.events, configNames: ['min.insync.replicas'] },
        ],
      });
      expect(described.resources[0]!.configEntries[0]!.configValue).toBe('2');
      const meta0 = await admin.fetchTopicMetadata({ topics: [Topics.events] });
      for (const p of meta0.topics[0]!.partitions) expect(p.replicas.length).toBe(3);

      agent = new NodeAgent({
        ...DEFAULT_AGENT_OPTIONS,
        nodeName: node,
        brokers: c.brokers,
        families: ['process'],
        frameMaxBytes: 8 * 1024,
        lingerMs: 50,
        log,
      });
      agent.start();
      // A steady stream: process churn, paced (about 60 execs/s), until told to stop.
      let working = true;
      const workload = (async () => {
        while (working) {
          const t = Date.now();
          await churn(6, 2);
          await sleep(Math.max(0, 100 - (Date.now() - t)));
        }
      })();
      try {
        const sent = () => agent!.stats().publisher.framesSent;
        await until(() => sent() > 20, 30_000, 'the first frames sent');

        // The node's frames are keyed by its name: one partition holds them all.
        const offsets = await admin.fetchTopicOffsets(Topics.events);
        const ours = offsets.filter((o) => BigInt(o.high) > 0n);
        expect(ours.length).toBe(1);
        const partition = ours[0]!.partition;
        const meta = await admin.fetchTopicMetadata({ topics: [Topics.events] });
        const leader = meta.topics[0]!.partitions.find((p) => p.partitionId === partition)!.leader;
        const victim = c.pid(leader);

        const atKill = sent();
        process.kill(victim, 'SIGKILL');
        // Publishing goes on, to the new leader, while the old one is down.
        await until(() => sent() > atKill + 50, 60_000, 'frames sent after the kill');
        const during = await admin.fetchTopicMetadata({ topics: [Topics.events] });
        const moved = during.topics[0]!.partitions.find((p) => p.partitionId === partition)!;
        expect(moved.leader).not.toBe(leader);
        expect(moved.isr).not.toContain(leader);
        expect(moved.isr.length).toBe(2);
        // The scripts see it: status names the stopped node; a start of another size is refused.
        const degraded = await c.kafkaSh('status');
        expect(degraded.code).toBe(1);
        expect(degraded.stdout).toMatch(
          new RegExp(`^kafka: degraded: 3-broker cluster, .*stopped: ${leader}\\b`),
        );
        const other = await c.kafkaSh('start', '--brokers', '1');
        expect(other.code).toBe(1);
        expect(other.stderr).toMatch(
          /a 3-broker cluster is running here .* 1 broker was requested/,
        );

        // The killed broker comes back (start starts the cluster's missing node) and
        // catches up: every partition has its three copies in sync again.
        const restart = await c.kafkaSh('start');
        expect(restart.code, restart.stderr + restart.stdout).toBe(0);
        expect(restart.stdout).toMatch(new RegExp(`started now: ${leader}\\b`));
        await until(
          async () => {
            const m = await admin.fetchTopicMetadata({ topics: [Topics.events] });
            return m.topics[0]!.partitions.every((p) => p.isr.length === 3) || undefined;
          },
          60_000,
          'full ISR after the restart',
        );
        const healthy = await c.kafkaSh('status');
        expect(healthy.code, healthy.stdout).toBe(0);
        expect(healthy.stdout).toMatch(/^kafka: running 3 brokers \(pids \d+ \d+ \d+\) on /);
        const afterRestart = sent();
        await until(() => sent() > afterRestart + 20, 30_000, 'frames sent after the restart');
      } finally {
        working = false;
        await workload;
      }
      await until(
        () => agent!.stats().publisher.bufferedFrames === 0 || undefined,
        60_000,
        'every buffered frame acknowledged',
      );
      const final = await agent.stop(10_000);
      agent = undefined;
      expect(final.publisher.framesDropped).toBe(0);
      expect(final.publisher.eventsDropped).toBe(0);
      expect(final.publisher.bufferedFrames).toBe(0);
      const framesSent = final.publisher.framesSent;

      // Everything on the topic, from the start, up to the end offsets of now.
      const end = await admin.fetchTopicOffsets(Topics.events);
      const remaining = new Map(
        end.filter((o) => BigInt(o.high) > 0n).map((o) => [o.partition, BigInt(o.high)]),
      );
      const seqs: bigint[] = [];
      let foreign = 0;
      const consumer = client('agent').consumer({
        groupId: `tracefeed-test-${node}`,
        maxWaitTimeInMs: 200,
      });
      await consumer.connect();
      await consumer.subscribe({ topic: Topics.events, fromBeginning: true });
      let done!: () => void;
      const finished = new Promise<void>((r) => (done = r));
      await consumer.run({
        eachMessage: async ({ partition, message }) => {
          const h = decodeFrameHeader(message.value!);
          if (h.node === node && message.key?.toString() === node) seqs.push(h.sequence);
          else foreign++;
          if (BigInt(message.offset) + 1n >= (remaining.get(partition) ?? 0n))
            remaining.delete(partition);
          if (remaining.size === 0) done();
        },
      });
      await Promise.race([finished, sleep(60_000)]);
      await consumer.disconnect();
      expect(remaining.size, 'read to the end offsets').toBe(0);
      expect(foreign).toBe(0);

      const unique = new Set(seqs);
      const sorted = [...unique].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      const missing: bigint[] = [];
      for (let i = 0; i < sorted.length - 1; i++)
        for (let s = sorted[i]! + 1n; s < sorted[i + 1]! && missing.length < 20; s++)
          missing.push(s);
      expect(missing, 'frame sequence numbers missing').toEqual([]);
      expect(seqs.length - unique.size, 'frames read twice').toBe(0);
      expect(sorted[0]).toBe(0n);
      expect(sorted.at(-1)).toBe(BigInt(framesSent - 1));
      expect(seqs.length).toBe(framesSent);
    } finally {
      await admin.disconnect();
    }
  }, 300_000);
});
