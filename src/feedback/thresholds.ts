/**
 * The thresholds file (YAML): budgets, bounds, floors, cooldowns, TTLs,
 * approvals and the anomaly rules. Validated with zod (unknown keys rejected,
 * errors name their path), published as JSON Schema (docs/thresholds.schema.json),
 * and hot-reloaded by `ThresholdsWatcher`: an invalid edit keeps the old config.
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { probeNameSchema } from '../wire/probe-settings.js';
import { type ProbeName, type SourceName } from '../wire/layout.js';
import { FAMILIES, SOURCE_NAMES } from '../families/registry.js';
import { feedbackActionSchema, feedbackOriginSchema, formatIssues } from './request.js';

export const budgetSchema = z.strictObject({
  events_per_second: z
    .number()
    .positive()
    .default(50_000)
    .describe('events/s a node may send (sum over its probes). Default 50000.'),
  bytes_per_second: z
    .number()
    .positive()
    .default(32 * 1024 * 1024)
    .describe('bytes/s of frames a node may send. Default 32 MiB.'),
});

export const probeBoundsSchema = z.strictObject({
  min_sample_n: z
    .number()
    .int()
    .min(1)
    .default(1)
    .describe('smallest 1-in-N (most events) feedback may set. Default 1.'),
  max_sample_n: z
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(1000)
    .describe('largest 1-in-N (fewest events) feedback may set. Default 1000.'),
  budget_max_sample_n: z
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(64)
    .describe(
      'coverage floor of budget loosenings: the budget rule never samples this probe more sparsely than 1 in this (nor past max_sample_n). Default 64.',
    ),
  cooldown_seconds: z
    .number()
    .min(0)
    .optional()
    .describe('overrides the top-level cooldown_seconds for this probe'),
});
export type ProbeBounds = z.infer<typeof probeBoundsSchema>;

export const ruleSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]*$/)
    .optional()
    .describe('used in request ids and reasons. Default `<metric>-<action>-<probe>`.'),
  metric: z
    .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
    .describe('anomaly metric, e.g. tcp_retransmits, or a list: any of them matches'),
  source: z
    .enum(SOURCE_NAMES as [SourceName, ...SourceName[]])
    .optional()
    .describe(
      "only anomalies of feature rows of this source (the anomaly's `probe`: a probe family or cgroup). Default: any.",
    ),
  min_severity: z
    .enum(['warning', 'critical'])
    .default('warning')
    .describe('least anomaly severity; a rule with focus node (or a loosen) needs critical'),
  direction: z.enum(['high', 'low', 'any']).default('high'),
  action: z.enum(['enable', 'tighten', 'loosen', 'set']),
  probe: probeNameSchema.describe('the probe to change (not necessarily the anomaly probe)'),
  focus: z
    .enum(['workload', 'node'])
    .default('workload')
    .describe(
      "workload: a per-cgroup focus on the anomalous cgroup (the rule's sample_n, slow_ms, min_duration_ms apply to it; every other cgroup keeps the baseline; an anomaly whose workload is not known makes no request); node: the probe's baseline on the whole node (needs min_severity critical)",
    ),
  ttl_seconds: z.number().int().positive().optional(),
  sample_n: z.number().int().min(1).optional(),
  slow_ms: z.number().min(0).optional(),
  min_duration_ms: z.number().min(0).optional(),
});
export type Rule = z.infer<typeof ruleSchema>;
export type RuleInput = z.input<typeof ruleSchema>;

/** The metrics a rule matches. */
export function ruleMetrics(r: Pick<Rule, 'metric'>): readonly string[] {
  return typeof r.metric === 'string' ? [r.metric] : r.metric;
}

/** A rule's name: its `name`, else `<first metric>-<action>-<probe>`. */
export function ruleName(r: Rule): string {
  return r.name ?? `${ruleMetrics(r)[0]!.replace(/_/g, '-')}-${r.action}-${r.probe}`;
}

/**
 * The tiered defaults. Steady state (what the node collects with no rule in force):
 * process and tcp streams plus the cgroup pressure and cpu.stat/memory.events rows;
 * syscalls, file and sched are off. Each rule is triggered by a steady-state signal
 * and turns on, for the TTL and on the anomalous workload only, the family that
 * explains the incident at full detail. None is node-wide. Each family brings the
 * rules its rows trigger (src/families/<name>), in registry order.
 */
export const DEFAULT_RULES: RuleInput[] = FAMILIES.flatMap((f) =>
  f.rules.map(({ metric, probe, ...r }) => ({
    ...r,
    metric: typeof metric === 'string' ? metric : [...metric],
    source: f.name,
    // Checked by ruleSchema where the defaults are parsed (and by test/families/registry.test.ts).
    probe: probe as ProbeName,
  })),
);

