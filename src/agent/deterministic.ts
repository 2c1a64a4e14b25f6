/**
 * Answers without a model: a small parser maps the common questions (top
 * workloads or processes by a metric, anomalies now, what probes are active
 * and why, what changed in the last N minutes, is the data complete) onto the
 * same tools the model uses, and formats their results. When a question needs
 * data that is not collected, it says so and proposes exactly the collection
 * it lacks to the policy engine. Requests to change or stop collection are
 * refused. Untrusted strings are printed JSON-quoted.
 */
import { FAMILIES, PROBE_FAMILIES } from '../families/registry.js';
import { AgentError } from './errors.js';
import { formatMetricValue as fmt, type Explanation } from './explain.js';
import { round } from './feature-math.js';
import type {
  Citation,
  CollectionNeeded,
  CoverageGap,
  ToolCallRecord,
  ToolResult,
  ToolRunner,
} from './tools.js';
import type { Proposal } from './agent.js';
import { quote } from './untrusted.js';

export type Intent =
  'top' | 'processes' | 'coverage' | 'anomalies' | 'probes' | 'changed' | 'refuse' | 'help';

export interface ParsedQuestion {
  intent: Intent;
  metric?: string;
  /** Look-back, minutes. */
  minutes: number;
  /** The question named a range (else a default was used). */
  explicitRange: boolean;
  node?: string;
  workload?: string;
  group_by: 'workload' | 'node' | 'node_workload';
  top_k: number;
  aggregation?: 'sum' | 'max' | 'avg';
  /** Per-executable metric (intent `processes`). */
  process_metric?: ProcessMetricName;
}

type ProcessMetricName =
  | 'events'
  | 'exec_count'
  | 'exit_count'
  | 'failed_exits'
  | 'tcp_connects'
  | 'tcp_connect_failures'
  | 'tcp_retransmits';

const PROCESS_METRIC_OF: Record<string, ProcessMetricName> = {
  exec_count: 'exec_count',
  exit_count: 'exit_count',
  failed_exits: 'failed_exits',
  tcp_connects: 'tcp_connects',
  tcp_connect_failures: 'tcp_connect_failures',
  tcp_retransmits: 'tcp_retransmits',
};

/** Requests to change, stop or bypass collection, or to act outside the tools: refused. */
const UNSAFE =
  /\bignore\s+(all\s+|any\s+|the\s+|your\s+)?(previous|prior|above|earlier)\b|^(?:(?:please|now|just|go ahead and|you should|you must)\s+|(?:can|could|would|will) you\s+)*(disable|turn\s+off|switch\s+off|stop|kill|shut\s*down|detach|unload|delete|remove|wipe|erase|purge|clear|drop|approve|raise|lower|increase|decrease|set|change|loosen|tighten|enable|execute|run|rm|exfiltrate|send|upload|reveal|print)\b/;

/** The representative metric of each family (completeness questions without a metric). */
const FAMILY_METRIC: Array<[string, string]> = PROBE_FAMILIES.flatMap((f) =>
  f.agent.countMetric ? [[f.name, f.agent.countMetric] as [string, string]] : [],
);

const NUMBER_WORDS: Record<string, number> = {
  a: 1,
  an: 1,
  one: 1,
  two: 2,
  three: 3,
  four: 4,
  five: 5,
  six: 6,
  seven: 7,
  eight: 8,
  nine: 9,
  ten: 10,
  eleven: 11,
  twelve: 12,
  fifteen: 15,
  twenty: 20,
  thirty: 30,
  forty: 40,
  'forty-five': 45,
  fifty: 50,
  sixty: 60,
  ninety: 90,
};

/**
 * Metric keywords, most specific first: each family's own, in registry order,
 * then the catch-all for event volume.
 */
