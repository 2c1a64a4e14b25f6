/**
 * The cluster roles need no root: `tracefeed features` and `tracefeed controller` run
 * as an unprivileged user (nobody, no capabilities) with credentials of their own, and
 * the features member windows real kernel events that a root node agent publishes.
 * Without those credentials the user cannot borrow root's: the secrets are root's only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { repoRoot, stateDir } from '../../src/common/paths.js';
import { DEFAULT_AGENT_OPTIONS, NodeAgent } from '../../src/ingest/node-agent.js';
import { redisUrlFrom } from '../../src/feedback/redis.js';
import { BROKERS, testKafka } from '../helpers/kafka.js';
import { freePort } from '../helpers/net.js';

const NOBODY = 65534;
const run = randomBytes(4).toString('hex');
const node = `tf-nonroot-${run}`;
const topics = {
  events: `tracefeed.test.nonroot-events-${run}`,
  features: `tracefeed.test.nonroot-features-${run}`,
  anomalies: `tracefeed.test.nonroot-anomalies-${run}`,
  dlq: `tracefeed.test.nonroot-dlq-${run}`,
};
const log = createLogger('test-nonroot', 'warn');
const children: ChildProcess[] = [];
let agent: NodeAgent | undefined;
let home: string;
const repoMount = join(tmpdir(), `tf-nonroot-repo-${run}`);

/**
 * Runs the CLI as nobody with no capabilities at all (setpriv), in `tfHome`. The
 * checkout is bind-mounted at a path of its own in a private mount namespace, so
 * that a checkout under a directory nobody cannot enter (/root) still runs.
 */
