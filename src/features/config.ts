/** Configuration of the feature stage: one zod schema, units in the names, defaults documented. */
import { join } from 'node:path';
import { z } from 'zod';
import { apiSecuritySchema } from '../common/http-auth.js';
import { stateDir } from '../common/paths.js';
import { Topics } from '../common/kafka.js';
import { anomalyConfigSchema } from './anomaly-detector.js';

/** The topics the stage reads and writes (defaults: the v1 topics). */
export const featureTopicsSchema = z.strictObject({
  events: z.string().min(1).default(Topics.events),
  features: z.string().min(1).default(Topics.features),
  anomalies: z.string().min(1).default(Topics.anomalies),
  dlq: z.string().min(1).default(Topics.eventsDlq),
});

export const featureStageConfigSchema = z.strictObject({
  /** Kafka bootstrap brokers. */
  brokers: z.array(z.string().min(1)).min(1).default(['127.0.0.1:9092']),
  /** Consumer group. Default `tracefeed-features`. */
  group_id: z.string().min(1).default('tracefeed-features'),
  /** Topics read and written. Default: the v1 topics. */
  topics: featureTopicsSchema.default(featureTopicsSchema.parse({})),
  /**
   * Prefix of the transactional ids, one per input partition:
   * `<prefix>-<group_id>-<events topic>-<partition>` (docs/exactly-once.md). The
   * `features` role may use transactional ids with prefix `tracefeed-features`.
   * Default `tracefeed-features`.
   */
  transactional_id_prefix: z.string().min(1).default('tracefeed-features'),
  /** Consumer group session timeout: a member silent this long loses its partitions. Default 30 s. */
  session_timeout_ms: z.number().int().min(6000).max(300_000).default(30_000),
  /** Tumbling window length. Default 10 s; 1 s is supported. */
  window_seconds: z.number().int().min(1).max(3600).default(10),
  /** Events up to this late (event time) still count. Default 5 s. */
  allowed_lateness_seconds: z.number().min(0).max(3600).default(5),
  /**
   * Records later than the wall clock plus this are future-dated: counted
   * (`tracefeed_features_future_dated_events_total`), not added, their frame
   * copied to tracefeed.events.dlq.v1 (reason `future_dated`); no node's
   * watermark ever goes above now plus this. Default 5 s.
   */
  max_future_skew_seconds: z.number().min(0).max(3600).default(5),
  /** A node that sent nothing for this long (wall clock) has its windows closed by the clock. Default 5 s. */
  idle_close_seconds: z.number().min(0).max(3600).default(5),
  /** Where .arrows files live. Default `<TRACEFEED_HOME>/features`. */
  data_dir: z.string().min(1).default(join(stateDir(), 'features')),
  /** A new .arrows file after this long. Default 300 s. */
  file_rotate_seconds: z.number().int().min(1).default(300),
  /** Total bytes of .arrows files kept. Default 1 GiB. */
  file_retention_bytes: z
    .number()
    .int()
    .min(1)
    .default(1024 ** 3),
  /** Age of .arrows files kept. Default 7 days. */
  file_retention_seconds: z
    .number()
    .int()
    .min(1)
    .default(7 * 86400),
  /** HTTP port for GET /v1/features; 0 turns it off. Default 9465. */
  http_port: z.number().int().min(0).max(65535).default(9465),
  /** Authentication of the HTTP API (bearer token, metrics_open, TLS). Default: the installation token. */
  http_security: apiSecuritySchema.default(apiSecuritySchema.parse({})),
  /** Read the topic from the beginning when the group has no committed offset. Default false. */
  from_beginning: z.boolean().default(false),
  anomaly: anomalyConfigSchema.default(anomalyConfigSchema.parse({})),
});
export type FeatureStageConfig = z.infer<typeof featureStageConfigSchema>;
export type FeatureStageConfigInput = z.input<typeof featureStageConfigSchema>;
