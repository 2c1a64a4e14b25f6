/**
 * The agent's tools: zod schemas (the model sees them as JSON Schema; every
 * call is validated with them before it runs) and their implementations.
 * All read-only except `propose_feedback`, which only submits a request to
 * the policy engine and reports its verdict.
 */
import { z } from 'zod';
import { tool, type StructuredToolInterface } from '@langchain/core/tools';
import { PROBE_FAMILIES as FAMILIES } from '../families/registry.js';
import { type ProbeName } from '../wire/layout.js';
import { PROBE_NAMES } from '../families/registry.js';
import { ConfigError } from '../common/errors.js';
import {
  FEEDBACK_ACTIONS,
  deriveRequestId,
  parseFeedbackRequest,
  type FeedbackParams,
  type FeedbackRequest,
} from '../feedback/request.js';
import { anomalyRef, type AnomalyStore } from './anomaly-store.js';
import { explainAnomaly } from './explain.js';
import {
  METRICS,
  aggregate,
  defaultAggregation,
  metricProbe,
  metricRows,
  round,
  windowSpan,
  type Aggregation,
  type GroupBy,
} from './feature-math.js';
import type { FeedbackGateway, GatewayResult, PolicySummary, RecentFeedback } from './gateway.js';
import { PROCESS_METRICS, type ProcessIndex } from './process-index.js';
import type { FeatureRow, FeatureSource, ProbeSource, ProbeView } from './sources.js';

/** What answers cite: the windows, series and numbers a tool result holds. */
export interface Citation {
  tool: string;
  /** `node|workload|probe|metric`. */
  series?: string;
  metric?: string;
  window_start?: string;
  window_end?: string;
  value?: number | string;
  aggregation?: string;
  /** An anomaly ref (`an-...`) or a feedback request id. */
  ref?: string;
}

/** One tool call as it happened. */
export interface ToolCallRecord {
  round: number;
  id: string;
  name: string;
  /** Parsed arguments, or the raw text when it was not JSON. */
  args: unknown;
  outcome: 'ok' | 'invalid' | 'unknown_tool' | 'error';
  error?: string;
}

/** Runs tool calls through validation (the agent). */
export interface ToolRunner {
  runTool(
    call: { id: string; name: string; args: unknown },
    round: number,
  ): Promise<{ content: string; record: ToolCallRecord; result?: ToolResult }>;
}

export interface ToolResult {
  data: unknown;
  citations: Citation[];
  /** A feedback proposal's verdict (propose_feedback only). */
  proposal?: GatewayResult & { request: FeedbackRequest };
}

/** Everything the tools read (and the one thing they may write to). */
export interface AgentDeps {
  features: FeatureSource;
  anomalies: AnomalyStore;
  /** Live probe state of node agents; `gateway.reports()` covers the others. */
  probes?: ProbeSource[];
  /** The policy engine. Without one, `propose_feedback` refuses. */
  gateway?: FeedbackGateway;
  processes?: ProcessIndex;
  /** Epoch ms. Default Date.now. */
  now?: () => number;
}

/** A tool failed in a way the model can act on (bad reference, nothing to do). */
export class ToolError extends Error {}

export interface AgentTool<S extends z.ZodType = z.ZodType> {
  name: string;
  description: string;
  schema: S;
  /** True for the one tool that submits something (to the policy engine). */
  writes: boolean;
  run(args: z.infer<S>, deps: AgentDeps): Promise<ToolResult>;
}

const probeEnum = z.enum(PROBE_NAMES as [ProbeName, ...ProbeName[]]);

const range = {
  since_minutes: z
    .number()
    .positive()
    .max(7 * 24 * 60)
    .optional()
    .describe('look back this many minutes from now (default 5); ignored when `since` is given'),
  since: z.iso.datetime({ offset: true }).optional().describe('range start, ISO 8601'),
  until: z.iso.datetime({ offset: true }).optional().describe('range end, ISO 8601 (default now)'),
};

function resolveRange(
  a: { since_minutes?: number; since?: string; until?: string },
  now: number,
  defaultMinutes: number,
): { sinceMs: number; untilMs: number } {
  const untilMs = a.until !== undefined ? Date.parse(a.until) : now;
  const sinceMs =
    a.since !== undefined
      ? Date.parse(a.since)
      : untilMs - (a.since_minutes ?? defaultMinutes) * 60_000;
  if (sinceMs >= untilMs)
    throw new ToolError(
      `the range is empty: since ${new Date(sinceMs).toISOString()} is not before until ${new Date(untilMs).toISOString()}`,
    );
  return { sinceMs, untilMs };
}

