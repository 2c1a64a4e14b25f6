/**
 * The agent's tools as MCP tools: the same zod schemas and implementations
 * (src/agent/tools.ts), each result wrapped summary-first with how complete
 * its data was and cut to a token budget (src/agent/budget.ts), plus
 * `top_workloads` (top-k with totals, a histogram and a drill-down cursor),
 * `feedback_history` and `read_more` (the next page of a cursor).
 */
import { z } from 'zod';
import { ConfigError, TracefeedError } from '../../common/errors.js';
import { CursorStore, estimateTokens, fitToBudget, type Budgeted } from '../budget.js';
import { completenessOf, recordingSource, toolCompleteness } from '../completeness.js';
import { READ_MORE_DESCRIPTION, maxTokensArg, readMore, readMoreSchema } from '../read-more.js';
import {
  METRICS,
  aggregate,
  defaultAggregation,
  metricRows,
  round,
  windowSpan,
  type Aggregation,
} from '../feature-math.js';
import {
  ToolError,
  describeProbes,
  explainAnomalyTool,
  listAnomalies,
  proposeFeedback,
  queryFeatures,
  type AgentDeps,
  type AgentTool,
} from '../tools.js';
import { type ProbeName } from '../../wire/layout.js';
import { PROBE_NAMES } from '../../families/registry.js';

/** One tool as the MCP server exposes it. */
export interface McpToolSpec {
  name: string;
  title: string;
  description: string;
  schema: z.ZodObject;
  readOnly: boolean;
  /** Runs with validated args (max_tokens removed); returns the JSON text sent. */
  call(args: Record<string, unknown>, ctx: McpToolContext): Promise<Budgeted>;
}

export interface McpToolContext {
  deps: AgentDeps;
  cursors: CursorStore;
  budgetTokens: number;
  /** Called before tools that read anomalies (a CLI refreshes its store from Kafka). */
  refreshAnomalies?: () => Promise<void>;
}

const iso = (ms: number): string => new Date(ms).toISOString();

function envelope(tool: string, completeness: unknown, data: unknown): Record<string, unknown> {
  return { tool, completeness, data };
}

function wrap(t: AgentTool, title: string): McpToolSpec {
  return {
    name: t.name,
    title,
    description: `${t.description} Every result says how complete its windows were (drops, sampling) and fits a token budget (max_tokens; cut results return a cursor for read_more).`,
    schema: (t.schema as unknown as z.ZodObject).extend({ max_tokens: maxTokensArg }),
    readOnly: !t.writes,
    async call(args, ctx) {
      if (t.name === 'list_anomalies' || t.name === 'explain_anomaly')
        await ctx.refreshAnomalies?.();
      const rec = recordingSource(ctx.deps.features);
      const result = await t.run(args as never, { ...ctx.deps, features: rec.source });
      const completeness = await toolCompleteness(t.name, args, result.data, rec.rows(), ctx.deps);
      return fitToBudget(
        t.name,
        envelope(t.name, completeness, result.data),
        ctx.budgetTokens,
        ctx.cursors,
      );
    },
  };
}

// ---------------------------------------------------------------- top_workloads

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

export const topWorkloadsSchema = z.strictObject({
  metric: z.enum(METRICS).default('events').describe('feature column; default events'),
  ...range,
  node: z.string().min(1).max(253).optional(),
  probe: z.enum(PROBE_NAMES as [ProbeName, ...ProbeName[]]).optional(),
  k: z.number().int().min(1).max(50).default(5).describe('workloads listed first; default 5'),
  aggregation: z.enum(['sum', 'max', 'avg']).optional(),
  max_tokens: maxTokensArg,
});

