#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
//
// The pipeline on a replicated cluster: 3 Kafka brokers (infra/kafka.sh start --brokers 3),
// 2 feature-stage members (`tracefeed features` processes, one consumer group), 2 real
// node agents, each publishing the kernel's syscall events of a paced load; then one
// broker is SIGKILLed (the leader of the first node's events partition).
//
// Measured: kernel events counted in committed feature windows (read_committed, the
// `events` column of the nodes' rows), by the time each window was written: the sustained
// rate, the lowest 2-s rate after the kill (the dip), the largest backlog (events the paced
// load put in since the kill that no window held yet), and how long after the kill the
// backlog is back under one second of events (the recovery). Then the same load on
// one broker, for comparison (--no-single skips it). Everything is its own: a TRACEFEED_HOME under the
// temp dir, free loopback ports; the Kafka jars are resolved once into the default home.
//
// usage: npm run bench:cluster [-- --json] [--rate=15000] [--steady=15] [--after=35]
//          [--warmup=10] [--drain=40] [--no-single]   (root: the node agents load BPF programs)
//
// --rate is per node (2 nodes). Runtime about 3 min (2 without the one-broker run).

import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import Table from 'cli-table3';
import { tableFromIPC } from 'apache-arrow';
import { logLevel } from 'kafkajs';
import {
  JSON_OUT,
  LineChild,
  args,
  argNum,
  ensureBuilt,
  log,
  machine,
  repoRoot,
  sleep,
  startSyscallLoop,
} from './lib/common.mjs';

const RATE = argNum('rate', 15_000); // per node
const NODES = 2;
const STAGES = 2;
const WARMUP = argNum('warmup', 10);
const STEADY = argNum('steady', 15);
const AFTER = argNum('after', 35);
const SINGLE = !args.has('--no-single');
const DRAIN = argNum('drain', 40);
const SAMPLE_MS = 250;

if (process.getuid?.() !== 0) {
  process.stderr.write('bench/cluster.mjs: run as root (the node agents load BPF programs)\n');
  process.exit(1);
}

log('building (bpf, native, ts) if needed');
ensureBuilt();
const { ensureTopics, kafkaClient, Topics } = await import(
  join(repoRoot, 'dist', 'common', 'kafka.js')
);
const { createLogger } = await import(join(repoRoot, 'dist', 'common', 'logger.js'));

const pom = readFileSync(join(repoRoot, 'infra', 'kafka', 'pom.xml'), 'utf8');
const KAFKA_VERSION = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(pom)[1];
const defaultHome = process.env.TRACEFEED_HOME ?? join(repoRoot, '.tracefeed');
log(`resolving the Kafka ${KAFKA_VERSION} jars into ${defaultHome} if needed`);
execFileSync('bash', [join(repoRoot, 'infra', 'kafka.sh'), 'install'], {
  env: { ...process.env, TRACEFEED_HOME: defaultHome },
  stdio: ['ignore', 'inherit', 'inherit'],
});

async function bindable(port) {
  const s = createServer();
  return new Promise((ok) => {
    s.once('error', () => ok(false));
    s.listen(port, '127.0.0.1', () => s.close(() => ok(true)));
  });
}

/** n consecutive free loopback ports (base returned). */
async function freePortRun(n) {
  for (let i = 0; i < 100; i++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    let ok = true;
    for (let p = base; p < base + n && ok; p++) ok = await bindable(p);
    if (ok) return base;
  }
  throw new Error(`no run of ${n} free loopback ports`);
}

const children = new Set();
const clusters = new Set();
function cleanup() {
  for (const c of children) c.kill('SIGKILL');
  for (const c of clusters) {
    try {
      execFileSync('bash', [join(repoRoot, 'infra', 'kafka.sh'), 'stop', '--kill'], {
        env: c.env,
        stdio: 'ignore',
      });
    } catch {
      // best effort on the way out
    }
    rmSync(c.home, { recursive: true, force: true });
  }
}
process.once('SIGINT', () => {
  cleanup();
  process.exit(130);
});