const iso = (ms: number): string => new Date(ms).toISOString();

// ---------------------------------------------------------------- query_features

export const queryFeaturesSchema = z.strictObject({
  metric: z.enum(METRICS).describe('feature column; tcp_resets = sent + received'),
  ...range,
  node: z.string().min(1).max(253).optional().describe('only this node'),
  workload: z
    .string()
    .min(1)
    .max(4096)
    .optional()
    .describe('only this workload (cgroup path, or cgroup:<id>)'),
  probe: probeEnum.optional().describe('only rows of this probe'),
  group_by: z
    .enum(['workload', 'node', 'probe', 'window', 'node_workload', 'series'])
    .default('workload')
    .describe('what one result row is; default workload'),
  aggregation: z
    .enum(['sum', 'max', 'avg'])
    .optional()
    .describe(
      'over the windows of a group: sum (default for counts), max (default for *_ns quantiles), avg (default for events_per_second)',
    ),
  top_k: z
    .number()
    .int()
    .min(1)
    .max(50)
    .default(10)
    .describe('largest groups returned; default 10'),
  include_zero: z.boolean().default(false).describe('keep groups whose value is 0; default false'),
  compare_previous: z
    .boolean()
    .default(false)
    .describe('also compute each group in the previous range of the same length, and the change'),
});

export const queryFeatures: AgentTool<typeof queryFeaturesSchema> = {
  name: 'query_features',
  description:
    'Feature rows (per window, node, workload = cgroup path, probe) aggregated for one metric over a time range: filters, group_by, top_k, aggregation. Returns the groups with their values, the windows read and the series used.',
  schema: queryFeaturesSchema,
  writes: false,
  async run(a, deps) {
    const now = deps.now?.() ?? Date.now();
    const { sinceMs, untilMs } = resolveRange(a, now, 5);
    const filters = {
      ...(a.node !== undefined ? { node: a.node } : {}),
      ...(a.workload !== undefined ? { workload: a.workload } : {}),
      ...(a.probe !== undefined ? { probe: a.probe } : {}),
    };
    const rows = await deps.features.query({ sinceMs, untilMs, ...filters });
    const aggregation: Aggregation = a.aggregation ?? defaultAggregation(a.metric);
    const groups = aggregate(rows, {
      metric: a.metric,
      group_by: a.group_by as GroupBy,
      aggregation,
      include_zero: a.include_zero,
    });
    const windows = windowSpan(metricRows(rows, a.metric));
    let previous: Map<string, number> | undefined;
    if (a.compare_previous) {
      const len = untilMs - sinceMs;
      const prevRows = await deps.features.query({
        sinceMs: sinceMs - len,
        untilMs: sinceMs,
        ...filters,
      });
      previous = new Map(
        aggregate(prevRows, {
          metric: a.metric,
          group_by: a.group_by as GroupBy,
          aggregation,
          include_zero: true,
        }).map((g) => [JSON.stringify(g.key), g.value]),
      );
      // Groups that went to zero are a change too.
      for (const [k, v] of previous) {
        if (v !== 0 && !groups.some((g) => JSON.stringify(g.key) === k))
          groups.push({
            key: JSON.parse(k) as Record<string, string>,
            value: 0,
            windows: 0,
            peak: { window_start: '', window_end: '', value: 0 },
            series: [],
            cgroup_ids: [],
          });
      }
      groups.sort(
        (x, y) =>
          Math.abs(y.value - (previous!.get(JSON.stringify(y.key)) ?? 0)) -
          Math.abs(x.value - (previous!.get(JSON.stringify(x.key)) ?? 0)),
      );
    }
    const top = groups.slice(0, a.top_k);
    const data = {
      metric: a.metric,
      aggregation,
      group_by: a.group_by,
      range: { since: iso(sinceMs), until: iso(untilMs) },
      filters,
      windows,
      rows_read: rows.length,
      total_groups: groups.length,
      groups: top.map((g) => {
        const prev = previous?.get(JSON.stringify(g.key));
        return {
          ...g.key,
          value: g.value,
          windows: g.windows,
          ...(g.windows > 0
            ? { peak_window_start: g.peak.window_start, peak_value: g.peak.value }
            : {}),
          ...(previous ? { previous: prev ?? 0, change: round(g.value - (prev ?? 0)) } : {}),
          series: g.series,
        };
      }),
    };
    const citations: Citation[] = top.map((g) => ({
      tool: 'query_features',
      series: g.series[0] ?? Object.values(g.key).join('|'),
      metric: a.metric,
      window_start: windows.first_start ?? iso(sinceMs),
      window_end: windows.last_end ?? iso(untilMs),
      value: g.value,
      aggregation,
    }));
    if (top.length === 0)
      citations.push({
        tool: 'query_features',
        metric: a.metric,
        window_start: iso(sinceMs),
        window_end: iso(untilMs),
        value: 0,
        aggregation,
      });
    return { data, citations };
  },
};

