/**
 * The budget rule: a node over its events/s budget loosens its noisiest
 * probe that is not a floor and can still be loosened, never past the probe's
 * coverage floor (`budget_max_sample_n`): a budget never blinds a probe. Pure.
 */
import type { NodeReport } from './node-report.js';
import { BUDGET_WORKLOAD } from './policy-engine.js';
import { deriveRequestId, type FeedbackRequest } from './request.js';
import { budgetMaxSampleN, budgetOf, type Thresholds } from './thresholds.js';

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
  const busy = report.probes.filter(
    (p) => p.enabled && !t.floors.includes(p.probe) && p.events_per_second > 0,
  );
  const candidates = busy
    .filter((p) => p.settings.sample_n < budgetMaxSampleN(t, p.probe))
    .sort((a, b) => b.events_per_second - a.events_per_second);
  const noisiest = candidates[0];
  if (!noisiest) {
    const atFloor = busy.map(
      (p) => `${p.probe} at 1/${p.settings.sample_n} (floor 1/${budgetMaxSampleN(t, p.probe)})`,
    );
    return {
      over: true,
      reason:
        atFloor.length > 0
          ? `node ${report.node} is over budget but every loosenable probe is at or past its coverage floor (budget_max_sample_n): ${atFloor.join(', ')}`
          : `node ${report.node} is over budget but every non-floor probe is off or idle`,
    };
  }
  const ceiling = budgetMaxSampleN(t, noisiest.probe);
  const current = noisiest.settings.sample_n;
  // Enough to remove the excess from this probe alone (with 20% headroom), at least x loosen_factor.
  const excessShare =
    overEvents > 0 ? Math.min(0.99, (overEvents * 1.2) / noisiest.events_per_second) : 0.5;
  const needed = Math.ceil(current / (1 - excessShare));
  const target = Math.min(ceiling, Math.max(current * t.loosen_factor, needed));
  const request: FeedbackRequest = {
    schema_version: 1,
    id: deriveRequestId('budget', report.node, noisiest.probe, epoch),
    target: { nodes: [report.node] },
    probe: noisiest.probe,
    action: 'loosen',
    params: { sample_n: target },
    reason: `node ${report.node} over budget: ${Math.round(report.events_per_second)} events/s of ${budget.events_per_second}; ${noisiest.probe} is the noisiest non-floor probe (${Math.round(noisiest.events_per_second)} events/s at 1/${current}, coverage floor 1/${ceiling})`,
    origin: 'rule',
    evidence: { text: `budget check at ${new Date(now).toISOString()}` },
    workload: BUDGET_WORKLOAD,
    created_at: new Date(now).toISOString(),
  };
  return { over: true, request };
}
