/**
 * The policy engine: for one request and one node, accept, clamp, queue for
 * approval or reject, with the reason and the concrete patch the node will
 * apply. Pure: everything it needs (thresholds, the node's last report,
 * cooldown clocks, the time) comes in as arguments.
 */
import type { ProbeName } from '../wire/layout.js';
import type { ProbePatch } from '../wire/probe-settings.js';
import type { NodeReport } from './node-report.js';
import type { FeedbackRequest } from './request.js';
import { boundsOf, budgetOf, type Thresholds } from './thresholds.js';

/** The workload key of budget loosenings (their cooldown is `budget_cooldown_seconds`). */
export const BUDGET_WORKLOAD = '*budget*';

export type Outcome = 'accept' | 'clamp' | 'queue_for_approval' | 'reject';

export interface Decision {
  node: string;
  outcome: Outcome;
  /** Why, in one sentence (several joined by "; " when clamped more than once). */
  reason: string;
  /** What the node applies (accept and clamp only). */
  patch?: ProbePatch;
  /** TTL in force (accept and clamp only); 0 = no automatic revert. */
  ttl_seconds?: number;
}

export interface PolicyContext {
  thresholds: Thresholds;
  /** Nodes that have registered a worker. */
  knownNodes: readonly string[];
  /** The node's last state report, when there is a live one. */
  report: (node: string) => NodeReport | undefined;
  /** Epoch ms of the last accepted change of (node, probe, workload), if any. */
  lastChange: (node: string, probe: ProbeName, workload: string) => number | undefined;
  /** Epoch ms. */
  now: number;
  /** The operator approved this request. */
  approved?: boolean;
}

/** The nodes a request targets: its list, or every known node for `{ all: true }`. */
export function targetNodes(req: FeedbackRequest, knownNodes: readonly string[]): string[] {
  return 'all' in req.target ? [...knownNodes] : [...new Set(req.target.nodes)];
}

/** Decides for every target node. */
export function decideAll(req: FeedbackRequest, ctx: PolicyContext): Decision[] {
  const nodes = targetNodes(req, ctx.knownNodes);
  if (nodes.length === 0)
    return [{ node: '*', outcome: 'reject', reason: 'no node has registered a feedback worker' }];
  return nodes.map((n) => decide(req, n, ctx));
}

function hasNarrowingFilters(p: ProbePatch): boolean {
  if (!p.filters) return false;
  return Object.values(p.filters).some(
    (s) => s !== undefined && ((s.allow?.length ?? 0) > 0 || (s.deny?.length ?? 0) > 0),
  );
}

/** Focused on workloads: a per-cgroup focus added, or an allow set that narrows to some. */
function hasFocus(p: ProbePatch): boolean {
  return (
    addsFocus(p) ||
    (p.filters?.cgroup?.allow?.length ?? 0) > 0 ||
    (p.filters?.pid?.allow?.length ?? 0) > 0 ||
    (p.filters?.comm?.allow?.length ?? 0) > 0
  );
}

function addsFocus(p: ProbePatch): boolean {
  return Object.values(p.focus ?? {}).some((f) => f !== null);
}