// ---------------------------------------------------------------- top_processes

export const topProcessesSchema = z.strictObject({
  metric: z
    .enum(PROCESS_METRICS)
    .default('events')
    .describe(
      'per executable: events (every record naming the process), exec_count, exit_count, failed_exits, tcp_connects, tcp_connect_failures, tcp_retransmits; default events',
    ),
  ...range,
  node: z.string().min(1).max(253).optional().describe('only this node'),
  workload: z
    .string()
    .min(1)
    .max(4096)
    .optional()
    .describe('only executables seen in this workload (cgroup path, or cgroup:<id>)'),
  top_k: z.number().int().min(1).max(50).default(10),
});

export const topProcesses: AgentTool<typeof topProcessesSchema> = {
  name: 'top_processes',
  description:
    'Executables (process names, per node) ranked by one metric over a time range, from the event stream: exec count, exits, failed exits, TCP connects, connect failures, retransmits, or every record naming the process. Answers by process where workloads (cgroups) do not separate programs.',
  schema: topProcessesSchema,
  writes: false,
  async run(a, deps) {
    if (!deps.processes)
      throw new ToolError(
        'no process index is connected (the agent indexes tracefeed.events.v1 when serving; per-process answers are unavailable here)',
      );
    const now = deps.now?.() ?? Date.now();
    const { sinceMs, untilMs } = resolveRange(a, now, 5);
    const bucketMs = deps.processes.bucketMs;
    const all = deps.processes.topExecutables({
      metric: a.metric,
      sinceMs,
      untilMs,
      ...(a.node !== undefined ? { node: a.node } : {}),
      ...(a.workload !== undefined ? { workload: a.workload } : {}),
    });
    const top = all.slice(0, a.top_k);
    return {
      data: {
        metric: a.metric,
        range: { since: iso(sinceMs), until: iso(untilMs) },
        bucket_seconds: bucketMs / 1000,
        total_executables: all.length,
        processes: top.map((p) => ({
          node: p.node,
          executable: p.executable,
          value: round(p.value),
          buckets: p.buckets,
          workloads: p.workloads.slice(0, 3),
        })),
        indexed_records: deps.processes.records,
      },
      citations: top.map((p) => ({
        tool: 'top_processes',
        series: `${p.node}|process:${p.executable}|${a.metric}`,
        metric: a.metric,
        window_start: iso(sinceMs),
        window_end: iso(untilMs),
        value: round(p.value),
      })),
    };
  },
};

// ---------------------------------------------------------------- check_coverage

export const checkCoverageSchema = z.strictObject({
  metric: z.enum(METRICS).describe('the metric a question needs'),
  ...range,
  node: z.string().min(1).max(253).optional().describe('only this node'),
  workload: z
    .string()
    .min(1)
    .max(4096)
    .optional()
    .describe('the workload the question is about (cgroup path)'),
});

/** Something a question needs that was not collected (or not all of it). */
export interface CoverageGap {
  kind: 'family_off' | 'not_attached' | 'filtered_out' | 'sampled' | 'drops' | 'no_data';
  node: string;
  probe: string;
  detail: string;
  /** Windows concerned (drops, sampling). */
  windows?: string[];
}

/** The collection that would fill a gap, as a propose_feedback call. */
export interface CollectionNeeded {
  probe: ProbeName;
  action: 'enable' | 'tighten';
  node: string;
  workload?: string;
  sample_n?: number;
  ttl_seconds: number;
  reason: string;
}

