/** What travels in a node's BullMQ queue: apply a decided request, or revert one. */
import { z } from 'zod';
import { probeNameSchema, probePatchSchema } from '../ingest/probe-settings.js';
import { feedbackRequestSchema, requestIdSchema } from './request.js';

/** BullMQ key prefix: a node's queue lives at `tracefeed:feedback:<node>:*`. */
export const QUEUE_PREFIX = 'tracefeed:feedback';

export const applyJobSchema = z.strictObject({
  kind: z.literal('apply'),
  request: feedbackRequestSchema,
  /** The concrete patch the policy engine decided. */
  patch: probePatchSchema,
  ttl_seconds: z.number().int().min(0),
  outcome: z.enum(['accept', 'clamp']),
  reason: z.string(),
});
export type ApplyJob = z.infer<typeof applyJobSchema>;

export const revertJobSchema = z.strictObject({
  kind: z.literal('revert'),
  request_id: requestIdSchema,
  probe: probeNameSchema,
  cause: z.enum(['ttl', 'operator']),
});
export type RevertJob = z.infer<typeof revertJobSchema>;

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
