#!/usr/bin/env node
// Readiness probe for the local broker, used by infra/kafka.sh. No dependencies, so it
// works before `npm ci`. Sends a real Metadata request (v4, the oldest version Kafka 4.x
// still accepts) and succeeds only if the broker answers and lists node <nodeId> at
// <host>:<port>, i.e. the broker is serving requests and is registered in the cluster.
//
// With TRACEFEED_KAFKA_PROBE_USER and TRACEFEED_KAFKA_PROBE_PASSWORD_FILE it first
// authenticates with SASL/SCRAM-SHA-512 (RFC 5802), as the broker's listener requires.
//
// usage: node infra/kafka/probe.mjs <host> <port> [nodeId=1] [timeoutMs=3000]
// exit 0 = ready (prints "cluster=<id> brokers=<n>"), 1 = not ready (reason on stderr).
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { clearTimeout, setTimeout } from 'node:timers';

const [host = '127.0.0.1', portArg = '9092', nodeArg = '1', timeoutArg = '3000'] =
  process.argv.slice(2);
const port = Number(portArg);
const nodeId = Number(nodeArg);
const timeoutMs = Number(timeoutArg);

function fail(reason) {
  process.stderr.write(`probe: ${reason}\n`);
  process.exit(1);
}

const user = process.env.TRACEFEED_KAFKA_PROBE_USER;
const passwordFile = process.env.TRACEFEED_KAFKA_PROBE_PASSWORD_FILE;
let password;
if (user) {
  if (!passwordFile) fail('TRACEFEED_KAFKA_PROBE_USER needs TRACEFEED_KAFKA_PROBE_PASSWORD_FILE');
  try {
    password = readFileSync(passwordFile, 'utf8').trim();
  } catch (err) {
    fail(`cannot read the password file ${passwordFile}: ${err.code ?? err.message}`);
  }
}

/** A request with header v1 (api_key, api_version, correlation_id, client_id) and `body`. */
function request(apiKey, apiVersion, correlationId, body) {
  const clientId = Buffer.from('tracefeed-probe');
  const head = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length);
  let o = 0;
  o = head.writeInt16BE(apiKey, o);
  o = head.writeInt16BE(apiVersion, o);
  o = head.writeInt32BE(correlationId, o);
  o = head.writeInt16BE(clientId.length, o);
  clientId.copy(head, o);
  const size = Buffer.alloc(4);
  size.writeInt32BE(head.length + body.length, 0);
  return Buffer.concat([size, head, body]);
}

function str16(s) {
  const b = Buffer.from(s);
  const n = Buffer.alloc(2);
  n.writeInt16BE(b.length, 0);
  return Buffer.concat([n, b]);
}

function bytes32(b) {
  const n = Buffer.alloc(4);
  n.writeInt32BE(b.length, 0);
  return Buffer.concat([n, b]);
}

function metadataRequest() {
  const body = Buffer.alloc(4 + 1);
  body.writeInt32BE(0, 0); // topics: empty array (brokers only)
  body.writeInt8(0, 4); // allow_auto_topic_creation: false
  return request(3, 4, 1, body); // Metadata v4
}

/** Reads whole responses off the socket, one at a time. */
function responses(sock) {
  let data = Buffer.alloc(0);
  const waiting = [];
  const drain = () => {
    while (waiting.length > 0 && data.length >= 4 && data.length >= 4 + data.readInt32BE(0)) {
      const n = data.readInt32BE(0);
      waiting.shift()(data.subarray(4, 4 + n));
      data = data.subarray(4 + n);
    }
  };
  sock.on('data', (chunk) => {
    data = Buffer.concat([data, chunk]);
    drain();
  });
  return () =>
    new Promise((resolve) => {
      waiting.push(resolve);
      drain();
    });
}

/** SaslAuthenticate v1 round trip: sends `out`, returns the server's bytes. */
async function saslRound(sock, next, correlationId, out) {
  sock.write(request(36, 1, correlationId, bytes32(out)));
  const r = await next();
  let o = 4; // correlation id
  const error = r.readInt16BE(o);
  o += 2;
  const msgLen = r.readInt16BE(o);
  o += 2;
  const message = msgLen >= 0 ? r.toString('utf8', o, o + msgLen) : '';
  o += Math.max(0, msgLen);
  if (error !== 0) throw new Error(`SASL authentication failed (error ${error}): ${message}`);
  const n = r.readInt32BE(o);
  return r.subarray(o + 4, o + 4 + n);
}