/** Lifetime of a change proposed to fill a gap, bounded by the policy's maximum. */
const GAP_TTL_SECONDS = 900;

async function probeViews(deps: AgentDeps): Promise<{ views: ProbeView[]; errors: string[] }> {
  const views: ProbeView[] = [];
  const errors: string[] = [];
  for (const s of deps.probes ?? []) {
    try {
      views.push(...(await s.probes()));
    } catch (err) {
      errors.push(`${s.name}: ${(err as Error).message}`);
    }
  }
  const covered = new Set(views.map((v) => v.node));
  for (const r of (await deps.gateway?.reports?.().catch(() => [])) ?? []) {
    if (covered.has(r.node)) continue;
    for (const p of r.probes)
      views.push({
        node: r.node,
        probe: p.probe,
        enabled: p.enabled,
        attached: p.attached,
        generation: p.generation,
        settings: p.settings,
        events_per_second: p.events_per_second,
        drops: {},
      });
  }
  return { views, errors };
}

export const checkCoverage: AgentTool<typeof checkCoverageSchema> = {
  name: 'check_coverage',
  description:
    "Is the data a question needs collected, and completely? For a metric's probe family on each node: off, filtered to other workloads, sampled, or windows with drops; and the exact collection that would fill each gap (to pass to propose_feedback, which the policy engine decides; agent proposals wait for approval by default).",
  schema: checkCoverageSchema,
  writes: false,
  async run(a, deps) {
    const now = deps.now?.() ?? Date.now();
    const { sinceMs, untilMs } = resolveRange(a, now, 5);
    const probe = metricProbe(a.metric);
    const family = probe !== undefined ? FAMILIES.find((f) => f.name === probe) : undefined;
    const { views, errors } = await probeViews(deps);
    const policy = await deps.gateway?.policy?.().catch(() => undefined);
    const ttl = Math.min(GAP_TTL_SECONDS, policy?.max_ttl_seconds ?? GAP_TTL_SECONDS);
    const rows = await deps.features.query({
      sinceMs,
      untilMs,
      ...(a.node !== undefined ? { node: a.node } : {}),
      ...(probe !== undefined ? { probe } : {}),
    });
    const nodes = [
      ...new Set([
        ...views.filter((v) => v.probe === probe || probe === undefined).map((v) => v.node),
        ...rows.map((r) => String(r.node)),
      ]),
    ]
      .filter((n) => a.node === undefined || n === a.node)
      .sort();
    if (a.node !== undefined && !nodes.includes(a.node)) nodes.push(a.node);
    const gaps: CoverageGap[] = [];
    const needed: CollectionNeeded[] = [];
    const perNode = nodes.map((node) => {
      const v = family ? views.find((x) => x.node === node && x.probe === family.name) : undefined;
      const mine = rows.filter((r) => r.node === node);
      const windows = new Set(mine.map((r) => String(r.window_start)));
      const dropWindows = new Set<string>();
      const sampledWindows = new Set<string>();
      let lost = 0;
      for (const r of mine) {
        const l = Number(r.probe_ringbuf_full ?? 0) + Number(r.probe_sink_dropped ?? 0);
        if (l > 0 || (typeof r.coverage_ratio === 'number' && r.coverage_ratio < 1)) {
          if (!dropWindows.has(String(r.window_start))) lost += l;
          dropWindows.add(String(r.window_start));
        }
        const wl = a.workload === undefined || r.workload === a.workload;
        if (
          wl &&
          (Number(r.probe_sample_n ?? 0) > 1 ||
            Number(r.probe_overload_n ?? 0) > 1 ||
            Number(r.sample_weight_max ?? 1) > 1)
        )
          sampledWindows.add(String(r.window_start));
      }
      if (family && v && !v.enabled) {
        gaps.push({
          kind: 'family_off',
          node,
          probe: family.name,
          detail: `the ${family.name} family is off on node ${node}: ${a.metric} is not collected there`,
        });
        needed.push({
          probe: family.name,
          action: 'enable',
          node,
          ...(a.workload?.startsWith('/') ? { workload: a.workload } : {}),
          ttl_seconds: ttl,
          reason: `${a.metric} was asked for and the ${family.name} family is off on ${node}`,
        });
      } else if (family && v && !v.attached) {
        gaps.push({
          kind: 'not_attached',
          node,
          probe: family.name,
          detail: `the ${family.name} family is enabled on node ${node} but not attached`,
        });
      } else if (family && v) {
        const allow = (v.settings.filters as Record<string, { allow?: unknown[] }>).cgroup?.allow;
        if (
          a.workload !== undefined &&
          allow !== undefined &&
          allow.length > 0 &&
          !allow.map(String).includes(a.workload)
        )
          gaps.push({
            kind: 'filtered_out',
            node,
            probe: family.name,
            detail: `the ${family.name} family on ${node} is filtered to other workloads`,
          });
        if (v.settings.sample_n > 1 || sampledWindows.size > 0) {
          gaps.push({
            kind: 'sampled',
            node,
            probe: family.name,
            detail: `the ${family.name} family ${v.settings.sample_n > 1 ? `samples 1 in ${v.settings.sample_n} events on ${node}` : `was sampled on ${node}`}${sampledWindows.size > 0 ? ` (${sampledWindows.size} window(s) of the range)` : ''}: counts are weighted estimates, not exact`,
            windows: [...sampledWindows].sort(),
          });
          needed.push({
            probe: family.name,
            action: 'tighten',
            node,
            ...(a.workload?.startsWith('/') ? { workload: a.workload } : {}),
            sample_n: 1,
            ttl_seconds: ttl,
            reason: `exact ${a.metric} was asked for and the ${family.name} family is sampled on ${node}`,
          });
        }
      }
      if (!family && sampledWindows.size > 0) {
        const sampledProbes = [
          ...new Set(
            mine
              .filter(
                (r) =>
                  Number(r.probe_sample_n ?? 0) > 1 ||
                  Number(r.probe_overload_n ?? 0) > 1 ||
                  Number(r.sample_weight_max ?? 1) > 1,
              )
              .map((r) => String(r.probe)),
          ),
        ].sort();
        gaps.push({
          kind: 'sampled',
          node,
          probe: sampledProbes.join(','),
          detail: `records of ${sampledProbes.join(', ')} were sampled on ${node} in ${sampledWindows.size} window(s) of the range: counts there are weighted estimates, not exact`,
          windows: [...sampledWindows].sort(),
        });
      }
      if (dropWindows.size > 0)
        gaps.push({
          kind: 'drops',
          node,
          probe: probe ?? '*',
          detail: `${dropWindows.size} window(s) of the range lost events on ${node} (${lost} records dropped before Kafka): values there are lower bounds`,
          windows: [...dropWindows].sort(),
        });
      if (windows.size === 0 && !(family && v && !v.enabled))
        gaps.push({
          kind: 'no_data',
          node,
          probe: probe ?? '*',
          detail: `no feature windows of ${probe ?? 'any probe'} on ${node} in the range`,
        });
      return {
        node,
        ...(family && v
          ? {
              family: family.name,
              enabled: v.enabled,
              attached: v.attached,
              sample_n: v.settings.sample_n,
            }
          : {}),
        windows: windows.size,
        windows_with_drops: dropWindows.size,
        windows_sampled: sampledWindows.size,
      };
    });
    return {
      data: {
        metric: a.metric,
        probe: probe ?? null,
        range: { since: iso(sinceMs), until: iso(untilMs) },
        complete: gaps.length === 0,
        nodes: perNode,
        gaps,
        collection_needed: needed,
        approval_needed_for_agent: policy?.approval.origins.includes('agent') ?? null,
        ...(errors.length > 0 ? { unavailable: errors } : {}),
      },
      citations: [
        {
          tool: 'check_coverage',
          metric: a.metric,
          window_start: iso(sinceMs),
          window_end: iso(untilMs),
          value: gaps.length === 0 ? 'complete' : gaps.map((g) => g.kind).join(','),
        },
      ],
    };
  },
};

