/**
 * The agent's only way to change anything: a feedback request submitted to
 * the policy engine. `FeedbackGateway` is the small interface the agent codes
 * against; `FeedbackServiceGateway` adapts the real one (src/feedback:
 * policy engine, audit trail, BullMQ delivery). The agent never applies a
 * change itself: it reports the verdict and reason it gets back.
 */
import { ConfigError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { AuditTrail } from '../feedback/audit.js';
import type { Decision, Outcome } from '../feedback/policy-engine.js';
import { connectRedisChecked, redisUrlFrom } from '../feedback/redis.js';
import type { FeedbackRequest } from '../feedback/request.js';
import { FeedbackService } from '../feedback/service.js';
import type { NodeReport } from '../feedback/node-report.js';
import { FeedbackStore } from '../feedback/store.js';
import { DEFAULT_THRESHOLDS, thresholdsSchema, type Thresholds } from '../feedback/thresholds.js';

export type Verdict = Outcome;

export interface GatewayResult {
  request_id: string;
  /** The outcome when every node got the same one, else the most restrictive. */
  verdict: Verdict;
  /** The policy engine's reason(s), one per node when they differ. */
  reason: string;
  /** A request with this id was already submitted; these are its first decisions. */
  duplicate: boolean;
  decisions: Array<{ node: string; outcome: Verdict; reason: string }>;
}

/** A recent feedback request, as `describe_probes` shows it. */
export interface RecentFeedback {
  request_id: string;
  created_at: string;
  origin: string;
  probe: string;
  action: string;
  workload?: string;
  reason: string;
  /** Per node: accepted, clamped, queued, rejected, delivered, applied, reverted, ... */
  states: Record<string, string>;
}

/** Budgets, floors and bounds in force, for `describe_probes`. */
export interface PolicySummary {
  floors: string[];
  budget: { events_per_second: number; bytes_per_second: number };
  node_budgets: Record<string, { events_per_second?: number; bytes_per_second?: number }>;
  probes: Record<
    string,
    { min_sample_n?: number; max_sample_n?: number; cooldown_seconds?: number }
  >;
  cooldown_seconds: number;
  default_ttl_seconds: number;
  max_ttl_seconds: number;
  approval: { actions: string[]; origins: string[] };
}

export interface FeedbackGateway {
  submit(request: FeedbackRequest): Promise<GatewayResult>;
  recent(limit: number): Promise<RecentFeedback[]>;
  /** The policy in force, when the gateway knows it. */
  policy?(): Promise<PolicySummary>;
  /** Nodes' last probe reports, when the gateway knows them. */
  reports?(): Promise<NodeReport[]>;
}

const RESTRICTIVENESS: Verdict[] = ['accept', 'clamp', 'queue_for_approval', 'reject'];

/** One verdict for a list of per-node decisions. */
export function summarizeDecisions(
  request_id: string,
  decisions: Decision[],
  duplicate: boolean,
): GatewayResult {
  const ds = decisions.map((d) => ({ node: d.node, outcome: d.outcome, reason: d.reason }));
  const verdict =
    ds.length === 0
      ? 'reject'
      : ds
          .map((d) => d.outcome)
          .reduce((a, b) => (RESTRICTIVENESS.indexOf(b) > RESTRICTIVENESS.indexOf(a) ? b : a));
  const reasons = [...new Set(ds.map((d) => d.reason))];
  return {
    request_id,
    verdict,
    reason: reasons.length === 1 ? reasons[0]! : ds.map((d) => `${d.node}: ${d.reason}`).join('; '),
    duplicate,
    decisions: ds,
  };
}

export function policySummary(t: Thresholds): PolicySummary {
  return {
    floors: [...t.floors],
    budget: { ...t.budget },
    node_budgets: { ...t.node_budgets },
    probes: Object.fromEntries(Object.entries(t.probes).map(([k, v]) => [k, { ...v }])),
    cooldown_seconds: t.cooldown_seconds,
    default_ttl_seconds: t.default_ttl_seconds,
    max_ttl_seconds: t.max_ttl_seconds,
    approval: { actions: [...t.approval.actions], origins: [...t.approval.origins] },
  };
}

/** The real policy engine behind the gateway interface. */
export class FeedbackServiceGateway implements FeedbackGateway {
  constructor(
    private readonly service: FeedbackService,
    private readonly thresholds: () => Thresholds,
    /** Audit actor of the agent's submissions. Default `agent`. */
    private readonly actor = 'agent',
  ) {}

  async submit(request: FeedbackRequest): Promise<GatewayResult> {
    try {
      const r = await this.service.submit(request, this.actor);
      return summarizeDecisions(r.request_id, r.decisions, r.duplicate);
    } catch (err) {
      // An invalid request is rejected (and audited by the service).
      if (err instanceof ConfigError)
        return {
          request_id: request.id,
          verdict: 'reject',
          reason: err.message,
          duplicate: false,
          decisions: [],
        };
      throw err;
    }
  }

  async recent(limit: number): Promise<RecentFeedback[]> {
    const views = await this.service.list(limit);
    return views.map((v) => ({
      request_id: v.request.id,
      created_at: v.request.created_at,
      origin: v.request.origin,
      probe: v.request.probe,
      action: v.request.action,
      ...(v.request.workload !== undefined ? { workload: v.request.workload } : {}),
      reason: v.request.reason,
      states: Object.fromEntries(
        Object.keys(v.status).length > 0
          ? Object.entries(v.status).map(([n, s]) => [n, s.state])
          : v.decisions.map((d) => [d.node, d.outcome]),
      ),
    }));
  }

  async policy(): Promise<PolicySummary> {
    return policySummary(this.thresholds());
  }

  async reports(): Promise<NodeReport[]> {
    const out: NodeReport[] = [];
    for (const n of await this.service.store.nodes()) {
      const r = await this.service.store.report(n);
      if (r) out.push(r);
    }
    return out;
  }
}

/**
 * A gateway on the feedback state in Redis, deciding with the thresholds the
 * running controller published there (the built-in defaults otherwise). For
 * the CLI and `agent serve`; `close()` releases Redis and the audit trail.
 */
export async function connectFeedbackGateway(opts: {
  redisUrl?: string;
  brokers?: string[];
  log: Logger;
}): Promise<{ gateway: FeedbackServiceGateway; close: () => Promise<void> }> {
  const url = redisUrlFrom(opts.redisUrl);
  const redis = await connectRedisChecked(url);
  const audit = new AuditTrail({ brokers: opts.brokers, log: opts.log });
  const store = new FeedbackStore(redis);
  let thresholds: Thresholds = DEFAULT_THRESHOLDS;
  const refresh = async (): Promise<void> => {
    const parsed = thresholdsSchema.safeParse((await store.thresholdsStatus())?.thresholds);
    thresholds = parsed.success ? parsed.data : DEFAULT_THRESHOLDS;
  };
  await refresh();
  const timer = setInterval(() => void refresh().catch(() => undefined), 10_000);
  timer.unref();
  const service = new FeedbackService({
    redis,
    redisUrl: url,
    audit,
    thresholds: () => thresholds,
    actor: 'agent',
    log: opts.log,
  });
  return {
    gateway: new FeedbackServiceGateway(service, () => thresholds),
    close: async () => {
      clearInterval(timer);
      await service.close();
      await audit.close();
      redis.disconnect();
    },
  };
}
