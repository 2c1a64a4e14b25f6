import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel, type KafkaConfig, type logCreator, type SASLOptions } from 'kafkajs';
import { ConfigError, TransportError } from './errors.js';
import { patchKafkajs } from './kafkajs-patch.js';
import { stateDir } from './paths.js';
import { readSecretFile, SecretFileError, secretFileState } from './secret-file.js';

patchKafkajs();
import type { Logger } from './logger.js';

/** The v1 topics (README.md, "Kafka topics"). */
export const Topics = {
  events: 'tracefeed.events.v1',
  features: 'tracefeed.features.v1',
  anomalies: 'tracefeed.anomalies.v1',
  feedback: 'tracefeed.feedback.v1',
  eventsDlq: 'tracefeed.events.dlq.v1',
  analyses: 'tracefeed.analyses.v1',
} as const;

/** Routes kafkajs's own log lines to the project logger (debug level: the callers log state changes). */
export function kafkaLogCreator(log: Logger): logCreator {
  return () =>
    ({ level, log: entry }) => {
      const { message, ...rest } = entry;
      if (level === logLevel.ERROR || level === logLevel.WARN)
        log.debug({ kafkajs: rest }, message);
      else log.trace({ kafkajs: rest }, message);
    };
}

/**
 * Who is talking to Kafka. Each role has its own credentials and ACLs on the local
 * cluster (docs/security.md): `node` produces events; `features` reads events and
 * writes features, anomalies and the dead-letter topic; `controller` reads anomalies
 * and writes feedback; `agent` reads everything and writes analyses; `admin` creates
 * topics and ACLs.
 */
export type KafkaRole = 'admin' | 'node' | 'features' | 'controller' | 'agent';

export interface KafkaClientOptions {
  role: KafkaRole;
  clientId: string;
  brokers: string[];
  log?: Logger;
  /** kafkajs log level (default WARN, routed to `log` when given). */
  logLevel?: logLevel;
  connectionTimeout?: number;
  retry?: KafkaConfig['retry'];
}

/**
 * Consumer groups (and transactional ids) a role may use on the local cluster: ids
 * starting with these (infra/kafka/acls.mjs). `node` and `admin` have none to keep.
 */
export const KafkaGroupPrefix = {
  features: 'tracefeed-features',
  controller: 'tracefeed-feedback',
  agent: 'tracefeed-',
} as const;

/** SASL mechanisms a client may be configured with. */
const MECHANISMS = ['scram-sha-512', 'scram-sha-256', 'plain'] as const;
type Mechanism = (typeof MECHANISMS)[number];

/** How a role authenticates: resolved from the environment or the local secrets. */
export interface KafkaAuth {
  /** Where the settings came from, for messages. */
  source: 'env' | 'local' | 'none';
  sasl?: { mechanism: Mechanism; username: string; password: string };
  /** TLS on the client side; `ca` is PEM read from `caFile` (else the system's trust store). */
  tls?: { ca?: string; caFile?: string };
}

/** The file of a role's password on the local cluster (infra/kafka.sh creates it). */
export function localKafkaPasswordFile(role: KafkaRole): string {
  return join(stateDir(), 'secrets', `kafka-${role}.password`);
}

function env(name: string, role: KafkaRole): string | undefined {
  const specific = process.env[`TRACEFEED_KAFKA_${role.toUpperCase()}_${name}`];
  if (specific !== undefined && specific !== '') return specific;
  const v = process.env[`TRACEFEED_KAFKA_${name}`];
  return v === '' ? undefined : v;
}

