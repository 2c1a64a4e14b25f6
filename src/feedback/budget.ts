/**
 * The budget rule: a node over its events/s budget loosens its noisiest
 * probe that is not a floor and can still be loosened. Pure.
 */
import type { NodeReport } from './node-report.js';
import { BUDGET_WORKLOAD } from './policy-engine.js';
import { deriveRequestId, type FeedbackRequest } from './request.js';
import { boundsOf, budgetOf, type Thresholds } from './thresholds.js';

export interface BudgetVerdict {
  over: boolean;
  /** The loosen request to submit, when one probe can still give way. */
  request?: FeedbackRequest;
  /** Why nothing is submitted, when over budget but no probe can give way. */
  reason?: string;
}

/**
 * `epoch` makes the request id deterministic per budget period (e.g.
 * floor(now / budget_cooldown)): a duplicate check within a period is applied once.
 */
export function budgetCheck(
  report: NodeReport,
  t: Thresholds,
  now: number,
  epoch: number,
): BudgetVerdict {
  const budget = budgetOf(t, report.node);
  const overEvents = report.events_per_second - budget.events_per_second;
  const overBytes = report.bytes_per_second - budget.bytes_per_second;
  if (overEvents <= 0 && overBytes <= 0) return { over: false };
  const candidates = report.probes
    .filter(
      (p) =>
        p.enabled &&
        !t.floors.includes(p.probe) &&
        p.settings.sample_n < boundsOf(t, p.probe).max_sample_n &&
        p.events_per_second > 0,
    )
    .sort((a, b) => b.events_per_second - a.events_per_second);
  const noisiest = candidates[0];
  if (!noisiest)
    return {
      over: true,
      reason: `node ${report.node} is over budget but every non-floor probe is off, idle or at max_sample_n`,
    };
  const bounds = boundsOf(t, noisiest.probe);
  const current = noisiest.settings.sample_n;
  // Enough to remove the excess from this probe alone (with 20% headroom), at least x loosen_factor.
  const excessShare =
    overEvents > 0 ? Math.min(0.99, (overEvents * 1.2) / noisiest.events_per_second) : 0.5;
  const needed = Math.ceil(current / (1 - excessShare));
  const target = Math.min(bounds.max_sample_n, Math.max(current * t.loosen_factor, needed));
  const request: FeedbackRequest = {
    schema_version: 1,
    id: deriveRequestId('budget', report.node, noisiest.probe, epoch),
    target: { nodes: [report.node] },
    probe: noisiest.probe,
    action: 'loosen',
    params: { sample_n: target },
    reason: `node ${report.node} over budget: ${Math.round(report.events_per_second)} events/s of ${budget.events_per_second}; ${noisiest.probe} is the noisiest non-floor probe (${Math.round(noisiest.events_per_second)} events/s at 1/${current})`,
    origin: 'rule',
    evidence: { text: `budget check at ${new Date(now).toISOString()}` },
    workload: BUDGET_WORKLOAD,
    created_at: new Date(now).toISOString(),
  };
  return { over: true, request };
}