export function decide(req: FeedbackRequest, node: string, ctx: PolicyContext): Decision {
  const t = ctx.thresholds;
  const reject = (reason: string): Decision => ({ node, outcome: 'reject', reason });

  if (!ctx.knownNodes.includes(node))
    return reject(`unknown node "${node}"; known nodes: ${ctx.knownNodes.join(', ') || '(none)'}`);
  const report = ctx.report(node);
  const probeState = report?.probes.find((p) => p.probe === req.probe);
  if (report && !probeState)
    return reject(
      `probe ${req.probe} is not loaded on node ${node}; loaded: ${report.probes.map((p) => p.probe).join(', ')}`,
    );

  const floor = t.floors.includes(req.probe);
  if (floor && req.action === 'disable')
    return reject(`probe ${req.probe} is a floor and is never disabled`);

  const operator = req.origin === 'operator';
  if (
    !operator &&
    !ctx.approved &&
    (t.approval.actions.includes(req.action) || t.approval.origins.includes(req.origin))
  )
    return {
      node,
      outcome: 'queue_for_approval',
      reason: `${req.action} from ${req.origin} needs operator approval`,
    };

  const workload = req.workload ?? '*';
  if (!operator) {
    const cooldown =
      workload === BUDGET_WORKLOAD
        ? t.budget_cooldown_seconds
        : (boundsOf(t, req.probe).cooldown_seconds ?? t.cooldown_seconds);
    const last = ctx.lastChange(node, req.probe, workload);
    if (last !== undefined && ctx.now - last < cooldown * 1000)
      return reject(
        `cooldown: ${req.probe} on ${node} for ${workload} changed ${Math.round((ctx.now - last) / 1000)} s ago, cooldown ${cooldown} s`,
      );
  }

  const notes: string[] = [];
  let clamped = false;

  // TTL.
  let ttl = req.ttl_seconds ?? t.default_ttl_seconds;
  if (ttl === 0 && !operator) {
    ttl = t.default_ttl_seconds;
    clamped = true;
    notes.push(`ttl 0 (no revert) is for operators only: ttl ${ttl} s`);
  }
  if (ttl > t.max_ttl_seconds) {
    notes.push(`ttl ${ttl} s clamped to max_ttl_seconds ${t.max_ttl_seconds}`);
    ttl = t.max_ttl_seconds;
    clamped = true;
  }

  // The concrete patch.
  const bounds = boundsOf(t, req.probe);
  const params = structuredClone(req.params);
  let patch: ProbePatch;
  // A request carrying a focus changes that focus only: the baseline (enabled,
  // sample_n: every other cgroup) stays as it is.
  const focused = params.focus !== undefined;
  switch (req.action) {
    case 'enable':
      patch = focused ? { ...params } : { ...params, enabled: true };
      break;
    case 'disable':
      patch = { enabled: false };
      break;
    case 'tighten':
      if (focused) {
        const focus: NonNullable<ProbePatch['focus']> = {};
        for (const [key, f] of Object.entries(params.focus ?? {}))
          focus[key] = f === null ? null : { ...f, sample_n: f.sample_n ?? bounds.min_sample_n };
        patch = { ...params, focus };
      } else patch = { ...params, enabled: true, sample_n: params.sample_n ?? bounds.min_sample_n };
      break;
    case 'loosen': {
      if (!probeState)
        return reject(`no state report from node ${node}: cannot tell what to loosen from`);
      if (!probeState.enabled) return reject(`probe ${req.probe} is disabled: nothing to loosen`);
      const current = probeState.settings.sample_n;
      if (current >= bounds.max_sample_n)
        return reject(
          `probe ${req.probe} already samples 1/${current}, at max_sample_n ${bounds.max_sample_n}`,
        );
      const target = params.sample_n ?? current * t.loosen_factor;
      if (target <= current)
        return reject(`loosen to sample_n ${target} would not reduce 1/${current}`);
      patch = { sample_n: target };
      break;
    }
    case 'set':
      if (Object.keys(params).length === 0) return reject('set with no params: nothing to change');
      patch = { ...params };
      break;
  }

  // Floors are never narrowed.
  if (floor && (hasNarrowingFilters(patch) || patch.clear_filters)) {
    delete patch.filters;
    delete patch.clear_filters;
    clamped = true;
    notes.push(`probe ${req.probe} is a floor: filters dropped`);
  }
  // A floor records every cgroup at its baseline: a focus would not change it.
  if (floor && patch.focus !== undefined) {
    delete patch.focus;
    clamped = true;
    notes.push(`probe ${req.probe} is a floor that records every cgroup: focus dropped`);
  }

  // Bounds.
  if (patch.sample_n !== undefined) {
    if (patch.sample_n < bounds.min_sample_n || patch.sample_n > bounds.max_sample_n) {
      const n = Math.min(bounds.max_sample_n, Math.max(bounds.min_sample_n, patch.sample_n));
      notes.push(
        `sample_n ${patch.sample_n} clamped to ${n} (bounds ${bounds.min_sample_n}..${bounds.max_sample_n})`,
      );
      patch.sample_n = n;
      clamped = true;
    }
  }
  for (const [key, f] of Object.entries(patch.focus ?? {})) {
    if (f?.sample_n === undefined) continue;
    if (f.sample_n < bounds.min_sample_n || f.sample_n > bounds.max_sample_n) {
      const n = Math.min(bounds.max_sample_n, Math.max(bounds.min_sample_n, f.sample_n));
      notes.push(
        `focus ${key} sample_n ${f.sample_n} clamped to ${n} (bounds ${bounds.min_sample_n}..${bounds.max_sample_n})`,
      );
      f.sample_n = n;
      clamped = true;
    }
  }

  // Budget: a node over budget only takes changes that collect more when they are focused.
  const budget = budgetOf(t, node);
  const increases =
    (patch.enabled === true && probeState?.enabled !== true) ||
    (patch.sample_n !== undefined &&
      patch.sample_n < (probeState?.settings.sample_n ?? Number.POSITIVE_INFINITY)) ||
    patch.clear_filters === true ||
    addsFocus(patch) ||
    (patch.slow_ms !== undefined && patch.slow_ms > 0);
  if (
    !operator &&
    report &&
    increases &&
    !hasFocus(patch) &&
    (report.events_per_second > budget.events_per_second ||
      report.bytes_per_second > budget.bytes_per_second)
  )
    return reject(
      `node ${node} is over its budget (${Math.round(report.events_per_second)} events/s of ${budget.events_per_second}, ${Math.round(report.bytes_per_second)} B/s of ${budget.bytes_per_second}); only changes focused on a workload may collect more`,
    );

  const describe = `${req.action} ${req.probe} on ${node} for ${ttl === 0 ? 'ever' : `${ttl} s`}`;
  return {
    node,
    outcome: clamped ? 'clamp' : 'accept',
    reason: clamped ? `${describe}: ${notes.join('; ')}` : describe,
    patch,
    ttl_seconds: ttl,
  };
}
