/** How tracefeed lays out its topics on clusters of different sizes, and which brokers it asks (src/common/kafka.ts). */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/common/errors.js';
import { brokersFrom, topicLayout } from '../../src/common/kafka.js';

describe('topicLayout', () => {
  it('copies each partition min(3, brokers) times, with min.insync.replicas 2 from 3 copies', () => {
    expect(topicLayout(1, {}, {})).toEqual({
      partitions: 3,
      replicationFactor: 1,
      minInsyncReplicas: undefined,
    });
    expect(topicLayout(2, {}, {})).toEqual({
      partitions: 3,
      replicationFactor: 2,
      minInsyncReplicas: undefined,
    });
    expect(topicLayout(3, {}, {})).toEqual({
      partitions: 3,
      replicationFactor: 3,
      minInsyncReplicas: 2,
    });
    expect(topicLayout(5, {}, {})).toEqual({
      partitions: 3,
      replicationFactor: 3,
      minInsyncReplicas: 2,
    });
  });

  it('takes the settings of an external cluster from the environment, options first', () => {
    const env = {
      TRACEFEED_KAFKA_PARTITIONS: '12',
      TRACEFEED_KAFKA_REPLICATION_FACTOR: '4',
      TRACEFEED_KAFKA_MIN_INSYNC_REPLICAS: '3',
    };
    expect(topicLayout(6, {}, env)).toEqual({
      partitions: 12,
      replicationFactor: 4,
      minInsyncReplicas: 3,
    });
    expect(
      topicLayout(6, { partitions: 1, replicationFactor: 2, minInsyncReplicas: 1 }, env),
    ).toEqual({
      partitions: 1,
      replicationFactor: 2,
      minInsyncReplicas: 1,
    });
  });

  it('names the setting that is wrong or that the cluster cannot meet', () => {
    const bad =
      (env: NodeJS.ProcessEnv, brokers = 3) =>
      () =>
        topicLayout(brokers, {}, env);
    expect(bad({ TRACEFEED_KAFKA_PARTITIONS: 'three' })).toThrow(
      /TRACEFEED_KAFKA_PARTITIONS must be a whole number >= 1, got 'three'/,
    );
    expect(bad({ TRACEFEED_KAFKA_PARTITIONS: '0' })).toThrow(ConfigError);
    expect(bad({ TRACEFEED_KAFKA_REPLICATION_FACTOR: '1.5' })).toThrow(
      /TRACEFEED_KAFKA_REPLICATION_FACTOR must be a whole number/,
    );
    expect(bad({ TRACEFEED_KAFKA_REPLICATION_FACTOR: '3' }, 1)).toThrow(
      /TRACEFEED_KAFKA_REPLICATION_FACTOR is 3 but the cluster has 1 live broker/,
    );
    expect(
      bad({ TRACEFEED_KAFKA_MIN_INSYNC_REPLICAS: '3', TRACEFEED_KAFKA_REPLICATION_FACTOR: '2' }),
    ).toThrow(/TRACEFEED_KAFKA_MIN_INSYNC_REPLICAS is 3 but the replication factor is 2/);
    expect(() => topicLayout(3, { partitions: -1 }, {})).toThrow(
      /partitions must be a whole number/,
    );
  });
});

describe('brokersFrom', () => {
  it('takes the option, else TRACEFEED_KAFKA_BROKERS, else the local cluster, else 127.0.0.1:9092', () => {
    const saved = {
      home: process.env.TRACEFEED_HOME,
      brokers: process.env.TRACEFEED_KAFKA_BROKERS,
    };
    const home = mkdtempSync(join(tmpdir(), 'tf-bootstrap-'));
    try {
      process.env.TRACEFEED_HOME = home;
      delete process.env.TRACEFEED_KAFKA_BROKERS;
      expect(brokersFrom(undefined)).toEqual(['127.0.0.1:9092']);
      mkdirSync(join(home, 'kafka'));
      writeFileSync(
        join(home, 'kafka', 'bootstrap'),
        '127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096\n',
      );
      expect(brokersFrom(undefined)).toEqual([
        '127.0.0.1:9092',
        '127.0.0.1:9094',
        '127.0.0.1:9096',
      ]);
      process.env.TRACEFEED_KAFKA_BROKERS = 'k1:9092, k2:9092';
      expect(brokersFrom(undefined)).toEqual(['k1:9092', 'k2:9092']);
      expect(brokersFrom('k3:1')).toEqual(['k3:1']);
    } finally {
      rmSync(home, { recursive: true, force: true });
      if (saved.home === undefined) delete process.env.TRACEFEED_HOME;
      else process.env.TRACEFEED_HOME = saved.home;
      if (saved.brokers === undefined) delete process.env.TRACEFEED_KAFKA_BROKERS;
      else process.env.TRACEFEED_KAFKA_BROKERS = saved.brokers;
    }
  });
});
