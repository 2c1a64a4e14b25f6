/**
 * Exactly-once feature windows across a consumer group: three `tracefeed features`
 * processes share a topic of real node agent frames; one is SIGKILLed in the middle of a
 * window, one is added back. Read with isolation read_committed, the feature windows count
 * every event of the topic exactly once, and no (node, window) is written twice.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { afterAll, describe, expect, it } from 'vitest';
import { authHeaders } from '../../src/common/http-auth.js';
import { kafkaClient } from '../../src/common/kafka.js';
import { createLogger } from '../../src/common/logger.js';
import type { FeatureStageStats } from '../../src/features/feature-stage.js';
import { decodeFrame, walkRecords } from '../../src/wire/frame.js';
import { HEADER_LAYOUT, Op, fieldOffset } from '../../src/wire/layout.js';
import { OpTable } from '../../src/families/registry.js';
import { DEFAULT_AGENT_OPTIONS, NodeAgent } from '../../src/ingest/node-agent.js';
import { repoRoot } from '../../src/common/paths.js';
import { BROKERS } from '../helpers/kafka.js';
import { freePort } from '../helpers/net.js';

const log = createLogger('test-exactly-once');
const cli = `${repoRoot}/bin/tracefeed.js`;
let run = '';
let topics = { events: '', features: '', anomalies: '', dlq: '' };
let group = '';

/** A topic set and group of its own for one scenario. */
function fresh(): void {
  run = randomBytes(4).toString('hex');
  topics = {
    events: `tracefeed.test.eos-events-${run}`,
    features: `tracefeed.test.eos-features-${run}`,
    anomalies: `tracefeed.test.eos-anomalies-${run}`,
    dlq: `tracefeed.test.eos-dlq-${run}`,
  };
  group = `tracefeed-features-test-eos-${run}`;
}
const PARTITIONS = 6;
const WINDOW_MS = 2000;
const WEIGHT = fieldOffset(HEADER_LAYOUT, 'sample_weight');

interface Member {
  name: string;
  child: ChildProcess;
  port: number;
  stderr: () => string;
  exit: Promise<number | null>;
}

const members: Member[] = [];
const agents: NodeAgent[] = [];

async function startMember(name: string): Promise<Member> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      cli,
      'features',
      '--group',
      group,
      '--events-topic',
      topics.events,
      '--features-topic',
      topics.features,
      '--anomalies-topic',
      topics.anomalies,
      '--dlq-topic',
      topics.dlq,
      '--window-seconds',
      String(WINDOW_MS / 1000),
      '--lateness-seconds',
      '1',
      '--idle-close-seconds',
      '1',
      '--session-timeout-ms',
      '6000',
      '--from-beginning',
      '--port',
      String(port),
      '--data-dir',
      mkdtempSync(join(tmpdir(), `tf-eos-${name}-`)),
    ],
    {
      env: { ...process.env, TRACEFEED_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  // Each member's log, for a failure's post-mortem.
  const logFile = join(tmpdir(), `tf-eos-${run}-${name}.log`);
  child.on('exit', () => writeFileSync(logFile, err));
  child.stdout!.resume();
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const m = { name, child, port, stderr: () => err, exit };
  members.push(m);
  return m;
}

async function status(m: Member): Promise<FeatureStageStats> {
  const res = await fetch(`http://127.0.0.1:${m.port}/v1/status`, { headers: authHeaders() });
  if (!res.ok) throw new Error(`${m.name} status ${res.status}`);
  return (await res.json()) as FeatureStageStats;
}

async function until<T>(
  what: string,
  timeoutMs: number,
  f: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (${String(last)})` : ''}`);
}

/** Every record of a topic, partition by partition, up to its end now (read_committed). */
async function readAll(
  topic: string,
  onMessage: (m: {
    partition: number;
    value: Buffer | null;
    headers: Record<string, string>;
  }) => void,
): Promise<void> {
  const kafka = kafkaClient({ role: 'agent', clientId: 'tf-test-eos-reader', brokers: BROKERS });
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  // The last offset of a transactional topic may be a commit marker: read until the
  // consumer's position passes it (read_committed skips markers and aborted records).
  const want = new Map(ends.map((e) => [e.partition, Number(e.high)]));
  const pos = new Map<number, number>();
  const consumer = kafka.consumer({
    groupId: `tracefeed-test-eos-reader-${randomBytes(4).toString('hex')}`,
    readUncommitted: false,
    maxWaitTimeInMs: 200,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  // Batches of only markers or aborted records reach no handler: their end is in this event.
  consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
    const p = e.payload.partition;
    pos.set(p, Math.max(pos.get(p) ?? -1, Number(e.payload.lastOffset)));
  });
  const done = (): boolean =>
    [...want].every(([p, end]) => end === 0 || (pos.get(p) ?? 0) >= end - 1);
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        if (Number(m.offset) >= (want.get(batch.partition) ?? 0)) continue;
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(m.headers ?? {})) headers[k] = String(v);
        onMessage({ partition: batch.partition, value: m.value, headers });
      }
    },
  });
  await until(`read ${topic} to its end`, 60_000, async () => (done() ? true : undefined));
  await consumer.disconnect();
}

