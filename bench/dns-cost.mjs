#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
//
// Per-packet cost of the dns probe (bpf/dns.bpf.c): its two cgroup_skb
// programs run on every packet of every socket on the host, so what matters
// is (a) the cost on a packet that is not DNS (parse the IP/UDP header,
// return) and (b) the cost on a DNS query (parse the name, store it) and on
// its response (match, emit a record). Measured with kernel.bpf_stats
// (run_time_ns / run_cnt) over loopback UDP traffic this bench makes:
//   - 'udp, not dns': datagrams to a high port;
//   - 'dns': queries to a responder bound on a 127.53.x.y address, port 53,
//     each answered at once (ping-pong, 32 in flight).
// The programs also see the host's other traffic during a phase; run_cnt
// shows how much there was.
//
//   - 'lookup counter': UDP connect() calls to port 53 and to a high port
//     (cgroup/connect4, the part of dns that runs while the family is off).
//
// usage: sudo node bench/dns-cost.mjs [--json] [--quick] [--packets=N] [--queries=N] [--connects=N]

import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import {
  QUICK,
  argNum,
  bpfDelta,
  bpfProgStats,
  enableBpfStats,
  enabledConfig,
  ensureBuilt,
  log,
  machine,
  report,
  repoRoot,
  restoreBpfStats,
  u32,
} from './lib/common.mjs';

const PACKETS = argNum('packets', QUICK ? 20_000 : 200_000);
const QUERIES = argNum('queries', QUICK ? 2_000 : 20_000);

ensureBuilt();
const addon = (await import(join(repoRoot, 'native', 'index.js'))).loadNative();

function cgroup2Root() {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, dir, type] = line.split(' ');
    if (type === 'cgroup2') return dir;
  }
  throw new Error('no cgroup v2 mount');
}

function query(id, i) {
  const labels = [`bench-${i}`, 'tf', 'test'];
  const name = Buffer.concat([
    ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
    Buffer.from([0]),
  ]);
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(0x0100, 2); // RD
  h.writeUInt16BE(1, 4); // QDCOUNT
  return Buffer.concat([h, name, Buffer.from([0, 1, 0, 1])]); // A, IN
}

const bind = (sock, port, addr) => new Promise((r) => sock.bind(port, addr, () => r()));
const send = (sock, buf, port, addr) =>
  new Promise((res, rej) => sock.send(buf, port, addr, (e) => (e ? rej(e) : res())));

// The node agent's ring settings (DEFAULT_AGENT_OPTIONS): 4 MiB ring, wake-up every 256 KiB.
const obj = new addon.BpfObject(join(repoRoot, 'bpf', '.output', 'dns.bpf.o'), {
  ringbufBytes: { rb: 4 * 1024 * 1024 },
  consts: { wakeup_bytes: 256n * 1024n },
});
obj.load();
obj.mapUpdate('tf_config', u32(0), enabledConfig(obj));
let records = 0;
obj.startRing('rb', { flushMs: 20 }, (_batch, n) => (records += n));
const root = cgroup2Root();
for (const p of obj.programs()) obj.attach(p.name, root);
const ids = new Map(obj.programs().map((p) => [p.name, p.id]));
enableBpfStats();

function phase(before, after) {
  const row = {};
  for (const [name, id] of ids) {
    const d = bpfDelta(before, after, [id]);
    row[name] = { runCnt: d.runCnt, nsPerRun: d.runCnt ? d.runTimeNs / d.runCnt : NaN };
  }
  return row;
}

// Phase 1: UDP that is not DNS.
const sink = createSocket('udp4');
await bind(sink, 0, '127.0.0.1');
const sinkPort = sink.address().port;
let sunk = 0;
sink.on('message', () => sunk++);
const tx = createSocket('udp4');
await bind(tx, 0, '127.0.0.1');
const payload = Buffer.alloc(64, 7);
log(`udp: ${PACKETS} datagrams to 127.0.0.1:${sinkPort}`);
let s0 = bpfProgStats();
for (let i = 0; i < PACKETS; i += 64) {
  const batch = [];
  for (let j = 0; j < 64 && i + j < PACKETS; j++)
    batch.push(send(tx, payload, sinkPort, '127.0.0.1'));
  await Promise.all(batch);
}
await new Promise((r) => setTimeout(r, 200));
const udp = phase(s0, bpfProgStats());