/** SASL/SCRAM-SHA-512 as `user` (SaslHandshake v1, then SaslAuthenticate v1). */
async function authenticate(sock, next) {
  sock.write(request(17, 1, 10, str16('SCRAM-SHA-512')));
  const hs = await next();
  const err = hs.readInt16BE(4);
  if (err !== 0) throw new Error(`the broker refused SCRAM-SHA-512 (SaslHandshake error ${err})`);
  const nonce = randomBytes(24).toString('base64');
  const name = user.replace(/=/g, '=3D').replace(/,/g, '=2C');
  const clientFirstBare = `n=${name},r=${nonce}`;
  const serverFirst = (
    await saslRound(sock, next, 11, Buffer.from(`n,,${clientFirstBare}`))
  ).toString();
  const attrs = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
  if (!attrs.r?.startsWith(nonce)) throw new Error('SCRAM: the server nonce does not extend ours');
  const salted = pbkdf2Sync(
    password,
    Buffer.from(attrs.s, 'base64'),
    Number(attrs.i),
    64,
    'sha512',
  );
  const clientKey = createHmac('sha512', salted).update('Client Key').digest();
  const storedKey = createHash('sha512').update(clientKey).digest();
  const finalNoProof = `c=biws,r=${attrs.r}`;
  const authMessage = `${clientFirstBare},${serverFirst},${finalNoProof}`;
  const signature = createHmac('sha512', storedKey).update(authMessage).digest();
  const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i])).toString('base64');
  const serverFinal = (
    await saslRound(sock, next, 12, Buffer.from(`${finalNoProof},p=${proof}`))
  ).toString();
  const serverKey = createHmac('sha512', salted).update('Server Key').digest();
  const expected = createHmac('sha512', serverKey).update(authMessage).digest();
  const got = Buffer.from(serverFinal.replace(/^v=/, ''), 'base64');
  if (got.length !== expected.length || !timingSafeEqual(got, expected))
    throw new Error('SCRAM: the server signature does not match');
}

function parse(buf) {
  let o = 0;
  const i16 = () => ((o += 2), buf.readInt16BE(o - 2));
  const i32 = () => ((o += 4), buf.readInt32BE(o - 4));
  const str = () => {
    const n = i16();
    if (n < 0) return null;
    o += n;
    return buf.toString('utf8', o - n, o);
  };
  if (i32() !== 1) throw new Error('unexpected correlation id');
  i32(); // throttle_time_ms
  const brokers = [];
  for (let n = i32(); n > 0; n--) {
    brokers.push({ id: i32(), host: str(), port: i32(), rack: str() });
  }
  const clusterId = str();
  return { brokers, clusterId };
}

const sock = net.connect({ host, port });
const timer = setTimeout(() => {
  sock.destroy();
  fail(`no Metadata response from ${host}:${port} within ${timeoutMs} ms`);
}, timeoutMs);
const next = responses(sock);
sock.on('error', (err) => fail(`${host}:${port}: ${err.code ?? err.message}`));
sock.on('close', () => fail(`${host}:${port} closed the connection without a full response`));
sock.on('connect', async () => {
  let meta;
  try {
    if (user) await authenticate(sock, next);
    sock.write(metadataRequest());
    const r = await next();
    meta = parse(r);
  } catch (err) {
    fail(err.message);
  }
  clearTimeout(timer);
  sock.removeAllListeners('close');
  sock.destroy();
  const me = meta.brokers.find((b) => b.id === nodeId);
  if (!me) fail(`broker ${nodeId} not yet registered (brokers: ${meta.brokers.length})`);
  if (me.port !== port)
    fail(`broker ${nodeId} advertises ${me.host}:${me.port}, expected port ${port}`);
  process.stdout.write(`cluster=${meta.clusterId} brokers=${meta.brokers.length}\n`);
  process.exit(0);
});