// ---------------------------------------------------------------- anomalies

const severity = z.enum(['warning', 'critical']);

export const listAnomaliesSchema = z.strictObject({
  ...range,
  node: z.string().min(1).max(253).optional(),
  workload: z.string().min(1).max(4096).optional(),
  probe: probeEnum.optional(),
  metric: z.string().min(1).max(64).optional(),
  min_severity: severity.optional().describe('warning (default: all) or critical'),
  limit: z.number().int().min(1).max(100).default(20),
});

function anomalySummary(a: import('../features/anomaly.js').Anomaly) {
  return {
    ref: anomalyRef(a.id),
    series_id: a.series_id,
    node: a.node,
    workload: a.workload,
    probe: a.probe,
    metric: a.metric,
    window_start: a.window_start,
    window_end: a.window_end,
    observed: a.observed,
    baseline: round(a.baseline),
    score: round(a.score),
    severity: a.severity,
  };
}

export const listAnomalies: AgentTool<typeof listAnomaliesSchema> = {
  name: 'list_anomalies',
  description:
    'Anomalies detected by the feature stage (a series far from its robust baseline), newest first, with a ref (an-...) to pass to explain_anomaly. Default range: the last 15 minutes.',
  schema: listAnomaliesSchema,
  writes: false,
  async run(a, deps) {
    const now = deps.now?.() ?? Date.now();
    const { sinceMs, untilMs } = resolveRange(a, now, 15);
    const found = deps.anomalies.list({
      sinceMs,
      untilMs,
      ...(a.node !== undefined ? { node: a.node } : {}),
      ...(a.workload !== undefined ? { workload: a.workload } : {}),
      ...(a.probe !== undefined ? { probe: a.probe } : {}),
      ...(a.metric !== undefined ? { metric: a.metric } : {}),
      ...(a.min_severity !== undefined ? { minSeverity: a.min_severity } : {}),
      limit: a.limit,
    });
    return {
      data: {
        range: { since: iso(sinceMs), until: iso(untilMs) },
        count: found.length,
        known_anomalies: deps.anomalies.size,
        anomalies: found.map(anomalySummary),
      },
      citations: found.map((x) => ({
        tool: 'list_anomalies',
        ref: anomalyRef(x.id),
        series: x.series_id,
        metric: x.metric,
        window_start: x.window_start,
        window_end: x.window_end,
        value: x.observed,
      })),
    };
  },
};

