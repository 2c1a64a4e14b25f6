/**
 * A broker that died stays in a kafkajs client's broker pool until its next metadata
 * refresh; "ask any broker" requests (FindCoordinator: a transaction's coordinator, a
 * group's coordinator) must go on to a live broker instead of failing on the dead one
 * (src/common/kafkajs-patch.ts). Against the local broker, with a second pool entry on a
 * loopback port where nothing listens: every lookup is answered, none waits for a retry.
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { brokersFrom, kafkaClient } from '../../src/common/kafka.js';
import { brokerOrder } from '../../src/common/kafkajs-patch.js';
import { freePort } from '../helpers/net.js';

interface PoolBroker {
  isConnected(): boolean;
}
interface ClusterLike {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  refreshMetadata(): Promise<void>;
  findGroupCoordinator(o: { groupId: string; coordinatorType?: number }): Promise<unknown>;
  brokerPool: {
    brokers: Record<string, PoolBroker>;
    rootLogger: unknown;
    versions: unknown;
    connectionPoolBuilder: { build(o: { host: string; port: number }): Promise<unknown> };
    createBroker(o: Record<string, unknown>): PoolBroker;
  };
}

const require = createRequire(import.meta.url);
const COORDINATOR_TYPES = require('kafkajs/src/protocol/coordinatorTypes.js') as {
  GROUP: number;
  TRANSACTION: number;
};

describe('kafkajs broker pool with a dead broker', () => {
  let cluster: ClusterLike;
  const dead = '9999';

  beforeAll(async () => {
    const kafka = kafkaClient({
      role: 'features',
      clientId: 'tf-test-broker-pool',
      brokers: brokersFrom(undefined),
      retry: { retries: 5, initialRetryTime: 300 },
    });
    // The client's own cluster object, as its producers and consumers make it.
    const create = Object.getOwnPropertySymbols(kafka).find(
      (s) => s.description === 'private:Kafka:createCluster',
    )!;
    cluster = (kafka as unknown as Record<symbol, (o: object) => ClusterLike>)[create]!({
      metadataMaxAge: 300_000,
      allowAutoTopicCreation: false,
    });
    await cluster.connect();
    await cluster.refreshMetadata(); // the live brokers join the pool
    const pool = cluster.brokerPool;
    const port = await freePort(); // nothing listens: connecting is refused, as to a killed broker
    pool.brokers[dead] = pool.createBroker({
      logger: pool.rootLogger,
      versions: pool.versions,
      connectionPool: await pool.connectionPoolBuilder.build({ host: '127.0.0.1', port }),
      nodeId: Number(dead),
    });
  });

  afterAll(async () => {
    await cluster?.disconnect();
  });

  it('orders the connected brokers first', () => {
    const order = brokerOrder(cluster.brokerPool.brokers);
    expect(order.at(-1)).toBe(dead);
    expect(order.length).toBeGreaterThanOrEqual(2);
  });

  it('finds group and transaction coordinators without failing on, or waiting for, the dead broker', async () => {
    const group = `tracefeed-features-pooltest-${randomUUID().slice(0, 8)}`;
    for (let i = 0; i < 30; i++) {
      const t0 = Date.now();
      await cluster.findGroupCoordinator(
        i % 2 === 0
          ? { groupId: group, coordinatorType: COORDINATOR_TYPES.GROUP }
          : { groupId: `${group}-txn`, coordinatorType: COORDINATOR_TYPES.TRANSACTION },
      );
      // No retry back-off (300 ms and more) was needed.
      expect(Date.now() - t0).toBeLessThan(250);
    }
    // Not connected yet: the dead broker is last, and another broker answers first.
    expect(cluster.brokerPool.brokers[dead]!.isConnected()).toBe(false);
  });
});
