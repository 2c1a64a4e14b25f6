#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
//
// End-to-end throughput: kernel -> ring -> native frame sink -> Kafka ->
// decode + event-time windows (the feature stage's WindowAggregator), on this
// host, at a paced rate of real kernel events, and whether anything is lost.
//
// usage: node bench/pipeline-throughput.mjs [--json] [--quick]
//          [--rate=260000] [--seconds=20] [--overload=4] [--overload-seconds=10]
//          [--ring-kib=4096]   (a smaller ring makes the overload phase overflow it)
//        (root; Kafka up: bash infra/up.sh)
//
// The load: bench/c/syscall_loop.c issues getppid() at a paced rate; the
// syscalls family streams every syscall of that one process as a
// TF_OP_SYSCALL_SLOW record (slow_ms 1 ns, pid allow list): one 80-byte
// record per call, the shape of a slow-syscall storm on a busy node.
//
// Phase 1 (sustained): `rate` events/s for `seconds`. Loss is counted at every
// stage: kernel drops (ring full), records the frame sink dropped, and the
// records a consumer of tracefeed.events.v1 counted (weighted) against the
// records the kernel emitted. Zero loss means all three agree.
// Phase 2 (overload): `overload` x the rate. The node is expected to sample
// (records carry weights) rather than drop: the weighted count is compared with
// the calls made.

import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { logLevel } from 'kafkajs';
import {
  LineChild,
  QUICK,
  argNum,
  ensureBuilt,
  fmt,
  log,
  machine,
  repoRoot,
  report,
  sleep,
  startSyscallLoop,
} from './lib/common.mjs';

const RATE = argNum('rate', 260_000);
const SECONDS = argNum('seconds', QUICK ? 6 : 20);
const OVERLOAD = argNum('overload', 4);
const OVERLOAD_SECONDS = argNum('overload-seconds', QUICK ? 4 : 10);
const RING_KIB = argNum('ring-kib', 4096);

ensureBuilt();
const { WindowAggregator } = await import(join(repoRoot, 'dist', 'features', 'aggregator.js'));
const { Topics, brokersFrom, kafkaClient } = await import(
  join(repoRoot, 'dist', 'common', 'kafka.js')
);
const BROKERS = brokersFrom(process.env.TRACEFEED_BROKERS);

const node = `bench-e2e-${randomUUID().slice(0, 8)}`;

async function startAgent(loopPid) {
  const probes = {
    syscalls: { enabled: true, slow_ms: 0.000001, filters: { pid: { allow: [loopPid] } } },
  };
  const a = new LineChild(
    process.execPath,
    [
      join(repoRoot, 'bench', 'lib', 'agent-child.mjs'),
      JSON.stringify(probes),
      JSON.stringify({ nodeName: node, ringBytes: RING_KIB * 1024 }),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const first = await a.next();
  if (first !== 'ready') throw new Error(`agent child: unexpected "${first}"`);
  return {
    stats: async () => JSON.parse(await a.send('stats')),
    stop: async () => {
      await a.send('stop');
      await a.exited;
    },
  };
}

/** A consumer of the events topic that windows this node's frames, as the feature stage does. */
async function startConsumer() {
  const kafka = kafkaClient({
    role: 'agent',
    clientId: 'tf-bench-e2e',
    brokers: BROKERS,
    logLevel: logLevel.NOTHING,
  });
  const consumer = kafka.consumer({
    groupId: `tracefeed-bench-${randomUUID()}`,
    maxWaitTimeInMs: 100,
  });
  const agg = new WindowAggregator({ windowMs: 1000, allowedLatenessMs: 60_000 });
  const counted = { frames: 0, records: 0, slowRecords: 0, slowWeighted: 0, bytes: 0 };
  await consumer.connect();
  await consumer.subscribe({ topic: Topics.events, fromBeginning: false });
  let joined;
  const ready = new Promise((r) => (joined = r));
  consumer.on(consumer.events.GROUP_JOIN, () => joined());
  await consumer.run({
    partitionsConsumedConcurrently: 4,
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        if (m.key?.toString() !== node || !m.value) continue;
        counted.frames++;
        counted.bytes += m.value.byteLength;
        counted.records += agg.ingestFrame(m.value, batch.partition, Number(m.offset));
      }
    },
  });
  await ready;
  return {
    counted,
    /** Weighted slow-syscall records in every window so far (closes them all). */
    drain() {
      for (const w of agg.closeDue(Date.now(), true)) {
        // Row-major sums; syscall_slow_count is weighted by the records' sample weights.
        for (let r = 0; r < w.rows; r++) {
          counted.slowWeighted += w.sums[r * NSUM + S.syscall_slow_count];
        }
      }
      return counted;
    },
    stop: () => consumer.disconnect(),
  };
}

