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

export function brokersFrom(value: string | undefined): string[] {
  const v = value ?? process.env.TRACEFEED_KAFKA_BROKERS;
  if (!v) return DEFAULT_BROKERS;
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * Creates the v1 topics that do not exist yet. Throws TransportError with the
 * fix when the broker cannot be reached.
 */
export async function ensureTopics(
  brokers: string[],
  log: Logger,
  partitions = 3,
  topics: readonly string[] = Object.values(Topics),
): Promise<void> {
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
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t));
    if (missing.length > 0) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((topic) => ({
          topic,
          numPartitions: partitions,
          replicationFactor: 1,
        })),
      });
      log.info({ topics: missing }, 'created topics');
    }
  } finally {
    await admin.disconnect();
  }
}