function asNobody(
  tfHome: string,
  args: string[],
): { child: ChildProcess; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(
    'unshare',
    [
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mkdir -p "$1" && mount --bind "$2" "$1" && shift 2 && exec "$@"',
      'sh',
      repoMount,
      repoRoot,
      'setpriv',
      `--reuid=${NOBODY}`,
      `--regid=${NOBODY}`,
      '--clear-groups',
      '--inh-caps=-all',
      '--bounding-set=-all',
      process.execPath,
      join(repoMount, 'bin/tracefeed.js'),
      ...args,
    ],
    {
      env: {
        PATH: process.env.PATH,
        HOME: tfHome,
        TRACEFEED_HOME: tfHome,
        TRACEFEED_KAFKA_BROKERS: BROKERS.join(','),
        TRACEFEED_REDIS_URL: process.env.TRACEFEED_REDIS_URL ?? 'redis://127.0.0.1:6379',
        TRACEFEED_LOG_LEVEL: 'info',
        TRACEFEED_LOG_FORMAT: 'json',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return { child, stderr: () => err, exit: new Promise((r) => child.on('exit', (c) => r(c))) };
}

/** Uid and effective capabilities of a live process, from /proc. */
function identity(pid: number): { uid: number; capEff: bigint } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const uid = Number(/^Uid:\s+(\d+)/m.exec(status)![1]);
  const capEff = BigInt(`0x${/^CapEff:\s+([0-9a-f]+)/m.exec(status)![1]}`);
  return { uid, capEff };
}

async function healthy(port: number, what: string, stderr: () => string): Promise<void> {
  const end = Date.now() + 60_000;
  let last = '';
  while (Date.now() < end) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      last = `${res.status} ${await res.text()}`;
      if (res.status === 200) return;
    } catch (err) {
      last = String(err);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} not healthy within 60 s (last: ${last}); stderr:\n${stderr()}`);
}

beforeAll(async () => {
  // A home of nobody's own, with the two roles' credentials (and Redis') copied in.
  home = mkdtempSync(join(tmpdir(), 'tf-nonroot-'));
  chownSync(home, NOBODY, NOBODY);
  chmodSync(home, 0o700);
  const secrets = join(home, 'secrets');
  mkdirSync(secrets, { mode: 0o700 });
  chownSync(secrets, NOBODY, NOBODY);
  for (const name of ['kafka-features.password', 'kafka-controller.password', 'redis.password']) {
    const to = join(secrets, name);
    copyFileSync(join(stateDir(), 'secrets', name), to);
    chmodSync(to, 0o600);
    chownSync(to, NOBODY, NOBODY);
  }
  const admin = testKafka('admin', 'tf-test-nonroot-admin').admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: Object.values(topics).map((topic) => ({
      topic,
      numPartitions: 1,
      replicationFactor: 1,
    })),
  });
  await admin.disconnect();
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await agent?.stop(2000);
  try {
    rmdirSync(repoMount);
  } catch {
    /* still a mount point while a child lives, or gone */
  }
});

describe('the cluster roles without root', () => {
  it('cannot borrow root credentials: the secrets are root only', async () => {
    const port = await freePort();
    const r = asNobody(stateDir(), [
      'features',
      '--port',
      String(port),
      '--group',
      `tracefeed-features-test-nonroot-denied-${run}`,
      '--events-topic',
      topics.events,
    ]);
    const code = await Promise.race([
      r.exit,
      new Promise<'running'>((res) => setTimeout(() => res('running'), 30_000)),
    ]);
    expect(code, r.stderr()).not.toBe('running');
    expect(code).not.toBe(0);
    expect(r.stderr()).toMatch(/secrets\/kafka-features\.password|api-token|EACCES|permission/i);
  }, 40_000);

  it('a features member as nobody windows real kernel events from a root node agent', async () => {
    const port = await freePort();
    const member = asNobody(home, [
      'features',
      '--port',
      String(port),
      '--group',
      `tracefeed-features-test-nonroot-${run}`,
      '--events-topic',
      topics.events,
      '--features-topic',
      topics.features,
      '--anomalies-topic',
      topics.anomalies,
      '--dlq-topic',
      topics.dlq,
      '--window-seconds',
      '1',
      '--lateness-seconds',
      '1',
      '--idle-close-seconds',
      '1',
      '--from-beginning',
    ]);
    await healthy(port, 'features member', member.stderr);
    const who = identity(member.child.pid!);
    expect(who.uid).toBe(NOBODY);
    expect(who.capEff).toBe(0n);

    // The probes stay with root: a node agent publishing host-wide execs to the test topic.
    agent = new NodeAgent({
      ...DEFAULT_AGENT_OPTIONS,
      nodeName: node,
      brokers: BROKERS,
      topic: topics.events,
      lingerMs: 50,
      log,
      families: ['process'],
    });
    agent.start();
    for (let i = 0; i < 20; i++) spawn('true').unref();

    // Rows of our node on the features topic, written by the unprivileged member.
    const consumer = testKafka('agent', 'tf-test-nonroot-reader').consumer({
      groupId: `tracefeed-test-nonroot-reader-${run}`,
      readUncommitted: false,
    });
    const rows: string[] = [];
    await consumer.connect();
    await consumer.subscribe({ topic: topics.features, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        rows.push(message.key?.toString() ?? '');
      },
    });
    const end = Date.now() + 60_000;
    while (Date.now() < end && !rows.some((k) => k.includes(node)))
      await new Promise((r) => setTimeout(r, 250));
    await consumer.disconnect();
    expect(
      agent.stats().eventsByType['process.exec'] ?? 0,
      'the node agent saw execs',
    ).toBeGreaterThan(0);
    expect(
      rows.some((k) => k.includes(node)),
      member.stderr(),
    ).toBe(true);
  }, 120_000);

  it('the controller runs as nobody with its own Kafka and Redis credentials', async () => {
    const port = await freePort();
    const controller = asNobody(home, [
      'controller',
      '--port',
      String(port),
      '--group',
      `tracefeed-feedback-test-nonroot-${run}`,
      '--anomalies-topic',
      topics.anomalies,
      '--redis',
      redisUrlFrom(undefined),
    ]);
    await healthy(port, 'controller', controller.stderr);
    const who = identity(controller.child.pid!);
    expect(who.uid).toBe(NOBODY);
    expect(who.capEff).toBe(0n);
  }, 90_000);
});