export const explainAnomalySchema = z.strictObject({
  anomaly: z
    .string()
    .min(1)
    .max(4096)
    .describe('the ref (an-...) from list_anomalies, or the anomaly id'),
});

export const explainAnomalyTool: AgentTool<typeof explainAnomalySchema> = {
  name: 'explain_anomaly',
  description:
    'One anomaly in context: what changed (against its baseline and recent windows), where (this workload only or node-wide), which other metrics moved with it, programs started in the workload, recent feedback, and a likely cause.',
  schema: explainAnomalySchema,
  writes: false,
  async run(a, deps) {
    const found = deps.anomalies.get(a.anomaly);
    if (!found)
      throw new ToolError(
        `no anomaly "${a.anomaly}" is known (${deps.anomalies.size} known); call list_anomalies for refs`,
      );
    const e = await explainAnomaly(found, deps);
    return {
      data: e,
      citations: e.evidence
        .filter((x) => x.series !== undefined)
        .map((x) => ({
          tool: 'explain_anomaly',
          ref: e.anomaly.ref,
          ...(x.series !== undefined ? { series: x.series } : {}),
          ...(x.metric !== undefined ? { metric: x.metric } : {}),
          ...(x.window_start !== undefined ? { window_start: x.window_start } : {}),
          ...(x.window_end !== undefined ? { window_end: x.window_end } : {}),
          ...(x.value !== undefined ? { value: x.value } : {}),
        })),
    };
  },
};

// ---------------------------------------------------------------- describe_probes

export const describeProbesSchema = z.strictObject({
  node: z.string().min(1).max(253).optional().describe('only this node'),
  recent_feedback: z
    .number()
    .int()
    .min(0)
    .max(50)
    .default(10)
    .describe('recent feedback requests listed; default 10'),
});

function activeFilters(
  s: ProbeView['settings'],
): Record<string, { allow?: unknown[]; deny?: unknown[] }> {
  const out: Record<string, { allow?: unknown[]; deny?: unknown[] }> = {};
  for (const [dim, set] of Object.entries(s.filters)) {
    const f = set as { allow: unknown[]; deny: unknown[] };
    if (f.allow.length > 0 || f.deny.length > 0)
      out[dim] = {
        ...(f.allow.length ? { allow: f.allow } : {}),
        ...(f.deny.length ? { deny: f.deny } : {}),
      };
  }
  return out;
}

