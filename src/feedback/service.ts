/**
 * The submitting side of the loop: parse, decide (policy engine), audit,
 * store and deliver requests to the node queues; approve, reject and revert
 * them. Used by the controller (rules, budget) and the CLI (operators).
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { ConfigError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { ProbeName } from '../wire/layout.js';
import type { AuditTrail } from './audit.js';
import { JOB_OPTIONS, QUEUE_PREFIX, revertJobId, type ApplyJob, type RevertJob } from './job.js';
import { loadOrCreateSigner, type JobSigner } from './job-signing.js';
import type { NodeReport } from './node-report.js';
import {
  decideAll,
  decide,
  targetNodes,
  type Decision,
  type PolicyContext,
} from './policy-engine.js';
import { redisOptions } from './redis.js';
import { deriveRequestId, parseFeedbackRequest, type FeedbackRequest } from './request.js';
import { FeedbackStore, type NodeState, type NodeStatus, type StoredRequest } from './store.js';
import type { Thresholds } from './thresholds.js';

export interface FeedbackServiceOptions {
  /** Redis for the store (commands wait through a Redis restart). */
  redis: Redis;
  /** redis:// URL for the BullMQ queues. */
  redisUrl: string;
  audit: AuditTrail;
  /** The thresholds in force (read on every decision, so hot reloads apply at once). */
  thresholds: () => Thresholds;
  /** Who submits: `controller`, `operator/<user>`. */
  actor: string;
  log: Logger;
  /**
   * Signs every job put in a node queue (nodes refuse unsigned jobs).
   * Default: the installation key, `<state dir>/feedback-signing.key`, created on first use.
   */
  signer?: JobSigner;
}

export interface SubmitResult {
  request_id: string;
  /** True when a request with this id was already submitted: nothing new happened. */
  duplicate: boolean;
  decisions: Decision[];
}

export interface RequestView extends StoredRequest {
  status: Record<string, NodeStatus>;
}

const AUDIT_STATE: Record<Decision['outcome'], 'accepted' | 'clamped' | 'queued' | 'rejected'> = {
  accept: 'accepted',
  clamp: 'clamped',
  queue_for_approval: 'queued',
  reject: 'rejected',
};

export class FeedbackService {
  readonly store: FeedbackStore;
  private readonly queues = new Map<string, Queue>();
  private signerCache: JobSigner | undefined;

  constructor(private readonly opts: FeedbackServiceOptions) {
    this.store = new FeedbackStore(opts.redis);
  }

  /** The BullMQ queue of a node (`tracefeed:feedback:<node>`). */
  queue(node: string): Queue {
    let q = this.queues.get(node);
    if (!q) {
      q = new Queue(node, {
        prefix: QUEUE_PREFIX,
        connection: redisOptions(this.opts.redisUrl),
        defaultJobOptions: JOB_OPTIONS,
      });
      q.on('error', (err) =>
        this.opts.log.warn({ err: err.message, node }, 'feedback queue error'),
      );
      this.queues.set(node, q);
    }
    return q;
  }

  private async context(req: FeedbackRequest, approved = false): Promise<PolicyContext> {
    const knownNodes = await this.store.nodes();
    const nodes = targetNodes(req, knownNodes);
    const reports = new Map<string, NodeReport | undefined>();
    const changes = new Map<string, number | undefined>();
    const workload = req.workload ?? '*';
    for (const n of nodes) {
      reports.set(n, await this.store.report(n));
      changes.set(n, await this.store.lastChange(n, req.probe, workload));
    }
    return {
      thresholds: this.opts.thresholds(),
      knownNodes,
      report: (n) => reports.get(n),
      lastChange: (n, _p: ProbeName, _w: string) => changes.get(n),
      now: Date.now(),
      approved,
    };
  }

