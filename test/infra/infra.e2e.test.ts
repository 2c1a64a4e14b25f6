/**
 * The local infrastructure scripts, run for real: infra/kafka.sh and infra/redis.sh start
 * (and reuse) a KRaft broker and Redis, and refuse ports held by someone else.
 * Kafka and Redis are left running: the suites after this one reuse them.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const kafkaPort = process.env.TRACEFEED_KAFKA_PORT ?? '9092';
const redisPort = process.env.TRACEFEED_REDIS_PORT ?? '6379';
const secrets = join(process.env.TRACEFEED_HOME ?? join(repo, '.tracefeed'), 'secrets');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (async, so listeners in this process keep working). */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((done) => {
    execFile(
      cmd,
      args,
      { cwd: repo, env: { ...process.env, ...env }, timeout: 150_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        done({ code, stdout, stderr });
      },
    );
  });
}

const script = (name: string, ...args: string[]) => [`infra/${name}.sh`, ...args];

/** A plain TCP listener on a free 127.0.0.1 port, standing in for "someone else". */
async function squatter(): Promise<{ server: Server; port: number }> {
  const server = createServer((sock) => sock.destroy());
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, port: (server.address() as AddressInfo).port };
}

const tmpHomes: string[] = [];
afterAll(() => {
  for (const d of tmpHomes) rmSync(d, { recursive: true, force: true });
});

describe('infra/kafka.sh', () => {
  it('starts a broker, then reuses it', async () => {
    const first = await run('bash', script('kafka', 'start'));
    expect(first.code, first.stderr + first.stdout).toBe(0);
    expect(first.stdout).toMatch(/kafka: (started|already running) \(pid \d+\)/);

    const second = await run('bash', script('kafka', 'start'));
    expect(second.code, second.stderr + second.stdout).toBe(0);
    expect(second.stdout).toMatch(/^kafka: already running \(pid \d+\)$/m);

    const status = await run('bash', script('kafka', 'status'));
    expect(status.code).toBe(0);
    expect(status.stdout.trim()).toMatch(
      new RegExp(`^kafka: running \\(pid \\d+\\) on 127\\.0\\.0\\.1:${kafkaPort}$`),
    );
    // Same pid everywhere: the second start did not launch another broker.
    const pid = (s: string) => /\(pid (\d+)\)/.exec(s)?.[1];
    expect(pid(second.stdout)).toBe(pid(status.stdout));
  });

  it('answers a Kafka Metadata request after SCRAM authentication, and only then', async () => {
    const probe = await run('node', ['infra/kafka/probe.mjs', '127.0.0.1', kafkaPort], {
      TRACEFEED_KAFKA_PROBE_USER: 'admin',
      TRACEFEED_KAFKA_PROBE_PASSWORD_FILE: join(secrets, 'kafka-admin.password'),
    });
    expect(probe.code, probe.stderr).toBe(0);
    expect(probe.stdout).toMatch(/cluster=\S+ brokers=1/);
    const anonymous = await run('node', ['infra/kafka/probe.mjs', '127.0.0.1', kafkaPort]);
    expect(anonymous.code).toBe(1);
    const wrong = join(mkdtempSync(join(tmpdir(), 'tracefeed-infra-')), 'pw');
    tmpHomes.push(dirname(wrong));
    writeFileSync(wrong, 'f'.repeat(48), { mode: 0o600 });
    const refused = await run('node', ['infra/kafka/probe.mjs', '127.0.0.1', kafkaPort], {
      TRACEFEED_KAFKA_PROBE_USER: 'admin',
      TRACEFEED_KAFKA_PROBE_PASSWORD_FILE: wrong,
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/SASL authentication failed/);
  });

  it('refuses a port held by another process', async () => {
    const { server, port } = await squatter();
    const home = mkdtempSync(join(tmpdir(), 'tracefeed-infra-'));
    tmpHomes.push(home);
    try {
      const r = await run('bash', script('kafka', 'start'), {
        TRACEFEED_HOME: home,
        TRACEFEED_KAFKA_PORT: String(port),
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`port ${port} on 127.0.0.1 is in use by`);
      expect(r.stderr).toContain("which is not tracefeed's Kafka");
      expect(r.stderr).toContain('TRACEFEED_KAFKA_PORT');
    } finally {
      server.close();
    }
  });
});

describe('infra/redis.sh', () => {
  it('starts redis with AOF on, then reuses it', async () => {
    const first = await run('bash', script('redis', 'start'));
    expect(first.code, first.stderr + first.stdout).toBe(0);
    expect(first.stdout).toMatch(/redis: (started|already running) \(pid \d+\)/);

    const second = await run('bash', script('redis', 'start'));
    expect(second.code, second.stderr + second.stdout).toBe(0);
    expect(second.stdout).toMatch(/^redis: already running \(pid \d+\)$/m);

    // Without the password: refused.
    const anonymous = await run('redis-cli', ['-h', '127.0.0.1', '-p', redisPort, 'ping']);
    expect(anonymous.stdout.trim()).toMatch(/^NOAUTH/);
    const auth = {
      REDISCLI_AUTH: readFileSync(join(secrets, 'redis.password'), 'utf8').trim(),
    };
    const cli = ['--no-auth-warning', '--user', 'tracefeed', '-h', '127.0.0.1', '-p', redisPort];
    const ping = await run('redis-cli', [...cli, 'ping'], auth);
    expect(ping.stdout.trim()).toBe('PONG');

    const aof = await run('redis-cli', [...cli, 'config', 'get', 'appendonly'], auth);
    expect(aof.stdout.trim().split('\n')).toEqual(['appendonly', 'yes']);

    const status = await run('bash', script('redis', 'status'));
    expect(status.code).toBe(0);
    expect(status.stdout.trim()).toMatch(
      new RegExp(`^redis: running \\(pid \\d+\\) on 127\\.0\\.0\\.1:${redisPort}$`),
    );
  });

  it('refuses a port held by another process', async () => {
    const { server, port } = await squatter();
    const home = mkdtempSync(join(tmpdir(), 'tracefeed-infra-'));
    tmpHomes.push(home);
    try {
      const r = await run('bash', script('redis', 'start'), {
        TRACEFEED_HOME: home,
        TRACEFEED_REDIS_PORT: String(port),
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`port ${port} on 127.0.0.1 is in use by`);
      expect(r.stderr).toContain("which is not tracefeed's Redis");
      expect(r.stderr).toContain('TRACEFEED_REDIS_PORT');
    } finally {
      server.close();
    }
  });
});

describe('infra/status.sh', () => {
  it('reports both services running', async () => {
    const r = await run('bash', ['infra/status.sh']);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/^kafka: running /m);
    expect(r.stdout).toMatch(/^redis: running /m);
  });
});
