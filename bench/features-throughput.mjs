#!/usr/bin/env node
// Feature stage throughput: decode + window + aggregate on recorded real frames,
// memory over a long run, and the time to build and serialise one Arrow batch of
// 100,000 rows. Prints a table (or --json). Uses the compiled project (dist/).
//
//   node bench/features-throughput.mjs [--seconds 60] [--record-seconds 8] [--json]
//
// Frames are recorded first from the real node agent on this host (process and
// tcp probes, with process churn and loopback TCP as the workload), as a
// consumer of tracefeed.events.v1 receives them (Kafka must be up: bash
// infra/up.sh), and saved to .tracefeed/bench/frames.bin; later runs reuse
// them (--rerecord to refresh).
// Replays shift each pass forward in event time so windows keep closing, as a
// live stream would.
//
// Builds what it needs first (BPF objects, the native addon, dist/: ensureBuilt),
// so it runs from a fresh clone with Kafka up and root.
import { spawn } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { logLevel } from 'kafkajs';
import { ensureBuilt } from './lib/common.mjs';

const root = new URL('..', import.meta.url).pathname;
const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    'record-seconds': { type: 'string', default: '8' },
    rerecord: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
ensureBuilt();
const dist = (p) => import(join(root, 'dist', p));
const { NodeAgent, DEFAULT_AGENT_OPTIONS, decodeFrameHeader } = await dist('ingest/index.js');
const { WindowAggregator, buildWindowBatch, featureSchema, toIpcStream } =
  await dist('features/index.js');
const { createLogger } = await dist('common/logger.js');
const { Topics, brokersFrom, kafkaClient } = await dist('common/kafka.js');
const brokers = brokersFrom(process.env.TRACEFEED_BROKERS);

const framesPath = join(root, '.tracefeed', 'bench', 'frames.bin');