const probeBoundsMap = z
  .partialRecord(probeNameSchema, probeBoundsSchema)
  .default({})
  .describe('per-probe bounds; a probe not listed gets the defaults');

export const thresholdsSchema = z
  .strictObject({
    version: z.literal(1),
    budget: budgetSchema.default({ events_per_second: 50_000, bytes_per_second: 32 * 1024 * 1024 }),
    node_budgets: z
      .record(z.string(), budgetSchema.partial())
      .default({})
      .describe('per-node overrides of `budget`'),
    budget_cooldown_seconds: z
      .number()
      .min(0)
      .default(5)
      .describe('least time between two budget loosenings of one probe on one node. Default 5.'),
    probes: probeBoundsMap,
    floors: z
      .array(probeNameSchema)
      .default(['process'])
      .describe('probes never disabled nor narrowed by feedback. Default [process].'),
    cooldown_seconds: z
      .number()
      .min(0)
      .default(60)
      .describe(
        'least time between two rule/agent changes of one probe for one workload. Default 60.',
      ),
    default_ttl_seconds: z.number().int().positive().default(300).describe('Default 300.'),
    max_ttl_seconds: z.number().int().positive().default(3600).describe('Default 3600.'),
    loosen_factor: z
      .number()
      .int()
      .min(2)
      .default(4)
      .describe('loosen multiplies sample_n by this. Default 4.'),
    approval: z
      .strictObject({
        actions: z
          .array(feedbackActionSchema)
          .default(['disable'])
          .describe('actions that need approval whatever their origin. Default [disable].'),
        origins: z
          .array(feedbackOriginSchema)
          .default(['agent'])
          .describe(
            'origins whose every action (enable, disable, tighten, loosen, set) needs approval. Default [agent].',
          ),
        timeout_seconds: z
          .number()
          .int()
          .positive()
          .default(3600)
          .describe('a request not approved within this expires. Default 3600.'),
      })
      .default({ actions: ['disable'], origins: ['agent'], timeout_seconds: 3600 })
      .describe(
        'requests needing operator approval: action in `actions` OR origin in `origins` (operator requests never do)',
      ),
    rules: z
      .array(ruleSchema)
      .default(DEFAULT_RULES.map((r) => ruleSchema.parse(r)))
      .describe(
        'anomaly rules. Default: the tiered rules (one per incident class, each on the workload); [] for none.',
      ),
  })
  .superRefine((t, ctx) => {
    for (const [probe, b] of Object.entries(t.probes)) {
      if (b && b.min_sample_n > b.max_sample_n)
        ctx.addIssue({
          code: 'custom',
          path: ['probes', probe, 'min_sample_n'],
          message: `min_sample_n (${b.min_sample_n}) is above max_sample_n (${b.max_sample_n})`,
        });
      if (b && b.budget_max_sample_n < b.min_sample_n)
        ctx.addIssue({
          code: 'custom',
          path: ['probes', probe, 'budget_max_sample_n'],
          message: `budget_max_sample_n (${b.budget_max_sample_n}) is below min_sample_n (${b.min_sample_n})`,
        });
    }
    if (t.default_ttl_seconds > t.max_ttl_seconds)
      ctx.addIssue({
        code: 'custom',
        path: ['default_ttl_seconds'],
        message: `default_ttl_seconds (${t.default_ttl_seconds}) is above max_ttl_seconds (${t.max_ttl_seconds})`,
      });
    t.rules.forEach((r, i) => {
      // A node-wide change must not be cheap to trigger: any tenant can make warnings.
      const nodeWide = r.focus === 'node' || r.action === 'loosen';
      if (nodeWide && r.min_severity !== 'critical')
        ctx.addIssue({
          code: 'custom',
          path: ['rules', i, 'min_severity'],
          message: `rule ${ruleName(r)}: ${r.action === 'loosen' ? 'a loosen changes the whole node' : 'focus node changes the whole node'} and needs min_severity critical (got ${r.min_severity}); use focus: workload or min_severity: critical`,
        });
      if (t.floors.includes(r.probe) && r.focus === 'workload' && r.action !== 'loosen')
        ctx.addIssue({
          code: 'custom',
          path: ['rules', i, 'focus'],
          message: `probe ${r.probe} is a floor that records every cgroup: a workload focus does not apply (use focus: node)`,
        });
    });
  });
export type Thresholds = z.infer<typeof thresholdsSchema>;
export type ThresholdsInput = z.input<typeof thresholdsSchema>;

/** The built-in thresholds (an empty file with `version: 1`). */
export const DEFAULT_THRESHOLDS: Thresholds = thresholdsSchema.parse({ version: 1 });

