/** Redis connection settings shared by the feedback store, queues and workers. */
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { TransportError } from '../common/errors.js';
import { stateDir } from '../common/paths.js';
import { readSecretFile, SecretFileError, secretFileState } from '../common/secret-file.js';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** `--redis` value, else TRACEFEED_REDIS_URL, else redis://127.0.0.1:6379. */
export function redisUrlFrom(value: string | undefined): string {
  return value ?? process.env.TRACEFEED_REDIS_URL ?? DEFAULT_REDIS_URL;
}

/** The user of the local Redis (infra/redis.sh). */
export const LOCAL_REDIS_USER = 'tracefeed';

/** The local Redis's password file (infra/redis.sh creates it). */
export function localRedisPasswordFile(): string {
  return join(stateDir(), 'secrets', 'redis.password');
}

/**
 * The credentials of the local Redis, when `tracefeed infra up` made them: user
 * `tracefeed`, password from $TRACEFEED_HOME/secrets/redis.password. Undefined when
 * there is no such file. A file that cannot be used throws SecretFileError.
 */
export function localRedisCredentials(): { username: string; password: string } | undefined {
  const file = localRedisPasswordFile();
  const state = secretFileState(file);
  if (state === 'missing') return undefined;
  if (state === 'denied')
    throw new SecretFileError(
      `cannot read the Redis password ${file}: permission denied (the local Redis' secrets belong to another user)`,
      file,
      `run as the user that ran \`tracefeed infra up\`, or give this process a TRACEFEED_HOME of its own holding secrets/redis.password (mode 0600), or pass a redis:// URL with credentials`,
    );
  const password = readSecretFile(
    file,
    'the Redis password',
    `make it readable by this user only (chmod 600 ${file}), or run \`tracefeed infra up\` as its owner`,
  ).trim();
  if (!password)
    throw new SecretFileError(
      `the Redis password ${file} is empty`,
      file,
      `remove it and run \`tracefeed infra up\` (a new one is made and Redis restarted with it)`,
    );
  return { username: LOCAL_REDIS_USER, password };
}

/** `url` without its password, for messages and logs. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable Redis URL)';
  }
}

/**
 * ioredis options from a redis:// URL. `maxRetriesPerRequest: null` (BullMQ
 * requires it for workers): commands wait through a Redis restart instead of failing.
 * Credentials: those of the URL (redis://user:password@host:port, for a Redis of your
 * own); a URL without any gets the local Redis's (localRedisCredentials) when they exist.
 */
export function redisOptions(url: string, overrides: RedisOptions = {}): RedisOptions {
  const u = new URL(url);
  const local = !u.username && !u.password ? localRedisCredentials() : undefined;
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(local ?? {}),
    // rediss://: TLS (system CAs).
    ...(u.protocol === 'rediss:' ? { tls: { servername: u.hostname } } : {}),
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    maxRetriesPerRequest: null,
    retryStrategy: (times: number) => Math.min(2000, 50 * 2 ** Math.min(times, 6)),
    ...overrides,
  };
}

/** A client; connection errors are retried by ioredis (add an 'error' listener to log them). */
export function connectRedis(url: string, overrides: RedisOptions = {}): Redis {
  const r = new Redis(redisOptions(url, overrides));
  r.on('error', () => undefined);
  return r;
}

/**
 * A client for a short-lived caller (a CLI command, the agent's gateway): few
 * retries, and a ping first, so a Redis that is down fails at once with a
 * TransportError naming the URL and the fix.
 */
export async function connectRedisChecked(url: string): Promise<Redis> {
  const redis = connectRedis(url, {
    maxRetriesPerRequest: 1,
    connectTimeout: 3000,
    retryStrategy: (times: number) => (times > 3 ? null : 200),
  });
  try {
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    const msg = (err as Error).message ?? '';
    if (/NOAUTH|WRONGPASS|NOPERM/.test(msg))
      throw new TransportError(
        `Redis at ${redactRedisUrl(url)} refused the credentials: ${msg}`,
        'redis',
        {
          cause: err,
          retriable: false,
          hint: `the local Redis takes user ${LOCAL_REDIS_USER} with the password in ${localRedisPasswordFile()} (restart it with \`tracefeed infra up\` after changing it); a Redis of your own takes redis://user:password@host:port in --redis / TRACEFEED_REDIS_URL`,
        },
      );
    throw new TransportError(`Redis is unreachable at ${redactRedisUrl(url)}`, 'redis', {
      cause: err,
      retriable: true,
      hint: 'start it with `tracefeed infra up`, or pass --redis / TRACEFEED_REDIS_URL',
    });
  }
  return redis;
}