function why(p: ProbeView, floors: string[], recent: RecentFeedback[]): string {
  const spec = FAMILIES.find((f) => f.name === p.probe);
  const parts: string[] = [];
  const fb = recent.find(
    (f) =>
      f.probe === p.probe &&
      Object.entries(f.states).some(
        ([n, s]) =>
          (n === p.node || n === '*') &&
          ['accepted', 'clamped', 'delivered', 'applied', 'accept', 'clamp'].includes(s),
      ),
  );
  if (fb)
    parts.push(
      `changed by feedback ${fb.request_id} (${fb.origin} ${fb.action}: ${fb.reason.slice(0, 200)})`,
    );
  else if (spec && p.enabled === spec.defaultEnabled)
    parts.push(
      p.enabled ? 'enabled by default' : 'off by default (feedback or an operator can enable it)',
    );
  else
    parts.push(
      p.enabled
        ? 'enabled by an operator or earlier feedback (off by default)'
        : 'disabled by an operator or earlier feedback (on by default)',
    );
  if (p.settings.sample_n > 1) parts.push(`sampled 1 in ${p.settings.sample_n}`);
  if (floors.includes(p.probe)) parts.push('a floor: feedback never disables nor narrows it');
  return parts.join('; ');
}

export const describeProbes: AgentTool<typeof describeProbesSchema> = {
  name: 'describe_probes',
  description:
    'Probes per node: enabled, attached, sampling, filters, events/s, drops, and why each is in that state; the budgets, floors and bounds in force; recent feedback requests and their verdicts.',
  schema: describeProbesSchema,
  writes: false,
  async run(a, deps) {
    const recent = deps.gateway
      ? await deps.gateway.recent(Math.max(a.recent_feedback, 20)).catch(() => [])
      : [];
    const policy: PolicySummary | undefined = await deps.gateway?.policy?.().catch(() => undefined);
    const floors = policy?.floors ?? ['process'];
    // Live sources, then nodes without one: their last report in the feedback state.
    const { views, errors } = await probeViews(deps);
    const shown = views.filter((v) => a.node === undefined || v.node === a.node);
    const nodes = [...new Set(shown.map((v) => v.node))].sort();
    const data = {
      nodes: nodes.map((node) => ({
        node,
        events_per_second: round(
          shown.filter((v) => v.node === node).reduce((s, v) => s + v.events_per_second, 0),
        ),
        probes: shown
          .filter((v) => v.node === node)
          .map((p) => ({
            probe: p.probe,
            enabled: p.enabled,
            attached: p.attached,
            sample_n: p.settings.sample_n,
            min_duration_ms: p.settings.min_duration_ms,
            slow_ms: p.settings.slow_ms,
            filters: activeFilters(p.settings),
            events_per_second: round(p.events_per_second),
            drops: p.drops,
            generation: p.generation,
            why: why(p, floors, recent),
          })),
      })),
      policy: policy ?? null,
      recent_feedback: recent.slice(0, a.recent_feedback),
      ...(errors.length > 0 ? { unavailable: errors } : {}),
    };
    const citations: Citation[] = shown.map((p) => ({
      tool: 'describe_probes',
      series: `${p.node}|*|${p.probe}|events_per_second`,
      metric: 'events_per_second',
      value: round(p.events_per_second),
    }));
    for (const f of recent.slice(0, a.recent_feedback))
      citations.push({
        tool: 'describe_probes',
        ref: f.request_id,
        value: Object.values(f.states).join(','),
      });
    return { data, citations };
  },
};

// ---------------------------------------------------------------- propose_feedback

export const proposeFeedbackSchema = z.strictObject({
  probe: probeEnum,
  action: z
    .enum(FEEDBACK_ACTIONS)
    .describe('enable, disable, tighten (collect more), loosen (collect less), set'),
  node: z
    .string()
    .min(1)
    .max(253)
    .optional()
    .describe("target node; default: the anomaly's node, else every node"),
  workload: z
    .string()
    .startsWith('/')
    .max(4096)
    .optional()
    .describe(
      'focus on this workload (cgroup path): tighten/enable/set then filter the probe to it',
    ),
  anomaly: z
    .string()
    .min(1)
    .max(4096)
    .optional()
    .describe('the anomaly ref (an-...) this is about'),
  sample_n: z.number().int().min(1).max(1_000_000).optional(),
  slow_ms: z.number().min(0).max(3_600_000).optional(),
  min_duration_ms: z.number().min(0).max(3_600_000).optional(),
  ttl_seconds: z
    .number()
    .int()
    .min(1)
    .max(7 * 24 * 3600)
    .optional()
    .describe('how long the change holds; default: the policy default'),
  reason: z.string().min(1).max(1000).describe('why, citing the numbers'),
});

