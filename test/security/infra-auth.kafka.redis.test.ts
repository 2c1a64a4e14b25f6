/**
 * Credentials on the local infrastructure (infra/kafka.sh, infra/redis.sh), against
 * the real broker and Redis: no client gets in without its role's password, a role
 * can do only what its ACLs allow (so a node's credentials cannot forge an anomaly,
 * and a controller with rules never sees the forged one), and the secrets are
 * readable by their owner only.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  kafkaAuth,
  kafkaClient,
  KafkaGroupPrefix,
  nativeKafkaSecurity,
  Topics,
  type KafkaRole,
} from '../../src/common/kafka.js';
import { createLogger } from '../../src/common/logger.js';
import { stateDir } from '../../src/common/paths.js';
import { AuditTrail } from '../../src/feedback/audit.js';
import { FeedbackController } from '../../src/feedback/controller.js';
import {
  connectRedis,
  connectRedisChecked,
  localRedisPasswordFile,
  redisUrlFrom,
} from '../../src/feedback/redis.js';
import { parseThresholds } from '../../src/feedback/thresholds.js';
import type { SubmitResult } from '../../src/feedback/service.js';
import type { Anomaly } from '../../src/features/anomaly.js';
import { AclTopics, GroupPrefix, RoleAcls } from '../../infra/kafka/acls.mjs';
import { BROKERS, INFRA_SECRETS } from '../helpers/kafka.js';
import { testSigner, until } from '../feedback/helpers.js';

const log = createLogger('test', 'silent');
const ROLES: KafkaRole[] = ['admin', 'node', 'features', 'controller', 'agent'];

/** Runs `f` with some environment variables set, restoring them after. */
async function withEnv<T>(vars: Record<string, string>, f: () => Promise<T> | T): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await f();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** The Kafka error code of a kafkajs error (wrapped ones: of their cause), else its message. */
function errorType(err: unknown): string {
  let e = err as { type?: string; cause?: unknown; originalError?: unknown; message?: string };
  for (let i = 0; i < 5 && !e.type; i++) {
    const next = (e.cause ?? e.originalError) as typeof e | undefined;
    if (!next) break;
    e = next;
  }
  return e.type ?? e.message ?? String(err);
}

/** Sends one record as `role`; resolves to the kafkajs error type, or 'ok'. */
async function produceAs(role: KafkaRole, topic: string, value: string): Promise<string> {
  const kafka = kafkaClient({
    role,
    clientId: `tf-test-auth-${role}`,
    brokers: BROKERS,
    retry: { retries: 0 },
    connectionTimeout: 3000,
  });
  const producer = kafka.producer({ retry: { retries: 0 } });
  try {
    await producer.connect();
    await producer.send({ topic, messages: [{ key: 'auth-test', value }] });
    return 'ok';
  } catch (err) {
    return errorType(err);
  } finally {
    await producer.disconnect().catch(() => undefined);
  }
}