// Phase 2: DNS queries and answers on port 53.
const addr = `127.53.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
const server = createSocket('udp4');
await bind(server, 53, addr);
server.on('message', (msg, rinfo) => {
  const r = Buffer.from(msg);
  r[2] = 0x81; // QR, RD
  r[3] = 0x83; // RA, NXDOMAIN
  server.send(r, rinfo.port, rinfo.address);
});
const client = createSocket('udp4');
await bind(client, 0, '127.0.0.1');
let answered = 0;
let next = 0;
const done = new Promise((resolve) => {
  client.on('message', () => {
    answered++;
    if (answered === QUERIES) resolve();
    else if (next < QUERIES) fire();
  });
});
function fire() {
  const i = next++;
  client.send(query(i & 0xffff, i), 53, addr);
}
log(`dns: ${QUERIES} queries to ${addr}:53`);
s0 = bpfProgStats();
for (let k = 0; k < 32 && next < QUERIES; k++) fire();
await done;
await new Promise((r) => setTimeout(r, 300));
const dns = phase(s0, bpfProgStats());

// Phase 3: the lookup counter (cgroup/connect4): UDP connect() to port 53 (counted)
// and to a high port (returned at the port check).
const CONNECTS = argNum('connects', QUICK ? 2_000 : 20_000);
async function connects(port) {
  const before = bpfProgStats();
  for (let i = 0; i < CONNECTS; i += 64) {
    const batch = [];
    for (let j = 0; j < 64 && i + j < CONNECTS; j++) {
      const s = createSocket('udp4');
      batch.push(
        new Promise((res, rej) =>
          s.connect(port, addr, (e) => {
            s.close();
            if (e) rej(e);
            else res();
          }),
        ),
      );
    }
    await Promise.all(batch);
  }
  return phase(before, bpfProgStats());
}
log(`lookup counter: ${CONNECTS} UDP connects to ${addr}:53, then to ${addr}:${sinkPort}`);
const lookups53 = await connects(53);
const lookupsOther = await connects(sinkPort);
restoreBpfStats();
const counts = obj.sumPercpuCounters('tf_dns_counts').map(Number);
const drops = obj
  .sumPercpuCounters('tf_drops')
  .map(Number)
  .slice(6 * 4, 6 * 4 + 4); // TF_PROBE_DNS
const emitted = Number(obj.sumPercpuCounters('tf_emitted')[6]);
obj.stopRing();
await new Promise((r) => setTimeout(r, 100));
obj.close();
for (const s of [sink, tx, server, client]) s.close();

const eg = 'tf_dns_egress';
const ing = 'tf_dns_ingress';
const c4 = 'tf_dns_connect4';
report({
  bench: 'dns-cost.mjs',
  machine: machine(),
  udp,
  dns,
  records,
  emitted,
  drops,
  counts: { queries: counts[0], unmatched: counts[1], malformed: counts[2], replaced: counts[3] },
  target: {
    udp_ns_per_packet: (udp[eg].nsPerRun + udp[ing].nsPerRun) / 2,
    dns_query_ns: dns[eg].nsPerRun,
    dns_response_ns: dns[ing].nsPerRun,
    lookup_counter_ns: lookups53[c4].nsPerRun,
    lookup_counter_other_port_ns: lookupsOther[c4].nsPerRun,
  },
  tables: [
    {
      title: `dns probe: ns per program run (kernel.bpf_stats), ${PACKETS} udp datagrams, ${QUERIES} dns queries`,
      head: ['traffic', 'egress runs', 'egress ns/run', 'ingress runs', 'ingress ns/run'],
      rows: [
        ['udp, not dns', udp[eg].runCnt, udp[eg].nsPerRun, udp[ing].runCnt, udp[ing].nsPerRun],
        ['dns query/answer', dns[eg].runCnt, dns[eg].nsPerRun, dns[ing].runCnt, dns[ing].nsPerRun],
      ],
      notes: [
        'dns phase: egress runs once per query (parse + store) and once per answer (server side, returned early);',
        'ingress runs once per query (server side, early) and once per answer (match + emit).',
        `lookup counter (cgroup/connect4): ${lookups53[c4].runCnt} runs at ${lookups53[c4].nsPerRun.toFixed(1)} ns for connects to port 53, ${lookupsOther[c4].runCnt} at ${lookupsOther[c4].nsPerRun.toFixed(1)} ns for connects elsewhere`,
        `records emitted by the kernel ${emitted}, read from the ring ${records}, ring full ${drops[0]}; queries stored ${counts[0]}, unmatched responses ${counts[1]}, malformed ${counts[2]}, replaced ${counts[3]}`,
      ],
    },
  ],
});