/** Bounds of one probe (defaults when not listed). */
export function boundsOf(t: Thresholds, probe: ProbeName): ProbeBounds {
  return t.probes[probe] ?? probeBoundsSchema.parse({});
}

/**
 * The coverage floor of budget loosenings of one probe: the largest sample_n the budget
 * rule may set (budget_max_sample_n, never past max_sample_n).
 */
export function budgetMaxSampleN(t: Thresholds, probe: ProbeName): number {
  const b = boundsOf(t, probe);
  return Math.min(b.budget_max_sample_n, b.max_sample_n);
}

/** Budget of one node: `budget` with its `node_budgets` override. */
export function budgetOf(t: Thresholds, node: string): z.infer<typeof budgetSchema> {
  return { ...t.budget, ...(t.node_budgets[node] ?? {}) };
}

/** Parses YAML text; throws ConfigError naming the path (`file: path: message`). */
export function parseThresholds(text: string, source = 'thresholds'): Thresholds {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new ConfigError(`${source}: YAML: ${e.message.split('\n')[0]}`, '', {
      hint: 'fix the YAML syntax',
    });
  }
  let value: unknown;
  try {
    // Unresolved aliases and alias bombs fail here, not in the syntax pass.
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(`${source}: YAML: ${(err as Error).message.split('\n')[0]}`, '', {
      cause: err,
      hint: 'fix the YAML (anchors and aliases)',
    });
  }
  const r = thresholdsSchema.safeParse(value);
  if (!r.success) {
    const first = r.error.issues[0];
    throw new ConfigError(`${source}: ${formatIssues(r.error)}`, first?.path.join('.') ?? '', {
      hint: 'see docs/feedback.md and docs/thresholds.schema.json',
    });
  }
  return r.data;
}

export function loadThresholds(path: string): Thresholds {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read thresholds file ${path}: ${(err as Error).message}`, '', {
      cause: err,
    });
  }
  return parseThresholds(text, path);
}

/** JSON Schema (draft 2020-12) of the thresholds file, as written to docs/thresholds.schema.json. */
export function thresholdsJsonSchema(): Record<string, unknown> {
  return {
    $id: 'https://tracefeed.dev/schemas/thresholds.schema.json',
    title: 'tracefeed thresholds file',
    ...z.toJSONSchema(thresholdsSchema, { io: 'input', unrepresentable: 'any' }),
  };
}

export interface ThresholdsStatus {
  path: string;
  /** When the config in force was loaded. */
  loadedAt: string;
  reloads: number;
  /** The last rejected edit, kept until a valid one replaces it. */
  lastError: { at: string; message: string } | undefined;
}

export interface ThresholdsWatcherOptions {
  /** Wait for edits to settle before reloading, ms. Default 200. */
  debounceMs?: number;
  log: Logger;
  /** Called with each valid new config. */
  onChange?: (t: Thresholds) => void;
  /** Called with each rejected edit (the old config stays). */
  onError?: (err: ConfigError) => void;
}

/**
 * Holds the current thresholds and reloads them when the file changes. The
 * directory is watched (editors replace files), edits are debounced, and an
 * invalid edit keeps the old config and is recorded in `status().lastError`.
 */
export class ThresholdsWatcher {
  private value: Thresholds;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly st: ThresholdsStatus;

  constructor(
    readonly path: string,
    private readonly opts: ThresholdsWatcherOptions,
  ) {
    this.value = loadThresholds(path);
    this.st = { path, loadedAt: new Date().toISOString(), reloads: 0, lastError: undefined };
  }

  get current(): Thresholds {
    return this.value;
  }

  status(): ThresholdsStatus {
    return { ...this.st };
  }

  start(): this {
    const file = basename(this.path);
    this.watcher = watch(dirname(this.path), (_event, name) => {
      if (name !== null && name !== file) return;
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => this.reload(), this.opts.debounceMs ?? 200);
    });
    return this;
  }

  /** Reloads now; returns whether the new file was taken. */
  reload(): boolean {
    try {
      const next = loadThresholds(this.path);
      this.value = next;
      this.st.loadedAt = new Date().toISOString();
      this.st.reloads++;
      this.st.lastError = undefined;
      this.opts.log.info({ path: this.path }, 'thresholds reloaded');
      this.opts.onChange?.(next);
      return true;
    } catch (err) {
      const e =
        err instanceof ConfigError ? err : new ConfigError(String((err as Error).message), '');
      this.st.lastError = { at: new Date().toISOString(), message: e.message };
      this.opts.log.warn(
        { path: this.path, err: e.message },
        'thresholds edit rejected; keeping the previous config',
      );
      this.opts.onError?.(e);
      return false;
    }
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.watcher?.close();
    this.watcher = undefined;
  }
}
