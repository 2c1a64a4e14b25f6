/**
 * A Redis started before passwords (every installation from before them) and still
 * running: infra/redis.sh start restarts it with the password, and its data (AOF) is
 * still there. Runs a Redis of its own (own TRACEFEED_HOME, own port).
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/common/paths.js';
import { freePort } from '../helpers/net.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('infra/redis.sh with a Redis running from before passwords', () => {
  const home = mkdtempSync(join(tmpdir(), 'tf-redis-upgrade-'));
  const rdir = join(home, 'redis');
  let port = 0;
  let env: NodeJS.ProcessEnv;

  const run = (cmd: string, args: string[], extra: NodeJS.ProcessEnv = {}): Promise<Run> =>
    new Promise((done) => {
      execFile(
        cmd,
        args,
        { cwd: repoRoot, env: { ...env, ...extra }, timeout: 60_000 },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
          done({ code, stdout, stderr });
        },
      );
    });

  beforeAll(async () => {
    port = await freePort();
    env = { ...process.env, TRACEFEED_HOME: home, TRACEFEED_REDIS_PORT: String(port) };
    // Started the way infra/redis.sh did before passwords: no users, AOF on.
    mkdirSync(rdir, { recursive: true });
    const conf = join(rdir, 'redis.conf');
    writeFileSync(
      conf,
      [
        'bind 127.0.0.1',
        `port ${port}`,
        'daemonize yes',
        `pidfile "${join(rdir, 'redis.pid')}"`,
        `logfile "${join(rdir, 'redis.log')}"`,
        `dir "${rdir}"`,
        'appendonly yes',
        'appendfsync always',
        '',
      ].join('\n'),
    );
    writeFileSync(join(rdir, 'redis.port'), `${port}\n`);
    execFileSync('redis-server', [conf], { stdio: 'ignore' });
    for (let i = 0; i < 50; i++) {
      const r = await run('redis-cli', ['-p', String(port), 'set', 'tf-upgrade', 'kept']);
      if (r.stdout.trim() === 'OK') break;
      await new Promise((ok) => setTimeout(ok, 100));
    }
  }, 30_000);

  afterAll(async () => {
    await run('bash', ['infra/redis.sh', 'stop', '--kill']);
    rmSync(home, { recursive: true, force: true });
  }, 60_000);

  it('restarts it with the password; the data stays', async () => {
    const before = await run('redis-cli', ['-p', String(port), 'get', 'tf-upgrade']);
    expect(before.stdout.trim()).toBe('kept');

    const r = await run('bash', ['infra/redis.sh', 'start']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stderr).toMatch(/runs an older configuration .*restarting it/);
    expect(r.stdout).toMatch(/redis: started \(pid \d+\)/);

    const anonymous = await run('redis-cli', ['-p', String(port), 'get', 'tf-upgrade']);
    expect(anonymous.stdout.trim()).toMatch(/^NOAUTH/);
    const password = readFileSync(join(home, 'secrets', 'redis.password'), 'utf8').trim();
    const authed = await run(
      'redis-cli',
      ['--no-auth-warning', '--user', 'tracefeed', '-p', String(port), 'get', 'tf-upgrade'],
      { REDISCLI_AUTH: password },
    );
    expect(authed.stdout.trim()).toBe('kept');

    // Started with the current configuration: reused, not restarted again.
    const again = await run('bash', ['infra/redis.sh', 'start']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/redis: already running/);
    expect(again.stderr).not.toMatch(/restarting/);
  }, 60_000);
});
