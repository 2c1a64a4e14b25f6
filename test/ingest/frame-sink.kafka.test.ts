/**
 * The native frame sink (native/src/frame-sink.cc) on its own, against the
 * real broker: framing, CloudEvents headers, cgroup naming, malformed regions,
 * the buffer bound and the accounting of every appended record. Records are
 * user-space summary records (the kind the agent itself builds), so no kernel
 * is needed here; the kernel-to-Kafka path is covered by pipeline.root.kafka.
 */
import { randomUUID } from 'node:crypto';
import { type KafkaMessage } from 'kafkajs';
import { nativeKafkaSecurity } from '../../src/common/kafka.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFrame } from '../../src/wire/frame.js';
import { decodeFrameEvents } from '../../src/ingest/index.js';
import { Op, RUNQ_SUMMARY_LAYOUT } from '../../src/wire/layout.js';
import { OpTable } from '../../src/families/registry.js';
import {
  loadNative,
  type FrameSinkOptions,
  type NativeFrameSink,
} from '../../src/ingest/native.js';
import { writeRecordHeader } from '../../src/wire/record-header.js';
import { BROKERS, subscribe, testKafka } from '../helpers/kafka.js';

const topic = `tracefeed.test.sink.${randomUUID().slice(0, 8)}`;
const SIZE = RUNQ_SUMMARY_LAYOUT.size;

/** n run-queue summary records, record i in cgroup cgroups[i % len], count = i. */
function records(n: number, cgroups: bigint[]): Buffer {
  const b = Buffer.alloc(n * SIZE);
  for (let i = 0; i < n; i++) {
    const off = i * SIZE;
    writeRecordHeader(b, off, Op.RUNQ_SUMMARY, SIZE, 1_000_000n + BigInt(i), 7);
    b.writeBigUInt64LE(cgroups[i % cgroups.length]!, off + 24);
    b.writeBigUInt64LE(1_000_000_000n, off + 32);
    b.writeBigUInt64LE(BigInt(i), off + 40);
  }
  return b;
}

function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (pred()) resolve();
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 50);
    };
    tick();
  });
}

function makeSink(
  over: Partial<FrameSinkOptions> = {},
  onEvent: (kind: string, level?: string, message?: string) => void = () => {},
): NativeFrameSink {
  const { FrameSink } = loadNative();
  return new FrameSink(
    {
      node: 'sink-node',
      topic,
      brokers: BROKERS.join(','),
      bootTimeNs: 1_700_000_000_000_000_000n,
      startedAtMs: 42,
      frameMaxBytes: 64 * 1024,
      lingerMs: 50,
      bufferMaxBytes: 8 * 1024 * 1024,
      cgroupOffsets: OpTable.cgroupOffset,
      // The topic is this file's own (created by the admin): the admin's credentials.
      kafka: nativeKafkaSecurity('admin'),
      ...over,
    },
    onEvent,
  );
}

