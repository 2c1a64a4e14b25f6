/**
 * Two fixes to kafkajs 2.2.4 (the last release), applied once per process.
 *
 * 1. It re-arms a 0 ms timer for ever once a connection has no pending request:
 *    RequestQueue.scheduleCheckPendingRequests schedules a check even when nothing waits,
 *    with a negative delay (kafkajs issues 1556, 1604, 1704; unreleased fix in pull
 *    request 1667). Every producer, consumer and admin connection then keeps a core busy
 *    at a few per cent while idle. This replaces the method with one that schedules a
 *    check only while requests are pending, exactly as the upstream fix does.
 *
 * 2. BrokerPool.withBroker, which asks "any broker" (FindCoordinator: every transaction's
 *    coordinator lookups and the group coordinator of its offsets), tries the brokers of
 *    the pool in a random order, but connects to each outside its try: the first broker it
 *    picks that cannot be reached ends the whole call with the connection error, instead of
 *    the next broker being asked. The pool keeps a dead broker until the next metadata
 *    refresh (every 5 min by default), so after a broker dies about one lookup in three
 *    fails, and Cluster.findGroupCoordinator retries it after a back-off (300 ms, then
 *    doubling). Several lookups per transaction made the feature stage commit far slower
 *    than the load for half a minute after a broker of three was killed
 *    (docs/benchmarks.md, "Replicated cluster"). This tries the connected brokers first,
 *    then the others, and goes on to the next one when a broker cannot be reached; only
 *    when none could be reached is the last connection error thrown (so the caller's
 *    retries still apply when the whole cluster is briefly away).
 */
import { createRequire } from 'node:module';

interface RequestQueueLike {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
}

interface BrokerLike {
  isConnected(): boolean;
}

interface BrokerPoolLike {
  brokers: Record<string, BrokerLike>;
  findBroker(o: { nodeId: string }): Promise<BrokerLike>;
  withBroker<T>(
    callback: (o: { nodeId: string; broker: BrokerLike }) => Promise<T>,
  ): Promise<T | null>;
}

const CHECK_PENDING_REQUESTS_INTERVAL_MS = 10;

/** The pool's node ids: the connected brokers first, each group in a random order. */
export function brokerOrder(brokers: Record<string, { isConnected(): boolean }>): string[] {
  const shuffled = Object.keys(brokers)
    .map((id) => ({ id, r: Math.random() }))
    .sort((x, y) => x.r - y.r)
    .map((x) => x.id);
  return [
    ...shuffled.filter((id) => brokers[id]!.isConnected()),
    ...shuffled.filter((id) => !brokers[id]!.isConnected()),
  ];
}

let patched = false;

export function patchKafkajs(): void {
  if (patched) return;
  patched = true;
  const require = createRequire(import.meta.url);
  const RequestQueue = require('kafkajs/src/network/requestQueue/index.js') as {
    prototype: RequestQueueLike & { scheduleCheckPendingRequests(): void };
  };
  RequestQueue.prototype.scheduleCheckPendingRequests = function (this: RequestQueueLike): void {
    if (this.throttleCheckTimeoutId || this.pending.length === 0) return;
    const wait = this.throttledUntil - Date.now();
    this.throttleCheckTimeoutId = setTimeout(
      () => {
        this.throttleCheckTimeoutId = null;
        this.checkPendingRequests();
      },
      wait > 0 ? wait : CHECK_PENDING_REQUESTS_INTERVAL_MS,
    );
  };

  const { KafkaJSBrokerNotFound } = require('kafkajs/src/errors.js') as {
    KafkaJSBrokerNotFound: new (message: string) => Error;
  };
  const BrokerPool = require('kafkajs/src/cluster/brokerPool.js') as {
    prototype: BrokerPoolLike;
  };
  BrokerPool.prototype.withBroker = async function <T>(
    this: BrokerPoolLike,
    callback: (o: { nodeId: string; broker: BrokerLike }) => Promise<T>,
  ): Promise<T | null> {
    const nodeIds = brokerOrder(this.brokers);
    if (nodeIds.length === 0) throw new KafkaJSBrokerNotFound('No brokers in the broker pool');
    let unreachable: unknown;
    let asked = false;
    for (const nodeId of nodeIds) {
      let broker: BrokerLike;
      try {
        broker = await this.findBroker({ nodeId });
      } catch (err) {
        unreachable = err;
        continue;
      }
      asked = true;
      try {
        return await callback({ nodeId, broker });
      } catch {
        // as kafkajs: the next broker is asked
      }
    }
    if (!asked && unreachable !== undefined) throw unreachable;
    return null;
  };
}