/** Connects an admin client made by `make`; resolves to the error's message, or 'ok'. */
async function connectWith(make: () => ReturnType<typeof kafkaClient>): Promise<string> {
  const admin = make().admin();
  try {
    await admin.connect();
    await admin.listTopics();
    return 'ok';
  } catch (err) {
    return `${(err as Error).name}: ${(err as Error).message}`;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

const client = () =>
  kafkaClient({
    role: 'node',
    clientId: 'tf-test-auth',
    brokers: BROKERS,
    retry: { retries: 0 },
    connectionTimeout: 3000,
  });

function anomaly(node: string): Anomaly {
  const start = new Date(Date.now() - 10_000).toISOString();
  const series = `${node}|/system.slice/w.service|tcp|tcp_retransmits`;
  return {
    schema_version: 1,
    id: `${series}@${start}`,
    series_id: series,
    node,
    workload: '/system.slice/w.service',
    cgroup_id: '1234',
    container_id: null,
    probe: 'tcp',
    metric: 'tcp_retransmits',
    window_start: start,
    window_end: new Date().toISOString(),
    observed: 40,
    baseline: 1,
    spread: 1,
    score: 39,
    threshold: 4,
    direction: 'high',
    severity: 'warning',
    basis: 'baseline',
    partial: false,
    evidence: [],
    detected_at: new Date().toISOString(),
  };
}

describe('local infrastructure credentials', () => {
  it('runs against an installation with credentials (infra/up.sh made them)', () => {
    for (const role of ROLES) expect(kafkaAuth(role).source).toBe('local');
    expect(nativeKafkaSecurity('node')).toMatchObject({
      'security.protocol': 'sasl_plaintext',
      'sasl.mechanisms': 'PLAIN',
      'sasl.username': 'node',
    });
  });

  it('keeps every secret readable by its owner only', () => {
    expect(statSync(INFRA_SECRETS).mode & 0o777).toBe(0o700);
    const files = readdirSync(INFRA_SECRETS);
    expect(files.sort()).toEqual(
      [...ROLES.map((r) => `kafka-${r}.password`), 'redis.password'].sort(),
    );
    for (const f of files) expect(statSync(join(INFRA_SECRETS, f)).mode & 0o777, f).toBe(0o600);
    // The configurations that hold passwords too.
    for (const f of [
      join(stateDir(), 'kafka', 'server.properties'),
      join(stateDir(), 'redis', 'redis.conf'),
    ])
      expect(statSync(f).mode & 0o777, f).toBe(0o600);
  });

  it('keeps the ACL table in step with the topics and group prefixes of the code', () => {
    expect(AclTopics).toEqual(Topics);
    expect(GroupPrefix).toEqual(KafkaGroupPrefix);
    expect(Object.keys(RoleAcls).sort()).toEqual(ROLES.filter((r) => r !== 'admin').sort());
  });
});

describe('Kafka', () => {
  it('refuses a client without SASL', async () => {
    const r = await withEnv({ TRACEFEED_KAFKA_SASL_MECHANISM: 'none' }, () => connectWith(client));
    expect(r).not.toBe('ok');
  });

  it('refuses a wrong password', async () => {
    const r = await withEnv(
      {
        TRACEFEED_KAFKA_USERNAME: 'node',
        TRACEFEED_KAFKA_PASSWORD: randomBytes(24).toString('hex'),
      },
      () => connectWith(client),
    );
    expect(r).toMatch(/SASL|[Aa]uthentication/);
  });

  it('accepts each role with its own password', async () => {
    for (const role of ROLES)
      expect(
        await connectWith(() =>
          kafkaClient({ role, clientId: 'tf-test-auth', brokers: BROKERS, retry: { retries: 0 } }),
        ),
        role,
      ).toBe('ok');
  });

  it('lets each role write only where its ACLs say', async () => {
    const v = JSON.stringify({ test: 'infra-auth', at: Date.now() });
    // Allowed (each write is harmless to the readers: not a frame, not an anomaly).
    expect(await produceAs('features', Topics.features, v)).toBe('ok');
    expect(await produceAs('controller', Topics.feedback, v)).toBe('ok');
    expect(await produceAs('agent', Topics.analyses, v)).toBe('ok');
    // Refused.
    expect(await produceAs('node', Topics.anomalies, v)).toBe('TOPIC_AUTHORIZATION_FAILED');
    expect(await produceAs('node', Topics.feedback, v)).toBe('TOPIC_AUTHORIZATION_FAILED');
    expect(await produceAs('agent', Topics.anomalies, v)).toBe('TOPIC_AUTHORIZATION_FAILED');
    expect(await produceAs('agent', Topics.events, v)).toBe('TOPIC_AUTHORIZATION_FAILED');
    expect(await produceAs('controller', Topics.anomalies, v)).toBe('TOPIC_AUTHORIZATION_FAILED');
    expect(await produceAs('features', Topics.feedback, v)).toBe('TOPIC_AUTHORIZATION_FAILED');
  });

  it('lets a role read only its topics, in groups under its prefix', async () => {
    const readAs = async (role: KafkaRole, topic: string, groupId: string): Promise<string> => {
      const consumer = kafkaClient({
        role,
        clientId: 'tf-test-auth',
        brokers: BROKERS,
        retry: { retries: 2 },
      }).consumer({ groupId, retry: { retries: 2 } });
      try {
        await consumer.connect();
        await consumer.subscribe({ topic, fromBeginning: false });
        const crashed = new Promise<string>((resolve) =>
          consumer.on(consumer.events.CRASH, (e) => resolve(errorType(e.payload.error))),
        );
        const joined = new Promise<string>((resolve) =>
          consumer.on(consumer.events.GROUP_JOIN, () => resolve('ok')),
        );
        await consumer.run({ eachMessage: async () => undefined });
        return await Promise.race([joined, crashed]);
      } catch (err) {
        return errorType(err);
      } finally {
        await consumer.disconnect().catch(() => undefined);
      }
    };
    const id = randomUUID();
    expect(await readAs('controller', Topics.anomalies, `tracefeed-feedback-test-${id}`)).toBe(
      'ok',
    );
    // Another group name: refused (kafkajs reports the FindCoordinator refusal
    // GROUP_AUTHORIZATION_FAILED as a coordinator it could not find).
    expect(await readAs('controller', Topics.anomalies, `tf-test-${id}`)).toMatch(
      /GROUP_AUTHORIZATION_FAILED|find group coordinator/,
    );
    expect(await readAs('controller', Topics.events, `tracefeed-feedback-test-${id}`)).toBe(
      'TOPIC_AUTHORIZATION_FAILED',
    );
  });
});

describe('a forged anomaly', () => {
  const node = `forge-${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'tf-forge-'));
  const seen: Array<{ node: string; results: SubmitResult[] }> = [];
  let controller: FeedbackController;
  let audit: AuditTrail;

  /** The real controller; records the results of the anomalies of this test's node. */
  class WatchedController extends FeedbackController {
    override async handleAnomaly(value: Buffer | null): Promise<SubmitResult[]> {
      const results = await super.handleAnomaly(value);
      try {
        const a = JSON.parse(value?.toString() ?? '') as { node?: string };
        if (a.node === node) seen.push({ node: a.node, results });
      } catch {
        // not JSON: not ours
      }
      return results;
    }
  }

  beforeAll(async () => {
    audit = new AuditTrail({ brokers: BROKERS, log, path: join(dir, 'audit.jsonl') });
    controller = await new WatchedController({
      brokers: BROKERS,
      redisUrl: redisUrlFrom(undefined),
      thresholds: parseThresholds(`
version: 1
rules:
  - { name: retx, metric: tcp_retransmits, action: tighten, probe: tcp, focus: workload, ttl_seconds: 120 }
`),
      audit,
      log,
      groupId: `${KafkaGroupPrefix.controller}-test-forge-${randomUUID()}`,
      budgetIntervalMs: 0,
      signer: testSigner(),
    }).start();
    await controller.ready;
  });

  afterAll(async () => {
    await controller?.stop();
  });

  it('is refused with a node credential and makes no request; the feature stage credential does', async () => {
    // The door: a node's credentials (all a compromised node has) cannot write anomalies.
    const forged = anomaly(node);
    expect(await produceAs('node', Topics.anomalies, JSON.stringify(forged))).toBe(
      'TOPIC_AUTHORIZATION_FAILED',
    );
    await new Promise((r) => setTimeout(r, 3000));
    expect(seen).toEqual([]);
    // The same record from the feature stage's role: the controller acts on it, so the
    // silence above is the refusal, not a controller that does not listen.
    expect(await produceAs('features', Topics.anomalies, JSON.stringify(forged))).toBe('ok');
    const got = await until('the controller to handle the anomaly', () => seen[0], 20_000);
    expect(got.results.length).toBe(1);
    expect(got.results[0]!.decisions.length).toBeGreaterThan(0);
  }, 60_000);
});

describe('Redis', () => {
  const url = redisUrlFrom(undefined);
  const clients: Array<{ disconnect(): void }> = [];
  afterEach(() => {
    for (const c of clients.splice(0)) c.disconnect();
  });

  it('refuses a client without a password', async () => {
    const r = connectRedis(url, {
      username: undefined,
      password: undefined,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    clients.push(r);
    await expect(r.ping()).rejects.toThrow(/NOAUTH/);
  });

  it('refuses a wrong password, and the default user', async () => {
    const u = new URL(url);
    for (const user of ['tracefeed', 'default']) {
      u.username = user;
      u.password = randomBytes(24).toString('hex');
      await expect(connectRedisChecked(u.toString())).rejects.toThrow(/refused the credentials/);
    }
  });

  it('accepts the local password', async () => {
    const r = await connectRedisChecked(url);
    clients.push(r);
    expect(await r.ping()).toBe('PONG');
    expect(await r.acl('WHOAMI')).toBe('tracefeed');
  });
});

describe('credential settings', () => {
  it('name the missing file and the fix', () => {
    const home = mkdtempSync(join(tmpdir(), 'tf-cred-'));
    // An installation whose Kafka passwords were made, but one of them is gone.
    const secrets = join(home, 'secrets');
    mkdirSync(secrets, { mode: 0o700 });
    writeFileSync(join(secrets, 'kafka-admin.password'), 'a'.repeat(48), { mode: 0o600 });
    return withEnv({ TRACEFEED_HOME: home }, () => {
      expect(kafkaAuth('admin').sasl?.username).toBe('admin');
      expect(() => kafkaAuth('node')).toThrow(join(secrets, 'kafka-node.password'));
      expect(() => kafkaAuth('node')).toThrow(/ENOENT/);
      writeFileSync(join(secrets, 'kafka-node.password'), 'b'.repeat(48), { mode: 0o644 });
      expect(() => kafkaAuth('node')).toThrow(/readable by other users/);
    });
  });

  it('take a cluster of your own from the environment', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tf-cred-')), 'pw');
    writeFileSync(file, 'secret\n', { mode: 0o600 });
    await withEnv(
      {
        TRACEFEED_KAFKA_USERNAME: 'alice',
        TRACEFEED_KAFKA_PASSWORD_FILE: file,
        TRACEFEED_KAFKA_SASL_MECHANISM: 'scram-sha-256',
        TRACEFEED_KAFKA_TLS: '1',
      },
      () => {
        expect(kafkaAuth('agent')).toEqual({
          source: 'env',
          sasl: { mechanism: 'scram-sha-256', username: 'alice', password: 'secret' },
          tls: {},
        });
        expect(nativeKafkaSecurity('agent')).toEqual({
          'security.protocol': 'sasl_ssl',
          'sasl.mechanisms': 'SCRAM-SHA-256',
          'sasl.username': 'alice',
          'sasl.password': 'secret',
        });
      },
    );
    await withEnv(
      { TRACEFEED_KAFKA_PASSWORD_FILE: '/nonexistent/pw', TRACEFEED_KAFKA_USERNAME: 'a' },
      () => expect(() => kafkaAuth('agent')).toThrow('/nonexistent/pw'),
    );
    await withEnv({ TRACEFEED_KAFKA_USERNAME: 'a' }, () =>
      expect(() => kafkaAuth('agent')).toThrow(/no password/),
    );
    expect(localRedisPasswordFile()).toBe(join(INFRA_SECRETS, 'redis.password'));
  });
});