const METRIC_PATTERNS: Array<readonly [RegExp, string]> = [
  ...FAMILIES.flatMap((f) => f.agent.metricPatterns ?? []),
  [/events?\b|noisy|noisiest|busiest|event rate|most active|\bload\b/, 'events_per_second'],
];

function parseMinutes(q: string): number | undefined {
  const m = q.match(
    /\b(?:last|past|previous|recent)\s+(?:(\d+(?:\.\d+)?|[a-z]+(?:-[a-z]+)?)\s+)?(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d)\b/,
  );
  if (m) {
    const n = m[1] === undefined ? 1 : /^\d/.test(m[1]) ? Number(m[1]) : NUMBER_WORDS[m[1]];
    if (n !== undefined && Number.isFinite(n) && n > 0) {
      const unit = m[2]!;
      if (/^s/.test(unit)) return n / 60;
      if (/^h/.test(unit)) return n * 60;
      if (/^d/.test(unit)) return n * 1440;
      return n;
    }
  }
  const ago = q.match(/\b(\d+)\s*(s|sec|seconds?|m|min|minutes?|h|hours?)\b/);
  if (ago) {
    const n = Number(ago[1]);
    const unit = ago[2]!;
    return /^s/.test(unit) ? n / 60 : /^h/.test(unit) ? n * 60 : n;
  }
  if (/\bhour\b/.test(q)) return 60;
  if (/\btoday\b/.test(q)) return 1440;
  return undefined;
}

export function parseQuestion(question: string): ParsedQuestion {
  const q = question.toLowerCase().replace(/\s+/g, ' ');
  const minutes = parseMinutes(q);
  let metric: string | undefined;
  for (const [re, m] of METRIC_PATTERNS)
    if (re.test(q)) {
      metric = m;
      break;
    }
  const node = question.match(/\b(?:on|for|of|in)\s+node\s+([A-Za-z0-9][\w.-]*)/i)?.[1];
  const workload = question.match(/\b(?:workload|cgroup)\s+(\/\S*[^\s?.,;])/i)?.[1];
  const topK = q.match(/\btop\s+(\d{1,2})\b/);
  const base = {
    explicitRange: minutes !== undefined,
    ...(node !== undefined ? { node } : {}),
    ...(workload !== undefined ? { workload } : {}),
    group_by: (/\bwhich nodes?\b|\bper node\b|\bby node\b|\bnodes? (had|have|with)\b/.test(q)
      ? 'node'
      : 'workload') as ParsedQuestion['group_by'],
    top_k: topK ? Math.min(50, Math.max(1, Number(topK[1]))) : 10,
    ...(/\b(peak|max(imum)?|worst)\b/.test(q)
      ? { aggregation: 'max' as const }
      : /\b(average|avg|mean)\b/.test(q)
        ? { aggregation: 'avg' as const }
        : {}),
  };
  if (UNSAFE.test(q)) return { intent: 'refuse', minutes: minutes ?? 5, ...base };
  if (/\bchang|\bdifferen|\bcompared?\b|\bsince before\b|\bdelta\b/.test(q))
    return { intent: 'changed', minutes: minutes ?? 10, ...base };
  if (/anomal|incident|alert|\bwrong\b|unusual|\bodd\b|outlier/.test(q))
    return { intent: 'anomalies', minutes: minutes ?? 15, ...base };
  if (
    /\b(complete(ness)?|incomplete|coverage|blind\s+spots?|gaps?\s+in)\b|\b(events?|records?|data)\s+(were\s+|was\s+|got\s+)?(dropped|lost|missing)\b|\bany\s+(drops|dropped)\b|\bsampled\b|\b(are|do|did|can)\s+(we|you)\s+(collect|see|have|trac|record)/.test(
      q,
    )
  )
    return {
      intent: 'coverage',
      minutes: minutes ?? 5,
      ...base,
      ...(metric !== undefined ? { metric } : {}),
    };
  if (
    /\b(which|what|top|busiest|noisiest|most active)\s+(\w+\s+)?(process|program|executable|binary|command)(es|s)?\b|\b(by|per)\s+(process|program|executable|binary|command)\b|\bprocess(es)?\s+(with|had|has|made|making)\b/.test(
      q,
    )
  )
    return {
      intent: 'processes',
      minutes: minutes ?? (/\b(right now|currently|at the moment)\b/.test(q) ? 1 : 5),
      ...base,
      process_metric: PROCESS_METRIC_OF[metric ?? ''] ?? 'events',
    };
  if (
    /\bprobes?\b|collect(ing|ed|ion)?\b|tracing|instrument|sampl|\bfilters?\b|budget|feedback|\bloop\b/.test(
      q,
    ) &&
    !/\bwhich workloads?\b/.test(q)
  )
    return { intent: 'probes', minutes: minutes ?? 15, ...base };
  if (metric !== undefined) return { intent: 'top', metric, minutes: minutes ?? 5, ...base };
  return { intent: 'help', minutes: minutes ?? 5, ...base };
}

