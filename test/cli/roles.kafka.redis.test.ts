/**
 * The roles on their own: `tracefeed controller` and two `tracefeed features` members
 * each serve their health and metrics; /healthz says only ok or not without a token, and
 * /v1/health says why with it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { authHeaders } from '../../src/common/http-auth.js';
import { kafkaClient } from '../../src/common/kafka.js';
import { repoRoot } from '../../src/common/paths.js';
import { redisUrlFrom } from '../../src/feedback/redis.js';
import { BROKERS } from '../helpers/kafka.js';
import { freePort } from '../helpers/net.js';

const cli = `${repoRoot}/bin/tracefeed.js`;
const run = randomBytes(4).toString('hex');
const children: ChildProcess[] = [];

function start(args: string[]): { stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [cli, ...args], {
    env: { ...process.env, TRACEFEED_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return { stderr: () => err, exit: new Promise((r) => child.on('exit', (c) => r(c))) };
}

async function get(
  port: number,
  path: string,
  auth = true,
): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    headers: auth ? authHeaders() : {},
  });
  return { status: res.status, body: await res.text() };
}

async function healthy(port: number, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  let last = '';
  while (Date.now() < end) {
    try {
      const h = await get(port, '/healthz', false);
      last = `${h.status} ${h.body}`;
      if (h.status === 200) return;
    } catch (err) {
      last = String(err);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} not healthy within ${ms} ms (last: ${last})`);
}

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

describe('roles', () => {
  it('controller and features members run on their own, each with health and metrics', async () => {
    const topics = {
      events: `tracefeed.test.roles-events-${run}`,
      anomalies: `tracefeed.test.roles-anom-${run}`,
    };
    const admin = kafkaClient({
      role: 'admin',
      clientId: 'tf-test-roles',
      brokers: BROKERS,
    }).admin();
    await admin.connect();
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: topics.events, numPartitions: 2, replicationFactor: 1 },
        { topic: topics.anomalies, numPartitions: 1, replicationFactor: 1 },
        { topic: `tracefeed.test.roles-features-${run}`, numPartitions: 1, replicationFactor: 1 },
      ],
    });
    await admin.disconnect();

    const cport = await freePort();
    const controller = start([
      'controller',
      '--port',
      String(cport),
      '--group',
      `tracefeed-feedback-test-roles-${run}`,
      '--anomalies-topic',
      topics.anomalies,
      '--redis',
      redisUrlFrom(undefined),
    ]);
    const fports = [await freePort(), await freePort()];
    for (const [i, port] of fports.entries())
      start([
        'features',
        '--port',
        String(port),
        '--group',
        `tracefeed-features-test-roles-${run}`,
        '--events-topic',
        topics.events,
        '--features-topic',
        `tracefeed.test.roles-features-${run}`,
        '--anomalies-topic',
        topics.anomalies,
        '--dlq-topic',
        topics.anomalies,
        '--session-timeout-ms',
        '6000',
        '--data-dir',
        mkdtempSync(join(tmpdir(), `tf-roles-${i}-`)),
      ]);

    await healthy(cport, 'controller');
    for (const p of fports) await healthy(p, `features member on ${p}`);
    // Without a token: ok and nothing else.
    expect(JSON.parse((await get(cport, '/healthz', false)).body)).toEqual({ ok: true });
    expect((await get(cport, '/v1/health', false)).status).toBe(401);
    const ch = JSON.parse((await get(cport, '/v1/health')).body) as Record<string, unknown>;
    expect(ch).toMatchObject({ ok: true, role: 'controller', joined: true, redis: 'ready' });
    expect((await get(cport, '/metrics')).body).toMatch(/^tracefeed_controller_healthy 1$/m);

    // Two members of one group: the two partitions are split between them.
    const owned: number[] = [];
    const deadline = Date.now() + 30_000;
    for (;;) {
      owned.length = 0;
      for (const p of fports) {
        const h = JSON.parse((await get(p, '/v1/health')).body) as {
          role: string;
          partitions: number[];
        };
        expect(h.role).toBe('features');
        owned.push(...h.partitions);
      }
      if (owned.length === 2 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(owned.sort()).toEqual([0, 1]);
    const m = (await get(fports[0]!, '/metrics')).body;
    expect(m).toMatch(/^tracefeed_features_partitions 1$/m);
    expect(m).toMatch(/^tracefeed_features_partitions_assigned_total \d+$/m);
    expect(controller.stderr()).toContain('"msg":"tracefeed controller"');
  }, 120_000);
});
