/** Redis connection settings shared by the feedback store, queues and workers. */
import { Redis, type RedisOptions } from 'ioredis';
import { TransportError } from '../common/errors.js';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** `--redis` value, else TRACEFEED_REDIS_URL, else redis://127.0.0.1:6379. */
export function redisUrlFrom(value: string | undefined): string {
  return value ?? process.env.TRACEFEED_REDIS_URL ?? DEFAULT_REDIS_URL;
}

/**
 * ioredis options from a redis:// URL. `maxRetriesPerRequest: null` (BullMQ
 * requires it for workers): commands wait through a Redis restart instead of failing.
 */
export function redisOptions(url: string, overrides: RedisOptions = {}): RedisOptions {
  const u = new URL(url);
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
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
    throw new TransportError(`Redis is unreachable at ${url}`, 'redis', {
      cause: err,
      retriable: true,
      hint: 'start it with `tracefeed infra up`, or pass --redis / TRACEFEED_REDIS_URL',
    });
  }
  return redis;
}