export interface DeterministicAnswer {
  answer: string;
  citations: Citation[];
  tool_calls: ToolCallRecord[];
  parsed: ParsedQuestion;
  /** Collection proposed to fill a gap, with the policy engine's verdicts. */
  proposals: Proposal[];
  /** What the question needed and was not (completely) collected. */
  gaps: CoverageGap[];
}

function hm(iso: string | null | undefined): string {
  return iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '?';
}

function rangeText(minutes: number): string {
  if (minutes < 1) return `${round(minutes * 60)} seconds`;
  if (minutes >= 120 && minutes % 60 === 0) return `${minutes / 60} hours`;
  return minutes === 1 ? '1 minute' : `${round(minutes)} minutes`;
}

interface Ctx {
  agent: ToolRunner;
  calls: ToolCallRecord[];
  citations: Citation[];
  proposals: Proposal[];
  gaps: CoverageGap[];
  lastCoverage?: CoverageData;
  n: number;
}

async function call<T>(c: Ctx, name: string, args: Record<string, unknown>): Promise<T> {
  const r = await c.agent.runTool({ id: `det_${++c.n}`, name, args }, 0);
  c.calls.push(r.record);
  if (!r.result) throw new AgentError(r.record.error ?? `${name} failed`, 'tool');
  c.citations.push(...(r.result as ToolResult).citations);
  if (r.result.proposal) c.proposals.push(r.result.proposal);
  return r.result.data as T;
}

interface CoverageData {
  metric: string;
  probe: string | null;
  complete: boolean;
  nodes: Array<{
    node: string;
    family?: string;
    enabled?: boolean;
    attached?: boolean;
    sample_n?: number;
    windows: number;
    windows_with_drops: number;
    windows_sampled: number;
  }>;
  gaps: CoverageGap[];
  collection_needed: CollectionNeeded[];
  approval_needed_for_agent: boolean | null;
}

async function coverage(c: Ctx, p: ParsedQuestion, metric: string): Promise<CoverageData> {
  const d = await call<CoverageData>(c, 'check_coverage', {
    metric,
    since_minutes: p.minutes,
    ...(p.node ? { node: p.node } : {}),
    ...(p.workload ? { workload: p.workload } : {}),
  });
  c.gaps.push(...d.gaps);
  c.lastCoverage = d;
  return d;
}

const VERDICT_TEXT: Record<string, string> = {
  accept: 'accepted',
  clamp: 'accepted with limits',
  queue_for_approval: 'queued for operator approval',
  reject: 'rejected',
};

