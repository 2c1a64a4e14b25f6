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
    (r.focus !== 'workload' || r.action === 'loosen' || workloadFocusKey(a) !== undefined)
  );
}

/** The focus key of an anomaly's workload: its cgroup id when known (exact, race-free), else its path. */
export function workloadFocusKey(a: Anomaly): string | undefined {
  if (/^[1-9]\d*$/.test(a.cgroup_id)) return a.cgroup_id;
  if (a.workload.startsWith('/')) return a.workload;
  return undefined;
}

/**
 * The requests the thresholds' rules make of one anomaly (one per matching
 * rule). A `focus: workload` rule makes none for an anomaly whose workload is
 * no cgroup (id 0, unresolved): it focuses a workload or nothing.
 */
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
    const focused = r.focus === 'workload' && r.action !== 'loosen';
    const focus = focused ? workloadFocusKey(a) : undefined;
    // No cgroup to focus on (cgroup 0: records with no owning socket or task, such as
    // the reset a closed port sends): a workload rule never widens to the whole node.
    if (focused && focus === undefined) continue;
    // Focused on a workload: the rule's settings go into that cgroup's focus and the
    // baseline (everyone else) stays as it is. Otherwise they change the baseline.
    const into: { sample_n?: number; slow_ms?: number; min_duration_ms?: number } =
      focus !== undefined ? {} : params;
    if (r.sample_n !== undefined) into.sample_n = r.sample_n;
    if (r.action !== 'loosen') {
      if (r.slow_ms !== undefined) into.slow_ms = r.slow_ms;
      if (r.min_duration_ms !== undefined) into.min_duration_ms = r.min_duration_ms;
    }
    if (focus !== undefined) params.focus = { [focus]: into };
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