/** A cluster of `count` brokers of its own. */
async function startCluster(count) {
  const home = mkdtempSync(join(tmpdir(), 'tf-bench-cluster-'));
  mkdirSync(join(home, 'kafka'), { recursive: true });
  symlinkSync(join(defaultHome, 'kafka', KAFKA_VERSION), join(home, 'kafka', KAFKA_VERSION));
  const base = await freePortRun(2 * count);
  const env = {
    ...process.env,
    TRACEFEED_HOME: home,
    TRACEFEED_KAFKA_PORT: String(base),
    TRACEFEED_KAFKA_CONTROLLER_PORT: String(base + 1),
    TRACEFEED_KAFKA_BROKER_COUNT: String(count),
    TRACEFEED_KAFKA_HEAP_OPTS: '-Xmx384m',
  };
  const c = {
    home,
    env,
    count,
    brokers: Array.from({ length: count }, (_, i) => `127.0.0.1:${base + 2 * i}`),
    kafkaSh: (...a) =>
      new Promise((ok, fail) =>
        execFile('bash', [join(repoRoot, 'infra', 'kafka.sh'), ...a], { env }, (err, out, e) =>
          err ? fail(new Error(`infra/kafka.sh ${a.join(' ')}: ${e}${out}`)) : ok(out),
        ),
      ),
    pid: (id) =>
      Number(readFileSync(join(home, 'kafka', id === 1 ? 'kafka.pid' : `kafka-${id}.pid`), 'utf8')),
  };
  clusters.add(c);
  const t0 = Date.now();
  await c.kafkaSh('start');
  log(
    `${count} broker(s) up on ${c.brokers.join(',')} in ${((Date.now() - t0) / 1000).toFixed(0)} s`,
  );
  return c;
}

async function stopCluster(c) {
  await c.kafkaSh('stop', '--kill').catch(() => {});
  rmSync(c.home, { recursive: true, force: true });
  clusters.delete(c);
}

/** Node names whose frames land on distinct partitions (librdkafka: crc32(key) % n). */
function nodeNames(id, partitions) {
  const names = [];
  const used = new Set();
  for (let i = 0; names.length < NODES; i++) {
    const name = `bench-cl-${id}-${i}`;
    const p = crc32(name) % partitions;
    if (!used.has(p)) {
      used.add(p);
      names.push(name);
    }
  }
  return names;
}

