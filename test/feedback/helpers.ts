/** Builders shared by the feedback suites. */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { Job, Queue } from 'bullmq';
import { defaultSettings, type ProbeSettings } from '../../src/wire/probe-settings.js';
import type { NodeReport } from '../../src/feedback/node-report.js';
import type { FeedbackRequest } from '../../src/feedback/request.js';
import { JobSigner } from '../../src/feedback/job-signing.js';
import type { ProbeName } from '../../src/wire/layout.js';

export function request(over: Partial<FeedbackRequest> = {}): FeedbackRequest {
  return {
    schema_version: 1,
    id: `fb-test-${randomBytes(6).toString('hex')}`,
    target: { nodes: ['node-a'] },
    probe: 'tcp',
    action: 'tighten',
    params: {},
    reason: 'test',
    origin: 'rule',
    created_at: new Date().toISOString(),
    ...over,
  };
}

export function report(
  node: string,
  probes: Array<{ probe: ProbeName; eps: number; settings?: Partial<ProbeSettings> }>,
): NodeReport {
  return {
    node,
    at: new Date().toISOString(),
    probes: probes.map((p) => ({
      probe: p.probe,
      enabled: p.settings?.enabled ?? true,
      attached: true,
      generation: 1,
      settings: { ...defaultSettings(true), ...p.settings },
      events_per_second: p.eps,
    })),
    events_per_second: probes.reduce((s, p) => s + p.eps, 0),
    bytes_per_second: 0,
  };
}

/** Polls `f` until it returns a value (or times out naming `what`). */
export async function until<T>(
  what: string,
  f: () => Promise<T | undefined> | T | undefined,
  ms = 20_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A signer with a fresh in-memory key pair: the test's controller key (give its verifier to the worker). */
export function testSigner(): JobSigner {
  return new JobSigner(generateKeyPairSync('ed25519').privateKey);
}

/** The apply job of `req` for the queue's node, as the controller builds it (unsigned). */
export function applyJob(
  queue: Queue,
  req: FeedbackRequest,
  patch: Record<string, unknown>,
  reason: string,
): Record<string, unknown> {
  return {
    kind: 'apply',
    node: queue.name,
    request: req,
    patch,
    ttl_seconds: 60,
    outcome: 'accept',
    reason,
  };
}

/**
 * An apply job put straight into a node's queue, past the policy engine, as a
 * buggy producer holding the signing key would; `signer` null queues it
 * unsigned, as anyone who can write to Redis could.
 */
export async function enqueueApply(
  queue: Queue,
  signer: JobSigner | null,
  req: FeedbackRequest,
  patch: Record<string, unknown>,
  reason: string,
): Promise<void> {
  const job = applyJob(queue, req, patch, reason);
  await queue.add('apply', signer ? signer.sign(job) : job, { jobId: req.id });
}

/** The job once it has failed; its state can read `failed` a moment before its reason does. */
export function failedJob(queue: Queue, id: string): Promise<Job> {
  return until(`${id} failed`, async () => {
    const j = await queue.getJob(id);
    return j && (await j.getState()) === 'failed' && j.failedReason ? j : undefined;
  });
}