  /**
   * Submits a request. Invalid input is rejected and audited (the ConfigError
   * is thrown after); a duplicate id returns the first submission's decisions.
   */
  async submit(input: unknown, actor = this.opts.actor): Promise<SubmitResult> {
    let req: FeedbackRequest;
    try {
      req = parseFeedbackRequest(input);
    } catch (err) {
      const raw = input as { id?: unknown } | null;
      const id =
        typeof raw?.id === 'string' && raw.id.length > 0 && raw.id.length <= 128
          ? raw.id
          : deriveRequestId('invalid', JSON.stringify(input) ?? 'undefined');
      this.opts.audit.record({
        request_id: id,
        state: 'rejected',
        actor,
        reason: (err as Error).message,
        data: { input: input as Record<string, unknown> },
      });
      throw err;
    }
    const existing = await this.store.get(req.id);
    if (existing) {
      await this.redeliver(existing);
      return { request_id: req.id, duplicate: true, decisions: existing.decisions };
    }

    const ctx = await this.context(req);
    const decisions = decideAll(req, ctx);
    const stored: StoredRequest = {
      request: req,
      decisions,
      submitted_at: new Date().toISOString(),
      actor,
    };
    if (!(await this.store.create(stored))) {
      const first = await this.store.get(req.id);
      return { request_id: req.id, duplicate: true, decisions: first?.decisions ?? [] };
    }
    this.opts.audit.record({
      request_id: req.id,
      state: 'submitted',
      actor,
      reason: req.reason,
      data: { request: req },
    });
    for (const d of decisions) await this.act(req, d, actor);
    return { request_id: req.id, duplicate: false, decisions };
  }

  /** Audits a decision, records the node status, and delivers accepted ones. */
  private async act(req: FeedbackRequest, d: Decision, actor: string): Promise<void> {
    this.opts.audit.record({
      request_id: req.id,
      state: AUDIT_STATE[d.outcome],
      actor,
      node: d.node,
      reason: d.reason,
      data: { decision: d },
    });
    if (d.node === '*') return;
    await this.store.setStatus(req.id, d.node, {
      state: AUDIT_STATE[d.outcome],
      at: new Date().toISOString(),
      reason: d.reason,
    });
    if (d.outcome !== 'accept' && d.outcome !== 'clamp') return;
    await this.store.setLastChange(d.node, req.probe, req.workload ?? '*', Date.now());
    await this.queue(d.node).add('apply', this.applyJob(req, d), { jobId: req.id });
  }

  private get signer(): JobSigner {
    this.signerCache ??= this.opts.signer ?? loadOrCreateSigner();
    return this.signerCache;
  }

  /** The signed revert job of a request on a node. */
  private revertJob(
    id: string,
    node: string,
    probe: ProbeName,
    cause: RevertJob['cause'],
  ): RevertJob {
    return this.signer.sign({
      kind: 'revert' as const,
      node,
      request_id: id,
      probe,
      cause,
      created_at: new Date().toISOString(),
    });
  }

  /** The signed apply job of a decision, with its signed TTL revert. */
  private applyJob(req: FeedbackRequest, d: Decision): ApplyJob {
    const ttl = d.ttl_seconds ?? 0;
    return this.signer.sign({
      kind: 'apply' as const,
      node: d.node,
      request: req,
      patch: d.patch ?? {},
      ttl_seconds: ttl,
      outcome: d.outcome as ApplyJob['outcome'],
      reason: d.reason,
      ...(ttl > 0 ? { ttl_revert: this.revertJob(req.id, d.node, req.probe, 'ttl') } : {}),
    });
  }

  /**
   * A resubmission (a retry after a fault, an anomaly read twice) delivers again
   * what may not have reached a queue; the job id makes that a no-op otherwise.
   */
  private async redeliver(s: StoredRequest): Promise<void> {
    const status = await this.store.statuses(s.request.id);
    for (const d of s.decisions) {
      if (d.outcome !== 'accept' && d.outcome !== 'clamp') continue;
      const st = status[d.node]?.state;
      if (st !== undefined && st !== 'accepted' && st !== 'clamped') continue;
      await this.queue(d.node).add('apply', this.applyJob(s.request, d), { jobId: s.request.id });
    }
  }

