#!/usr/bin/env node
// The ACLs of tracefeed's Kafka users, one user per client role (src/common/kafka.ts
// KafkaRole). Run by infra/kafka.sh on every start, as the admin user: creates the ACLs
// that are missing, deletes the ones of these users that are no longer in the table, then
// reads them back and fails unless they are exactly the table.
//
// usage: node infra/kafka/acls.mjs <broker host:port>[,<host:port>...]
// env:   TRACEFEED_HOME (the admin password is $TRACEFEED_HOME/secrets/kafka-admin.password)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import kafkajs from 'kafkajs';

const {
  AclOperationTypes: Op,
  AclPermissionTypes,
  AclResourceTypes: Res,
  Kafka,
  logLevel,
  ResourcePatternTypes: Pattern,
} = kafkajs;

/** Topic names (src/common/kafka.ts Topics; test/security checks they agree). */
export const AclTopics = {
  events: 'tracefeed.events.v1',
  features: 'tracefeed.features.v1',
  anomalies: 'tracefeed.anomalies.v1',
  feedback: 'tracefeed.feedback.v1',
  eventsDlq: 'tracefeed.events.dlq.v1',
  analyses: 'tracefeed.analyses.v1',
};

/**
 * Consumer groups and transactional ids a role may use: names starting with these
 * (src/common/kafka.ts KafkaGroupPrefix).
 */
export const GroupPrefix = {
  features: 'tracefeed-features',
  controller: 'tracefeed-feedback',
  agent: 'tracefeed-',
};

const topic = (name, ...ops) => ops.map((op) => [Res.TOPIC, name, Pattern.LITERAL, op]);
const topicsPrefixed = (name, ...ops) => ops.map((op) => [Res.TOPIC, name, Pattern.PREFIXED, op]);
const groups = (prefix) => [[Res.GROUP, prefix, Pattern.PREFIXED, Op.READ]];
const idempotent = [[Res.CLUSTER, 'kafka-cluster', Pattern.LITERAL, Op.IDEMPOTENT_WRITE]];

/**
 * role -> [resourceType, resourceName, patternType, operation][]. The admin is a super
 * user (server.properties) and needs none.
 */
export const RoleAcls = {
  // The node agent's frame sink: an idempotent producer of events.
  node: [...topic(AclTopics.events, Op.WRITE, Op.DESCRIBE), ...idempotent],
  // The feature stage: reads events, writes features, anomalies and dead letters;
  // transactional ids of its own for exactly-once output.
  features: [
    ...topic(AclTopics.events, Op.READ, Op.DESCRIBE),
    ...groups(GroupPrefix.features),
    ...topic(AclTopics.features, Op.WRITE, Op.DESCRIBE),
    ...topic(AclTopics.anomalies, Op.WRITE, Op.DESCRIBE),
    ...topic(AclTopics.eventsDlq, Op.WRITE, Op.DESCRIBE),
    ...idempotent,
    [Res.TRANSACTIONAL_ID, GroupPrefix.features, Pattern.PREFIXED, Op.WRITE],
    [Res.TRANSACTIONAL_ID, GroupPrefix.features, Pattern.PREFIXED, Op.DESCRIBE],
  ],
  // The feedback controller: reads anomalies, writes the feedback audit.
  controller: [
    ...topic(AclTopics.anomalies, Op.READ, Op.DESCRIBE),
    ...groups(GroupPrefix.controller),
    ...topic(AclTopics.feedback, Op.WRITE, Op.DESCRIBE),
  ],
  // The agent (and `tracefeed events tail`): reads every tracefeed topic, writes analyses.
  agent: [
    ...topicsPrefixed('tracefeed.', Op.READ, Op.DESCRIBE),
    ...groups(GroupPrefix.agent),
    ...topic(AclTopics.analyses, Op.WRITE),
  ],
};

/**
 * Scratch topics for the test suite: with TRACEFEED_KAFKA_TEST_TOPICS=1 (set by
 * scripts/test.sh), every role may create, write and read topics prefixed
 * `tracefeed.test.` and use transactional ids prefixed `tracefeed-features-test`,
 * so that a test can run a role against topics of its own. A start without it
 * (`npm start`, `tracefeed infra up`) removes these rows again.
 */