/** Proposes each collection needed to the policy engine; lines reporting the verdicts. */
async function proposeNeeded(c: Ctx, needed: CollectionNeeded[]): Promise<string[]> {
  const out: string[] = [];
  for (const n of needed) {
    const what = `${n.action} ${n.probe} on node ${n.node}${n.workload ? ` for ${quote(n.workload)}` : ''}${n.sample_n !== undefined ? ` (every event)` : ''} for ${n.ttl_seconds} s`;
    try {
      const r = await call<{ request: { id: string }; verdict: string; reason: string }>(
        c,
        'propose_feedback',
        {
          probe: n.probe,
          action: n.action,
          node: n.node,
          ...(n.workload ? { workload: n.workload } : {}),
          ...(n.sample_n !== undefined ? { sample_n: n.sample_n } : {}),
          ttl_seconds: n.ttl_seconds,
          reason: n.reason,
        },
      );
      out.push(
        `Proposed to the policy engine: ${what} (${r.request.id}): ${VERDICT_TEXT[r.verdict] ?? r.verdict}: ${r.reason}.`,
      );
    } catch (err) {
      out.push(`Needed: ${what}; not proposed: ${(err as Error).message}.`);
    }
  }
  if (out.length > 0)
    out.push(
      'Ask again once the change is in force and a window has closed (or ask with --wait-for-data to wait for it).',
    );
  return out;
}

function gapLines(d: CoverageData): string[] {
  return d.gaps.map((g) => `- ${g.detail}.`);
}

/** Before a top-k answer: a family that is off everywhere asked is a gap to fill, not an empty answer. */
async function gapFirst(c: Ctx, p: ParsedQuestion, metric: string): Promise<string | undefined> {
  let d: CoverageData;
  try {
    d = await coverage(c, p, metric);
  } catch {
    // Coverage unknown (its sources failed; the call is in tool_calls): answer what can be.
    return undefined;
  }
  const off = d.gaps.filter((g) => g.kind === 'family_off');
  const withFamily = d.nodes.filter((n) => n.family !== undefined);
  if (off.length === 0 || off.length < withFamily.length) return undefined;
  const lines = [
    `I cannot answer this from the data: ${metric} is not collected.`,
    ...gapLines(d),
    ...(await proposeNeeded(
      c,
      d.collection_needed.filter((n) => n.action === 'enable'),
    )),
  ];
  return lines.join('\n');
}

/** After an answer: what in the range was incomplete. */
function completenessNote(d: CoverageData | undefined): string {
  if (!d || d.complete) return '';
  const g = d.gaps.filter((x) => x.kind !== 'no_data');
  return g.length === 0 ? '' : `\nCompleteness:\n${g.map((x) => `- ${x.detail}.`).join('\n')}`;
}

interface FeaturesData {
  metric: string;
  aggregation: string;
  range: { since: string; until: string };
  windows: {
    count: number;
    first_start: string | null;
    last_end: string | null;
    window_seconds: number | null;
  };
  rows_read: number;
  total_groups: number;
  groups: Array<{
    node?: string;
    workload?: string;
    value: number;
    windows: number;
    peak_window_start?: string;
    peak_value?: number;
    previous?: number;
    change?: number;
    series: string[];
  }>;
}

interface AnomaliesData {
  count: number;
  known_anomalies: number;
  anomalies: Array<{
    ref: string;
    node: string;
    workload: string;
    metric: string;
    severity: string;
    window_start: string;
    observed: number;
    baseline: number;
    score: number;
  }>;
}

interface ProbesData {
  nodes: Array<{
    node: string;
    events_per_second: number;
    probes: Array<{
      probe: string;
      enabled: boolean;
      attached: boolean;
      sample_n: number;
      filters: Record<string, unknown>;
      events_per_second: number;
      why: string;
      drops: Record<string, number>;
    }>;
  }>;
  policy: {
    floors: string[];
    budget: { events_per_second: number; bytes_per_second: number };
    approval: { actions: string[]; origins: string[] };
    cooldown_seconds: number;
    max_ttl_seconds: number;
  } | null;
  recent_feedback: Array<{
    request_id: string;
    created_at: string;
    origin: string;
    action: string;
    probe: string;
    reason: string;
    states: Record<string, string>;
  }>;
  unavailable?: string[];
}

