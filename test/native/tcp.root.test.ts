// SPDX-License-Identifier: Apache-2.0
//
// bpf/tcp.bpf.c against real TCP traffic: loopback connections made by this
// process, a refused connect, and a lossy veth link between two network
// namespaces created (and removed) here. Needs root, the built probe
// (`make -C bpf .output/tcp.bpf.o`) and the addon (`node native/build.mjs`).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTracefs, waitFor } from '../helpers/native-test.js';

import type * as Native from '../../native/index.js';
import { encodeProbeConfig } from '../../src/ingest/probe-controller.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const probePath = path.join(root, 'bpf/.output/tcp.bpf.o');
const addonPath = path.join(root, 'native/build/tracefeed.node');
const isRoot = process.getuid?.() === 0;

// events.h, duplicated on purpose: the test checks the wire format.
const OP = {
  CONNECT: 3,
  ACCEPT: 4,
  CLOSE: 5,
  CONNECT_FAIL: 6,
  RETRANSMIT: 7,
  RESET_SENT: 8,
  RESET_RECV: 9,
} as const;
const TF_PROBE_TCP = 1;
const TF_DROP_FILTERED = 1;
const TF_FILTER_ALLOW_PORT = 0x0004;
const TF_SET_ALLOW = 0x1;
const TCP_ESTABLISHED = 1;
const TCP_SYN_SENT = 2;
const TCP_SYN_RECV = 3;
const TCP_CLOSE = 7;
const BPF_MAP_TYPE_ARRAY = 2;
// tcp.bpf.c's socket table: sets of TF_SK_WAYS u64 keys (0: free), then the ways' info.
const TF_SK_WAYS = 8;
const AF_INET = 2;
const AF_INET6 = 10;
const HDR_SIZE = 24;
const TCP_EVENT_SIZE = 120;

interface TcpRecord {
  op: number;
  flags: number;
  hdrPad: number;
  size: number;
  generation: number;
  weight: number;
  pid: number;
  family: number;
  sport: number;
  dport: number;
  oldstate: number;
  newstate: number;
  pad: number;
  cgroupId: bigint;
  durationNs: bigint;
  bytesSent: bigint;
  bytesReceived: bigint;
  saddr: Buffer;
  daddr: Buffer;
  comm: string;
  commRaw: Buffer;
}

function decodeBatch(batch: Buffer): TcpRecord[] {
  const out: TcpRecord[] = [];
  const dv = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  let off = 0;
  while (off < batch.length) {
    const size = dv.getUint32(off + 4, true);
    expect(size).toBe(TCP_EVENT_SIZE);
    const b = off + HDR_SIZE;
    const commRaw = Buffer.from(batch.subarray(b + 80, b + 96));
    const nul = commRaw.indexOf(0);
    out.push({
      op: dv.getUint8(off),
      flags: dv.getUint8(off + 1),
      hdrPad: dv.getUint16(off + 2, true),
      size,
      generation: dv.getUint32(off + 16, true),
      weight: dv.getUint32(off + 20, true),
      pid: dv.getUint32(b, true),
      family: dv.getUint16(b + 4, true),
      sport: dv.getUint16(b + 6, true),
      dport: dv.getUint16(b + 8, true),
      oldstate: dv.getUint8(b + 10),
      newstate: dv.getUint8(b + 11),
      pad: dv.getUint32(b + 12, true),
      cgroupId: dv.getBigUint64(b + 16, true),
      durationNs: dv.getBigUint64(b + 24, true),
      bytesSent: dv.getBigUint64(b + 32, true),
      bytesReceived: dv.getBigUint64(b + 40, true),
      saddr: Buffer.from(batch.subarray(b + 48, b + 64)),
      daddr: Buffer.from(batch.subarray(b + 64, b + 80)),
      comm: commRaw.subarray(0, nul < 0 ? 16 : nul).toString('utf8'),
      commRaw,
    });
    off += size;
  }
  expect(off).toBe(batch.length);
  return out;
}

const V4_LOOPBACK = Buffer.concat([Buffer.from([127, 0, 0, 1]), Buffer.alloc(12)]);
const V6_LOOPBACK = Buffer.concat([Buffer.alloc(15), Buffer.from([1])]);

function v4(a: string): Buffer {
  return Buffer.concat([Buffer.from(a.split('.').map(Number)), Buffer.alloc(12)]);
}

interface Exchange {
  serverPort: number;
  clientPort: number;
}