function readPassword(file: string, what: string, fix: string): string {
  let text: string;
  try {
    text = readSecretFile(file, what, fix);
  } catch (err) {
    if (err instanceof SecretFileError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new SecretFileError(`cannot read ${what} ${file}: ${code}`, file, fix, err);
  }
  const password = text.trim();
  if (!password) throw new SecretFileError(`${what} ${file} is empty`, file, fix);
  return password;
}

/**
 * A role's Kafka authentication. In this order:
 * - the environment, for a cluster of your own: TRACEFEED_KAFKA_SASL_MECHANISM
 *   (scram-sha-512 (default), scram-sha-256, plain; `none` for no SASL),
 *   TRACEFEED_KAFKA_USERNAME, TRACEFEED_KAFKA_PASSWORD or TRACEFEED_KAFKA_PASSWORD_FILE;
 *   each may be given per role as TRACEFEED_KAFKA_<ROLE>_<NAME> (e.g.
 *   TRACEFEED_KAFKA_NODE_USERNAME);
 * - else the local cluster's secrets (`tracefeed infra up`): user `<role>`, password in
 *   $TRACEFEED_HOME/secrets/kafka-<role>.password;
 * - else none (PLAINTEXT).
 * TLS: TRACEFEED_KAFKA_TLS=1, TRACEFEED_KAFKA_TLS_CA=<PEM file> (default: system CAs).
 * Throws ConfigError (naming the file or variable, and the fix) when a setting is unusable.
 */
export function kafkaAuth(role: KafkaRole): KafkaAuth {
  const tlsOn = env('TLS', role);
  if (tlsOn !== undefined && !['0', '1', 'true', 'false'].includes(tlsOn))
    throw new ConfigError(`TRACEFEED_KAFKA_TLS must be 1 or 0, got '${tlsOn}'`, 'kafka');
  const caFile = env('TLS_CA', role);
  let tls: KafkaAuth['tls'];
  if (tlsOn === '1' || tlsOn === 'true' || caFile) {
    tls = {};
    if (caFile) {
      try {
        tls = { ca: readFileSync(caFile, 'utf8'), caFile };
      } catch (err) {
        throw new ConfigError(
          `cannot read the Kafka CA file ${caFile} (TRACEFEED_KAFKA_TLS_CA): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
          'kafka',
          { cause: err, hint: 'point TRACEFEED_KAFKA_TLS_CA at a readable PEM file' },
        );
      }
    }
  }
  const withTls = (a: KafkaAuth): KafkaAuth => (tls ? { ...a, tls } : a);

  const mech = env('SASL_MECHANISM', role)?.toLowerCase();
  if (mech === 'none') return withTls({ source: 'env' });
  if (mech !== undefined && !(MECHANISMS as readonly string[]).includes(mech))
    throw new ConfigError(
      `TRACEFEED_KAFKA_SASL_MECHANISM must be one of ${MECHANISMS.join(', ')} or none, got '${mech}'`,
      'kafka',
    );
  const username = env('USERNAME', role);
  if (username !== undefined) {
    let password = env('PASSWORD', role);
    const file = env('PASSWORD_FILE', role);
    if (password === undefined && file !== undefined)
      password = readPassword(
        file,
        'the Kafka password file',
        `make ${file} readable by this user only (chmod 600), or set TRACEFEED_KAFKA_PASSWORD_FILE to the right file`,
      );
    if (password === undefined)
      throw new ConfigError(
        `TRACEFEED_KAFKA_USERNAME is set (${username}) but no password: set TRACEFEED_KAFKA_PASSWORD or TRACEFEED_KAFKA_PASSWORD_FILE`,
        'kafka',
      );
    return withTls({
      source: 'env',
      sasl: { mechanism: (mech ?? 'scram-sha-512') as Mechanism, username, password },
    });
  }
  if (mech !== undefined)
    throw new ConfigError(
      `TRACEFEED_KAFKA_SASL_MECHANISM is ${mech} but TRACEFEED_KAFKA_USERNAME is not set`,
      'kafka',
    );

  // The local cluster's users are made together with the admin's password; without it
  // there is no local cluster with authentication here.
  // A role may also run with only its own password (a home of its own, without root).
  const file = localKafkaPasswordFile(role);
  const own = secretFileState(file);
  const admin = secretFileState(localKafkaPasswordFile('admin'));
  if (own === 'missing' && admin === 'missing') return withTls({ source: 'none' });
  if (own === 'denied' || (own === 'missing' && admin === 'denied'))
    throw new SecretFileError(
      `cannot read the Kafka password of role ${role} ${file}: permission denied (the local cluster's secrets belong to another user)`,
      file,
      `run as the user that ran \`tracefeed infra up\`, or give this role a TRACEFEED_HOME of its own holding secrets/kafka-${role}.password (mode 0600), or set TRACEFEED_KAFKA_USERNAME and TRACEFEED_KAFKA_PASSWORD_FILE`,
    );
  const password = readPassword(
    file,
    `the Kafka password of role ${role}`,
    `run \`tracefeed infra up\` (it creates the passwords of the local cluster), or set TRACEFEED_KAFKA_USERNAME and TRACEFEED_KAFKA_PASSWORD_FILE for a cluster of your own`,
  );
  return withTls({
    source: 'local',
    sasl: { mechanism: 'scram-sha-512', username: role, password },
  });
}

/** The kafkajs security settings (SASL, TLS) of a role (see kafkaAuth). */
export function kafkaSecurity(role: KafkaRole): Pick<KafkaConfig, 'sasl' | 'ssl'> {
  const a = kafkaAuth(role);
  const out: Pick<KafkaConfig, 'sasl' | 'ssl'> = {};
  if (a.sasl) out.sasl = { ...a.sasl } as SASLOptions;
  if (a.tls) out.ssl = a.tls.ca ? { ca: [a.tls.ca] } : true;
  return out;
}

/**
 * The librdkafka properties of a role's security settings, for the native frame sink.
 * On the local cluster it authenticates with PLAIN (same user and password; the
 * listener is on loopback): the SCRAM of librdkafka before 2.6.1, such as Debian's
 * 2.0.2, sends a nonce that Kafka 4 rejects (confluentinc/librdkafka#4895). For a
 * cluster of your own the mechanism is yours: TRACEFEED_KAFKA_NODE_SASL_MECHANISM=plain
 * (over TLS) with an older librdkafka.
 */
export function nativeKafkaSecurity(role: KafkaRole): Record<string, string> {
  const a = kafkaAuth(role);
  const out: Record<string, string> = {};
  if (a.sasl) {
    out['security.protocol'] = a.tls ? 'sasl_ssl' : 'sasl_plaintext';
    out['sasl.mechanisms'] = a.source === 'local' ? 'PLAIN' : a.sasl.mechanism.toUpperCase();
    out['sasl.username'] = a.sasl.username;
    out['sasl.password'] = a.sasl.password;
  } else if (a.tls) {
    out['security.protocol'] = 'ssl';
  }
  if (a.tls?.caFile) out['ssl.ca.location'] = a.tls.caFile;
  return out;
}

/** The one way tracefeed makes a kafkajs client. */
export function kafkaClient(o: KafkaClientOptions): Kafka {
  return new Kafka({
    clientId: o.clientId,
    brokers: o.brokers,
    logLevel: o.logLevel ?? logLevel.WARN,
    ...(o.log ? { logCreator: kafkaLogCreator(o.log) } : {}),
    ...(o.connectionTimeout !== undefined ? { connectionTimeout: o.connectionTimeout } : {}),
    ...(o.retry ? { retry: o.retry } : {}),
    ...kafkaSecurity(o.role),
  });
}

export const DEFAULT_BROKERS = ['127.0.0.1:9092'];

/**
 * Every broker of the local cluster, as infra/kafka.sh last started it
 * ($TRACEFEED_HOME/kafka/bootstrap), so that a client starting while one of several
 * local brokers is down still finds the others. Undefined when there is none.
 */
export function localBootstrap(): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(join(stateDir(), 'kafka', 'bootstrap'), 'utf8');
  } catch {
    return undefined;
  }
  const list = text
    .trim()
    .split(',')
    .map((s) => s.trim())
    .filter((s) => /^[\w.-]+:\d+$/.test(s));
  return list.length > 0 ? list : undefined;
}

/** The bootstrap brokers: `value`, else TRACEFEED_KAFKA_BROKERS, else the local cluster's, else 127.0.0.1:9092. */
export function brokersFrom(value: string | undefined): string[] {
  const v = value ?? process.env.TRACEFEED_KAFKA_BROKERS;
  if (!v) return localBootstrap() ?? DEFAULT_BROKERS;
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Waits until every partition of `topics` has a leader. */
async function waitForLeaders(
  admin: ReturnType<Kafka['admin']>,
  topics: string[],
  partitions: number,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const meta = await admin.fetchTopicMetadata({ topics });
      const led = meta.topics.every(
        (t) => t.partitions.length === partitions && t.partitions.every((p) => p.leader >= 0),
      );
      if (led && meta.topics.length === topics.length) return;
      last = 'partitions without a leader';
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline)
      throw new TransportError(
        `created ${topics.join(', ')} but their partitions have no leader after ${timeoutMs} ms: ${last}`,
        'kafka',
        { retriable: true, hint: 'check that every broker is up (`tracefeed infra status`)' },
      );
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** How the topics tracefeed creates are laid out (see topicLayout). */
export interface TopicLayoutOptions {
  /** Partitions per topic (default TRACEFEED_KAFKA_PARTITIONS, else 3). */
  partitions?: number;
  /** Copies of each partition (default TRACEFEED_KAFKA_REPLICATION_FACTOR, else min(3, live brokers)). */
  replicationFactor?: number;
  /** min.insync.replicas of each topic (default TRACEFEED_KAFKA_MIN_INSYNC_REPLICAS, else 2 when the replication factor is 3 or more, else the broker's). */
  minInsyncReplicas?: number;
}

export interface TopicLayout {
  partitions: number;
  replicationFactor: number;
  /** Undefined: the broker's default. */
  minInsyncReplicas: number | undefined;
}

/** A whole number >= 1 from an option or variable, or a ConfigError naming it. */
function countSetting(value: number | string | undefined, name: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = typeof value === 'number' ? value : Number(value.trim());
  if (!Number.isInteger(n) || n < 1 || (typeof value === 'string' && !/^\s*\d+\s*$/.test(value)))
    throw new ConfigError(`${name} must be a whole number >= 1, got '${value}'`, 'kafka');
  return n;
}

/**
 * The partitions, replication factor and min.insync.replicas of new topics on a cluster
 * of `liveBrokers` brokers: options, else TRACEFEED_KAFKA_PARTITIONS,
 * TRACEFEED_KAFKA_REPLICATION_FACTOR and TRACEFEED_KAFKA_MIN_INSYNC_REPLICAS, else 3
 * partitions, replication factor min(3, brokers) and min.insync.replicas 2 from a
 * replication factor of 3 (acks=all writes then survive one broker down, and a write
 * acknowledged by only one copy is refused instead of lost with it). Throws ConfigError
 * naming the setting when a value is not a count or cannot be met by the cluster.
 */
export function topicLayout(
  liveBrokers: number,
  o: TopicLayoutOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): TopicLayout {
  const named = (opt: keyof TopicLayoutOptions, variable: string) =>
    o[opt] !== undefined ? countSetting(o[opt], opt) : countSetting(env[variable], variable);
  const partitions = named('partitions', 'TRACEFEED_KAFKA_PARTITIONS') ?? 3;
  const rfName =
    o.replicationFactor !== undefined ? 'replicationFactor' : 'TRACEFEED_KAFKA_REPLICATION_FACTOR';
  const rfSet = named('replicationFactor', 'TRACEFEED_KAFKA_REPLICATION_FACTOR');
  const replicationFactor = rfSet ?? Math.max(1, Math.min(3, liveBrokers));
  if (rfSet !== undefined && liveBrokers > 0 && rfSet > liveBrokers)
    throw new ConfigError(
      `${rfName} is ${rfSet} but the cluster has ${liveBrokers} live broker${liveBrokers === 1 ? '' : 's'}: a topic cannot have more copies than brokers`,
      'kafka',
      { hint: `set ${rfName} to ${liveBrokers} or less, or start the missing brokers` },
    );
  const isrName =
    o.minInsyncReplicas !== undefined ? 'minInsyncReplicas' : 'TRACEFEED_KAFKA_MIN_INSYNC_REPLICAS';
  const isrSet = named('minInsyncReplicas', 'TRACEFEED_KAFKA_MIN_INSYNC_REPLICAS');
  if (isrSet !== undefined && isrSet > replicationFactor)
    throw new ConfigError(
      `${isrName} is ${isrSet} but the replication factor is ${replicationFactor}: no write could ever be acknowledged`,
      'kafka',
      {
        hint: `set ${isrName} to ${replicationFactor} or less (2 with 3 copies tolerates one broker down)`,
      },
    );
  const minInsyncReplicas = isrSet ?? (replicationFactor >= 3 ? 2 : undefined);
  return { partitions, replicationFactor, minInsyncReplicas };
}

/**
 * Creates the v1 topics that do not exist yet, laid out by topicLayout (partitions,
 * replication factor min(3, live brokers), min.insync.replicas 2 from 3 copies); an
 * existing topic with fewer copies than that is reported, not changed. Throws
 * TransportError with the fix when the broker cannot be reached, ConfigError for a
 * layout setting that is wrong or that the cluster cannot meet.
 */
export async function ensureTopics(
  brokers: string[],
  log: Logger,
  partitions?: number,
  topics: readonly string[] = Object.values(Topics),
  layoutOptions: Omit<TopicLayoutOptions, 'partitions'> = {},
): Promise<TopicLayout> {
  const kafka = kafkaClient({
    role: 'admin',
    clientId: 'tracefeed-admin',
    brokers,
    log,
    connectionTimeout: 3000,
    retry: { retries: 3, initialRetryTime: 300 },
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
  } catch (err) {
    throw new TransportError(
      `Kafka is unreachable at ${brokers.join(',')}: ${(err as Error).message}`,
      'kafka',
      {
        cause: err,
        retriable: true,
        hint:
          kafkaAuth('admin').source === 'none'
            ? 'start the local broker with `tracefeed infra up`, or point --brokers / TRACEFEED_KAFKA_BROKERS at yours; a broker that wants SASL closes the connection: set --kafka-username and --kafka-password-file'
            : 'start the local broker with `tracefeed infra up`, or point --brokers / TRACEFEED_KAFKA_BROKERS at yours; `SASL authentication failed`: the password does not match (docs/security.md, "Kafka and Redis")',
      },
    );
  }
  try {
    const cluster = await admin.describeCluster();
    const layout = topicLayout(cluster.brokers.length, { ...layoutOptions, partitions });
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t));
    if (missing.length > 0) {
      await admin.createTopics({
        // Waited for below: kafkajs's own wait gives up on UNKNOWN_TOPIC_OR_PARTITION,
        // which a broker answers until the new topic's metadata reaches it.
        waitForLeaders: false,
        topics: missing.map((topic) => ({
          topic,
          numPartitions: layout.partitions,
          replicationFactor: layout.replicationFactor,
          ...(layout.minInsyncReplicas !== undefined
            ? {
                configEntries: [
                  { name: 'min.insync.replicas', value: String(layout.minInsyncReplicas) },
                ],
              }
            : {}),
        })),
      });
      await waitForLeaders(admin, missing, layout.partitions);
      log.info({ topics: missing, ...layout, brokers: cluster.brokers.length }, 'created topics');
    }
    const present = topics.filter((t) => existing.has(t));
    if (present.length > 0 && layout.replicationFactor > 1) {
      const meta = await admin.fetchTopicMetadata({ topics: present });
      for (const t of meta.topics) {
        const copies = Math.min(...t.partitions.map((p) => p.replicas.length));
        if (copies < layout.replicationFactor)
          log.warn(
            { topic: t.name, replicationFactor: copies, wanted: layout.replicationFactor },
            'topic has fewer copies than the cluster allows; it was created on a smaller cluster (kafka-reassign-partitions adds replicas)',
          );
      }
    }
    return layout;
  } finally {
    await admin.disconnect();
  }
}
