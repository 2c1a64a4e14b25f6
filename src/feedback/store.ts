/**
 * Request state in Redis: the request and its decisions, a status per node,
 * node registrations and reports, cooldown clocks, and what each node applied
 * (for reverts). Keys live under `tracefeed:feedback-state:`.
 */
import type { Redis } from 'ioredis';
import type { ProbeName } from '../wire/layout.js';
import type { ProbePatch, ProbeSettings } from '../wire/probe-settings.js';
import type { NodeReport } from './node-report.js';
import type { Decision } from './policy-engine.js';
import type { FeedbackRequest } from './request.js';

const P = 'tracefeed:feedback-state:';

export type NodeState =
  | 'accepted'
  | 'clamped'
  | 'queued'
  | 'rejected'
  | 'delivered'
  | 'applied'
  | 'failed'
  | 'reverted'
  | 'expired';

export interface NodeStatus {
  state: NodeState;
  at: string;
  reason?: string;
  result?: AppliedRecord | Record<string, unknown>;
}

export interface StoredRequest {
  request: FeedbackRequest;
  decisions: Decision[];
  submitted_at: string;
  actor: string;
}

/** What a node applied for a request: enough to revert it and to report it. */
export interface AppliedRecord {
  request_id: string;
  node: string;
  probe: ProbeName;
  patch: ProbePatch;
  /** Settings in force before the request. */
  previous: ProbeSettings;
  /** Settings right after it. */
  applied: ProbeSettings;
  generation: number;
  applied_at: string;
  ttl_seconds: number;
  events_per_second_before: number;
  /** Sampled ~2 s after the change (undefined until then). */
  events_per_second_after?: number;
  /** The `applied` audit record was written. */
  audited?: boolean;
}

export class FeedbackStore {
  constructor(readonly redis: Redis) {}

  /** Stores a new request; false if one with this id exists (a duplicate submission). */
  async create(s: StoredRequest): Promise<boolean> {
    const ok = await this.redis.set(`${P}request:${s.request.id}`, JSON.stringify(s), 'NX');
    if (ok !== 'OK') return false;
    await this.redis.zadd(`${P}index`, Date.parse(s.request.created_at), s.request.id);
    return true;
  }

  async update(s: StoredRequest): Promise<void> {
    await this.redis.set(`${P}request:${s.request.id}`, JSON.stringify(s));
  }

  async get(id: string): Promise<StoredRequest | undefined> {
    const v = await this.redis.get(`${P}request:${id}`);
    return v ? (JSON.parse(v) as StoredRequest) : undefined;
  }

  /** Newest first. */
  async list(limit = 100): Promise<string[]> {
    return this.redis.zrevrange(`${P}index`, 0, limit - 1);
  }

  async setStatus(id: string, node: string, status: NodeStatus): Promise<void> {
    await this.redis.hset(`${P}status:${id}`, node, JSON.stringify(status));
  }

  async statuses(id: string): Promise<Record<string, NodeStatus>> {
    const h = await this.redis.hgetall(`${P}status:${id}`);
    const out: Record<string, NodeStatus> = {};
    for (const [k, v] of Object.entries(h)) out[k] = JSON.parse(v) as NodeStatus;
    return out;
  }

  async registerNode(node: string): Promise<void> {
    await this.redis.sadd(`${P}nodes`, node);
  }

  async unregisterNode(node: string): Promise<void> {
    await this.redis.srem(`${P}nodes`, node);
    await this.redis.del(`${P}report:${node}`);
  }

  async nodes(): Promise<string[]> {
    return (await this.redis.smembers(`${P}nodes`)).sort();
  }

  async putReport(r: NodeReport, ttlSeconds: number): Promise<void> {
    await this.redis.set(`${P}report:${r.node}`, JSON.stringify(r), 'EX', Math.ceil(ttlSeconds));
  }

  async report(node: string): Promise<NodeReport | undefined> {
    const v = await this.redis.get(`${P}report:${node}`);
    return v ? (JSON.parse(v) as NodeReport) : undefined;
  }

  async setLastChange(node: string, probe: string, workload: string, at: number): Promise<void> {
    await this.redis.set(`${P}last-change:${node}:${probe}:${workload}`, String(at), 'EX', 86_400);
  }

  async lastChange(node: string, probe: string, workload: string): Promise<number | undefined> {
    const v = await this.redis.get(`${P}last-change:${node}:${probe}:${workload}`);
    return v ? Number(v) : undefined;
  }

  async putApplied(r: AppliedRecord): Promise<void> {
    await this.redis.set(
      `${P}applied:${r.node}:${r.request_id}`,
      JSON.stringify(r),
      'EX',
      30 * 86_400,
    );
  }

  async applied(node: string, id: string): Promise<AppliedRecord | undefined> {
    const v = await this.redis.get(`${P}applied:${node}:${id}`);
    return v ? (JSON.parse(v) as AppliedRecord) : undefined;
  }

  /** Marks a revert done; false if it was already. */
  async markReverted(node: string, id: string, result: Record<string, unknown>): Promise<boolean> {
    const ok = await this.redis.set(
      `${P}reverted:${node}:${id}`,
      JSON.stringify(result),
      'EX',
      30 * 86_400,
      'NX',
    );
    return ok === 'OK';
  }

  async reverted(node: string, id: string): Promise<Record<string, unknown> | undefined> {
    const v = await this.redis.get(`${P}reverted:${node}:${id}`);
    return v ? (JSON.parse(v) as Record<string, unknown>) : undefined;
  }

  async putThresholdsStatus(status: Record<string, unknown>): Promise<void> {
    await this.redis.set(`${P}thresholds-status`, JSON.stringify(status));
  }

  async thresholdsStatus(): Promise<Record<string, unknown> | undefined> {
    const v = await this.redis.get(`${P}thresholds-status`);
    return v ? (JSON.parse(v) as Record<string, unknown>) : undefined;
  }
}