function startFeatures(c, group, i) {
  const p = spawn(
    process.execPath,
    [
      join(repoRoot, 'bin', 'tracefeed.js'),
      'features',
      '--brokers',
      c.brokers.join(','),
      '--group',
      group,
      '--window-seconds',
      '1',
      '--lateness-seconds',
      '1',
      // Long enough that a partition stalled by the broker kill is not closed as idle
      // (its events would then count as late); the load's end closes after it.
      '--idle-close-seconds',
      '10',
      '--port',
      '0',
    ],
    {
      env: { ...c.env, TRACEFEED_LOG_LEVEL: process.env.TRACEFEED_BENCH_STAGE_LOG ?? 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  p.label = `features-${i}`;
  // At its end the member prints its stats (one JSON line).
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  p.stats = () => {
    try {
      return JSON.parse(out.trim().split('\n').at(-1));
    } catch {
      return undefined;
    }
  };
  children.add(p);
  return p;
}

async function startAgent(c, name, loopPid) {
  const a = new LineChild(
    process.execPath,
    [
      join(repoRoot, 'bench', 'lib', 'agent-child.mjs'),
      JSON.stringify({
        syscalls: { enabled: true, slow_ms: 0.000001, filters: { pid: { allow: [loopPid] } } },
      }),
      JSON.stringify({ nodeName: name, families: ['syscalls'] }),
    ],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...c.env, TRACEFEED_BROKERS: c.brokers.join(','), TRACEFEED_LOG_LEVEL: 'error' },
    },
  );
  children.add(a.proc);
  const first = await a.next();
  if (first !== 'ready') throw new Error(`agent child: unexpected "${first}"`);
  return a;
}

/** Counts the events of `nodes` in committed feature windows, as they arrive. */
async function startCounter(c, nodes) {
  const kafka = kafkaClient({
    role: 'agent',
    clientId: 'tf-bench-cluster',
    brokers: c.brokers,
    logLevel: logLevel.NOTHING,
    retry: { retries: 20, initialRetryTime: 200 },
  });
  const consumer = kafka.consumer({
    groupId: `tracefeed-bench-cluster-${randomUUID()}`,
    maxWaitTimeInMs: 100,
  });
  const ours = new Set(nodes);
  // Events by the time their feature window was written (the record's CreateTime, set by
  // the feature stage's producer), in SAMPLE_MS buckets: the reader's own pace does not count.
  const counted = {
    events: 0,
    rows: 0,
    records: 0,
    redelivered: 0,
    windowsTwice: 0,
    buckets: new Map(),
  };
  await consumer.connect();
  await consumer.subscribe({ topic: Topics.features, fromBeginning: true });
  const seen = new Set(); // partition:offset, for what this reader is handed again
  const windows = new Set(); // ce_id of every window record: one written twice shows here
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const at = `${partition}:${message.offset}`;
      if (seen.has(at)) {
        counted.redelivered++;
        return;
      }
      seen.add(at);
      const id = message.headers?.ce_id?.toString();
      if (id !== undefined) {
        if (windows.has(id)) counted.windowsTwice++;
        windows.add(id);
      }
      counted.records++;
      const t = tableFromIPC(message.value);
      const node = t.getChild('node');
      const probe = t.getChild('probe');
      const events = t.getChild('events');
      let n = 0;
      for (let i = 0; i < t.numRows; i++) {
        // The load's syscall records (the nodes' cgroup-signal rows are not what they emitted).
        if (!ours.has(node.get(i)) || probe.get(i) !== 'syscalls') continue;
        counted.rows++;
        n += Number(events.get(i));
      }
      counted.events += n;
      const b = Math.floor(Number(message.timestamp) / SAMPLE_MS);
      counted.buckets.set(b, (counted.buckets.get(b) ?? 0) + n);
    },
  });
  return { counted, stop: () => consumer.disconnect() };
}