  async get(id: string): Promise<RequestView | undefined> {
    const s = await this.store.get(id);
    if (!s) return undefined;
    return { ...s, status: await this.store.statuses(id) };
  }

  async list(limit = 100): Promise<RequestView[]> {
    const out: RequestView[] = [];
    for (const id of await this.store.list(limit)) {
      const v = await this.get(id);
      if (v) out.push(v);
    }
    return out;
  }

  private async mustGet(id: string): Promise<RequestView> {
    const v = await this.get(id);
    if (!v)
      throw new ConfigError(`no feedback request "${id}"`, 'id', {
        hint: 'list them with `tracefeed feedback list`',
      });
    return v;
  }

  private pendingNodes(v: RequestView): string[] {
    return Object.entries(v.status)
      .filter(([, s]) => s.state === 'queued')
      .map(([n]) => n);
  }

  /** Approves a request queued for approval: decides again (bounds, floors, budgets still apply) and delivers. */
  async approve(id: string, actor: string): Promise<Decision[]> {
    const v = await this.mustGet(id);
    const nodes = this.pendingNodes(v);
    if (nodes.length === 0)
      throw new ConfigError(`request ${id} is not waiting for approval`, 'id');
    const ctx = await this.context(v.request, true);
    const out: Decision[] = [];
    for (const node of nodes) {
      this.opts.audit.record({ request_id: id, state: 'approved', actor, node });
      const d = decide(v.request, node, ctx);
      out.push(d);
      await this.act(v.request, d, actor);
    }
    v.decisions = v.decisions.map((d) => out.find((o) => o.node === d.node) ?? d);
    await this.opts.redis.set(
      `tracefeed:feedback-state:request:${id}`,
      JSON.stringify({
        request: v.request,
        decisions: v.decisions,
        submitted_at: v.submitted_at,
        actor: v.actor,
      }),
    );
    return out;
  }

  /** Rejects a request queued for approval. */
  async reject(id: string, actor: string, reason = 'rejected by operator'): Promise<void> {
    const v = await this.mustGet(id);
    const nodes = this.pendingNodes(v);
    if (nodes.length === 0)
      throw new ConfigError(`request ${id} is not waiting for approval`, 'id');
    for (const node of nodes) await this.setState(id, node, 'rejected', actor, reason);
  }

  /** Reverts a request now on every node where it is applied (the TTL revert job, promoted). */
  async revert(id: string, actor: string): Promise<string[]> {
    const v = await this.mustGet(id);
    const nodes = Object.entries(v.status)
      .filter(([, s]) => s.state === 'applied')
      .map(([n]) => n);
    if (nodes.length === 0) throw new ConfigError(`request ${id} is applied on no node`, 'id');
    for (const node of nodes) {
      const q = this.queue(node);
      const jobId = revertJobId(id);
      const job = await q.getJob(jobId);
      if (job && (await job.isDelayed())) await job.promote();
      else if (!job) {
        await q.add('revert', this.revertJob(id, node, v.request.probe, 'operator'), { jobId });
      }
      this.opts.log.info({ request: id, node, actor }, 'revert requested');
    }
    return nodes;
  }

  /** Expires requests that waited for approval longer than `approval.timeout_seconds`. */
  async expirePending(now = Date.now()): Promise<string[]> {
    const timeout = this.opts.thresholds().approval.timeout_seconds * 1000;
    const expired: string[] = [];
    for (const id of await this.store.list(1000)) {
      const v = await this.get(id);
      if (!v) continue;
      for (const node of this.pendingNodes(v)) {
        if (now - Date.parse(v.status[node]!.at) < timeout) continue;
        await this.setState(id, node, 'expired', this.opts.actor, 'not approved in time');
        expired.push(id);
      }
    }
    return expired;
  }

  private async setState(
    id: string,
    node: string,
    state: NodeState,
    actor: string,
    reason: string,
  ): Promise<void> {
    this.opts.audit.record({ request_id: id, state, actor, node, reason });
    await this.store.setStatus(id, node, { state, at: new Date().toISOString(), reason });
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
  }
}