describe('native frame sink', () => {
  const messages: KafkaMessage[] = [];
  let stopConsumer: () => Promise<void>;

  beforeAll(async () => {
    const kafka = testKafka('admin', 'tf-test-sink');
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();
    // The topic is this file's own: read it from the start, so no early frame is missed.
    stopConsumer = await subscribe(topic, (m) => void messages.push(m), true);
  });

  afterAll(async () => {
    await stopConsumer?.();
    const kafka = testKafka('admin', 'tf-test-sink');
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
  });

  it('frames appended records into v1 frames with CloudEvents headers, in order, and names their cgroups', async () => {
    const cg = 123_456_789n;
    const asked: bigint[][] = [];
    // The callback runs after construction, when `sink` is assigned.
    const sink: NativeFrameSink = makeSink({}, (kind) => {
      if (kind !== 'cgroups') return;
      const ids = sink.takeWantedCgroups();
      asked.push(ids);
      for (const id of ids) sink.setCgroupName(id, '/system.slice/sink-test.service');
    });
    const start = messages.length;
    // 500 records of 312 bytes = 156,000 bytes: at least 3 frames of <= 64 KiB.
    for (let i = 0; i < 5; i++) expect(sink.append(records(100, [cg]), 100)).toBe(true);
    await until(() => sink.stats().eventsSent === 500, 15_000, 'all 500 events acknowledged');
    // A later frame carries the name the sink asked for once.
    expect(sink.append(records(1, [cg]), 1)).toBe(true);
    await until(() => sink.stats().eventsSent === 501, 15_000, 'the 501st event');
    await until(
      () => messages.slice(start).reduce((a, m) => a + decodeFrame(m.value!).eventCount, 0) >= 501,
      15_000,
      'frames consumed',
    );
    await sink.stop(2000);

    expect(asked.flat()).toEqual([cg]);
    const got = messages.slice(start);
    const frames = got.map((m) => decodeFrame(m.value!));
    expect(frames.length).toBeGreaterThanOrEqual(4);
    for (const f of frames) {
      expect(f.node).toBe('sink-node');
      expect(f.bootTimeNs).toBe(1_700_000_000_000_000_000n);
      expect(f.records.byteLength).toBeLessThanOrEqual(64 * 1024 + 4096);
    }
    expect(frames.map((f) => f.sequence)).toEqual(frames.map((_, i) => BigInt(i)));
    const h = (m: KafkaMessage, k: string) => m.headers?.[k]?.toString();
    expect(got[0]!.key?.toString()).toBe('sink-node');
    expect(h(got[0]!, 'ce_specversion')).toBe('1.0');
    expect(h(got[0]!, 'ce_id')).toBe('sink-node:42:0');
    expect(h(got[1]!, 'ce_id')).toBe('sink-node:42:1');
    expect(h(got[0]!, 'ce_source')).toBe('/node/sink-node');
    expect(h(got[0]!, 'ce_type')).toBe('io.tracefeed.events.v1');
    expect(h(got[0]!, 'content-type')).toBe('application/vnd.tracefeed.frame.v1');
    expect(Date.parse(h(got[0]!, 'ce_time')!)).toBeGreaterThan(Date.now() - 60_000);
    for (let i = 0; i < got.length; i++)
      expect(Number(h(got[i]!, 'tracefeed_event_count'))).toBe(frames[i]!.eventCount);

    // Every record arrives once, in order, with its fields intact.
    const events = got.flatMap((m) => decodeFrameEvents(m.value!));
    const runq = events.filter((e) => e.type === 'sched.runq_summary');
    expect(runq).toHaveLength(501);
    expect(runq.slice(0, 100).map((e) => e.attributes['sched.runq.count'])).toEqual(
      Array.from({ length: 100 }, (_, i) => i),
    );
    expect(runq.every((e) => e.attributes['cgroup.id'] === cg.toString())).toBe(true);
    const info = events.filter((e) => e.type === 'cgroup.info');
    expect(info.length).toBeGreaterThanOrEqual(1);
    expect(info[0]!.attributes['cgroup.id']).toBe(cg.toString());
    expect(info[0]!.attributes['cgroup.path']).toBe('/system.slice/sink-test.service');

    const s = sink.stats();
    expect(s).toMatchObject({
      connected: true,
      eventsSent: 501,
      eventsDropped: 0,
      malformed: 0,
      bufferedFrames: 0,
      framesSent: frames.length,
      framesBuilt: frames.length,
    });
    expect(sink.opCounts()[Op.RUNQ_SUMMARY]).toBe(501);
  }, 60_000);

  it('sends a late name in a frame of its own when the records already left unnamed', async () => {
    const cg = 987_654_321n;
    const sink = makeSink(); // nobody answers the question at once
    const start = messages.length;
    expect(sink.append(records(3, [cg]), 3)).toBe(true);
    await until(() => sink.stats().eventsSent === 3, 15_000, 'the unnamed frame');
    expect(sink.takeWantedCgroups()).toEqual([cg]);
    sink.setCgroupName(cg, '/late.slice');
    await until(() => sink.stats().framesSent === 2, 15_000, 'the names-only frame');
    await until(() => messages.length - start >= 2, 15_000, 'both frames consumed');
    await sink.stop(1000);
    const [first, second] = messages.slice(start).map((m) => decodeFrameEvents(m.value!));
    expect(first!.map((e) => e.type)).toEqual(Array(3).fill('sched.runq_summary'));
    expect(
      second!.map((e) => [e.type, e.attributes['cgroup.id'], e.attributes['cgroup.path']]),
    ).toEqual([['cgroup.info', cg.toString(), '/late.slice']]);
    expect(sink.stats()).toMatchObject({ eventsSent: 3, framesSent: 2, eventsDropped: 0 });
  }, 30_000);

  it('carries an unnamed cgroup until its name comes, however many frames that takes', async () => {
    // The node agent owns the retries (NodeAgent.nameCgroups): the sink gives up only when told.
    const cg = 987_654_322n;
    const sink = makeSink();
    const start = messages.length;
    for (let i = 1; i <= 25; i++) {
      expect(sink.append(records(1, [cg]), 1)).toBe(true);
      await until(() => sink.stats().framesSent === i, 15_000, `unnamed frame ${i}`);
    }
    expect(sink.takeWantedCgroups()).toEqual([cg]); // asked once
    sink.setCgroupName(cg, '/much-later.slice');
    await until(() => sink.stats().framesSent === 26, 15_000, 'the names-only frame');
    await until(() => messages.length - start >= 26, 15_000, 'every frame consumed');
    const last = decodeFrameEvents(messages[start + 25]!.value!);
    expect(last.map((e) => [e.type, e.attributes['cgroup.path']])).toEqual([
      ['cgroup.info', '/much-later.slice'],
    ]);

    // Given up: no longer carried, so a name that comes after sends nothing on its own ...
    const gone = 987_654_323n;
    expect(sink.append(records(2, [gone]), 2)).toBe(true);
    await until(() => sink.stats().framesSent === 27, 15_000, 'the frame of the given-up cgroup');
    expect(sink.takeWantedCgroups()).toEqual([gone]);
    sink.forgetCgroup(gone);
    sink.setCgroupName(gone, '/gone.slice');
    await new Promise((r) => setTimeout(r, 500));
    expect(sink.stats().framesSent).toBe(27);
    // ... and its next records are named at once.
    expect(sink.append(records(1, [gone]), 1)).toBe(true);
    await until(() => sink.stats().framesSent === 28, 15_000, 'the named frame');
    await until(() => messages.length - start >= 28, 15_000, 'every frame consumed');
    await sink.stop(1000);
    const named = decodeFrameEvents(messages[start + 27]!.value!);
    expect(named.map((e) => e.type)).toEqual(['sched.runq_summary', 'cgroup.info']);
    expect(named[1]!.attributes['cgroup.path']).toBe('/gone.slice');
  }, 60_000);

  it('drops a malformed region whole, counts it and says where the walk stopped', async () => {
    const logs: string[] = [];
    const sink = makeSink({}, (kind, _level, message) => {
      if (kind === 'log') logs.push(message!);
    });
    const bad = records(3, [1n]);
    bad.writeUInt32LE(13, SIZE + 4); // second record: size not a multiple of 8
    expect(sink.append(bad, 3)).toBe(false);
    expect(sink.append(records(2, [1n]), 3)).toBe(false); // count mismatch
    expect(sink.append(records(2, [1n]), 2)).toBe(true);
    await until(() => sink.stats().eventsSent === 2, 15_000, 'the good region');
    await sink.stop(1000);
    expect(sink.stats().malformed).toBe(6);
    expect(sink.opCounts()[Op.RUNQ_SUMMARY]).toBe(2);
    await until(() => logs.some((l) => /walk stopped at byte 312 of 936/.test(l)), 2000, 'log');
  }, 30_000);

  it('holds frames while the broker is unreachable up to the bound, then drops and counts; stop counts the rest', async () => {
    const bufferMaxBytes = 100 * 1024;
    // Nothing listens on port 1: the producer can never connect.
    const sink = makeSink({ brokers: '127.0.0.1:1', bufferMaxBytes, frameMaxBytes: 16 * 1024 });
    let appended = 0;
    for (let i = 0; i < 20; i++) {
      expect(sink.append(records(50, [9n]), 50)).toBe(true); // 15.6 KB: one frame each
      appended += 50;
    }
    await until(() => sink.stats().sendErrors > 0, 15_000, 'a connection error');
    await until(() => sink.stats().framesBuilt === 20, 5000, 'the last frame closed by linger');
    const during = sink.stats();
    expect(during.connected).toBe(false);
    expect(during.bufferedBytes).toBeLessThanOrEqual(bufferMaxBytes);
    expect(during.bufferedFrames).toBe(6); // 6 x 15,664 bytes fit in 100 KiB
    expect(during.framesDropped).toBe(14);
    expect(during.eventsSent + during.bufferedEvents + during.eventsDropped).toBe(appended);
    expect(during.lagMs).toBeGreaterThan(0);
    // Drops are known per op, so each probe can say what it lost after the ring.
    expect(sink.droppedByOp()[Op.RUNQ_SUMMARY]).toBe(during.eventsDropped);
    expect(sink.droppedByOp().reduce((a, b) => a + b, 0)).toBe(during.eventsDropped);
    // The cgroups of the closed frames, once per call.
    expect(sink.takeSeenCgroups()).toEqual([9n]);
    expect(sink.takeSeenCgroups()).toEqual([]);
    await sink.stop(200);
    const after = sink.stats();
    expect(after.bufferedFrames).toBe(0);
    expect(after.eventsSent).toBe(0);
    expect(after.eventsDropped).toBe(appended);
    // After stop nothing is framed, and that is counted too.
    expect(sink.append(records(1, [9n]), 1)).toBe(false);
    expect(sink.stats().eventsDropped).toBe(appended + 1);
    expect(sink.droppedByOp()[Op.RUNQ_SUMMARY]).toBe(appended + 1);
  }, 30_000);

  it('refuses bad options with an error naming the option', () => {
    expect(() => makeSink({ node: '' })).toThrow(/node name must be 1..255 bytes/);
    expect(() => makeSink({ kafka: { 'no.such.property': 'x' } })).toThrow(
      /kafka setting no.such.property=x/,
    );
    expect(() => makeSink({ cgroupOffsets: new Uint8Array(3) })).toThrow(/cgroupOffsets/);
    expect(() => makeSink({ lingerMs: 0 })).toThrow(/lingerMs must be an integer >= 1/);
  });
});
