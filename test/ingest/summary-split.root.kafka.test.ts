/**
 * A syscall summary flush of 10,000 (cgroup, syscall) keys, about 3.3 MB of
 * records, arrives whole on the events topic in frames under the broker's
 * 1 MiB message limit; before, it was one oversized message the broker refused.
 *
 * How the keys are made: 25 real cgroups (created here) times 400 real
 * syscall numbers are written into the loaded probe's kernel aggregation map
 * (syscall_stats) through the addon's mapUpdate, with real-shaped values
 * (struct tf_hist_value); the agent's real flush path then reads
 * the map, encodes the records and hands them to the native frame sink, which
 * frames and publishes them. Real syscalls of the host may add keys of their own.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topics } from '../../src/common/kafka.js';
import { createLogger } from '../../src/common/logger.js';
import {
  DEFAULT_AGENT_OPTIONS,
  NodeAgent,
  decodeFrameEvents,
  type TracefeedEvent,
} from '../../src/ingest/index.js';
import { HIST_VALUE_LAYOUT, SYSCALL_KEY_LAYOUT, fieldOffset } from '../../src/wire/layout.js';
import { makeCgroup, type TestCgroup } from '../helpers/cgroup.js';
import { BROKERS, subscribe } from '../helpers/kafka.js';

/** Kafka's default broker message.max.bytes (1 MiB + 12). */
const BROKER_MESSAGE_MAX_BYTES = 1_048_588;
const CGROUPS = 25;
const SYSCALLS = 400;

describe('summary flush larger than a Kafka message', () => {
  const node = `sum-${randomBytes(3).toString('hex')}`;
  let agent: NodeAgent;
  let stopConsumer: (() => Promise<void>) | undefined;
  /** This node's records on the topic: size in bytes and decoded events. */
  const records: Array<{ bytes: number; events: TracefeedEvent[] }> = [];
  const cgroups: TestCgroup[] = [];

  beforeAll(async () => {
    stopConsumer = await subscribe(Topics.events, (m) => {
      if (m.key?.toString() !== node || !m.value) return;
      records.push({ bytes: m.value.length, events: decodeFrameEvents(m.value) });
    });
    agent = new NodeAgent({
      ...DEFAULT_AGENT_OPTIONS,
      nodeName: node,
      brokers: BROKERS,
      lingerMs: 50,
      // No periodic flush during the test: the one flush is the probe change below.
      summaryIntervalMs: 3_600_000,
      log: createLogger('test', 'silent'),
      families: ['syscalls'],
    });
    agent.start();
    for (let i = 0; i < CGROUPS; i++) cgroups.push(makeCgroup('tf-sum'));
  }, 60_000);

  afterAll(async () => {
    await agent?.stop(5000);
    await stopConsumer?.();
    for (const cg of cgroups) cg.remove();
  });

  it('arrives whole, in frames under the broker limit, nothing dropped', async () => {
    const obj = agent.object('syscalls');
    const key = Buffer.alloc(SYSCALL_KEY_LAYOUT.size);
    const value = Buffer.alloc(HIST_VALUE_LAYOUT.size);
    const want = new Map<string, number>();
    for (const [c, cg] of cgroups.entries())
      for (let nr = 0; nr < SYSCALLS; nr++) {
        const count = 1_000_000 + c * SYSCALLS + nr;
        key.writeBigUInt64LE(cg.id, fieldOffset(SYSCALL_KEY_LAYOUT, 'cgroup_id'));
        key.writeUInt32LE(nr, fieldOffset(SYSCALL_KEY_LAYOUT, 'syscall_nr'));
        value.fill(0);
        value.writeBigUInt64LE(BigInt(count), fieldOffset(HIST_VALUE_LAYOUT, 'count'));
        value.writeBigUInt64LE(BigInt(count) * 1000n, fieldOffset(HIST_VALUE_LAYOUT, 'total_ns'));
        value.writeBigUInt64LE(BigInt(count), fieldOffset(HIST_VALUE_LAYOUT, 'hist') + 10 * 8);
        obj.mapUpdate('syscall_stats', key, value);
        want.set(`${cg.id}:${nr}`, count);
      }
    expect(want.size).toBe(10_000);

    // A probe change flushes the family's summaries first (the real flush path).
    agent.setProbe('syscalls', { sample_n: 1 });

    const seen = new Map<string, number>();
    const deadline = Date.now() + 30_000;
    while (seen.size < want.size && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      for (const r of records) {
        for (const e of r.events) {
          if (e.type !== 'syscall.summary') continue;
          const k = `${e.attributes['cgroup.id']}:${e.attributes['syscall.nr']}`;
          if (want.has(k)) seen.set(k, Number(e.attributes['syscall.count']));
        }
      }
    }
    expect(seen.size).toBe(want.size);
    // Real syscalls of these (empty) cgroups cannot have added to the planted counts.
    for (const [k, count] of want) expect(seen.get(k), k).toBe(count);

    const frames = records.filter((r) => r.events.some((e) => e.type === 'syscall.summary'));
    expect(frames.length).toBeGreaterThanOrEqual(7); // 3.3 MB of records in 512 KiB frames
    for (const f of frames) expect(f.bytes).toBeLessThan(BROKER_MESSAGE_MAX_BYTES);
    const stats = agent.stats();
    expect(stats.publisher.sendErrors).toBe(0);
    expect(stats.publisher.framesDropped).toBe(0);
    expect(stats.publisher.eventsDropped).toBe(0);
    expect(stats.malformed).toBe(0);
  }, 90_000);
});