/** log2 buckets of positive values: `[lo, hi)` with counts (at most 16 buckets). */
export function log2Histogram(
  values: number[],
): Array<{ from: number; to: number; count: number }> {
  const pos = values.filter((v) => v > 0);
  if (pos.length === 0) return [];
  const bucket = (v: number): number => Math.floor(Math.log2(v));
  const counts = new Map<number, number>();
  for (const v of pos) counts.set(bucket(v), (counts.get(bucket(v)) ?? 0) + 1);
  const ks = [...counts.keys()].sort((a, b) => a - b);
  let out = ks.map((k) => ({
    from: round(2 ** k),
    to: round(2 ** (k + 1)),
    count: counts.get(k)!,
  }));
  // Merge the lowest buckets when there are too many.
  while (out.length > 16) {
    const [a, b] = out;
    out = [{ from: a!.from, to: b!.to, count: a!.count + b!.count }, ...out.slice(2)];
  }
  return out;
}

const topWorkloads: McpToolSpec = {
  name: 'top_workloads',
  title: 'Top workloads',
  description:
    "Summary first: the k workloads (cgroup paths, per node) with the largest value of one metric over a range, with the total over every workload, the share of the top k, a log2 histogram of all workloads' values, and a cursor (drill_down.cursor, for read_more) over the rest, largest first. Says how complete the windows were (drops, sampling).",
  schema: topWorkloadsSchema,
  readOnly: true,
  async call(a, ctx) {
    const args = a as z.infer<typeof topWorkloadsSchema>;
    const now = ctx.deps.now?.() ?? Date.now();
    const untilMs = args.until !== undefined ? Date.parse(args.until) : now;
    const sinceMs =
      args.since !== undefined
        ? Date.parse(args.since)
        : untilMs - (args.since_minutes ?? 5) * 60_000;
    if (sinceMs >= untilMs)
      throw new ToolError(
        `the range is empty: since ${iso(sinceMs)} is not before until ${iso(untilMs)}`,
      );
    const rows = await ctx.deps.features.query({
      sinceMs,
      untilMs,
      ...(args.node !== undefined ? { node: args.node } : {}),
      ...(args.probe !== undefined ? { probe: args.probe } : {}),
    });
    const aggregation: Aggregation = args.aggregation ?? defaultAggregation(args.metric);
    const groups = aggregate(rows, { metric: args.metric, group_by: 'node_workload', aggregation });
    const used = metricRows(rows, args.metric);
    const total = round(groups.reduce((s, g) => s + g.value, 0));
    const top = groups.slice(0, args.k);
    const topSum = top.reduce((s, g) => s + g.value, 0);
    const item = (g: (typeof groups)[number], i: number) => ({
      rank: i + 1,
      node: g.key.node,
      workload: g.key.workload,
      value: g.value,
      share: total > 0 && aggregation === 'sum' ? round(g.value / total) : null,
      windows: g.windows,
      peak_window_start: g.peak.window_start,
      peak_value: g.peak.value,
    });
    const rest = groups.slice(args.k).map((g, i) => item(g, i + args.k));
    const drill =
      rest.length > 0
        ? {
            remaining: rest.length,
            cursor: CursorStore.cursor(
              ctx.cursors.put({
                kind: 'items',
                tool: 'top_workloads',
                path: 'data.rest',
                items: rest,
                total: groups.length,
                bytes: JSON.stringify(rest).length,
              }),
              0,
            ),
          }
        : null;
    const data: Record<string, unknown> = {
      metric: args.metric,
      aggregation,
      range: { since: iso(sinceMs), until: iso(untilMs) },
      windows: windowSpan(used),
      totals: {
        workloads: groups.length,
        ...(aggregation === 'sum'
          ? {
              value: total,
              top_k_value: round(topSum),
              top_k_share: total > 0 ? round(topSum / total) : null,
            }
          : { max: groups[0]?.value ?? null }),
      },
      top: top.map(item),
      drill_down: drill,
    };
    const histogram = log2Histogram(groups.map((g) => g.value));
    // Completeness of the rows that carry the metric.
    const completeness = completenessOf(used);
    // The histogram goes in when the whole result still fits the budget.
    const withHist = envelope('top_workloads', completeness, {
      ...data,
      histogram: { scale: 'log2', buckets: histogram },
    });
    const fits = estimateTokens(JSON.stringify(withHist)) <= ctx.budgetTokens;
    return fitToBudget(
      'top_workloads',
      fits
        ? withHist
        : envelope('top_workloads', completeness, {
            ...data,
            histogram: `left out: over the token budget (${histogram.length} buckets)`,
          }),
      ctx.budgetTokens,
      ctx.cursors,
    );
  },
};

