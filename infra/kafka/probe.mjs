#!/usr/bin/env node
// Readiness probe for the local broker, used by infra/kafka.sh. No dependencies, so it
// works before `npm ci`. Sends a real Metadata request (v4, the oldest version Kafka 4.x
// still accepts) and succeeds only if the broker answers and lists node <nodeId> at
// <host>:<port>, i.e. the broker is serving requests and is registered in the cluster.
//
// usage: node infra/kafka/probe.mjs <host> <port> [nodeId=1] [timeoutMs=3000]
// exit 0 = ready (prints "cluster=<id> brokers=<n>"), 1 = not ready (reason on stderr).
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

function metadataRequest() {
  const clientId = Buffer.from('tracefeed-probe');
  const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length + 4 + 1);
  let o = 0;
  o = body.writeInt16BE(3, o); // api_key: Metadata
  o = body.writeInt16BE(4, o); // api_version
  o = body.writeInt32BE(1, o); // correlation_id
  o = body.writeInt16BE(clientId.length, o);
  o += clientId.copy(body, o);
  o = body.writeInt32BE(0, o); // topics: empty array (brokers only)
  body.writeInt8(0, o); // allow_auto_topic_creation: false
  const size = Buffer.alloc(4);
  size.writeInt32BE(body.length, 0);
  return Buffer.concat([size, body]);
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
let data = Buffer.alloc(0);
sock.on('connect', () => sock.write(metadataRequest()));
sock.on('error', (err) => fail(`${host}:${port}: ${err.code ?? err.message}`));
sock.on('close', () => fail(`${host}:${port} closed the connection without a full response`));
sock.on('data', (chunk) => {
  data = Buffer.concat([data, chunk]);
  if (data.length < 4 || data.length < 4 + data.readInt32BE(0)) return;
  clearTimeout(timer);
  sock.removeAllListeners('close');
  sock.destroy();
  let meta;
  try {
    meta = parse(data.subarray(4));
  } catch (err) {
    fail(`bad Metadata response: ${err.message}`);
  }
  const me = meta.brokers.find((b) => b.id === nodeId);
  if (!me) fail(`broker ${nodeId} not yet registered (brokers: ${meta.brokers.length})`);
  if (me.port !== port)
    fail(`broker ${nodeId} advertises ${me.host}:${me.port}, expected port ${port}`);
  process.stdout.write(`cluster=${meta.clusterId} brokers=${meta.brokers.length}\n`);
  process.exit(0);
});