function where(g: { node?: string; workload?: string }): string {
  if (g.workload !== undefined)
    return `${quote(g.workload)}${g.node !== undefined ? ` on node ${g.node}` : ''}`;
  return `node ${g.node ?? '?'}`;
}

function windowsLine(d: FeaturesData): string {
  const w = d.windows;
  if (w.count === 0)
    return `no feature windows in ${hm(d.range.since)} to ${hm(d.range.until)} (${d.rows_read} rows read)`;
  return `${w.count} window(s) of ${w.window_seconds ?? '?'} s from ${hm(w.first_start)} to ${hm(w.last_end)}, ${d.rows_read} rows read`;
}

async function top(c: Ctx, p: ParsedQuestion): Promise<string> {
  const gap = await gapFirst(c, p, p.metric!);
  if (gap !== undefined) return gap;
  const cov = c.lastCoverage;
  const d = await call<FeaturesData>(c, 'query_features', {
    metric: p.metric,
    since_minutes: p.minutes,
    group_by: p.group_by === 'node' ? 'node' : 'node_workload',
    top_k: p.top_k,
    ...(p.aggregation ? { aggregation: p.aggregation } : {}),
    ...(p.node ? { node: p.node } : {}),
    ...(p.workload ? { workload: p.workload } : {}),
  });
  const what = p.group_by === 'node' ? 'nodes' : 'workloads';
  const head = `${d.metric} (${d.aggregation} over windows) in the last ${rangeText(p.minutes)}; ${windowsLine(d)}.`;
  if (d.groups.length === 0)
    return `No ${what} had any ${d.metric} in the last ${rangeText(p.minutes)}.\n${head}`;
  const lines = d.groups.map(
    (g, i) =>
      `${i + 1}. ${where(g)}: ${fmt(d.metric, g.value)}${g.windows > 1 ? ` in ${g.windows} windows` : ''}${
        g.peak_value !== undefined && g.windows > 1
          ? `, peak ${fmt(d.metric, g.peak_value)} in the window starting ${hm(g.peak_window_start)}`
          : g.peak_window_start
            ? ` (window starting ${hm(g.peak_window_start)})`
            : ''
      }`,
  );
  return `${d.total_groups} ${what} had ${d.metric}${d.total_groups > d.groups.length ? ` (top ${d.groups.length} shown)` : ''}:\n${lines.join('\n')}\n${head}\nSeries: ${d.groups.flatMap((g) => g.series.slice(0, 1).map(quote)).join(', ')}${completenessNote(cov)}`;
}

interface ProcessesData {
  metric: string;
  range: { since: string; until: string };
  bucket_seconds: number;
  total_executables: number;
  processes: Array<{
    node: string;
    executable: string;
    value: number;
    buckets: number;
    workloads: string[];
  }>;
}

async function processes(c: Ctx, p: ParsedQuestion): Promise<string> {
  const metric = p.process_metric ?? 'events';
  const featureMetric = metric === 'events' ? 'events_per_second' : metric;
  const gap = await gapFirst(c, p, featureMetric);
  if (gap !== undefined) return gap;
  const cov = c.lastCoverage;
  const d = await call<ProcessesData>(c, 'top_processes', {
    metric,
    since_minutes: p.minutes,
    top_k: p.top_k,
    ...(p.node ? { node: p.node } : {}),
    ...(p.workload ? { workload: p.workload } : {}),
  });
  const span = `in the last ${rangeText(p.minutes)} (${hm(d.range.since)} to ${hm(d.range.until)}, ${d.bucket_seconds} s buckets)`;
  const label = metric === 'events' ? 'records naming the process' : metric;
  if (d.processes.length === 0) return `No process had any ${label} ${span}.`;
  const lines = d.processes.map(
    (x, i) =>
      `${i + 1}. ${quote(x.executable)} on node ${x.node}: ${fmt(metric, x.value)} (in ${x.workloads.map(quote).join(', ')})`,
  );
  return `${d.total_executables} executables had ${label} ${span}${d.total_executables > d.processes.length ? ` (top ${d.processes.length} shown)` : ''}:\n${lines.join('\n')}${completenessNote(cov)}`;
}

