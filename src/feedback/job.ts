/**
 * What travels in a node's BullMQ queue: apply a decided request, or revert
 * one. Every job names its node and carries the controller's signature
 * (job-signing.ts); the node worker refuses a job that is unsigned, altered,
 * or meant for another node.
 */
import { z } from 'zod';
import { probeNameSchema, probePatchSchema } from '../wire/probe-settings.js';
import { feedbackRequestSchema, requestIdSchema } from './request.js';

/** BullMQ key prefix: a node's queue lives at `tracefeed:feedback:<node>:*`. */
export const QUEUE_PREFIX = 'tracefeed:feedback';

/** The signature field of a job (base64 Ed25519 over the rest of the job). */
const signatureSchema = z.string().min(1);

export const revertJobSchema = z.strictObject({
  kind: z.literal('revert'),
  /** The node this job is for (a job queued for another node is refused). */
  node: z.string().min(1),
  request_id: requestIdSchema,
  probe: probeNameSchema,
  cause: z.enum(['ttl', 'operator']),
  /** When the controller signed it. */
  created_at: z.string().datetime(),
  signature: signatureSchema,
});
export type RevertJob = z.infer<typeof revertJobSchema>;

export const applyJobSchema = z.strictObject({
  kind: z.literal('apply'),
  /** The node this job is for (a job queued for another node is refused). */
  node: z.string().min(1),
  /** The request; its `created_at` is the signed created time the TTL runs from. */
  request: feedbackRequestSchema,
  /** The concrete patch the policy engine decided. */
  patch: probePatchSchema,
  ttl_seconds: z.number().int().min(0),
  outcome: z.enum(['accept', 'clamp']),
  reason: z.string(),
  /**
   * The TTL revert, signed by the controller with the apply: the node queues
   * it (delayed) once the patch is in force. Present when ttl_seconds > 0.
   */
  ttl_revert: revertJobSchema.optional(),
  signature: signatureSchema,
});
export type ApplyJob = z.infer<typeof applyJobSchema>;

export const feedbackJobSchema = z.discriminatedUnion('kind', [applyJobSchema, revertJobSchema]);
export type FeedbackJob = z.infer<typeof feedbackJobSchema>;

/** The TTL revert job of a request: one per request per node, whatever the attempt. */
export function revertJobId(requestId: string): string {
  return `${requestId}.revert`;
}

export const JOB_OPTIONS = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 250 },
  removeOnComplete: { age: 7 * 24 * 3600, count: 100_000 },
  removeOnFail: { age: 30 * 24 * 3600 },
} as const;
