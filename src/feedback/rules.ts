/**
 * Rule-driven feedback, no LLM: an anomaly matching a thresholds rule becomes
 * a request. The id is derived from (rule, series, window), so the same
 * anomaly read twice yields the same request, applied once.
 */
import type { Anomaly } from '../features/anomaly.js';
import type { FeedbackParams, FeedbackRequest } from './request.js';
import { deriveRequestId } from './request.js';
import { ruleMetrics, ruleName, type Rule, type Thresholds } from './thresholds.js';

export { ruleName };

const SEVERITY_RANK = { warning: 0, critical: 1 } as const;

/**
 * Metric (one of the rule's), source, severity and direction match; a rule focused on
 * the workload also needs the anomaly to name one (an unresolved `cgroup:0` anomaly must
 * not turn into a node-wide change).
 */
export function ruleMatches(r: Rule, a: Anomaly): boolean {
  return (
    ruleMetrics(r).includes(a.metric) &&
    (r.source === undefined || r.source === a.probe) &&
    SEVERITY_RANK[a.severity] >= SEVERITY_RANK[r.min_severity] &&
    (r.direction === 'any' || r.direction === a.direction) &&
    (r.focus !== 'workload' || r.action === 'loosen' || workloadFilter(a) !== undefined)
  );
}

/** The cgroup filter entry of an anomaly's workload: its id when known (exact, race-free), else its path. */
export function workloadFilter(a: Anomaly): string | number | undefined {
  if (/^\d+$/.test(a.cgroup_id)) {
    const n = Number(a.cgroup_id);
    if (Number.isSafeInteger(n) && n > 0) return n;
  }
  if (a.workload.startsWith('/')) return a.workload;
  return undefined;
}

/** The requests the thresholds' rules make of one anomaly (one per matching rule). */
export function requestsFromAnomaly(
  a: Anomaly,
  t: Thresholds,
  now = Date.now(),
): FeedbackRequest[] {
  const out: FeedbackRequest[] = [];
  for (const r of t.rules) {
    if (!ruleMatches(r, a)) continue;
    const name = ruleName(r);
    const params: FeedbackParams = {};
    if (r.sample_n !== undefined) params.sample_n = r.sample_n;
    if (r.action !== 'loosen') {
      if (r.slow_ms !== undefined) params.slow_ms = r.slow_ms;
      if (r.min_duration_ms !== undefined) params.min_duration_ms = r.min_duration_ms;
    }
    const focus = r.focus === 'workload' && r.action !== 'loosen' ? workloadFilter(a) : undefined;
    if (focus !== undefined) params.filters = { cgroup: { allow: [focus] } };
    out.push({
      schema_version: 1,
      id: deriveRequestId('rule', name, a.series_id, a.window_start),
      target: { nodes: [a.node] },
      probe: r.probe,
      action: r.action,
      params,
      ...(r.ttl_seconds !== undefined ? { ttl_seconds: r.ttl_seconds } : {}),
      reason: `rule ${name}: ${a.metric} ${a.direction} on ${a.workload} (${a.observed} vs baseline ${a.baseline}, score ${a.score.toFixed(1)}, ${a.severity})`,
      origin: 'rule',
      evidence: { anomaly_id: a.id },
      workload: focus !== undefined ? a.workload : '*',
      created_at: new Date(now).toISOString(),
    });
  }
  return out;
}