/** One run: `count` brokers; with `kill`, SIGKILL a broker after the steady phase. */
async function run(count, kill) {
  const id = randomUUID().slice(0, 6);
  const c = await startCluster(count);
  process.env.TRACEFEED_HOME = c.home; // this process's clients use the cluster's passwords
  const quiet = createLogger('bench-cluster', 'error');
  const layout = await ensureTopics(c.brokers, quiet);
  const nodes = nodeNames(id, layout.partitions);
  const group = `tracefeed-features-bench-${id}`;
  const stages = Array.from({ length: STAGES }, (_, i) => startFeatures(c, group, i));
  const counter = await startCounter(c, nodes);
  const loops = [];
  const agents = [];
  for (const name of nodes) {
    const loop = await startSyscallLoop();
    loops.push(loop);
    agents.push(await startAgent(c, name, loop.pid));
  }
  const admin = kafkaClient({
    role: 'admin',
    clientId: 'tf-bench-cluster-admin',
    brokers: c.brokers,
    logLevel: logLevel.NOTHING,
    retry: { retries: 20, initialRetryTime: 200 },
  }).admin();
  await admin.connect();
  // Both members in the group before the load starts.
  for (let i = 0; i < 120; i++) {
    const g = await admin.describeGroups([group]).catch(() => undefined);
    if (g?.groups[0]?.members.length === STAGES && g.groups[0].state === 'Stable') break;
    await sleep(250);
  }
  const total = WARMUP + STEADY + (kill ? AFTER : 0);
  log(
    `${count} broker(s): ${NODES} nodes x ${RATE} events/s, ${STAGES} feature-stage members; ${total} s of load`,
  );
  const paced = loops.map((l) => l.pace(RATE * total, RATE));
  const t0 = Date.now();
  let killAt;
  let victim;
  await sleep((WARMUP + STEADY) * 1000);
  if (kill) {
    const offsets = await admin.fetchTopicOffsets(Topics.events);
    const busiest = offsets.sort((a, b) => Number(BigInt(b.high) - BigInt(a.high)))[0].partition;
    const meta = await admin.fetchTopicMetadata({ topics: [Topics.events] });
    victim = meta.topics[0].partitions.find((p) => p.partitionId === busiest).leader;
    process.kill(c.pid(victim), 'SIGKILL');
    killAt = (Date.now() - t0) / 1000;
    log(
      `SIGKILL broker ${victim} (leader of events partition ${busiest}) at ${killAt.toFixed(1)} s`,
    );
    await sleep(AFTER * 1000);
  }
  await Promise.all(paced);
  // The node counts an event when it drains it from the ring: let the last ones through.
  await sleep(1500);
  const agentStats = [];
  for (const a of agents) agentStats.push(JSON.parse(await a.send('stats')));
  const emitted = agentStats.reduce((a, s) => a + (s.eventsByType['syscall.slow'] ?? 0), 0);
  // Every event in a committed window (or 60 s): the last windows close after the
  // lateness and idle-close times, a backlog after the kill takes longer.
  const drainFrom = Date.now();
  let last = { events: -1, at: Date.now() };
  while (counter.counted.events < emitted && Date.now() - drainFrom < DRAIN * 1000) {
    await sleep(250);
    if (counter.counted.events !== last.events)
      last = { events: counter.counted.events, at: Date.now() };
    // Nothing new for longer than the lateness and idle-close times (1 + 10 s): the rest
    // was counted as late by the stage, or is not coming.
    else if (Date.now() - last.at > 14_000) break;
  }
  const drainSeconds = (Date.now() - drainFrom) / 1000;
  for (const a of agents) {
    await a.send('stop');
    children.delete(a.proc);
  }
  for (const l of loops) await l.close();
  await Promise.all(
    stages.map((s) => {
      const exited = new Promise((r) => s.once('exit', r));
      s.kill('SIGTERM');
      return Promise.race([exited, sleep(15_000)]).then(() => children.delete(s));
    }),
  );
  const stageStats = stages.map((s) => s.stats()).filter(Boolean);
  await counter.stop();
  await admin.disconnect();
  await stopCluster(c);

  // Events per second written into windows, over 2 s, every SAMPLE_MS (s from the load's start).
  const startBucket = Math.floor(t0 / SAMPLE_MS);
  const per = (fromS, toS) => {
    let n = 0;
    for (
      let b = startBucket + Math.round(fromS * (1000 / SAMPLE_MS));
      b < startBucket + Math.round(toS * (1000 / SAMPLE_MS));
      b++
    )
      n += counter.counted.buckets.get(b) ?? 0;
    return n / (toS - fromS);
  };
  const steady = per(WARMUP, WARMUP + STEADY);
  const result = {
    brokers: count,
    rateOffered: RATE * NODES,
    steady,
    emitted,
    counted: counter.counted.events,
    drainSeconds,
    framesDropped: agentStats.reduce((a, s) => a + s.publisher.framesDropped, 0),
    windowsTwice: counter.counted.windowsTwice,
    readerRedelivered: counter.counted.redelivered,
    stageLate: stageStats.reduce((a, s) => a + (s.late ?? 0), 0),
    stageAborted: stageStats.reduce((a, s) => a + (s.transactionsAborted ?? 0), 0),
    stageStats: stageStats.length,
    sendErrors: agentStats.reduce((a, s) => a + s.publisher.sendErrors, 0),
  };
  if (kill) {
    // The dip: the lowest 2-s rate after the kill. The recovery: how long until the
    // windows hold what the paced load put in since the kill, give or take one second of
    // events (the backlog the kill caused is worked off).
    const offered = RATE * NODES;
    const rates = [];
    let written = 0;
    let worst = { backlog: 0, t: 0 };
    let caughtUp;
    const step = SAMPLE_MS / 1000;
    for (let t = killAt; t <= killAt + AFTER + DRAIN; t += step) {
      written += per(t - step, t) * step;
      const backlog = offered * (Math.min(t, killAt + AFTER) - killAt) - written;
      if (backlog > worst.backlog) worst = { backlog, t: t - killAt };
      if (caughtUp === undefined && t - killAt > worst.t && worst.backlog > 0 && backlog <= offered)
        caughtUp = t - killAt;
      if (caughtUp !== undefined && backlog > offered) caughtUp = undefined;
      if (t <= killAt + AFTER) rates.push({ t: t - killAt, r: per(t - 2, t) });
    }
    const after = rates.filter((x) => x.t >= 0.5);
    const min = after.reduce((m, x) => (x.r < m.r ? x : m), after[0]);
    result.victim = victim;
    result.minRate = min.r;
    result.minAt = min.t;
    result.maxBacklog = worst.backlog;
    result.maxBacklogAt = worst.t;
    result.recoverySeconds = worst.backlog <= offered ? 0 : caughtUp;
    result.series = rates
      .filter((_, i) => i % 4 === 0)
      .map((x) => [+x.t.toFixed(1), Math.round(x.r)]);
  }
  return result;
}