async function coverageAnswer(c: Ctx, p: ParsedQuestion): Promise<string> {
  const metrics = p.metric ? [p.metric] : FAMILY_METRIC.map(([, m]) => m);
  const out: string[] = [];
  const needed: CollectionNeeded[] = [];
  for (const m of metrics) {
    const d = await coverage(c, p, m);
    const fam = d.probe ?? 'every probe';
    const n = d.nodes.map(
      (x) =>
        `${x.node}: ${x.enabled === false ? 'off' : `${x.windows} window(s)${x.windows_with_drops > 0 ? `, ${x.windows_with_drops} with drops` : ''}${x.windows_sampled > 0 || (x.sample_n ?? 1) > 1 ? `, sampled` : ''}`}`,
    );
    out.push(
      `${m} (${fam}) in the last ${rangeText(p.minutes)}: ${d.complete ? 'complete' : 'incomplete'}${n.length > 0 ? ` (${n.join('; ')})` : ''}.`,
    );
    out.push(...gapLines(d));
    if (p.metric) needed.push(...d.collection_needed);
  }
  out.push(...(await proposeNeeded(c, needed)));
  return out.join('\n');
}

const REFUSAL = `I will not do that. I only read features, anomalies and probe state, and propose changes to collection through the policy engine when a question needs data that is not collected; I never disable, narrow or reconfigure collection on request, change budgets or approvals, or act outside those tools. An operator can change collection with \`tracefeed feedback\` or the thresholds file.`;

async function anomalies(c: Ctx, p: ParsedQuestion): Promise<string> {
  const d = await call<AnomaliesData>(c, 'list_anomalies', {
    since_minutes: p.minutes,
    limit: Math.max(p.top_k, 10),
    ...(p.node ? { node: p.node } : {}),
    ...(p.workload ? { workload: p.workload } : {}),
  });
  if (d.count === 0)
    return `No anomalies in the last ${rangeText(p.minutes)} (${d.known_anomalies} known to the agent, from tracefeed.anomalies.v1).`;
  const lines = d.anomalies.map(
    (a) =>
      `- ${a.severity}: ${a.metric} on ${quote(a.workload)} (node ${a.node}), window ${hm(a.window_start)}: ${fmt(a.metric, a.observed)} vs baseline ${fmt(a.metric, a.baseline)}, score ${a.score} [${a.ref}]`,
  );
  const worst = [...d.anomalies].sort(
    (x, y) =>
      (y.severity === 'critical' ? 1 : 0) - (x.severity === 'critical' ? 1 : 0) ||
      y.score - x.score,
  )[0]!;
  const list = `${d.count} anomal${d.count === 1 ? 'y' : 'ies'} in the last ${rangeText(p.minutes)}:\n${lines.join('\n')}`;
  try {
    const e = await call<Explanation>(c, 'explain_anomaly', { anomaly: worst.ref });
    return `${list}\n\nThe strongest, ${worst.ref}:\nWhat changed: ${e.what_changed}.\nWhere: ${e.where}.\nLikely cause: ${e.likely_cause}.`;
  } catch (err) {
    return `${list}\n\n(No explanation: ${(err as Error).message})`;
  }
}

