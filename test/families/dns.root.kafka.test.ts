/**
 * The dns family on real parts: dnsmasq on a loopback address, port 53; dig
 * run by real workloads in their own cgroups; the node agent loading
 * dns.bpf.o on the real kernel and publishing to the real broker. Records
 * read back from Kafka carry the name, type, rcode, latency, server and the
 * client's cgroup and task; a deny filter on a cgroup stops its records.
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import type { NodeAgent, TracefeedEvent } from '../../src/ingest/index.js';
import { testAgent } from '../helpers/pipeline.js';
import { startCollector } from '../helpers/kafka.js';
import { makeCgroup, type TestCgroup } from '../helpers/cgroup.js';
import { startDnsServers, type DnsServers } from './dns-servers.js';

type Collector = Awaited<ReturnType<typeof startCollector>>;

describe('dns records from real queries', () => {
  const node = `dns-node-${randomBytes(3).toString('hex')}`;
  const tag = randomBytes(3).toString('hex');
  const log = createLogger('test', 'silent');
  let dns: DnsServers;
  let agent: NodeAgent;
  let events: Collector;
  let client: TestCgroup;
  let other: TestCgroup;

  const dig = (name: string, type = 'A') =>
    `dig @${dns.address} ${name} ${type} +tries=1 +time=3 > /dev/null`;
  const mine = (cg: TestCgroup) => (e: TracefeedEvent) =>
    e.node === node && e.type === 'dns.response' && e.attributes['cgroup.id'] === cg.id.toString();
  const named =
    (cg: TestCgroup, name: string, type = 'A') =>
    (e: TracefeedEvent) =>
      mine(cg)(e) &&
      e.attributes['dns.question.name'] === name &&
      e.attributes['dns.question.type'] === type;

  beforeAll(async () => {
    dns = await startDnsServers(300);
    events = await startCollector();
    // The per-packet programs are off by default (the lookup counter runs alone): on here.
    agent = testAgent(node, ['dns'], log, { dns: { enabled: true } });
    client = makeCgroup('tf-dns-client');
    other = makeCgroup('tf-dns-other');
  }, 60_000);

  afterAll(async () => {
    await agent?.stop(2000);
    await events?.stop();
    await dns?.stop();
    client?.remove();
    other?.remove();
  });

  it('emits one record per response with name, type, rcode, latency, server and the client task', async () => {
    const ok = `ok.tf.test`;
    const missing = `missing-${tag}.tf.test`;
    const slow = `s-${tag}.slow.tf.test`;
    const fail = `f-${tag}.fail.tf.test`;
    // The shell's pid is dig's: it execs dig last.
    const r = await client.run(
      [dig(ok, 'AAAA'), dig(missing), dig(slow), dig(fail), `echo $$`, `exec ${dig(ok)}`].join(
        ' && ',
      ),
    );
    expect(r.code).toBe(0);
    const digPid = Number(r.stdout.trim());

    const a = await events.waitFor(named(client, ok, 'A'), 15_000);
    expect(a.probe).toBe('dns');
    expect(a.attributes['dns.response_code']).toBe('NOERROR');
    expect(a.attributes['dns.rcode']).toBe(0);
    expect(a.attributes['dns.answer_count']).toBe(1);
    expect(a.attributes['dns.question.type_code']).toBe(1);
    expect(a.attributes['network.transport']).toBe('udp');
    expect(a.attributes['server.address']).toBe(dns.address);
    expect(a.attributes['server.port']).toBe(53);
    expect(a.attributes['network.local.address']).toBe('127.0.0.1');
    expect(a.attributes['network.local.port']).toBeGreaterThan(0);
    // The task that sent the query: dig's pid; comm is the sending thread's name.
    expect(a.attributes['process.pid']).toBe(digPid);
    expect(String(a.attributes['process.executable.name'])).not.toBe('');
    const okLatency = a.attributes['dns.latency_ns'] as number;
    // A local answer on loopback: more than nothing, well under the 3 s timeout.
    expect(okLatency).toBeGreaterThan(1_000);
    expect(okLatency).toBeLessThan(1_000_000_000);
    expect(a.truncated).toBe(false);

    const aaaa = await events.waitFor(named(client, ok, 'AAAA'), 5_000);
    expect(aaaa.attributes['dns.question.type_code']).toBe(28);
    expect(aaaa.attributes['dns.response_code']).toBe('NOERROR');

    const nx = await events.waitFor(named(client, missing), 5_000);
    expect(nx.attributes['dns.response_code']).toBe('NXDOMAIN');
    expect(nx.attributes['dns.rcode']).toBe(3);

    const sf = await events.waitFor(named(client, fail), 5_000);
    expect(sf.attributes['dns.response_code']).toBe('SERVFAIL');

    // The upstream answers slow names after 300 ms: the latency shows it.
    const sl = await events.waitFor(named(client, slow), 5_000);
    expect(sl.attributes['dns.response_code']).toBe('NOERROR');
    expect(sl.attributes['dns.latency_ns']).toBeGreaterThanOrEqual(300_000_000);
    expect(sl.attributes['dns.latency_ns']).toBeLessThan(3_000_000_000);

    // Each query was answered once: one record each, none for the other cgroup.
    expect(events.events().filter(named(client, missing))).toHaveLength(1);
    expect(events.events().filter(mine(other))).toHaveLength(0);
  }, 60_000);

  it('cuts a long name at 128 bytes, flags it, and still reads the query type', async () => {
    const label = 'a'.repeat(60);
    const long = `${label}.${label}.${label}.${tag}.tf.test`; // 195 bytes
    expect((await client.run(dig(long, 'TXT'))).code).toBe(0);
    const e = await events.waitFor(
      (x) =>
        mine(client)(x) &&
        String(x.attributes['dns.question.name']).startsWith(`${label}.${label}.`),
      15_000,
    );
    expect(e.truncated).toBe(true);
    expect(e.attributes['dns.question.name']).toBe(long.slice(0, 128));
    expect(e.attributes['dns.question.type']).toBe('TXT');
    expect(e.attributes['dns.response_code']).toBe('NXDOMAIN');
  }, 30_000);

  it('a query nobody answers becomes one dns.timeout record after 5 s', async () => {
    const lost = `lost-${tag}.tf.test`;
    const r = await client.run(
      `echo $$; exec dig @${dns.blackhole} ${lost} A +tries=1 +time=1 > /dev/null`,
    );
    expect(r.code).not.toBe(0); // dig gave up: no answer
    const e = await events.waitFor(
      (x) =>
        x.type === 'dns.timeout' && x.node === node && x.attributes['dns.question.name'] === lost,
      20_000,
    );
    expect(e.probe).toBe('dns');
    expect(e.attributes['dns.response_code']).toBe('TIMEOUT');
    expect(e.attributes['cgroup.id']).toBe(client.id.toString());
    expect(e.attributes['process.pid']).toBe(Number(r.stdout.trim()));
    expect(e.attributes['server.address']).toBe(dns.blackhole);
    expect(e.attributes['network.local.address']).toBe('127.0.0.1');
    expect(e.attributes['dns.question.type']).toBe('A');
    expect(e.attributes['dns.latency_ns']).toBeGreaterThanOrEqual(5e9);
    expect(e.attributes['dns.latency_ns']).toBeLessThan(15e9);
    expect(events.events().filter((x) => x.attributes['dns.question.name'] === lost)).toHaveLength(
      1,
    );
  }, 40_000);

  it('baseline off, a focus on the client: only its queries, flagged as focused', async () => {
    agent.setProbe('dns', { enabled: false, focus: { [client.path]: {} } });
    const focused = `focused-${tag}.tf.test`;
    const unfocused = `unfocused-${tag}.tf.test`;
    expect((await other.run(dig(unfocused))).code).toBe(0);
    expect((await client.run(dig(focused))).code).toBe(0);
    const e = await events.waitFor(named(client, focused), 15_000);
    expect(e.focused).toBe(true);
    await new Promise((r) => setTimeout(r, 500));
    expect(events.events().filter(named(other, unfocused))).toHaveLength(0);
    agent.setProbe('dns', { enabled: true, focus: { [client.path]: null } });
    const back = `back-${tag}.tf.test`;
    expect((await other.run(dig(back))).code).toBe(0);
    const b = await events.waitFor(named(other, back), 15_000);
    expect(b.focused).toBe(false);
  }, 60_000);

  it('reads DNS over TCP (dig +tcp): one record, transport tcp', async () => {
    const ok = 'ok.tf.test';
    const missing = `tcp-missing-${tag}.tf.test`;
    const r = await client.run(
      `dig @${dns.address} ${ok} A +tcp +tries=1 +time=3 > /dev/null && dig @${dns.address} ${missing} A +tcp +tries=1 +time=3 > /dev/null`,
    );
    expect(r.code).toBe(0);
    const e = await events.waitFor(
      (x) => named(client, missing)(x) && x.attributes['network.transport'] === 'tcp',
      15_000,
    );
    expect(e.attributes['dns.response_code']).toBe('NXDOMAIN');
    expect(e.attributes['server.port']).toBe(53);
    expect(e.attributes['dns.latency_ns']).toBeGreaterThan(0);
    const tcpOk = await events.waitFor(
      (x) => named(client, ok)(x) && x.attributes['network.transport'] === 'tcp',
      5_000,
    );
    expect(tcpOk.attributes['dns.answer_count']).toBe(1);
    // One record per query: the handshake, ACKs and FINs are not mistaken for messages.
    expect(events.events().filter(named(client, missing))).toHaveLength(1);
  }, 30_000);

  it('reads IPv6: a query to [::1]:53 and its answer', async () => {
    // A responder of our own on ::1 port 53: every query answered NXDOMAIN at once.
    const v6: Socket = createSocket({ type: 'udp6', ipv6Only: true });
    v6.on('message', (msg, rinfo) => {
      const r = Buffer.from(msg);
      r[2] = 0x80 | (msg[2]! & 0x01);
      r[3] = 0x83;
      v6.send(r, rinfo.port, rinfo.address);
    });
    await new Promise<void>((resolve, reject) => {
      v6.once('error', reject);
      v6.bind(53, '::1', () => resolve());
    });
    try {
      const name = `v6-${tag}.tf.test`;
      expect((await client.run(`dig @::1 ${name} AAAA +tries=1 +time=3 > /dev/null`)).code).toBe(0);
      const e = await events.waitFor(named(client, name, 'AAAA'), 15_000);
      expect(e.attributes['network.type']).toBe('ipv6');
      expect(e.attributes['server.address']).toBe('::1');
      expect(e.attributes['network.local.address']).toBe('::1');
      expect(e.attributes['dns.response_code']).toBe('NXDOMAIN');
      expect(e.attributes['dns.latency_ns']).toBeGreaterThan(0);
    } finally {
      v6.close();
    }
  }, 30_000);

  it('a deny filter on the client cgroup stops its records; other cgroups keep theirs', async () => {
    agent.setProbe('dns', { filters: { cgroup: { deny: [client.path] } } });
    const denied = `denied-${tag}.tf.test`;
    const seen = `seen-${tag}.tf.test`;
    expect((await client.run(dig(denied))).code).toBe(0);
    expect((await other.run(dig(seen))).code).toBe(0);
    // The other cgroup's later query arrives: the client's earlier one would have too.
    await events.waitFor(named(other, seen), 15_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(events.events().filter(named(client, denied))).toHaveLength(0);
    const probe = agent.probes().find((p) => p.probe === 'dns');
    expect(probe?.drops.filtered).toBeGreaterThanOrEqual(1);

    agent.setProbe('dns', { clear_filters: true });
    const again = `again-${tag}.tf.test`;
    expect((await client.run(dig(again))).code).toBe(0);
    await events.waitFor(named(client, again), 15_000);
  }, 60_000);
});