// Client sends `up` bytes, the server answers `down` bytes once it has them
// all and half-closes; the client closes on the server's FIN.
async function exchange(host: string, up: number, down: number): Promise<Exchange> {
  const server = net.createServer((s) => {
    let got = 0;
    s.on('data', (d) => {
      got += d.length;
      if (got === up) s.end(Buffer.alloc(down, 0x5a));
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const serverPort = (server.address() as net.AddressInfo).port;
  let clientPort = 0;
  let received = 0;
  await new Promise<void>((resolve, reject) => {
    const c = net.connect(serverPort, host, () => {
      clientPort = c.localPort!;
      c.write(Buffer.alloc(up, 0xa5));
    });
    c.on('data', (d) => (received += d.length));
    c.on('end', () => c.end());
    c.on('close', () => resolve());
    c.on('error', reject);
  });
  await new Promise<void>((r) => server.close(() => r()));
  expect(received).toBe(down);
  return { serverPort, clientPort };
}

// A port nobody listens on: bind an ephemeral one, then release it.
async function closedPort(host: string): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, host, r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe.skipIf(!isRoot)('tcp probe (root)', () => {
  let native: Native.NativeAddon;
  let obj: Native.BpfObject;
  const records: TcpRecord[] = [];
  let generation = 0;

  function setConfig(opts: { filterMask?: number; minDurationNs?: bigint } = {}): number {
    generation++;
    const v = encodeProbeConfig({
      enabled: true,
      generation,
      filter_mask: opts.filterMask ?? 0,
      min_duration_ns: opts.minDurationNs ?? 0n,
    });
    obj.mapUpdate('tf_config', Buffer.alloc(4), v);
    return generation;
  }

  function filteredDrops(): bigint {
    return obj.sumPercpuCounters('tf_drops')[TF_PROBE_TCP * 4 + TF_DROP_FILTERED]!;
  }

  const between = (r: TcpRecord, a: number, b: number) =>
    (r.sport === a && r.dport === b) || (r.sport === b && r.dport === a);

  beforeAll(async () => {
    if (!existsSync(probePath)) throw new Error(`${probePath} missing: run \`make -C bpf\` first`);
    if (!existsSync(addonPath))
      throw new Error(`${addonPath} missing: run \`node native/build.mjs\` first`);
    ensureTracefs();
    native = (await import('../../native/index.js')).loadNative();
    obj = new native.BpfObject(probePath, {
      ringbufBytes: { rb: 1 << 22 },
      consts: { wakeup_bytes: 1n },
    });
    obj.load();
    for (const p of obj.programs()) obj.attach(p.name);
    setConfig();
    obj.startRing('rb', { flushMs: 10 }, (batch) => records.push(...decodeBatch(batch)));
  });

  afterAll(() => {
    obj?.close();
  });

  // Sockets the table holds now: non-zero keys over every set.
  function tableOccupancy(): number {
    const info = obj.maps().find((m) => m.name === 'tf_tcp_socks')!;
    const { values, count } = obj.mapDump('tf_tcp_socks');
    let used = 0;
    for (let i = 0; i < count; i++)
      for (let w = 0; w < TF_SK_WAYS; w++)
        if (values.readBigUInt64LE(i * info.valueSize + w * 8) !== 0n) used++;
    return used;
  }

  it('attaches its four BTF tracepoints', () => {
    const progs = obj.programs();
    expect(progs.map((p) => p.section).sort()).toEqual([
      'tp_btf/inet_sock_set_state',
      'tp_btf/tcp_receive_reset',
      'tp_btf/tcp_retransmit_skb',
      'tp_btf/tcp_send_reset',
    ]);
    for (const p of progs) expect(p.attached).toBe(true);
  });

  for (const [family, host, addr] of [
    [AF_INET, '127.0.0.1', V4_LOOPBACK],
    [AF_INET6, '::1', V6_LOOPBACK],
  ] as const) {
    it(`reports connect, accept and two closes with exact bytes (${host})`, async () => {
      const gen = generation;
      const { serverPort, clientPort } = await exchange(host, 100_000, 25_000);
      const ours = () => records.filter((r) => between(r, serverPort, clientPort));
      const done = await waitFor(() => ours().filter((r) => r.op === OP.CLOSE).length >= 2, 5000);
      expect(done, 'two close records').toBe(true);
      const mine = ours();

      for (const r of mine) {
        expect(r.family).toBe(family);
        expect(r.saddr.equals(addr)).toBe(true);
        expect(r.daddr.equals(addr)).toBe(true);
        expect(r.hdrPad).toBe(0);
        expect(r.pad).toBe(0);
        expect(r.flags).toBe(0);
        expect(r.generation).toBe(gen);
        expect(r.weight).toBe(1);
        expect(r.cgroupId).toBeGreaterThan(0n);
        // No stale bytes after the comm's NUL.
        const nul = r.commRaw.indexOf(0);
        if (nul >= 0) expect(r.commRaw.subarray(nul).every((x) => x === 0)).toBe(true);
        if (r.pid === 0) expect(r.comm).toBe('');
      }

      const connect = mine.filter((r) => r.op === OP.CONNECT);
      expect(connect).toHaveLength(1);
      expect(connect[0]).toMatchObject({
        sport: clientPort,
        dport: serverPort,
        oldstate: TCP_SYN_SENT,
        newstate: TCP_ESTABLISHED,
        pid: process.pid,
        bytesSent: 0n,
        bytesReceived: 0n,
      });
      expect(connect[0]!.comm.length).toBeGreaterThan(0);
      expect(connect[0]!.durationNs).toBeGreaterThan(0n);

      const accept = mine.filter((r) => r.op === OP.ACCEPT);
      expect(accept).toHaveLength(1);
      expect(accept[0]).toMatchObject({
        sport: serverPort,
        dport: clientPort,
        oldstate: TCP_SYN_RECV,
        newstate: TCP_ESTABLISHED,
      });
      // The passive open completes in softirq; the child takes its listener's owner.
      expect(accept[0]!.pid).toBe(process.pid);
      expect(accept[0]!.comm).toBe(connect[0]!.comm);

      const closes = mine.filter((r) => r.op === OP.CLOSE);
      expect(closes).toHaveLength(2);
      const client = closes.find((r) => r.sport === clientPort)!;
      const server = closes.find((r) => r.sport === serverPort)!;
      expect(client).toMatchObject({
        dport: serverPort,
        newstate: TCP_CLOSE,
        bytesSent: 100_000n,
        bytesReceived: 25_000n,
        pid: process.pid,
      });
      expect(server).toMatchObject({
        dport: clientPort,
        newstate: TCP_CLOSE,
        bytesSent: 25_000n,
        bytesReceived: 100_000n,
        // Learnt when this process called close() on the accepted socket.
        pid: process.pid,
      });
      expect(client.durationNs).toBeGreaterThanOrEqual(connect[0]!.durationNs);
      expect(client.cgroupId).toBe(connect[0]!.cgroupId);
      expect(server.cgroupId).toBe(client.cgroupId);
      expect(mine.filter((r) => r.op === OP.CONNECT_FAIL)).toHaveLength(0);

      // Each close is reported once, also after the sockets are gone.
      await new Promise((r) => setTimeout(r, 200));
      expect(ours().filter((r) => r.op === OP.CLOSE)).toHaveLength(2);
    });
  }

  it('frees the table way of every socket at its close', async () => {
    // The socket table is a preallocated array of sets (no allocation per
    // socket). A way is claimed at the SYN and freed at the close, so churn
    // leaves the table as it found it. (Other TCP activity on the host holds
    // ways of its own and may come and go meanwhile: allow a little slack.)
    const info = obj.maps().find((m) => m.name === 'tf_tcp_socks')!;
    expect(info.type).toBe(BPF_MAP_TYPE_ARRAY);
    expect(info.valueSize).toBe(TF_SK_WAYS * 8 + TF_SK_WAYS * 40);
    const before = tableOccupancy();
    const ports: Exchange[] = [];
    for (let i = 0; i < 50; i++) ports.push(await exchange('127.0.0.1', 10, 10));
    const closes = () =>
      records.filter(
        (r) => r.op === OP.CLOSE && ports.some((p) => between(r, p.serverPort, p.clientPort)),
      ).length;
    expect(await waitFor(() => closes() >= 100, 5000), '100 close records').toBe(true);
    expect(closes()).toBe(100);
    // 50 connections claimed 100 ways; all of them are free again.
    expect(tableOccupancy() - before).toBeLessThan(10);
  });

  for (const [family, host, addr] of [
    [AF_INET, '127.0.0.1', V4_LOOPBACK],
    [AF_INET6, '::1', V6_LOOPBACK],
  ] as const) {
    it(`reports a refused connect and the loopback reset (${host})`, async () => {
      const port = await closedPort(host);
      let clientPort = 0;
      const err = await new Promise<NodeJS.ErrnoException>((resolve) => {
        const c = net.connect(port, host);
        c.on('connect', () => resolve(new Error('connected?') as NodeJS.ErrnoException));
        c.on('error', (e: NodeJS.ErrnoException) => resolve(e));
        c.on('lookup', () => {});
        // localPort is known once the SYN is out.
        setImmediate(() => (clientPort = c.localPort ?? 0));
      });
      expect(err.code).toBe('ECONNREFUSED');
      const ours = () => records.filter((r) => r.sport === port || r.dport === port);
      await waitFor(
        () =>
          ours().some((r) => r.op === OP.CONNECT_FAIL) &&
          ours().some((r) => r.op === OP.RESET_SENT) &&
          ours().some((r) => r.op === OP.RESET_RECV),
        5000,
      );
      const fail = ours().find((r) => r.op === OP.CONNECT_FAIL);
      expect(fail, 'connect_fail record').toBeDefined();
      expect(fail).toMatchObject({
        family,
        dport: port,
        oldstate: TCP_SYN_SENT,
        newstate: TCP_CLOSE,
        pid: process.pid,
      });
      if (clientPort) expect(fail!.sport).toBe(clientPort);
      expect(fail!.saddr.equals(addr)).toBe(true);
      expect(fail!.daddr.equals(addr)).toBe(true);

      const sent = ours().find((r) => r.op === OP.RESET_SENT);
      const recv = ours().find((r) => r.op === OP.RESET_RECV);
      // No listener: the reset is sent without a socket, from the closed port,
      // with the tuple of the SYN it answers (reversed) and state 0 (unknown).
      expect(sent, 'reset_sent record').toBeDefined();
      expect(sent).toMatchObject({
        family,
        sport: port,
        dport: fail!.sport,
        pid: 0,
        oldstate: 0,
        newstate: 0,
        cgroupId: 0n,
      });
      expect(sent!.comm).toBe('');
      expect(sent!.saddr.equals(addr)).toBe(true);
      expect(sent!.daddr.equals(addr)).toBe(true);
      expect(recv, 'reset_received record').toBeDefined();
      expect(recv).toMatchObject({ family, sport: fail!.sport, dport: port, pid: process.pid });
      expect(recv!.oldstate).toBe(TCP_SYN_SENT);
      expect(recv!.saddr.equals(addr)).toBe(true);
    });
  }

  for (const [family, host, addr] of [
    [AF_INET, '127.0.0.1', V4_LOOPBACK],
    [AF_INET6, '::1', V6_LOOPBACK],
  ] as const) {
    it(`reports the reset of an abortive close from the socket itself (${host})`, async () => {
      // SO_LINGER 0 then close(): tcp_disconnect() moves the socket to CLOSE
      // (a close record) and then sends a reset with the socket, not a segment.
      let accepted: net.Socket | undefined;
      const server = net.createServer((s) => {
        accepted = s;
        s.on('error', () => {});
      });
      await new Promise<void>((r) => server.listen(0, host, r));
      const serverPort = (server.address() as net.AddressInfo).port;
      const client = await new Promise<net.Socket>((resolve, reject) => {
        const c = net.connect(serverPort, host, () => resolve(c));
        c.on('error', reject);
      });
      const clientPort = client.localPort!;
      expect(await waitFor(() => accepted !== undefined, 2000)).toBe(true);
      client.resetAndDestroy();
      const ours = () => records.filter((r) => between(r, serverPort, clientPort));
      await waitFor(
        () =>
          ours().some((r) => r.op === OP.RESET_SENT) &&
          ours().some((r) => r.op === OP.RESET_RECV) &&
          ours().filter((r) => r.op === OP.CLOSE).length >= 2,
        5000,
      );
      accepted?.destroy();
      await new Promise<void>((r) => server.close(() => r()));

      const connect = ours().find((r) => r.op === OP.CONNECT)!;
      const sent = ours().find((r) => r.op === OP.RESET_SENT);
      expect(sent, 'reset_sent record').toBeDefined();
      expect(sent).toMatchObject({
        family,
        sport: clientPort,
        dport: serverPort,
        oldstate: TCP_CLOSE,
        newstate: TCP_CLOSE,
        cgroupId: connect.cgroupId,
      });
      expect(sent!.saddr.equals(addr)).toBe(true);
      expect(sent!.daddr.equals(addr)).toBe(true);
      // The close freed the socket's table way just before: the owner is not
      // known any more (pid 0 and no comm), as with the LRU table before.
      expect([0, process.pid]).toContain(sent!.pid);
      if (sent!.pid === 0) expect(sent!.comm).toBe('');

      const recv = ours().find((r) => r.op === OP.RESET_RECV);
      expect(recv, 'reset_received record').toBeDefined();
      expect(recv).toMatchObject({
        family,
        sport: serverPort,
        dport: clientPort,
        oldstate: TCP_ESTABLISHED,
      });
      // Both ends report their close once; the client's comes from the abort.
      const closes = ours().filter((r) => r.op === OP.CLOSE);
      expect(closes).toHaveLength(2);
      expect(closes.find((r) => r.sport === clientPort)).toMatchObject({
        oldstate: TCP_ESTABLISHED,
        pid: process.pid,
      });
    });
  }

  it('port allow-set admits one connection and counts the other as filtered', async () => {
    // Reserve two server ports first so the allow set is known before traffic.
    const allowed = await closedPort('127.0.0.1');
    const key = Buffer.alloc(4);
    key.writeUInt32LE(allowed);
    obj.mapUpdate('tf_set_port', key, Buffer.from([TF_SET_ALLOW]));
    const gen = setConfig({ filterMask: TF_FILTER_ALLOW_PORT });
    const before = filteredDrops();
    try {
      // Allowed: a server on the reserved port.
      const server = net.createServer((s) => {
        s.on('data', () => {});
        s.on('end', () => s.end());
      });
      await new Promise<void>((r) => server.listen(allowed, '127.0.0.1', r));
      let allowedClient = 0;
      await new Promise<void>((resolve, reject) => {
        const c = net.connect(allowed, '127.0.0.1', () => {
          allowedClient = c.localPort!;
          c.end(Buffer.alloc(1000));
        });
        c.on('data', () => {});
        c.on('close', () => resolve());
        c.on('error', reject);
      });
      await new Promise<void>((r) => server.close(() => r()));
      // Not allowed: any other port.
      const other = await exchange('127.0.0.1', 3000, 2000);

      await waitFor(
        () =>
          records.filter((r) => between(r, allowed, allowedClient) && r.op === OP.CLOSE).length >=
          2,
        5000,
      );
      const admitted = records.filter((r) => between(r, allowed, allowedClient));
      expect(admitted.map((r) => r.op).sort()).toEqual([OP.CONNECT, OP.ACCEPT, OP.CLOSE, OP.CLOSE]);
      for (const r of admitted) expect(r.generation).toBe(gen);
      expect(records.filter((r) => between(r, other.serverPort, other.clientPort))).toHaveLength(0);
      // connect + accept + two closes of the other connection, at least.
      expect(filteredDrops() - before).toBeGreaterThanOrEqual(4n);

      const dump = obj.mapDump('tf_set_port', { delete: true });
      expect(dump.count).toBe(1);
      expect(dump.keys.readUInt32LE(0)).toBe(allowed);
      expect(dump.values[0]).toBe(TF_SET_ALLOW);
      expect(obj.mapDump('tf_set_port').count).toBe(0);
    } finally {
      obj.mapDelete('tf_set_port', key);
      setConfig();
    }
  });

  it('min_duration_ns filters short closes only', async () => {
    const before = filteredDrops();
    const gen = setConfig({ minDurationNs: 3_600_000_000_000n });
    try {
      const { serverPort, clientPort } = await exchange('127.0.0.1', 10, 10);
      await waitFor(
        () => records.filter((r) => between(r, serverPort, clientPort)).length >= 2,
        5000,
      );
      await new Promise((r) => setTimeout(r, 200));
      const mine = records.filter((r) => between(r, serverPort, clientPort));
      expect(mine.map((r) => r.op).sort()).toEqual([OP.CONNECT, OP.ACCEPT]);
      for (const r of mine) expect(r.generation).toBe(gen);
      expect(filteredDrops() - before).toBeGreaterThanOrEqual(2n);
    } finally {
      setConfig();
    }
  });

  describe('over a lossy veth between two network namespaces', () => {
    const tag = randomBytes(3).toString('hex');
    const nsA = `tf-a-${tag}`; // server, drops 30% of incoming TCP
    const nsB = `tf-b-${tag}`; // client
    const X = 1 + (randomBytes(1)[0]! % 250);
    const serverIp = `10.200.${X}.1`;
    const clientIp = `10.200.${X}.2`;
    const sh = (...argv: string[]) => execFileSync(argv[0]!, argv.slice(1), { stdio: 'pipe' });

    beforeAll(() => {
      sh('ip', 'netns', 'add', nsA);
      sh('ip', 'netns', 'add', nsB);
      sh(
        'ip',
        'link',
        'add',
        `tfa${tag}`,
        'netns',
        nsA,
        'type',
        'veth',
        'peer',
        'name',
        `tfb${tag}`,
        'netns',
        nsB,
      );
      sh('ip', '-n', nsA, 'addr', 'add', `${serverIp}/30`, 'dev', `tfa${tag}`);
      sh('ip', '-n', nsB, 'addr', 'add', `${clientIp}/30`, 'dev', `tfb${tag}`);
      for (const [ns, dev] of [
        [nsA, `tfa${tag}`],
        [nsB, `tfb${tag}`],
      ] as const) {
        sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
        sh('ip', '-n', ns, 'link', 'set', dev, 'up');
      }
      execFileSync('ip', ['netns', 'exec', nsA, 'nft', '-f', '-'], {
        input: [
          'table inet tf {',
          '  chain in {',
          '    type filter hook input priority 0;',
          '    meta l4proto tcp numgen random mod 10 < 3 drop',
          '  }',
          '}',
        ].join('\n'),
        stdio: ['pipe', 'pipe', 'pipe'],
      });
    });

    afterAll(() => {
      // Deleting a namespace removes its veth end, the peer and the nft table.
      for (const ns of [nsA, nsB]) {
        try {
          sh('ip', 'netns', 'del', ns);
        } catch {
          /* not created */
        }
      }
    });

    it('reports retransmits of a 2 MB transfer under 30% loss', async () => {
      const total = 2_000_000;
      const port = 20000 + (randomBytes(2).readUInt16LE(0) % 20000);
      const serverJs = `
        const net = require('net');
        const srv = net.createServer((s) => {
          let n = 0;
          s.on('data', (d) => { n += d.length; });
          s.on('end', () => { s.end(String(n)); srv.close(); });
        });
        srv.listen(${port}, '${serverIp}', () => process.stdout.write('ready\\n'));
      `;
      const clientJs = `
        const net = require('net');
        const c = net.connect(${port}, '${serverIp}', () => {
          process.stdout.write('port ' + c.localPort + '\\n');
          c.end(Buffer.alloc(${total}, 1));
        });
        let reply = '';
        c.on('data', (d) => { reply += d; });
        c.on('close', () => { process.stdout.write('reply ' + reply + '\\n'); });
      `;
      const run = (ns: string, js: string) => {
        const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', js], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
        return { child, out: () => out, exited };
      };
      const server = run(nsA, serverJs);
      expect(await waitFor(() => server.out().includes('ready'), 10_000)).toBe(true);
      const started = Date.now();
      const client = run(nsB, clientJs);
      const [cc, sc] = await Promise.all([client.exited, server.exited]);
      const elapsed = Date.now() - started;
      expect(cc).toBe(0);
      expect(sc).toBe(0);
      expect(client.out()).toContain(`reply ${total}`);
      const clientPort = Number(/port (\d+)/.exec(client.out())![1]);
      const clientPid = client.child.pid!; // ip netns exec execs node: same pid

      const ours = () => records.filter((r) => between(r, port, clientPort));
      await waitFor(() => ours().filter((r) => r.op === OP.CLOSE).length >= 2, 5000);
      const retx = ours().filter((r) => r.op === OP.RETRANSMIT);
      console.log(
        `netns transfer: ${total} bytes in ${elapsed} ms, ${retx.length} retransmit records`,
      );
      expect(retx.length).toBeGreaterThan(0);
      const fromClient = retx.filter((r) => r.sport === clientPort);
      expect(fromClient.length).toBeGreaterThan(0);
      for (const r of fromClient) {
        expect(r).toMatchObject({ family: AF_INET, dport: port, pid: clientPid });
        expect(r.saddr.equals(v4(clientIp))).toBe(true);
        expect(r.daddr.equals(v4(serverIp))).toBe(true);
        expect(r.oldstate).toBe(r.newstate);
      }
      // Loss changes nothing about what was delivered.
      const close = ours().find((r) => r.op === OP.CLOSE && r.sport === clientPort);
      expect(close).toMatchObject({ bytesSent: BigInt(total), pid: clientPid });
      expect(close!.bytesReceived).toBe(BigInt(String(total).length));
    });
  });
});
