/**
 * The node side of the loop: a BullMQ worker on this node's queue
 * (`tracefeed:feedback:<node>`) that applies decided requests to the node
 * agent as live map updates (`setProbe`), measures the event rate before and
 * ~2 s after, reports back (job return value, request status, audit), and
 * schedules the TTL revert as a delayed job with a deterministic id, so a
 * restart loses nothing. It also reports the node's probe state to Redis
 * every few seconds (the controller's budget watcher reads it).
 *
 * Applied once: the job id is the request id; a job seen again (a retry
 * after a fault, a duplicate) finds the applied record and returns it.
 *
 * Reverts that cannot be lost: before the kernel changes, the change and when it
 * must be reverted are fsync'd to the node's own journal (src/feedback/revert-journal.ts).
 * The node reverts on its own when that time comes, whether or not the delayed revert
 * job exists in Redis; after a crash at any point, the restarted worker puts back what
 * is still in force and reverts it when due, and reverts at once what is overdue.
 */
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { isDeepStrictEqual } from 'node:util';
import { TracefeedError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { ProbeName } from '../wire/layout.js';
import type { ProbeStats } from '../ingest/node-agent.js';
import type { ProbeState } from '../ingest/probe-controller.js';
import { applyPatch, type ProbePatch, type ProbeSettings } from '../wire/probe-settings.js';
import type { AuditTrail } from './audit.js';
import {
  JOB_OPTIONS,
  QUEUE_PREFIX,
  feedbackJobSchema,
  revertJobId,
  type ApplyJob,
  type RevertJob,
} from './job.js';
import { installationVerifier, loadVerifier, type JobVerifier } from './job-signing.js';
import type { NodeReport } from './node-report.js';
import { connectRedis, redisOptions } from './redis.js';
import { formatIssues } from './request.js';
import { FeedbackStore, type AppliedRecord } from './store.js';
import { Queue } from 'bullmq';
import { RevertJournal, journalPath, type JournaledChange } from './revert-journal.js';

/**
 * Test hook: after the kernel change and before any bookkeeping, wait this long (ms)
 * and log "paused after the kernel change", so a test can kill the node right there.
 */
const PAUSE_AFTER_KERNEL_CHANGE_ENV = 'TRACEFEED_TEST_PAUSE_AFTER_KERNEL_CHANGE_MS';

/** What the worker needs of a node agent (NodeAgent has it). */
export interface ProbeTarget {
  setProbe(name: string, patch: unknown): ProbeState;
  probes(): ProbeStats[];
  stats?(): { publisher: { bytesSent: number } };
}

export interface NodeFeedbackWorkerOptions {
  /** This node's name (its queue is `tracefeed:feedback:<node>`). */
  node: string;
  /** Redis URL. Default redis://127.0.0.1:6379. */
  redisUrl: string;
  audit: AuditTrail;
  log: Logger;
  /**
   * Floor probes: whatever a job says, this node never disables them, never
   * samples them beyond `floorMaxSampleN`, never sets a filter, a
   * min_duration_ms or a focus that drops any of their events. Default ['process'].
   */
  floors?: readonly ProbeName[];
  /** Largest sample_n (1 in N) a job may set on a floor probe, baseline or focus. Default 1. */
  floorMaxSampleN?: number;
  /**
   * Largest sample_n (1 in N) a job may set on any probe, baseline or focus
   * (the node's own bound, whatever the controller's thresholds say). Default 1000.
   */
  maxSampleN?: number;
  /**
   * Verifies the controller's signature on every job. Default: from
   * `verifyKeyPath` when given, otherwise the installation key pair in the
   * state directory (created on first use).
   */
  verifier?: JobVerifier;
  /** The controller's public key (SPKI PEM), e.g. a copy on another host. Default: none (see `verifier`). */
  verifyKeyPath?: string;
  /**
   * Jobs processed at once. Applies are synchronous (one at a time); a job then
   * holds its slot for the rate wait, so this bounds the changes per `rateSettleMs`
   * before one queues. Default 64.
   */
  concurrency?: number;
  /** Wait before sampling the rate after a change, ms. Default 2000. */
  rateSettleMs?: number;
  /** How often the probe state is reported to Redis, ms. Default 2000. */
  reportIntervalMs?: number;
  /** BullMQ lock duration, ms (a crashed worker's job is retried after it). Default 30000. */
  lockDurationMs?: number;
  /** BullMQ stalled-job check interval, ms. Default 30000. */
  stalledIntervalMs?: number;
  /** The node's revert journal. Default `<TRACEFEED_HOME>/feedback/journal-<node>.jsonl`. */
  journalPath?: string;
}

export interface ApplyResult {
  state: 'applied' | 'expired';
  request_id: string;
  node: string;
  probe: ProbeName;
  generation?: number;
  settings?: ProbeSettings;
  events_per_second_before?: number;
  events_per_second_after?: number;
  /** The job was seen before: this is the first result, nothing was applied again. */
  duplicate?: boolean;
}

export interface RevertResult {
  state: 'reverted';
  request_id: string;
  node: string;
  probe: ProbeName;
  cause: 'ttl' | 'operator';
  /** Fields restored to their value before the request. */
  restored: string[];
  /** Fields a later change replaced: left as they are. */
  kept: string[];
  generation?: number;
  duplicate?: boolean;
}

const SCALARS = ['enabled', 'sample_n', 'min_duration_ms', 'slow_ms'] as const;
const DIMS = ['cgroup', 'pid', 'port', 'comm', 'path_prefix'] as const;

/** Focus keys present in any of these settings. */
function focusKeys(...s: ProbeSettings[]): string[] {
  return [...new Set(s.flatMap((x) => Object.keys(x.focus ?? {})))];
}

/**
 * The patch that undoes a request: each field it changed goes back to its
 * previous value, unless a later change has replaced it since (then it stays).
 */
export function revertPatch(
  previous: ProbeSettings,
  applied: ProbeSettings,
  current: ProbeSettings,
): { patch: ProbePatch; restored: string[]; kept: string[] } {
  const patch: ProbePatch = {};
  const restored: string[] = [];
  const kept: string[] = [];
  for (const f of SCALARS) {
    if (applied[f] === previous[f]) continue;
    if (current[f] === applied[f]) {
      (patch as Record<string, unknown>)[f] = previous[f];
      restored.push(f);
    } else kept.push(f);
  }
  for (const d of DIMS) {
    if (isDeepStrictEqual(applied.filters[d], previous.filters[d])) continue;
    if (isDeepStrictEqual(current.filters[d], applied.filters[d])) {
      patch.filters ??= {};
      (patch.filters as Record<string, unknown>)[d] = structuredClone(previous.filters[d]);
      restored.push(`filters.${d}`);
    } else kept.push(`filters.${d}`);
  }
  // Focus: key by key, so a request only ever takes back its own workloads' focuses.
  for (const k of focusKeys(previous, applied)) {
    // Records stored before focuses existed have none.
    const was = previous.focus?.[k];
    if (isDeepStrictEqual(applied.focus?.[k], was)) continue;
    if (isDeepStrictEqual(current.focus[k], applied.focus?.[k])) {
      patch.focus ??= {};
      patch.focus[k] = was ? structuredClone(was) : null;
      restored.push(`focus.${k}`);
    } else kept.push(`focus.${k}`);
  }
  return { patch, restored, kept };
}

/**
 * Feedback on one probe, as layers: the settings in force before any active
 * request (the baseline), then each active request's patch in the order they
 * were applied. Reverting a request removes its layer and recomputes the
 * rest, so overlapping requests never leave one another's settings behind.
 * Changes made meanwhile by anyone else (an operator's `probes set`) are
 * folded into the baseline and kept. Focuses are a dimension merged key by
 * key: requests focusing different workloads coexist, and removing one
 * request's layer removes only the focuses it set.
 */
interface ProbeLayers {
  baseline: ProbeSettings;
  active: Array<{ id: string; patch: ProbePatch }>;
  /** What this worker last set: fields that differ from it now were changed by someone else. */
  last: ProbeSettings;
}

/** Folds changes made outside the feedback loop into the baseline. */
function rebase(layers: ProbeLayers, current: ProbeSettings): void {
  for (const f of SCALARS) {
    if (current[f] !== layers.last[f]) (layers.baseline as Record<string, unknown>)[f] = current[f];
  }
  for (const d of DIMS) {
    if (!isDeepStrictEqual(current.filters[d], layers.last.filters[d])) {
      (layers.baseline.filters as Record<string, unknown>)[d] = structuredClone(current.filters[d]);
    }
  }
  for (const k of focusKeys(current, layers.last)) {
    if (isDeepStrictEqual(current.focus[k], layers.last.focus[k])) continue;
    if (current.focus[k]) layers.baseline.focus[k] = structuredClone(current.focus[k]);
    else delete layers.baseline.focus[k];
  }
}

/** The patch that takes `current` to `target`, and the fields it changes. */
function diffPatch(
  current: ProbeSettings,
  target: ProbeSettings,
): { patch: ProbePatch; changed: string[] } {
  const patch: ProbePatch = {};
  const changed: string[] = [];
  for (const f of SCALARS) {
    if (current[f] !== target[f]) {
      (patch as Record<string, unknown>)[f] = target[f];
      changed.push(f);
    }
  }
  for (const d of DIMS) {
    if (!isDeepStrictEqual(current.filters[d], target.filters[d])) {
      patch.filters ??= {};
      (patch.filters as Record<string, unknown>)[d] = structuredClone(target.filters[d]);
      changed.push(`filters.${d}`);
    }
  }
  for (const k of focusKeys(current, target)) {
    if (isDeepStrictEqual(current.focus[k], target.focus[k])) continue;
    patch.focus ??= {};
    patch.focus[k] = target.focus[k] ? structuredClone(target.focus[k]) : null;
    changed.push(`focus.${k}`);
  }
  return { patch, changed };
}

export class NodeFeedbackWorker {
  private worker: Worker | undefined;
  private readonly layers = new Map<string, ProbeLayers>();
  private queue: Queue | undefined;
  private redis: Redis | undefined;
  private store: FeedbackStore | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly ledger = new Map<string, ApplyResult | RevertResult>();
  private lastBytes: { at: number; bytes: number } | undefined;
  private readonly actor: string;
  private verifier: JobVerifier | undefined;
  private journal: RevertJournal | undefined;
  private readonly localReverts = new Map<string, NodeJS.Timeout>();
  /** Counters: jobs by outcome; `badSignature` counts the rejected jobs whose signature was refused. */
  readonly counts = {
    applied: 0,
    reverted: 0,
    duplicates: 0,
    failed: 0,
    rejected: 0,
    expired: 0,
    badSignature: 0,
    /** Changes reverted by the node's own timer (the Redis revert job was late or gone). */
    revertedLocally: 0,
    /** Changes put back from the journal after a restart (still in force). */
    restoredFromJournal: 0,
  };

  constructor(
    private readonly agent: ProbeTarget,
    private readonly opts: NodeFeedbackWorkerOptions,
  ) {
    this.actor = `node/${opts.node}`;
  }

  /**
   * Recovers from the journal (before anything touches Redis), then registers the node,
   * starts reporting and consuming its queue.
   */
  async start(): Promise<this> {
    this.journal = new RevertJournal(this.opts.journalPath ?? journalPath(this.opts.node));
    if (this.journal.torn > 0)
      this.opts.log.warn(
        { journal: this.journal.path, torn: this.journal.torn },
        'revert journal had torn lines (a crash mid-write): ignored',
      );
    this.recover();
    this.verifier =
      this.opts.verifier ??
      (this.opts.verifyKeyPath ? loadVerifier(this.opts.verifyKeyPath) : installationVerifier());
    this.redis = connectRedis(this.opts.redisUrl);
    this.redis.on('error', (err) =>
      this.opts.log.debug({ err: err.message }, 'feedback redis error'),
    );
    this.store = new FeedbackStore(this.redis);
    await this.store.registerNode(this.opts.node);
    await this.report();
    this.queue = new Queue(this.opts.node, {
      prefix: QUEUE_PREFIX,
      connection: redisOptions(this.opts.redisUrl),
      defaultJobOptions: JOB_OPTIONS,
    });
    this.queue.on('error', (err) =>
      this.opts.log.debug({ err: err.message }, 'feedback queue error'),
    );
    this.worker = new Worker(this.opts.node, (job) => this.process(job), {
      prefix: QUEUE_PREFIX,
      connection: redisOptions(this.opts.redisUrl),
      concurrency: this.opts.concurrency ?? 64,
      lockDuration: this.opts.lockDurationMs ?? 30_000,
      stalledInterval: this.opts.stalledIntervalMs ?? 30_000,
      maxStalledCount: 5,
    });
    this.worker.on('error', (err) =>
      this.opts.log.warn({ err: err.message }, 'feedback worker error'),
    );
    this.worker.on('failed', (job, err) =>
      this.opts.log.warn({ job: job?.id, err: err.message }, 'feedback job failed'),
    );
    await this.worker.waitUntilReady();
    this.timer = setInterval(() => {
      this.report().catch((err: unknown) =>
        this.opts.log.debug({ err: (err as Error).message }, 'feedback report failed'),
      );
    }, this.opts.reportIntervalMs ?? 2000);
    this.opts.log.info({ node: this.opts.node }, 'feedback worker started');
    return this;
  }

  /** The state report the controller reads. */
  snapshot(): NodeReport {
    const probes = this.agent.probes();
    let bytesPerSecond = 0;
    const bytes = this.agent.stats?.().publisher.bytesSent;
    const now = Date.now();
    if (bytes !== undefined) {
      if (this.lastBytes && now > this.lastBytes.at)
        bytesPerSecond = ((bytes - this.lastBytes.bytes) * 1000) / (now - this.lastBytes.at);
      this.lastBytes = { at: now, bytes };
    }
    return {
      node: this.opts.node,
      at: new Date(now).toISOString(),
      probes: probes.map((p) => ({
        probe: p.probe as ProbeName,
        enabled: p.enabled,
        attached: p.attached,
        generation: p.generation,
        settings: p.settings,
        events_per_second: p.eventsPerSecond,
      })),
      events_per_second: probes.reduce((s, p) => s + p.eventsPerSecond, 0),
      bytes_per_second: Math.max(0, bytesPerSecond),
    };
  }

  private async report(): Promise<void> {
    const interval = this.opts.reportIntervalMs ?? 2000;
    await this.store!.putReport(this.snapshot(), Math.max(10, (interval * 5) / 1000));
  }

  private fail(requestId: string, reason: string, state: 'failed' | 'rejected'): never {
    this.counts[state]++;
    this.opts.audit.record({
      request_id: requestId,
      state,
      actor: this.actor,
      node: this.opts.node,
      reason,
    });
    void this.store
      ?.setStatus(requestId, this.opts.node, { state, at: new Date().toISOString(), reason })
      .catch(() => undefined);
    throw new UnrecoverableError(reason);
  }

  private async process(job: Job): Promise<ApplyResult | RevertResult> {
    // The signature first: nothing in an unsigned or altered job is trusted.
    const refused = this.verifier!.check(job.data);
    if (refused) {
      this.counts.badSignature++;
      this.fail(
        String(job.id ?? 'unknown'),
        `feedback job ${job.id} (${job.name}) refused: ${refused}; not applied`,
        'rejected',
      );
    }
    const parsed = feedbackJobSchema.safeParse(job.data);
    if (!parsed.success)
      this.fail(
        String(job.id ?? 'unknown'),
        `malformed feedback job ${job.id} (${job.name}): ${formatIssues(parsed.error)}; not applied`,
        'failed',
      );
    const data = parsed.data;
    if (data.node !== this.opts.node)
      this.fail(
        String(job.id),
        `feedback job ${job.id} refused: signed for node ${data.node}, not for ${this.opts.node}; not applied`,
        'rejected',
      );
    if (data.kind === 'apply') {
      if (job.id !== data.request.id)
        this.fail(
          String(job.id),
          `malformed feedback job ${job.id}: job id is not the request id ${data.request.id}; not applied`,
          'failed',
        );
      return this.apply(data, job.attemptsMade);
    }
    if (job.id !== revertJobId(data.request_id))
      this.fail(
        String(job.id),
        `malformed revert job ${job.id}: id is not ${revertJobId(data.request_id)}; not applied`,
        'failed',
      );
    return this.revert(data);
  }

  private async apply(job: ApplyJob, attemptsMade: number): Promise<ApplyResult> {
    const req = job.request;
    const node = this.opts.node;
    const seen = this.ledger.get(req.id) as ApplyResult | undefined;
    if (seen) {
      this.counts.duplicates++;
      return { ...seen, duplicate: true };
    }
    const store = this.store!;
    const prior = await store.applied(node, req.id);
    if (prior) {
      this.counts.duplicates++;
      if (!prior.audited) await this.recordApplied(prior);
      return { ...this.resultOf(prior), duplicate: true };
    }
    const journaled = this.journal!.get(req.id);
    if (journaled) return this.finishFromJournal(job, journaled);
    if (this.journal!.isReverted(req.id)) {
      // Applied and already reverted by this node (its bookkeeping never reached Redis).
      this.counts.duplicates++;
      const reason = 'applied, then reverted by the node before its bookkeeping completed';
      await store.setStatus(req.id, node, {
        state: 'reverted',
        at: new Date().toISOString(),
        reason,
      });
      return { state: 'expired', request_id: req.id, node, probe: req.probe, duplicate: true };
    }
    if (attemptsMade === 0)
      this.opts.audit.record({ request_id: req.id, state: 'delivered', actor: this.actor, node });

    if (job.ttl_seconds > 0 && Date.parse(req.created_at) + job.ttl_seconds * 1000 < Date.now()) {
      this.counts.expired++;
      const reason = `arrived after its TTL (${job.ttl_seconds} s from ${req.created_at}); not applied`;
      this.opts.audit.record({
        request_id: req.id,
        state: 'expired',
        actor: this.actor,
        node,
        reason,
      });
      await store.setStatus(req.id, node, {
        state: 'expired',
        at: new Date().toISOString(),
        reason,
      });
      return { state: 'expired', request_id: req.id, node, probe: req.probe };
    }
    const bound = this.refusal(req.probe, job.patch);
    if (bound) this.fail(req.id, `${bound}; not applied`, 'rejected');
    const before = this.agent.probes().find((p) => p.probe === req.probe);
    if (!before)
      this.fail(
        req.id,
        `probe ${req.probe} is not loaded on node ${node}; loaded: ${this.agent
          .probes()
          .map((p) => p.probe)
          .join(', ')}`,
        'rejected',
      );
    const previous = structuredClone(before.settings);
    const atMs = Date.now();
    const revertAtMs = job.ttl_seconds > 0 && job.ttl_revert ? atMs + job.ttl_seconds * 1000 : null;
    // Durable before the kernel changes: a crash from here on is recovered from the journal.
    this.journal!.append({
      t: 'intent',
      id: req.id,
      probe: req.probe,
      patch: job.patch,
      previous,
      at_ms: atMs,
      revert_at_ms: revertAtMs,
    });
    let state: ProbeState;
    try {
      state = this.agent.setProbe(req.probe, job.patch);
    } catch (err) {
      // Nothing changed (the probe controller rolls back a partial write).
      this.journal!.append({ t: 'reverted', id: req.id, at_ms: Date.now(), cause: 'failed' });
      const retriable = err instanceof TracefeedError && err.retriable;
      if (retriable) throw err;
      this.fail(req.id, `${(err as Error).message}; not applied`, 'failed');
    }
    await this.pauseForTest(req.id);
    this.journal!.append({
      t: 'applied',
      id: req.id,
      applied: structuredClone(state.settings),
      generation: state.generation,
    });
    if (revertAtMs !== null) this.scheduleLocalRevert(req.id, req.probe, revertAtMs);
    this.counts.applied++;
    const layer = this.layers.get(req.probe);
    if (layer) {
      rebase(layer, previous);
      layer.active.push({ id: req.id, patch: job.patch });
      layer.last = structuredClone(state.settings);
    } else {
      this.layers.set(req.probe, {
        baseline: structuredClone(previous),
        active: [{ id: req.id, patch: job.patch }],
        last: structuredClone(state.settings),
      });
    }
    const record: AppliedRecord = {
      request_id: req.id,
      node,
      probe: req.probe,
      patch: job.patch,
      previous,
      applied: structuredClone(state.settings),
      generation: state.generation,
      applied_at: new Date(atMs).toISOString(),
      ttl_seconds: job.ttl_seconds,
      events_per_second_before: before.eventsPerSecond,
    };
    this.ledger.set(req.id, this.resultOf(record));
    this.opts.log.info(
      { request: req.id, probe: req.probe, generation: state.generation },
      'feedback applied',
    );
    await store.putApplied(record);
    if (job.ttl_seconds > 0) {
      // The controller signed the TTL revert with the apply; without it, none is queued
      // (the request stays until an operator reverts it) and the audit says so.
      const revert: RevertJob | undefined = job.ttl_revert;
      if (!revert)
        this.opts.log.warn({ request: req.id }, 'apply job carries no signed TTL revert');
      const delay = Math.max(
        0,
        Date.parse(record.applied_at) + job.ttl_seconds * 1000 - Date.now(),
      );
      if (revert) await this.queue!.add('revert', revert, { jobId: revertJobId(req.id), delay });
    }
    // Audited as applied now, when the kernel changed; the rate after is measured below.
    await this.recordApplied(record);
    await new Promise((r) => setTimeout(r, this.opts.rateSettleMs ?? 2000));
    record.events_per_second_after =
      this.agent.probes().find((p) => p.probe === req.probe)?.eventsPerSecond ?? 0;
    await store.putApplied(record);
    // A revert may have come in while the rate settled: never write `applied` over it.
    if (!(await store.reverted(node, req.id))) {
      await store.setStatus(req.id, node, {
        state: 'applied',
        at: record.applied_at,
        reason: job.reason,
        result: record,
      });
    }
    const result = this.resultOf(record);
    this.ledger.set(req.id, result);
    return result;
  }

  /**
   * Why this node refuses a patch on `probe`, naming the field, or undefined:
   * the node's own bounds, whatever signed the job.
   */
  refusal(probe: ProbeName, patch: ProbePatch): string | undefined {
    const node = this.opts.node;
    const max = this.opts.maxSampleN ?? 1000;
    if (patch.sample_n !== undefined && patch.sample_n > max)
      return `sample_n ${patch.sample_n} on ${probe} is above this node's bound (maxSampleN ${max})`;
    for (const [key, f] of Object.entries(patch.focus ?? {}))
      if (f?.sample_n !== undefined && f.sample_n > max)
        return `focus.${key}.sample_n ${f.sample_n} on ${probe} is above this node's bound (maxSampleN ${max})`;
    if (!(this.opts.floors ?? ['process']).includes(probe)) return undefined;
    const floor = `probe ${probe} is a floor on node ${node}`;
    const fmax = this.opts.floorMaxSampleN ?? 1;
    if (patch.enabled === false) return `${floor}: enabled false refused (never disabled)`;
    if (patch.sample_n !== undefined && patch.sample_n > fmax)
      return `${floor}: sample_n ${patch.sample_n} refused (never sampled beyond 1 in ${fmax})`;
    if (patch.min_duration_ms !== undefined && patch.min_duration_ms > 0)
      return `${floor}: min_duration_ms ${patch.min_duration_ms} refused (never filtered)`;
    for (const [dim, set] of Object.entries(patch.filters ?? {}) as Array<
      [string, { allow?: unknown[]; deny?: unknown[] } | undefined]
    >) {
      for (const side of ['allow', 'deny'] as const)
        if ((set?.[side]?.length ?? 0) > 0)
          return `${floor}: filters.${dim}.${side} refused (never filtered)`;
    }
    for (const [key, f] of Object.entries(patch.focus ?? {})) {
      if (!f) continue;
      if (f.sample_n !== undefined && f.sample_n > fmax)
        return `${floor}: focus.${key}.sample_n ${f.sample_n} refused (never sampled beyond 1 in ${fmax})`;
      if (f.min_duration_ms !== undefined && f.min_duration_ms > 0)
        return `${floor}: focus.${key}.min_duration_ms ${f.min_duration_ms} refused (never filtered)`;
    }
    return undefined;
  }

  private async recordApplied(record: AppliedRecord): Promise<void> {
    this.opts.audit.record({
      request_id: record.request_id,
      state: 'applied',
      actor: this.actor,
      node: record.node,
      reason:
        `generation ${record.generation}; events/s ${record.events_per_second_before} before` +
        (record.events_per_second_after === undefined
          ? ''
          : `, ${record.events_per_second_after} after`),
      data: { applied: record },
    });
    record.audited = true;
    await this.store!.putApplied(record);
    if (!(await this.store!.reverted(record.node, record.request_id))) {
      await this.store!.setStatus(record.request_id, record.node, {
        state: 'applied',
        at: record.applied_at,
        result: record,
      });
    }
  }

  private resultOf(r: AppliedRecord): ApplyResult {
    return {
      state: 'applied',
      request_id: r.request_id,
      node: r.node,
      probe: r.probe,
      generation: r.generation,
      settings: r.applied,
      events_per_second_before: r.events_per_second_before,
      ...(r.events_per_second_after !== undefined
        ? { events_per_second_after: r.events_per_second_after }
        : {}),
    };
  }

  private async revert(job: RevertJob): Promise<RevertResult> {
    const node = this.opts.node;
    const key = revertJobId(job.request_id);
    const seen = this.ledger.get(key) as RevertResult | undefined;
    if (seen) return { ...seen, duplicate: true };
    const store = this.store!;
    // The kernel side first, from the node's own journal: no Redis round trip before it.
    const journaled = this.journal!.get(job.request_id);
    if (!journaled) {
      const done = await store.reverted(node, job.request_id);
      if (done) return { ...(done as unknown as RevertResult), duplicate: true };
    }
    if (!journaled && this.journal!.isReverted(job.request_id)) {
      // Reverted by the node before Redis heard of it: record it now.
      const result: RevertResult = {
        state: 'reverted',
        request_id: job.request_id,
        node,
        probe: job.probe,
        cause: job.cause,
        restored: [],
        kept: [],
      };
      this.ledger.set(key, result);
      await this.revertBookkeeping(job, result, 'reverted by the node on its own', {});
      return result;
    }
    const applied = journaled
      ? this.recordOf(journaled)
      : await store.applied(node, job.request_id);
    if (!applied)
      this.fail(
        job.request_id,
        `revert of ${job.request_id}: nothing was applied on node ${node}`,
        'failed',
      );
    const current = this.agent.probes().find((p) => p.probe === applied.probe);
    if (!current)
      this.fail(
        job.request_id,
        `revert: probe ${applied.probe} is not loaded on ${node}`,
        'failed',
      );
    const layer = this.layers.get(applied.probe);
    let patch: ProbePatch;
    let restored: string[];
    let kept: string[];
    if (layer && layer.active.some((a) => a.id === job.request_id)) {
      // Remove this request's layer and recompute the others over the baseline.
      rebase(layer, current.settings);
      layer.active = layer.active.filter((a) => a.id !== job.request_id);
      const target = layer.active.reduce((st, a) => applyPatch(st, a.patch), layer.baseline);
      ({ patch, changed: restored } = diffPatch(current.settings, target));
      kept = [];
      if (layer.active.length === 0) this.layers.delete(applied.probe);
    } else {
      // Applied before this worker started: undo what it changed, where nothing replaced it.
      ({ patch, restored, kept } = revertPatch(
        applied.previous,
        applied.applied,
        current.settings,
      ));
    }
    let generation: number | undefined;
    if (restored.length > 0) {
      try {
        const after = this.agent.setProbe(applied.probe, patch);
        generation = after.generation;
        const still = this.layers.get(applied.probe);
        if (still) still.last = structuredClone(after.settings);
      } catch (err) {
        this.fail(job.request_id, `revert failed: ${(err as Error).message}`, 'failed');
      }
    }
    this.journal!.append({
      t: 'reverted',
      id: job.request_id,
      at_ms: Date.now(),
      cause: job.cause,
    });
    this.cancelLocalRevert(job.request_id);
    this.counts.reverted++;
    const result: RevertResult = {
      state: 'reverted',
      request_id: job.request_id,
      node,
      probe: applied.probe,
      cause: job.cause,
      restored,
      kept,
      ...(generation !== undefined ? { generation } : {}),
    };
    this.ledger.set(key, result);
    const reason =
      (job.cause === 'ttl' ? `TTL of ${applied.ttl_seconds} s expired` : 'reverted by operator') +
      (restored.length ? `; restored ${restored.join(', ')}` : '; nothing to restore') +
      (kept.length ? `; kept ${kept.join(', ')} (changed since)` : '');
    this.opts.log.info({ request: job.request_id, restored, kept }, 'feedback reverted');
    await this.revertBookkeeping(job, result, reason, patch);
    return result;
  }

  private async revertBookkeeping(
    job: Pick<RevertJob, 'request_id' | 'cause'>,
    result: RevertResult,
    reason: string,
    patch: ProbePatch,
  ): Promise<void> {
    const node = this.opts.node;
    this.opts.audit.record({
      request_id: job.request_id,
      state: 'reverted',
      actor: this.actor,
      node,
      reason,
      data: { revert: result, patch },
    });
    await this.store!.markReverted(
      node,
      job.request_id,
      result as unknown as Record<string, unknown>,
    );
    await this.store!.setStatus(job.request_id, node, {
      state: 'reverted',
      at: new Date().toISOString(),
      reason,
      result: result as unknown as Record<string, unknown>,
    });
  }

  /** The applied record a journaled change stands for (what was applied, or would have been). */
  private recordOf(c: JournaledChange): AppliedRecord {
    const i = c.intent;
    return {
      request_id: i.id,
      node: this.opts.node,
      probe: i.probe,
      patch: i.patch,
      previous: i.previous,
      applied: c.applied?.applied ?? applyPatch(i.previous, i.patch),
      generation: c.applied?.generation ?? 0,
      applied_at: new Date(i.at_ms).toISOString(),
      ttl_seconds: i.revert_at_ms === null ? 0 : Math.round((i.revert_at_ms - i.at_ms) / 1000),
      events_per_second_before: 0,
    };
  }

  /**
   * A job whose change the journal holds: the kernel was changed (perhaps by a run that
   * crashed before its bookkeeping). Completes the bookkeeping; changes nothing again.
   */
  private async finishFromJournal(job: ApplyJob, c: JournaledChange): Promise<ApplyResult> {
    const record = this.recordOf(c);
    record.ttl_seconds = job.ttl_seconds;
    const store = this.store!;
    await store.putApplied(record);
    if (c.intent.revert_at_ms !== null && job.ttl_revert)
      await this.queue!.add('revert', job.ttl_revert, {
        jobId: revertJobId(record.request_id),
        delay: Math.max(0, c.intent.revert_at_ms - Date.now()),
      });
    await this.recordApplied(record);
    this.counts.duplicates++;
    const result = this.resultOf(record);
    this.ledger.set(record.request_id, result);
    return { ...result, duplicate: true };
  }

  private async pauseForTest(id: string): Promise<void> {
    const ms = Number(process.env[PAUSE_AFTER_KERNEL_CHANGE_ENV] ?? 0);
    if (!(ms > 0)) return;
    this.opts.log.warn({ request: id, ms }, 'paused after the kernel change');
    await new Promise((r) => setTimeout(r, ms));
  }

  private scheduleLocalRevert(id: string, probe: ProbeName, atMs: number): void {
    this.cancelLocalRevert(id);
    const t = setTimeout(
      () => {
        this.localReverts.delete(id);
        if (!this.journal!.get(id)) return; // reverted already
        this.counts.revertedLocally++;
        this.opts.log.info({ request: id, probe }, 'TTL due: the node reverts on its own');
        void this.revert({
          kind: 'revert',
          node: this.opts.node,
          request_id: id,
          probe,
          cause: 'ttl',
          created_at: new Date().toISOString(),
          signature: 'node-local',
        }).catch((err: unknown) =>
          this.opts.log.warn(
            { request: id, err: (err as Error).message },
            'local revert: bookkeeping failed (the kernel change is reverted)',
          ),
        );
      },
      Math.max(0, atMs - Date.now()),
    );
    this.localReverts.set(id, t);
  }

  private cancelLocalRevert(id: string): void {
    const t = this.localReverts.get(id);
    if (t) clearTimeout(t);
    this.localReverts.delete(id);
  }

  /**
   * After a restart: what the journal holds in force is put back (a restarted node agent
   * starts from its defaults) and its revert scheduled; what is overdue is reverted now.
   */
  private recover(): void {
    const now = Date.now();
    for (const c of this.journal!.inForce()) {
      const i = c.intent;
      const current = this.agent.probes().find((p) => p.probe === i.probe);
      if (!current) {
        this.opts.log.warn(
          { request: i.id, probe: i.probe },
          'journaled change on a probe not loaded: nothing in force, marked reverted',
        );
        this.journal!.append({ t: 'reverted', id: i.id, at_ms: now, cause: 'restart' });
        continue;
      }
      const target = c.applied?.applied ?? applyPatch(i.previous, i.patch);
      if (i.revert_at_ms !== null && i.revert_at_ms <= now) {
        // Overdue: undo it where it is still in force (a worker restarted in a live agent).
        const { patch, restored } = revertPatch(i.previous, target, current.settings);
        if (restored.length > 0) this.agent.setProbe(i.probe, patch);
        this.journal!.append({ t: 'reverted', id: i.id, at_ms: now, cause: 'restart' });
        this.counts.revertedLocally++;
        this.opts.log.info(
          { request: i.id, restored },
          'overdue journaled change reverted at start',
        );
        continue;
      }
      if (!isDeepStrictEqual(current.settings, target)) {
        const state = this.agent.setProbe(i.probe, i.patch);
        this.journal!.append({
          t: 'applied',
          id: i.id,
          applied: structuredClone(state.settings),
          generation: state.generation,
        });
        this.counts.restoredFromJournal++;
        this.opts.log.info(
          { request: i.id, probe: i.probe, revert_at: i.revert_at_ms && new Date(i.revert_at_ms) },
          'journaled change put back (still in force)',
        );
      }
      this.layers.set(i.probe, {
        baseline: structuredClone(i.previous),
        active: [...(this.layers.get(i.probe)?.active ?? []), { id: i.id, patch: i.patch }],
        last: structuredClone(this.agent.probes().find((p) => p.probe === i.probe)!.settings),
      });
      if (i.revert_at_ms !== null) this.scheduleLocalRevert(i.id, i.probe, i.revert_at_ms);
    }
  }

  async stop(): Promise<void> {
    for (const t of this.localReverts.values()) clearTimeout(t);
    this.localReverts.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.worker?.close();
    await this.queue?.close();
    this.redis?.disconnect();
  }
}
