/**
 * Runs once before the suites: the topics exist before any test consumer
 * subscribes. scripts/test.sh has started (or reused) Kafka and Redis.
 */
import { brokersFrom, ensureTopics } from '../../src/common/kafka.js';
import { createLogger } from '../../src/common/logger.js';

export default async function setup(): Promise<void> {
  const brokers = brokersFrom(undefined);
  await ensureTopics(brokers, createLogger('test-setup', 'warn'));
}
