/**
 * The upgrade of a broker running from before authentication, on a data dir formatted
 * then (every installation from before it, such as a developer's .tracefeed):
 * infra/kafka.sh start stops it, moves the data dir aside, says so, formats a new one
 * with the SCRAM users and starts a broker that takes the roles' passwords. Runs a second broker of its own (own TRACEFEED_HOME,
 * own ports), sharing only the jars of the test infrastructure.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kafkaClient } from '../../src/common/kafka.js';
import { repoRoot, stateDir } from '../../src/common/paths.js';
import { freePort } from '../helpers/net.js';
import { runKafkaSh, type Run } from '../helpers/cluster.js';

const pom = readFileSync(join(repoRoot, 'infra', 'kafka', 'pom.xml'), 'utf8');
const version = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(pom)![1]!;
const jars = join(stateDir(), 'kafka', version);

describe('infra/kafka.sh on a data dir from before authentication', () => {
  const home = mkdtempSync(join(tmpdir(), 'tf-kafka-upgrade-'));
  const kdir = join(home, 'kafka');
  let env: NodeJS.ProcessEnv;
  let port = 0;

  const kafkaSh = (...args: string[]): Promise<Run> => runKafkaSh(env, ...args);

  beforeAll(async () => {
    port = await freePort();
    let controllerPort = await freePort();
    while (controllerPort === port) controllerPort = await freePort();
    env = {
      ...process.env,
      TRACEFEED_HOME: home,
      TRACEFEED_KAFKA_PORT: String(port),
      TRACEFEED_KAFKA_CONTROLLER_PORT: String(controllerPort),
      TRACEFEED_KAFKA_HEAP_OPTS: '-Xmx256m',
    };
    // The jars of the test infrastructure (no Maven run).
    mkdirSync(kdir, { recursive: true });
    symlinkSync(jars, join(kdir, version));
    // A data dir formatted the way infra/kafka.sh did before authentication.
    const data = join(kdir, 'data');
    // Where infra/kafka.sh keeps its configuration: the running broker is "ours".
    const conf = join(kdir, 'server.properties');
    writeFileSync(
      conf,
      [
        'process.roles=broker,controller',
        'node.id=1',
        `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
        `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
        'controller.listener.names=CONTROLLER',
        'inter.broker.listener.name=PLAINTEXT',
        'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
        `log.dirs=${data}`,
        'offsets.topic.replication.factor=1',
        'transaction.state.log.replication.factor=1',
        '',
      ].join('\n'),
    );
    const clusterId = randomBytes(16).toString('base64url');
    writeFileSync(join(kdir, 'cluster.id'), `${clusterId}\n`);
    execFileSync(
      'java',
      ['-cp', `${jars}/lib/*`, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', conf],
      { stdio: 'pipe' },
    );
    writeFileSync(join(data, 'pre-auth-witness'), 'old data\n');
    // Running, as the old infra/kafka.sh started it: anyone may talk to it.
    const broker = spawn('java', ['-Xmx256m', '-cp', `${jars}/lib/*`, 'kafka.Kafka', conf], {
      cwd: kdir,
      detached: true,
      stdio: 'ignore',
    });
    broker.unref();
    const probe = join(repoRoot, 'infra', 'kafka', 'probe.mjs');
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        execFileSync('node', [probe, '127.0.0.1', String(port)], { stdio: 'pipe' });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((ok) => setTimeout(ok, 500));
      }
    }
  }, 90_000);

  afterAll(async () => {
    await kafkaSh('stop', '--kill');
    rmSync(home, { recursive: true, force: true });
  }, 60_000);

  it('restarts the running broker, moves the old data dir aside, formats with the users, and the roles get in', async () => {
    expect(existsSync(join(kdir, 'data', 'meta.properties'))).toBe(true);
    const r = await kafkaSh('start');
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stderr).toMatch(/runs an older configuration .* restarting it/);
    expect(r.stderr).toMatch(/was formatted without authentication/);
    expect(r.stderr).toMatch(/moving it to \S+data\.replaced-\d{8}T\d{6}Z/);
    const aside = readdirSync(kdir).filter((d) => d.startsWith('data.replaced-'));
    expect(aside.length).toBe(1);
    // Kept, not lost.
    expect(readFileSync(join(kdir, aside[0]!, 'pre-auth-witness'), 'utf8')).toBe('old data\n');
    expect(existsSync(join(kdir, 'data', '.tracefeed-auth'))).toBe(true);
    expect(existsSync(join(kdir, 'data', 'pre-auth-witness'))).toBe(false);
    for (const role of ['admin', 'node', 'features', 'controller', 'agent'])
      expect(statSync(join(home, 'secrets', `kafka-${role}.password`)).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, 'secrets')).mode & 0o777).toBe(0o700);

    const saved = process.env.TRACEFEED_HOME;
    process.env.TRACEFEED_HOME = home;
    try {
      for (const role of ['admin', 'agent'] as const) {
        const admin = kafkaClient({
          role,
          clientId: 'tf-test-upgrade',
          brokers: [`127.0.0.1:${port}`],
          retry: { retries: 2 },
        }).admin();
        await admin.connect();
        expect(Array.isArray(await admin.listTopics()), role).toBe(true);
        await admin.disconnect();
      }
    } finally {
      if (saved === undefined) delete process.env.TRACEFEED_HOME;
      else process.env.TRACEFEED_HOME = saved;
    }
    expect(readFileSync(join(kdir, 'logs', 'acls.log'), 'utf8')).toMatch(/acls: \d+ for 4 users/);
  }, 150_000);

  it('keeps the new data dir across restarts', async () => {
    const stop = await kafkaSh('stop');
    expect(stop.code, stop.stderr).toBe(0);
    const r = await kafkaSh('start');
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stderr).not.toMatch(/moving it/);
    expect(readdirSync(kdir).filter((d) => d.startsWith('data.replaced-')).length).toBe(1);
  }, 150_000);
});