afterAll(async () => {
  for (const m of members) if (m.child.exitCode === null) m.child.kill('SIGKILL');
  for (const a of agents) await a.stop(0).catch(() => undefined);
});

describe('exactly-once feature windows in a consumer group', () => {
  async function scenario(disrupt: 'kill' | 'stall'): Promise<void> {
    fresh();
    const kafka = kafkaClient({
      role: 'admin',
      clientId: 'tf-test-eos-admin',
      brokers: BROKERS,
      log,
    });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: topics.events, numPartitions: PARTITIONS, replicationFactor: 1 },
        { topic: topics.features, numPartitions: 3, replicationFactor: 1 },
        { topic: topics.anomalies, numPartitions: 1, replicationFactor: 1 },
        { topic: topics.dlq, numPartitions: 1, replicationFactor: 1 },
      ],
    });
    const meta = await admin.fetchTopicMetadata({ topics: [topics.events] });
    await admin.disconnect();
    expect(meta.topics[0]!.partitions.length).toBe(PARTITIONS);

    // Real node agents (real kernel events), one frame stream per node name, keyed by it.
    for (let i = 0; i < 4; i++) {
      const a = new NodeAgent({
        ...DEFAULT_AGENT_OPTIONS,
        nodeName: `eos-${run}-${i}`,
        brokers: BROKERS,
        topic: topics.events,
        lingerMs: 50,
        log,
        families: ['process', 'syscalls'],
      });
      a.start();
      agents.push(a);
    }
    // Execs on every node agent's view of the kernel, all along.
    const load = spawn('/bin/sh', ['-c', 'while :; do /bin/true; sleep 0.02; done'], {
      stdio: 'ignore',
    });
    try {
      const first = await Promise.all(['a', 'b', 'c'].map((n) => startMember(n)));
      // All partitions owned, events flowing, windows closing.
      await until('6 partitions owned by 3 members', 90_000, async () => {
        const s = await Promise.all(first.map(status));
        const owned = s.flatMap((x) => x.partitions);
        return owned.length === PARTITIONS && s.every((x) => x.partitions.length > 0)
          ? s
          : undefined;
      });
      await until('windows committed', 60_000, async () => {
        const s = await Promise.all(first.map(status));
        return s.reduce((n, x) => n + x.featureRecordsSent, 0) >= 4 ? true : undefined;
      });

      // The victim: the member holding the most open windows, hit mid-window.
      let victim!: Member;
      let victimStats!: FeatureStageStats;
      await until('a member with open windows in the middle of a window', 30_000, async () => {
        const now = Date.now() % WINDOW_MS;
        if (now < WINDOW_MS * 0.4 || now > WINDOW_MS * 0.6) return undefined;
        const s = await Promise.all(first.map(status));
        let best = -1;
        s.forEach((x, i) => {
          if (best < 0 || x.openWindows > s[best]!.openWindows) best = i;
        });
        if (s[best]!.openWindows === 0) return undefined;
        victim = first[best]!;
        victimStats = s[best]!;
        victim.child.kill(disrupt === 'kill' ? 'SIGKILL' : 'SIGSTOP');
        return true;
      });
      log.info({ victim: victim.name, disrupt, stats: victimStats }, 'victim hit');
      expect(victimStats.openWindows).toBeGreaterThan(0);

      let live: Member[];
      if (disrupt === 'kill') {
        expect(await victim.exit).toBeNull();
        const survivors = first.filter((m) => m !== victim);
        await new Promise((r) => setTimeout(r, 3000));
        const added = await startMember('d');
        live = [...survivors, added];
        // The group settles: the victim's partitions are owned again, the newcomer has some.
        await until('partitions re-owned after the kill and the join', 90_000, async () => {
          const s = await Promise.all(live.map(status));
          const owned = s.flatMap((x) => x.partitions);
          return owned.length === PARTITIONS && s[2]!.partitions.length > 0 ? true : undefined;
        });
      } else {
        // Stalled past its session: the others take its partitions while it still holds
        // their windows; then it wakes up and tries to write them.
        const others = first.filter((m) => m !== victim);
        await until("the stalled member's partitions taken over", 60_000, async () => {
          const s = await Promise.all(others.map(status));
          return s.flatMap((x) => x.partitions).length === PARTITIONS ? true : undefined;
        });
        await new Promise((r) => setTimeout(r, 2000));
        victim.child.kill('SIGCONT');
        live = first;
        await until('the woken member back in the group', 90_000, async () => {
          const s = await Promise.all(live.map(status));
          const v = s[first.indexOf(victim)]!;
          return s.flatMap((x) => x.partitions).length === PARTITIONS &&
            v.partitionsRevoked >= victimStats.partitionsRevoked + victimStats.partitions.length
            ? v
            : undefined;
        });
      }
      await new Promise((r) => setTimeout(r, 4000));
      // Every frame acknowledged before the topic is read: a frame still in flight would
      // land after the count below and be counted by the stage only.
      let framesSent = 0;
      for (const a of agents) {
        const st = await a.stop(10_000);
        expect(st.publisher.framesDropped).toBe(0);
        framesSent += st.publisher.framesSent;
      }
      agents.length = 0;

      // What was produced: every aggregated record of every frame, with its sample weight.
      let produced = 0;
      let frames = 0;
      await readAll(topics.events, ({ value }) => {
        if (!value) return;
        frames++;
        const f = decodeFrame(value, { knownOpsOnly: true });
        const dv = new DataView(f.records.buffer, f.records.byteOffset, f.records.byteLength);
        walkRecords(f.records, (op, off) => {
          if (op === Op.CGROUP_INFO || OpTable.probeIndex[op] === 255) return;
          produced += dv.getUint32(off + WEIGHT, true) || 1;
        });
      });
      expect(produced).toBeGreaterThan(0);
      expect(frames).toBe(framesSent);

      // What is committed: the feature windows, read_committed, once every window is closed.
      const count = async (): Promise<{ events: number; windows: string[] }> => {
        let events = 0;
        const windows: string[] = [];
        await readAll(topics.features, ({ value, headers }) => {
          windows.push(headers.ce_id!);
          const t = tableFromIPC(value!);
          const col = t.getChild('events')!;
          for (let i = 0; i < t.numRows; i++) events += Number(col.get(i));
        });
        return { events, windows };
      };
      let seen = 'nothing read';
      const settled = await until('every window committed', 90_000, async () => {
        const s = await Promise.all(live.map(status));
        if (s.some((x) => x.openWindows > 0 || x.unackedWindows > 0)) return undefined;
        const c = await count();
        seen =
          `${c.events} of ${produced} events in ${c.windows.length} windows; members: ` +
          JSON.stringify(
            s.map((x) => ({ late: x.late, replayed: x.alreadyEmitted, partitions: x.partitions })),
          ) +
          `; logs: ${join(tmpdir(), `tf-eos-${run}-*.log`)}`;
        return c.events >= produced ? { c, s } : undefined;
      }).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}: ${seen}`);
      });
      const { c, s } = settled;
      log.info(
        {
          produced,
          frames,
          counted: c.events,
          windows: c.windows.length,
          survivors: s.map((x) => ({
            partitions: x.partitions,
            windows: x.featureRecordsSent,
            redelivered: x.redelivered,
            alreadyEmitted: x.alreadyEmitted,
            late: x.late,
            dropped: x.windowsDroppedOnRevoke,
            txns: x.transactionsCommitted,
            aborted: x.transactionsAborted,
          })),
        },
        'exactly-once run',
      );
      expect(c.events).toBe(produced);
      expect(new Set(c.windows).size).toBe(c.windows.length);
      // Some work after the kill was a re-read of what the victim held but never committed.
      expect(s.reduce((n, x) => n + x.partitionsAssigned, 0)).toBeGreaterThan(
        PARTITIONS - victimStats.partitions.length,
      );
      if (disrupt === 'stall') {
        // The woken member wrote nothing of what it held when it stalled.
        const v = s[first.indexOf(victim)]!;
        expect(v.windowsDroppedOnRevoke).toBeGreaterThan(victimStats.windowsDroppedOnRevoke);
        log.info(
          {
            revoked: v.partitionsRevoked - victimStats.partitionsRevoked,
            dropped: v.windowsDroppedOnRevoke - victimStats.windowsDroppedOnRevoke,
            aborted: v.transactionsAborted,
          },
          'the woken member',
        );
      }
      for (const x of s) {
        expect(x.late).toBe(0);
        expect(x.futureDated).toBe(0);
        expect(x.outOfRange).toBe(0);
      }
    } finally {
      load.kill('SIGKILL');
      for (const m of members) if (m.child.exitCode === null) m.child.kill('SIGKILL');
      for (const a of agents) await a.stop(0).catch(() => undefined);
      agents.length = 0;
    }
  }

  it('three members, one SIGKILLed mid-window and one added back: every event counted once, no window twice', async () => {
    await scenario('kill');
  }, 420_000);

  it('a member stalled past its session mid-window wakes up as a zombie: fenced, every event counted once, no window twice', async () => {
    await scenario('stall');
  }, 420_000);
});
