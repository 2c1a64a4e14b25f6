/**
 * Real DNS servers for the dns family's tests: dnsmasq on a loopback address
 * of its own, port 53 (the probe parses port 53 only), with local records
 * and no upstream, so unknown names under tf.test are NXDOMAIN; names under
 * slow.tf.test and fail.tf.test are forwarded to a small upstream on a high
 * port that answers after a delay, or with SERVFAIL.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';

export interface DnsServers {
  /** Address dnsmasq listens on, port 53. */
  address: string;
  /** Delay of answers under slow.tf.test, ms. */
  slowMs: number;
  /** Another loopback address, port 53, where queries are received and never answered. */
  blackhole: string;
  stop: () => Promise<void>;
}

/** Who listens on UDP port 53 at `addr` (empty when nobody). */
function listenersOn53(addr: string): string {
  const r = spawnSync('ss', ['-Hlun', `src ${addr}:53`], { encoding: 'utf8' });
  return r.stdout.trim();
}

/** A loopback address in 127.53.0.0/16 with nothing on port 53. */
function freeLoopbackAddress(): string {
  for (let i = 0; i < 20; i++) {
    const a = `127.53.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
    if (listenersOn53(a) === '' && listenersOn53('0.0.0.0') === '') return a;
  }
  throw new Error(
    'no free loopback address with port 53 unused (is a resolver bound to 0.0.0.0:53?)',
  );
}

/** Upstream for slow and failing names: SERVFAIL under fail.*, an empty NOERROR after `slowMs` otherwise. */
async function startUpstream(slowMs: number): Promise<{ port: number; close: () => void }> {
  const sock = createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    if (msg.length < 12) return;
    const reply = Buffer.from(msg);
    // QR=1, RD copied, RA=1; rcode SERVFAIL for fail.*; no answers, no additional records.
    const fail = msg.includes(Buffer.from('\x04fail'));
    reply[2] = 0x80 | (msg[2]! & 0x01);
    reply[3] = 0x80 | (fail ? 2 : 0);
    reply.writeUInt16BE(0, 6);
    reply.writeUInt16BE(0, 8);
    reply.writeUInt16BE(0, 10);
    // Keep the header and the question only (dnsmasq sends an OPT record after it).
    let q = 12;
    while (q < reply.length && reply[q] !== 0) q += 1 + reply[q]!;
    const out = reply.subarray(0, Math.min(reply.length, q + 5));
    setTimeout(() => sock.send(out, rinfo.port, rinfo.address), fail ? 0 : slowMs);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return { port: sock.address().port, close: () => sock.close() };
}

export async function startDnsServers(slowMs = 300): Promise<DnsServers> {
  if (spawnSync('dnsmasq', ['--version']).status !== 0)
    throw new Error('dnsmasq is missing: apt-get install -y dnsmasq (scripts/bootstrap.sh)');
  const upstream = await startUpstream(slowMs);
  const address = freeLoopbackAddress();
  const child: ChildProcess = spawn(
    'dnsmasq',
    [
      '--keep-in-foreground',
      '--no-resolv',
      '--no-hosts',
      '--no-poll',
      '--bind-interfaces',
      `--listen-address=${address}`,
      '--port=53',
      '--cache-size=0',
      '--user=root',
      '--pid-file=',
      '--address=/ok.tf.test/10.0.0.1',
      '--address=/ok.tf.test/fd00::1',
      `--server=/slow.tf.test/127.0.0.1#${upstream.port}`,
      `--server=/fail.tf.test/127.0.0.1#${upstream.port}`,
      '--local=/tf.test/',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 5000;
  while (listenersOn53(address) === '') {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill();
      upstream.close();
      throw new Error(`dnsmasq did not start on ${address}:53: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const blackhole = freeLoopbackAddress();
  const hole = createSocket('udp4');
  hole.on('message', () => {});
  await new Promise<void>((r) => hole.bind(53, blackhole, () => r()));
  return {
    address,
    slowMs,
    blackhole,
    stop: async () => {
      upstream.close();
      hole.close();
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill();
        await exited;
      }
    },
  };
}