async function probes(c: Ctx, p: ParsedQuestion): Promise<string> {
  const d = await call<ProbesData>(c, 'describe_probes', {
    ...(p.node ? { node: p.node } : {}),
    recent_feedback: 5,
  });
  const out: string[] = [];
  if (d.nodes.length === 0)
    out.push(
      'No probe state is available (no node agent API answered and no node has reported to the feedback loop).',
    );
  for (const n of d.nodes) {
    out.push(`Node ${n.node} (${fmt('events_per_second', n.events_per_second)} events/s in all):`);
    for (const pr of n.probes) {
      const filters =
        Object.keys(pr.filters).length > 0 ? `, filters ${JSON.stringify(pr.filters)}` : '';
      const drops = Object.entries(pr.drops).filter(([, v]) => v > 0);
      out.push(
        `- ${pr.probe}: ${pr.enabled ? (pr.attached ? 'active' : 'enabled, not attached') : 'off'}${pr.enabled ? `, ${pr.sample_n === 1 ? 'every event' : `1 in ${pr.sample_n} events`}, ${fmt('events_per_second', pr.events_per_second)} events/s` : ''}${filters}${drops.length > 0 ? `, drops ${drops.map(([k, v]) => `${k} ${v}`).join(' ')}` : ''}. Why: ${pr.why}.`,
      );
    }
  }
  if (d.policy) {
    const agentNeedsApproval = d.policy.approval.origins.includes('agent');
    out.push(
      `Policy: floors ${d.policy.floors.join(', ') || '(none)'}; budget ${d.policy.budget.events_per_second} events/s per node; cooldown ${d.policy.cooldown_seconds} s; changes last at most ${d.policy.max_ttl_seconds} s; ${d.policy.approval.actions.length > 0 ? `${d.policy.approval.actions.join(', ')} needs operator approval` : 'no action needs approval'}${agentNeedsApproval ? '; agent proposals need operator approval' : ''}.`,
    );
  }
  if (d.recent_feedback.length > 0) {
    out.push('Recent feedback:');
    for (const f of d.recent_feedback)
      out.push(
        `- ${f.request_id} ${hm(f.created_at)} ${f.origin} ${f.action} ${f.probe}: ${
          Object.entries(f.states)
            .map(([n, s]) => `${n} ${s}`)
            .join(', ') || 'no decision'
        } (${quote(f.reason.slice(0, 160))})`,
      );
  }
  if (d.unavailable) out.push(`Unavailable: ${d.unavailable.join('; ')}`);
  return out.join('\n');
}

const CHANGE_METRICS = [
  'events_per_second',
  'exec_count',
  'failed_exits',
  'tcp_connects',
  'tcp_connect_failures',
  'tcp_retransmits',
  'tcp_resets',
  'tcp_bytes_sent',
  'syscall_p99_ns',
  'runq_p99_ns',
  'dns_lookups',
  'dns_failures',
  'dns_p99_ns',
];

function significant(metric: string, prev: number, now: number): boolean {
  const d = Math.abs(now - prev);
  const floor = metric.endsWith('_ns')
    ? 1e6
    : metric === 'tcp_bytes_sent'
      ? 64 * 1024
      : metric === 'events_per_second'
        ? 5
        : 3;
  return d >= floor && d > 0.5 * Math.abs(prev);
}

