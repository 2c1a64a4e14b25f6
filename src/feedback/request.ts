/**
 * A feedback request: one change to one probe on some nodes, for a while.
 *
 * Actions, precisely (bounds come from the thresholds file):
 * - `enable`:  attach the probe; `params` may also set sample_n, filters, durations.
 *   With `params.focus` it adds those per-cgroup focuses only (the baseline stays).
 * - `disable`: detach the probe. Never allowed on a floor probe.
 * - `tighten`: collect more, where it matters. With `params.focus` (a workload:
 *   `focus: { "<cgroup id or path>": { slow_ms, min_duration_ms, sample_n } }`)
 *   only that cgroup's focus changes: it is collected at `sample_n` = the
 *   probe's `min_sample_n` (1 = every event) unless the focus says otherwise,
 *   whether or not the probe's baseline is on, while every other cgroup keeps
 *   the baseline for the TTL. Without a focus: enabled, `sample_n` =
 *   `min_sample_n`, plus `slow_ms` / `min_duration_ms` when given, node-wide.
 * - `loosen`:  collect less: `sample_n` = min(current x `loosen_factor`, `max_sample_n`),
 *   or `params.sample_n` when given (then clamped into the bounds). Filters unchanged.
 * - `set`:     apply `params` as they are (a ProbePatch), within bounds.
 *
 * Every request has a TTL: when it expires the node restores the settings that
 * were in force before (only the fields the request changed, and only where no
 * later change has replaced them).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ConfigError } from '../common/errors.js';
import { probeNameSchema, probePatchSchema, type ProbePatch } from '../wire/probe-settings.js';

/** Request ids are BullMQ job ids: no ":" and not an integer. */
export const requestIdSchema = z
  .string()
  .min(3)
  .max(128)
  .regex(
    /^[A-Za-z][A-Za-z0-9._-]*$/,
    'a request id starts with a letter and holds only letters, digits, ".", "_", "-"',
  );

/** Node names are BullMQ queue names: no ":". */
export const nodeNameSchema = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a node name holds only letters, digits, ".", "_", "-"');

export const nodeSelectorSchema = z.union([
  z.strictObject({ nodes: z.array(nodeNameSchema).min(1).max(1000) }),
  z.strictObject({ all: z.literal(true) }),
]);
export type NodeSelector = z.infer<typeof nodeSelectorSchema>;

export const FEEDBACK_ACTIONS = ['enable', 'disable', 'tighten', 'loosen', 'set'] as const;
export const feedbackActionSchema = z.enum(FEEDBACK_ACTIONS);
export type FeedbackAction = z.infer<typeof feedbackActionSchema>;

export const feedbackOriginSchema = z.enum(['rule', 'agent', 'operator']);
export type FeedbackOrigin = z.infer<typeof feedbackOriginSchema>;

/** Parameters: the ProbePatch shape without `enabled` (that is what the action says). */
export const feedbackParamsSchema = probePatchSchema.omit({ enabled: true });
export type FeedbackParams = z.infer<typeof feedbackParamsSchema>;

export const evidenceSchema = z.union([
  z.strictObject({ anomaly_id: z.string().min(1).max(512) }),
  z.strictObject({ text: z.string().min(1).max(4096) }),
]);

export const feedbackRequestSchema = z.strictObject({
  schema_version: z.literal(1).default(1),
  /** Deterministic when derived (see `deriveRequestId`); a resubmission with the same id is applied once. */
  id: requestIdSchema,
  target: nodeSelectorSchema,
  probe: probeNameSchema,
  action: feedbackActionSchema,
  /** Default: none. */
  params: feedbackParamsSchema.default({}),
  /** How long the change holds before it is reverted. Default: the thresholds' `default_ttl_seconds`. 0: no revert (operator only). */
  ttl_seconds: z
    .number()
    .int()
    .min(0)
    .max(7 * 24 * 3600)
    .optional(),
  reason: z.string().min(1).max(2048),
  origin: feedbackOriginSchema,
  evidence: evidenceSchema.optional(),
  /** The workload the request is about (cgroup path), for cooldowns. Default: none (the node). */
  workload: z.string().min(1).max(4096).optional(),
  created_at: z.iso.datetime(),
});
export type FeedbackRequest = z.infer<typeof feedbackRequestSchema>;
export type FeedbackRequestInput = z.input<typeof feedbackRequestSchema>;

/** Formats the first zod issues as `path: message` lines. */
export function formatIssues(error: z.ZodError, max = 5): string {
  return error.issues
    .slice(0, max)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ');
}

/** Parses a request; throws ConfigError naming the first offending path. */
export function parseFeedbackRequest(input: unknown): FeedbackRequest {
  const r = feedbackRequestSchema.safeParse(input);
  if (!r.success) {
    const first = r.error.issues[0];
    throw new ConfigError(
      `invalid feedback request: ${formatIssues(r.error)}`,
      first?.path.join('.') ?? '',
    );
  }
  if (r.data.action === 'disable' && Object.keys(r.data.params).length > 0)
    throw new ConfigError('invalid feedback request: params: disable takes no params', 'params');
  return r.data;
}

/** A deterministic id from its parts: `fb-<24 hex of sha256>`. */
export function deriveRequestId(...parts: Array<string | number>): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(String(p)).update('\0');
  return `fb-${h.digest('hex').slice(0, 24)}`;
}

/** A patch is what the node applies: the ProbePatch of ingest. */
export type ResolvedPatch = ProbePatch;