const results = [];
try {
  results.push(await run(3, true));
  if (SINGLE) results.push(await run(1, false));
} finally {
  cleanup();
}

const fmt = (x) => (x === undefined ? '-' : Math.round(x).toLocaleString('en-US'));
if (JSON_OUT) {
  process.stdout.write(`${JSON.stringify({ machine: machine(), results }, null, 2)}\n`);
} else {
  const t = new Table({
    head: [
      'brokers',
      'offered ev/s',
      'sustained ev/s',
      'min 2-s ev/s after kill',
      'dip',
      'largest backlog',
      'caught up after',
      'in windows / emitted',
      'frames dropped',
      'windows written twice',
      'late (stage)',
      'tx aborted',
    ],
  });
  for (const r of results)
    t.push([
      r.brokers,
      fmt(r.rateOffered),
      fmt(r.steady),
      r.minRate === undefined ? '-' : `${fmt(r.minRate)} at +${r.minAt.toFixed(1)} s`,
      r.minRate === undefined ? '-' : `${Math.round((1 - r.minRate / r.steady) * 100)} %`,
      r.maxBacklog === undefined
        ? '-'
        : `${fmt(r.maxBacklog)} ev (${(r.maxBacklog / r.rateOffered).toFixed(1)} s) at +${r.maxBacklogAt.toFixed(1)} s`,
      r.maxBacklog === undefined
        ? '-'
        : r.recoverySeconds === undefined
          ? `not within ${AFTER + DRAIN} s`
          : `${r.recoverySeconds.toFixed(1)} s`,
      `${fmt(r.counted)} / ${fmt(r.emitted)} (${r.drainSeconds.toFixed(1)} s after the load)`,
      fmt(r.framesDropped),
      fmt(r.windowsTwice),
      r.stageStats === STAGES ? fmt(r.stageLate) : '?',
      r.stageStats === STAGES ? fmt(r.stageAborted) : '?',
    ]);
  process.stdout.write(
    `cluster bench: ${NODES} node agents, ${STAGES} feature-stage members, 1-s windows; broker killed: the leader of the busiest events partition\n${t.toString()}\n`,
  );
  const k = results.find((r) => r.series);
  if (k)
    process.stdout.write(
      `2-s rate after the kill of broker ${k.victim} (s: events/s): ${k.series.map(([t, r]) => `${t}: ${fmt(r)}`).join(', ')}\n`,
    );
}