async function changed(c: Ctx, p: ParsedQuestion): Promise<string> {
  const changes: Array<{ metric: string; g: FeaturesData['groups'][number]; score: number }> = [];
  let windows: FeaturesData | undefined;
  for (const metric of CHANGE_METRICS) {
    const d = await call<FeaturesData>(c, 'query_features', {
      metric,
      since_minutes: p.minutes,
      group_by: 'node_workload',
      compare_previous: true,
      top_k: 5,
      ...(p.node ? { node: p.node } : {}),
      ...(p.workload ? { workload: p.workload } : {}),
    });
    if (!windows || d.windows.count > windows.windows.count) windows = d;
    for (const g of d.groups) {
      const prev = g.previous ?? 0;
      if (!significant(metric, prev, g.value)) continue;
      changes.push({ metric, g, score: Math.abs(g.value - prev) / Math.max(1, Math.abs(prev)) });
    }
  }
  changes.sort((x, y) => y.score - x.score);
  const out: string[] = [];
  const span = `the last ${rangeText(p.minutes)} against the ${rangeText(p.minutes)} before`;
  if (changes.length === 0)
    out.push(
      `Nothing changed by more than half in ${span} (metrics: ${CHANGE_METRICS.join(', ')}).`,
    );
  else {
    out.push(`Changes in ${span}:`);
    for (const ch of changes.slice(0, 12)) {
      const prev = ch.g.previous ?? 0;
      const tag =
        prev === 0
          ? ' (new)'
          : ch.g.value === 0
            ? ' (stopped)'
            : ` (${ch.g.value > prev ? '+' : ''}${round(((ch.g.value - prev) / Math.abs(prev)) * 100)}%)`;
      out.push(
        `- ${ch.metric} on ${where(ch.g)}: ${fmt(ch.metric, prev)} -> ${fmt(ch.metric, ch.g.value)}${tag}`,
      );
    }
  }
  const a = await call<AnomaliesData>(c, 'list_anomalies', {
    since_minutes: p.minutes,
    limit: 5,
    ...(p.node ? { node: p.node } : {}),
  });
  out.push(
    a.count === 0
      ? 'No anomalies in that time.'
      : `Anomalies in that time: ${a.anomalies.map((x) => `${x.metric} on ${quote(x.workload)} (${x.severity}, ${x.ref})`).join('; ')}.`,
  );
  const pr = await call<ProbesData>(c, 'describe_probes', { recent_feedback: 20 });
  const since = Date.now() - p.minutes * 60_000;
  const fb = pr.recent_feedback.filter((f) => Date.parse(f.created_at) >= since);
  if (fb.length > 0)
    out.push(
      `Feedback in that time: ${fb.map((f) => `${f.request_id} ${f.origin} ${f.action} ${f.probe} (${Object.values(f.states).join(', ') || 'pending'})`).join('; ')}.`,
    );
  if (windows) out.push(`Read: ${windowsLine(windows)}.`);
  return out.join('\n');
}

const HELP = `Without a model I answer these kinds of questions:
- top workloads by a metric: "which workloads had TCP retransmits in the last five minutes?", "top 5 workloads by exec count in the last hour", "which nodes sent the most bytes?"
- anomalies: "anomalies now", "any anomalies in the last 30 minutes?"
- probes: "what probes are active and why?"
- changes: "what changed in the last 10 minutes?"
- processes: "what is the busiest process right now?", "which process failed the most in the last 10 minutes?"
- completeness: "is the tcp data complete?", "were any events dropped in the last 5 minutes?"
Metrics: retransmits, resets, connect failures, connects, accepts, bytes sent/received, execs, exits, failed exits, syscalls, syscall errors, syscall latency, run-queue latency, file opens, file open errors, events/s.`;

export async function answerDeterministically(
  question: string,
  agent: ToolRunner,
): Promise<DeterministicAnswer> {
  const parsed = parseQuestion(question);
  const c: Ctx = { agent, calls: [], citations: [], proposals: [], gaps: [], n: 0 };
  let answer: string;
  switch (parsed.intent) {
    case 'refuse':
      answer = REFUSAL;
      break;
    case 'top':
      answer = await top(c, parsed);
      break;
    case 'processes':
      answer = await processes(c, parsed);
      break;
    case 'coverage':
      answer = await coverageAnswer(c, parsed);
      break;
    case 'anomalies':
      answer = await anomalies(c, parsed);
      break;
    case 'probes':
      answer = await probes(c, parsed);
      break;
    case 'changed':
      answer = await changed(c, parsed);
      break;
    case 'help':
      answer = `I could not match this question to one I can answer without a model.\n${HELP}`;
      break;
  }
  return {
    answer,
    citations: c.citations,
    tool_calls: c.calls,
    parsed,
    proposals: c.proposals,
    gaps: c.gaps,
  };
}