// ---------------------------------------------------------------- feedback_history

export const feedbackHistorySchema = z.strictObject({
  limit: z
    .number()
    .int()
    .min(1)
    .max(500)
    .default(50)
    .describe('requests read, newest first; default 50'),
  probe: z.enum(PROBE_NAMES as [ProbeName, ...ProbeName[]]).optional(),
  origin: z.enum(['agent', 'rule', 'operator']).optional(),
  state: z
    .string()
    .min(1)
    .max(32)
    .optional()
    .describe(
      'only requests in this state on some node (queued, accepted, applied, rejected, ...)',
    ),
  max_tokens: maxTokensArg,
});

const feedbackHistory: McpToolSpec = {
  name: 'feedback_history',
  title: 'Feedback history',
  description:
    'Recent feedback requests (agent, rule, operator), newest first: probe, action, reason, state per node; with counts by state and origin first. Cut to the token budget with a cursor for the rest.',
  schema: feedbackHistorySchema,
  readOnly: true,
  async call(a, ctx) {
    const args = a as z.infer<typeof feedbackHistorySchema>;
    if (!ctx.deps.gateway)
      throw new ToolError('no feedback loop is connected (Redis): no feedback history here');
    const all = await ctx.deps.gateway.recent(args.limit);
    const shown = all.filter(
      (f) =>
        (args.probe === undefined || f.probe === args.probe) &&
        (args.origin === undefined || f.origin === args.origin) &&
        (args.state === undefined || Object.values(f.states).includes(args.state)),
    );
    const count = (key: (f: (typeof shown)[number]) => string[]): Record<string, number> => {
      const out: Record<string, number> = {};
      for (const f of shown) for (const k of key(f)) out[k] = (out[k] ?? 0) + 1;
      return out;
    };
    const data = {
      read: all.length,
      matched: shown.length,
      by_state: count((f) => [...new Set(Object.values(f.states))]),
      by_origin: count((f) => [f.origin]),
      by_probe: count((f) => [f.probe]),
      requests: shown,
    };
    return fitToBudget(
      'feedback_history',
      envelope(
        'feedback_history',
        {
          source: 'feedback state (Redis)',
          summary: 'requests as the policy engine recorded them; reads no feature windows',
        },
        data,
      ),
      ctx.budgetTokens,
      ctx.cursors,
    );
  },
};

// ---------------------------------------------------------------- read_more

const readMoreSpec: McpToolSpec = {
  name: 'read_more',
  title: 'Read more',
  description: READ_MORE_DESCRIPTION,
  schema: readMoreSchema,
  readOnly: true,
  async call(a, ctx) {
    return readMore(String(a.cursor), ctx.budgetTokens, ctx.cursors);
  },
};

export const MCP_TOOLS: McpToolSpec[] = [
  wrap(queryFeatures as unknown as AgentTool, 'Query features'),
  topWorkloads,
  wrap(listAnomalies as unknown as AgentTool, 'List anomalies'),
  wrap(explainAnomalyTool as unknown as AgentTool, 'Explain an incident'),
  wrap(describeProbes as unknown as AgentTool, 'Probe state'),
  feedbackHistory,
  wrap(proposeFeedback as unknown as AgentTool, 'Propose feedback'),
  readMoreSpec,
];

/** A tool failure as the text an MCP result carries (isError). */
export function toolErrorText(name: string, err: unknown): string {
  if (err instanceof ToolError) return `${name}: ${err.message}`;
  if (err instanceof ConfigError) return `${name}: ${err.message}`;
  if (err instanceof TracefeedError)
    return `${name} failed: ${err.message}${err.hint ? ` (fix: ${err.hint})` : ''}`;
  return `${name} failed: ${(err as Error).message}`;
}