/** Frames of one node as a consumer of the events topic receives them. */
async function consumeNode(node) {
  const frames = [];
  const kafka = kafkaClient({
    role: 'agent',
    clientId: 'tf-bench-features',
    brokers,
    logLevel: logLevel.NOTHING,
  });
  const consumer = kafka.consumer({
    groupId: `tracefeed-bench-${randomUUID()}`,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  await consumer.subscribe({ topic: Topics.events, fromBeginning: false });
  const joined = new Promise((r) => consumer.on(consumer.events.GROUP_JOIN, r));
  await consumer.run({
    eachMessage: async ({ message }) => {
      if (message.key?.toString() === node && message.value)
        frames.push(Buffer.from(message.value));
    },
  });
  await joined;
  return { frames, stop: () => consumer.disconnect() };
}

async function record(seconds) {
  const nodeName = `bench-features-${randomUUID().slice(0, 8)}`;
  const consumer = await consumeNode(nodeName);
  const frames = consumer.frames;
  const agent = new NodeAgent({
    ...DEFAULT_AGENT_OPTIONS,
    nodeName,
    brokers,
    lingerMs: 100,
    log: createLogger('bench', 'silent'),
    families: ['process', 'tcp'],
  });
  agent.start();
  const server = createServer((s) => s.on('data', () => {}).on('end', () => s.end()));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  const until = Date.now() + seconds * 1000;
  const churn = spawn('sh', [
    '-c',
    `end=$(( $(date +%s) + ${seconds} )); while [ $(date +%s) -lt $end ]; do /bin/true; done`,
  ]);
  const churned = new Promise((r) => churn.on('exit', r));
  while (Date.now() < until) {
    await new Promise((r) => {
      const c = connect(port, '127.0.0.1', () => c.end(Buffer.alloc(1000)));
      c.on('close', r);
      c.on('error', r);
    });
  }
  await churned;
  const { publisher } = await agent.stop(10_000);
  server.close();
  const deadline = Date.now() + 30_000;
  while (frames.length < publisher.framesSent && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 200));
  await consumer.stop();
  if (frames.length < publisher.framesSent)
    throw new Error(`recorded ${frames.length} of the ${publisher.framesSent} frames sent`);
  return frames;
}

let frames;
if (!args.rerecord && existsSync(framesPath)) {
  const buf = readFileSync(framesPath);
  frames = [];
  for (let off = 0; off < buf.length;) {
    const n = buf.readUInt32LE(off);
    frames.push(buf.subarray(off + 4, off + 4 + n));
    off += 4 + n;
  }
} else {
  frames = await record(Number(args['record-seconds']));
  mkdirSync(join(root, '.tracefeed', 'bench'), { recursive: true });
  writeFileSync(
    framesPath,
    Buffer.concat(frames.flatMap((f) => [Buffer.from(new Uint32Array([f.length]).buffer), f])),
  );
}
const headers = frames.map((f) => decodeFrameHeader(f));
const eventsPerPass = headers.reduce((a, h) => a + h.eventCount, 0);
const bytesPerPass = frames.reduce((a, f) => a + f.length, 0);
if (eventsPerPass === 0) throw new Error('no events recorded');
// Span of the recording in event time, to shift each pass past the previous one.
const spanMs = 20_000;

// --- decode + window + aggregate ---------------------------------------------------------
const agg = new WindowAggregator({
  windowMs: 10_000,
  allowedLatenessMs: 0,
  idleCloseMs: 0,
  maxClockSkewMs: Number.MAX_SAFE_INTEGER,
  maxFutureSkewMs: Number.MAX_SAFE_INTEGER,
});
const copies = frames.map((f) => Buffer.from(f));
const seconds = Number(args.seconds);
const deadline = performance.now() + seconds * 1000;
let pass = 0;
let events = 0;
let busyMs = 0;
const mem = [];
let nextSample = performance.now();
let rows = 0;
while (performance.now() < deadline) {
  // Shift event time: the boot time in each frame header moves on by one span per pass.
  const shiftNs = BigInt(pass) * BigInt(spanMs) * 1_000_000n;
  for (let i = 0; i < copies.length; i++)
    copies[i].writeBigUInt64LE(headers[i].bootTimeNs + shiftNs, 16);
  const t0 = performance.now();
  for (const f of copies) events += agg.ingestFrame(f, 0, pass);
  for (const w of agg.closeDue(Number.MAX_SAFE_INTEGER, false)) rows += w.rows;
  busyMs += performance.now() - t0;
  pass++;
  if (performance.now() >= nextSample) {
    global.gc?.();
    const m = process.memoryUsage();
    mem.push({
      t: Math.round((seconds * 1000 - (deadline - performance.now())) / 1000),
      rssMiB: m.rss / 2 ** 20,
      heapMiB: m.heapUsed / 2 ** 20,
    });
    nextSample = performance.now() + Math.max(1000, (seconds * 1000) / 10);
  }
}
const eventsPerSecond = events / (busyMs / 1000);

// --- Arrow batch of 100,000 rows ------------------------------------------------------------
const N = 100_000;
// Column counts and the probe-stats block from the code, not copies: the window is the shape
// the aggregator closes.
const { NSUM, NHIST, NPS } = await dist('features/columns.js');
const { PROBE_MAX } = await dist('wire/layout.js');
const w = {
  node: 'bench-node',
  windowStartMs: Date.now() - 10_000,
  windowEndMs: Date.now(),
  rows: N,
  cgroupIds: Float64Array.from({ length: N }, (_, i) => 1000 + (i % 5000)),
  probeIds: Uint8Array.from({ length: N }, (_, i) => i % 5),
  sums: Float64Array.from({ length: N * NSUM }, (_, i) => i % 97),
  hists: Float64Array.from({ length: N * NHIST }, (_, i) => (i % 7 === 0 ? 3 : 0)),
  weightMax: new Float64Array(N).fill(1),
  probeStats: new Float64Array(PROBE_MAX * NPS),
  partition: 0,
  minOffsets: new Map(),
};
const names = new Map(
  Array.from({ length: 5000 }, (_, i) => [1000 + i, `/kubepods.slice/pod-${i}/container`]),
);
const schema = featureSchema(10_000);
const buildMs = [];
const serialiseMs = [];
let ipcBytes = 0;
for (let i = 0; i < 7; i++) {
  const t0 = performance.now();
  const { batch } = buildWindowBatch(w, names, schema);
  const t1 = performance.now();
  const bytes = toIpcStream(schema, [batch]);
  const t2 = performance.now();
  ipcBytes = bytes.length;
  buildMs.push(t1 - t0);
  serialiseMs.push(t2 - t1);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const result = {
  recorded: {
    frames: frames.length,
    events: eventsPerPass,
    bytes: bytesPerPass,
    bytesPerEvent: bytesPerPass / eventsPerPass,
  },
  throughput: {
    seconds,
    passes: pass,
    events,
    eventsPerSecond: Math.round(eventsPerSecond),
    rowsEmitted: rows,
    late: agg.counters.late,
  },
  memory: {
    samples: mem,
    firstRssMiB: mem[0]?.rssMiB,
    lastRssMiB: mem.at(-1)?.rssMiB,
    maxHeapMiB: Math.max(...mem.map((m) => m.heapMiB)),
  },
  arrowBatch100k: {
    rows: N,
    buildMsMedian: median(buildMs),
    serialiseMsMedian: median(serialiseMs),
    ipcBytes,
  },
  targets: { eventsPerSecond: 5_000_000 },
};
if (args.json) {
  console.log(JSON.stringify(result, null, 2));
} else {
  const f = (n, d = 1) => Number(n).toFixed(d);
  console.log(
    `recorded real frames: ${result.recorded.frames} frames, ${result.recorded.events} events, ${f(result.recorded.bytesPerEvent)} bytes/event`,
  );
  console.log(
    `decode + window + aggregate: ${result.throughput.eventsPerSecond.toLocaleString()} events/s on one core (target >= 5,000,000) over ${seconds} s, ${pass} passes, ${events.toLocaleString()} events, ${rows} rows`,
  );
  console.log(
    `memory: rss ${f(result.memory.firstRssMiB)} -> ${f(result.memory.lastRssMiB)} MiB, heap max ${f(result.memory.maxHeapMiB)} MiB (${mem.length} samples)`,
  );
  console.log(
    `arrow batch of 100,000 rows: build ${f(result.arrowBatch100k.buildMsMedian)} ms, serialise ${f(result.arrowBatch100k.serialiseMsMedian)} ms, ${(ipcBytes / 2 ** 20).toFixed(1)} MiB IPC (medians of 7)`,
  );
}