const { S, NSUM } = await import(join(repoRoot, 'dist', 'features', 'columns.js'));

function slowOf(stats) {
  return stats.eventsByType['syscall.slow'] ?? 0;
}
function probeOf(stats, name) {
  return stats.probes.find((p) => p.probe === name);
}

async function phase(label, agent, consumer, loop, rate, seconds) {
  const before = await agent.stats();
  const calls = Math.round(rate * seconds);
  log(`${label}: ${calls} getppid() at ${rate}/s`);
  const ns = await loop.pace(calls, rate);
  await sleep(1500); // the sink's linger, Kafka, the consumer
  const after = await agent.stats();
  // Wait until the consumer has every frame the sink sent (bounded).
  const sentDelta = () => after.publisher.eventsSent - before.publisher.eventsSent;
  const deadline = Date.now() + 60_000;
  while (
    Date.now() < deadline &&
    consumer.counted.frames < after.publisher.framesSent - startFrames
  )
    await sleep(250);
  const caughtUp = consumer.counted.frames >= after.publisher.framesSent - startFrames;
  const ps0 = probeOf(before, 'syscalls');
  const ps1 = probeOf(after, 'syscalls');
  const ringFull = (ps1.drops.ringbuf_full ?? 0) - (ps0.drops.ringbuf_full ?? 0);
  return {
    label,
    offered_per_s: rate,
    achieved_per_s: Math.round(calls / (ns / 1e9)),
    calls,
    kernel_records: slowOf(after) - slowOf(before),
    ring_full_drops: ringFull,
    sink_sent: sentDelta(),
    sink_dropped: after.publisher.eventsDropped - before.publisher.eventsDropped,
    overload_n: ps1.overload_n ?? 1,
    consumer_caught_up: caughtUp,
  };
}

let startFrames = 0;
const loop = await startSyscallLoop();
const consumer = await startConsumer();
const agent = await startAgent(loop.pid);
await sleep(1000);
startFrames = (await agent.stats()).publisher.framesSent;

const p1 = await phase('sustained', agent, consumer, loop, RATE, SECONDS);
const c1 = { ...consumer.drain() };
const w1 = c1.slowWeighted;
const p2 = await phase('overload', agent, consumer, loop, RATE * OVERLOAD, OVERLOAD_SECONDS);
const c2 = consumer.drain();
const w2 = c2.slowWeighted - w1;
await agent.stop();
await consumer.stop();
await loop.close();

const row = (p, weighted) => [
  p.label,
  fmt(p.offered_per_s, 0),
  fmt(p.achieved_per_s, 0),
  fmt(p.kernel_records, 0),
  fmt(p.ring_full_drops, 0),
  fmt(p.sink_dropped, 0),
  fmt(weighted, 0),
  fmt((weighted / p.calls) * 100, 2),
  String(p.overload_n),
];
const rows = [row(p1, w1), row(p2, w2)];
report({
  machine: machine(),
  node,
  phases: [
    { ...p1, consumer_weighted: w1 },
    { ...p2, consumer_weighted: w2 },
  ],
  consumer: c2,
  tables: [
    {
      title: `End to end, kernel to windows (${node}, ${RING_KIB} KiB ring): ${SECONDS} s at ${RATE}/s, then ${OVERLOAD_SECONDS} s at ${OVERLOAD}x`,
      head: [
        'phase',
        'offered/s',
        'achieved/s',
        'kernel records',
        'ring-full drops',
        'sink drops',
        'windowed (weighted)',
        'windowed / calls %',
        'overload_n',
      ],
      rows,
    },
  ],
});
