/**
 * The agent's sources over a recording, with the clock at the recording's
 * end: features from the recorded rows, anomalies from the recorded ones,
 * probe state as it was at the end, feedback history from the audit trail,
 * the process index fed with the recorded frames, and the real policy engine
 * (decideAll) with the run's thresholds for proposals. Nothing is sent
 * anywhere: a proposal is decided, not delivered.
 */
import { AnomalyStore } from '../agent/anomaly-store.js';
import {
  policySummary,
  summarizeDecisions,
  type FeedbackGateway,
  type GatewayResult,
  type PolicySummary,
  type RecentFeedback,
} from '../agent/gateway.js';
import { ProcessIndex } from '../agent/process-index.js';
import type { FeatureRow, FeatureSource, ProbeSource } from '../agent/sources.js';
import type { AgentDeps } from '../agent/tools.js';
import type { FeatureQuery } from '../features/feature-query.js';
import { decideAll } from '../feedback/policy-engine.js';
import type { FeedbackRequest } from '../feedback/request.js';
import { parseThresholds, type Thresholds } from '../feedback/thresholds.js';
import type { Recording } from './recording.js';

export function recordedFeatures(rec: Recording): FeatureSource {
  const rows = rec.rows.map((row) => ({ row, t: Date.parse(String(row.window_start)) }));
  return {
    name: `recording of node ${rec.node}`,
    async query(q: FeatureQuery): Promise<FeatureRow[]> {
      return rows
        .filter(
          ({ row: r, t }) =>
            (q.sinceMs === undefined || t >= q.sinceMs) &&
            (q.untilMs === undefined || t < q.untilMs) &&
            (q.node === undefined || r.node === q.node) &&
            (q.workload === undefined ||
              r.workload === q.workload ||
              `cgroup:${r.cgroup_id}` === q.workload) &&
            (q.probe === undefined || r.probe === q.probe),
        )
        .map(({ row }) => ({ ...row }));
    },
  };
}

/** Feedback history (from the audit trail) and the policy engine's decisions (nothing delivered). */
export class RecordedGateway implements FeedbackGateway {
  readonly thresholds: Thresholds;
  readonly submitted: FeedbackRequest[] = [];

  constructor(
    private readonly rec: Recording,
    private readonly now: () => number,
  ) {
    this.thresholds = parseThresholds(rec.thresholds_yaml, 'recorded thresholds');
  }

  async submit(request: FeedbackRequest): Promise<GatewayResult> {
    const duplicate = this.submitted.some((r) => r.id === request.id);
    if (!duplicate) this.submitted.push(request);
    const decisions = decideAll(request, {
      thresholds: this.thresholds,
      knownNodes: [this.rec.node],
      report: () => undefined,
      lastChange: () => undefined,
      now: this.now(),
    });
    return summarizeDecisions(request.id, decisions, duplicate);
  }

  async recent(limit: number): Promise<RecentFeedback[]> {
    const byId = new Map<string, RecentFeedback>();
    for (const r of this.rec.audit) {
      if (r.state === 'submitted') {
        const req = (r.data?.request ?? {}) as Record<string, unknown>;
        byId.set(r.request_id, {
          request_id: r.request_id,
          created_at: String(req.created_at ?? r.at),
          origin: String(req.origin ?? 'rule'),
          probe: String(req.probe ?? '?'),
          action: String(req.action ?? '?'),
          ...(typeof req.workload === 'string' ? { workload: req.workload } : {}),
          reason: String(req.reason ?? r.reason ?? ''),
          states: {},
        });
      }
    }
    for (const r of this.rec.audit) {
      const f = byId.get(r.request_id);
      if (f && r.state !== 'submitted' && r.node !== undefined) f.states[r.node] = r.state;
    }
    return [...byId.values()]
      .sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at))
      .slice(0, limit);
  }

  async policy(): Promise<PolicySummary> {
    return policySummary(this.thresholds);
  }
}

export interface Replay {
  deps: AgentDeps;
  gateway: RecordedGateway;
  processes: ProcessIndex;
}

export function replayDeps(rec: Recording): Replay {
  const now = (): number => rec.ended_at;
  const anomalies = new AnomalyStore();
  for (const a of rec.anomalies) anomalies.add(a);
  const processes = new ProcessIndex();
  for (const f of rec.frames) processes.ingestFrame(Buffer.from(f, 'base64'));
  const probes: ProbeSource = {
    name: `probe state of ${rec.node} at the end of the recording`,
    probes: async () => rec.probes,
  };
  const gateway = new RecordedGateway(rec, now);
  return {
    deps: { features: recordedFeatures(rec), anomalies, probes: [probes], gateway, processes, now },
    gateway,
    processes,
  };
}