export const TEST_TOPIC_PREFIX = 'tracefeed.test.';
const testRows = [...topicsPrefixed(TEST_TOPIC_PREFIX, Op.CREATE, Op.WRITE, Op.READ, Op.DESCRIBE)];

/** The table for this start: the roles' rows, plus the scratch rows when asked for. */
export function roleAcls(env = process.env) {
  if (env.TRACEFEED_KAFKA_TEST_TOPICS !== '1') return RoleAcls;
  return Object.fromEntries(
    Object.entries(RoleAcls).map(([role, rows]) => [role, [...rows, ...testRows]]),
  );
}

/** The table as kafkajs ACL entries. */
export function aclEntries() {
  return Object.entries(roleAcls()).flatMap(([role, rows]) =>
    rows.map(([resourceType, resourceName, resourcePatternType, operation]) => ({
      resourceType,
      resourceName,
      resourcePatternType,
      principal: `User:${role}`,
      host: '*',
      operation,
      permissionType: AclPermissionTypes.ALLOW,
    })),
  );
}

const key = (a) =>
  [
    a.principal,
    a.host,
    a.resourceType,
    a.resourceName,
    a.resourcePatternType,
    a.operation,
    a.permissionType,
  ].join('|');

/** All ACL bindings on the cluster, flattened. */
async function currentAcls(admin) {
  const r = await admin.describeAcls({
    resourceType: Res.ANY,
    resourcePatternType: Pattern.ANY,
    operation: Op.ANY,
    permissionType: AclPermissionTypes.ANY,
  });
  return r.resources.flatMap((res) =>
    res.acls.map((a) => ({
      resourceType: res.resourceType,
      resourceName: res.resourceName,
      resourcePatternType: res.resourcePatternType,
      ...a,
    })),
  );
}

async function main() {
  const [broker = '127.0.0.1:9092'] = process.argv.slice(2);
  const home = process.env.TRACEFEED_HOME;
  if (!home) throw new Error('TRACEFEED_HOME is not set');
  const file = join(home, 'secrets', 'kafka-admin.password');
  const password = readFileSync(file, 'utf8').trim();
  const kafka = new Kafka({
    clientId: 'tracefeed-acls',
    brokers: broker.split(',').filter(Boolean),
    logLevel: logLevel.NOTHING,
    sasl: { mechanism: 'scram-sha-512', username: 'admin', password },
    retry: { retries: 5, initialRetryTime: 300 },
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const want = aclEntries();
    const wantKeys = new Set(want.map(key));
    const ours = new Set(Object.keys(RoleAcls).map((r) => `User:${r}`));
    let have = await currentAcls(admin);
    const haveKeys = new Set(have.map(key));
    const missing = want.filter((a) => !haveKeys.has(key(a)));
    const extra = have.filter((a) => ours.has(a.principal) && !wantKeys.has(key(a)));
    if (missing.length > 0) await admin.createAcls({ acl: missing });
    if (extra.length > 0) await admin.deleteAcls({ filters: extra });
    // A change reaches the broker's metadata image a moment after the request returns (and
    // another node's later still): read back until it shows, for up to 15 s.
    let absent = [];
    let surplus = [];
    for (const until = Date.now() + 15_000; ;) {
      have = await currentAcls(admin);
      const got = new Set(have.filter((a) => ours.has(a.principal)).map(key));
      absent = [...wantKeys].filter((k) => !got.has(k));
      surplus = [...got].filter((k) => !wantKeys.has(k));
      if ((absent.length === 0 && surplus.length === 0) || Date.now() >= until) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    if (absent.length > 0 || surplus.length > 0)
      throw new Error(
        `ACLs read back differ from the table: missing ${JSON.stringify(absent)}, extra ${JSON.stringify(surplus)}`,
      );
    process.stdout.write(
      `${new Date().toISOString()} acls: ${want.length} for ${ours.size} users (created ${missing.length}, deleted ${extra.length})\n`,
    );
  } finally {
    await admin.disconnect();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => {
    process.stderr.write(`acls: ${err.message}\n`);
    process.exit(1);
  });
}