export const proposeFeedback: AgentTool<typeof proposeFeedbackSchema> = {
  name: 'propose_feedback',
  description:
    'Proposes one change to a probe (collect more or less, where and for how long) to the policy engine, which accepts, clamps, queues for an operator, or rejects it, with a reason. Nothing changes unless the policy engine accepts; report its verdict and reason as they are.',
  schema: proposeFeedbackSchema,
  writes: true,
  async run(a, deps) {
    if (!deps.gateway)
      throw new ToolError('no policy engine is connected: feedback cannot be proposed here');
    const now = deps.now?.() ?? Date.now();
    const anomaly = a.anomaly !== undefined ? deps.anomalies.get(a.anomaly) : undefined;
    if (a.anomaly !== undefined && !anomaly)
      throw new ToolError(`no anomaly "${a.anomaly}" is known; call list_anomalies for refs`);
    const node = a.node ?? anomaly?.node;
    const params: FeedbackParams = {};
    if (a.action !== 'disable') {
      if (a.sample_n !== undefined) params.sample_n = a.sample_n;
      if (a.slow_ms !== undefined) params.slow_ms = a.slow_ms;
      if (a.min_duration_ms !== undefined) params.min_duration_ms = a.min_duration_ms;
      if (a.workload !== undefined && a.action !== 'loosen')
        params.filters = { cgroup: { allow: [a.workload] } };
    }
    const target = node !== undefined ? { nodes: [node] } : { all: true as const };
    const minute = Math.floor(now / 60_000);
    const input = {
      schema_version: 1,
      id: deriveRequestId(
        'agent',
        a.probe,
        a.action,
        JSON.stringify(target),
        a.workload ?? '*',
        JSON.stringify(params),
        anomaly?.id ?? minute,
      ),
      target,
      probe: a.probe,
      action: a.action,
      params,
      ...(a.ttl_seconds !== undefined ? { ttl_seconds: a.ttl_seconds } : {}),
      reason: `agent: ${a.reason}`,
      origin: 'agent' as const,
      ...(anomaly
        ? { evidence: { anomaly_id: anomaly.id } }
        : { evidence: { text: a.reason.slice(0, 4096) } }),
      workload: a.workload ?? '*',
      created_at: new Date(now).toISOString(),
    };
    let request: FeedbackRequest;
    try {
      request = parseFeedbackRequest(input);
    } catch (err) {
      if (err instanceof ConfigError) throw new ToolError(err.message);
      throw err;
    }
    const verdict = await deps.gateway.submit(request);
    return {
      data: {
        request: {
          id: request.id,
          probe: request.probe,
          action: request.action,
          target: request.target,
          params: request.params,
          ttl_seconds: request.ttl_seconds ?? null,
          workload: request.workload,
          origin: request.origin,
        },
        verdict: verdict.verdict,
        reason: verdict.reason,
        duplicate: verdict.duplicate,
        decisions: verdict.decisions,
        note: 'the policy engine decided; the agent applies nothing itself',
      },
      citations: [{ tool: 'propose_feedback', ref: request.id, value: verdict.verdict }],
      proposal: { ...verdict, request },
    };
  },
};

export const ALL_TOOLS: AgentTool[] = [
  queryFeatures,
  topProcesses,
  checkCoverage,
  listAnomalies,
  explainAnomalyTool,
  describeProbes,
  proposeFeedback,
] as unknown as AgentTool[];

/** The LangChain view of the tools (for `bindTools`); the agent runs them itself, after validating. */
export function langchainTools(tools: AgentTool[]): StructuredToolInterface[] {
  return tools.map((t) =>
    tool(async () => 'executed by the tracefeed agent loop', {
      name: t.name,
      description: t.description,
      schema: t.schema as z.ZodObject,
    }),
  ) as unknown as StructuredToolInterface[];
}

/** Rows for tests and the deterministic mode. */
export type { FeatureRow };
