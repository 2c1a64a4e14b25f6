/**
 * What an operator (or the feedback loop) can change on a running probe.
 * Every field maps onto a map write in the kernel; none needs a reload.
 */
import { posix } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../common/errors.js';
import { FILTER_SETS, FOCUS_MAX, PATH_PREFIX_LEN, type ProbeName } from './layout.js';
import { PROBE_NAMES } from '../families/registry.js';

const idList = <T extends z.ZodTypeAny>(item: T) =>
  z.array(item).max(FILTER_SETS.cgroup.maxEntries).default([]);

/**
 * Entries a dimension's allow and deny lists take in its kernel set map (a
 * value in both lists is one entry).
 */
export function filterEntries(set: { allow?: unknown[]; deny?: unknown[] }): number {
  return new Set([...(set.allow ?? []), ...(set.deny ?? [])].map((v) => JSON.stringify(v))).size;
}

/** The error for a dimension whose lists do not fit its kernel map, or undefined. */
export function filterLimitError(
  dim: keyof typeof FILTER_SETS,
  set: { allow?: unknown[]; deny?: unknown[] },
): string | undefined {
  const n = filterEntries(set);
  const { map, maxEntries } = FILTER_SETS[dim];
  if (n <= maxEntries) return undefined;
  return `filters.${dim}: ${n} entries in allow and deny together, but the kernel map ${map} holds ${maxEntries}`;
}

const portSchema = z.number().int().min(0).max(65535);
const commSchema = z
  .string()
  .min(1)
  .max(15, 'a comm is at most 15 bytes (the kernel truncates longer names)');
/**
 * Why a path prefix cannot be a filter, or undefined. The file probe reports
 * the path the kernel opened (absolute, symlinks resolved, no //, /./ or ..)
 * and the kernel compares prefixes byte by byte, so a prefix must be absolute
 * and is normalised before it reaches the map.
 */
export function pathPrefixError(prefix: string): string | undefined {
  if (!prefix.startsWith('/'))
    return `a path prefix is absolute: "${prefix}" is relative (opened paths are reported from the root)`;
  if (prefix.includes('\0')) return 'a path prefix holds no NUL byte';
  const normal = posix.normalize(prefix);
  if (Buffer.byteLength(normal, 'utf8') > PATH_PREFIX_LEN)
    return `a path prefix is at most ${PATH_PREFIX_LEN} bytes once normalised: "${normal}" is longer`;
  return undefined;
}

/** The prefix as the kernel map holds it: path.posix.normalize of an absolute path ("/a//b/../c/" -> "/a/c/"). */
export function normalizePathPrefix(prefix: string): string {
  const err = pathPrefixError(prefix);
  if (err) throw new ConfigError(err, 'filters.path_prefix');
  return posix.normalize(prefix);
}

const pathPrefixSchema = z
  .string()
  .min(1, 'a path prefix is not empty')
  .superRefine((p, ctx) => {
    const message = pathPrefixError(p);
    if (message) ctx.addIssue({ code: 'custom', message });
  })
  .transform((p) => posix.normalize(p));
/** A cgroup by path relative to the cgroup v2 root ("/system.slice/x.service") or by numeric id. */
const cgroupSchema = z.union([
  z.string().startsWith('/', 'a cgroup path starts with "/"'),
  z.number().int().positive(),
]);

/**
 * A focus key: a cgroup path relative to the cgroup v2 root ("/a/b") or a
 * decimal cgroup v2 id ("4242"), as the cgroup filter entries.
 */
export const focusKeySchema = z
  .string()
  .refine(
    (k) => k.startsWith('/') || /^[1-9][0-9]*$/.test(k),
    'a focus key is a cgroup path starting with "/" or a decimal cgroup id',
  );

/** Settings one focused cgroup is collected with, whether or not the baseline is on. */
export const focusSettingsSchema = z.strictObject({
  /** Keep 1 in N of this cgroup's events. Default 1 (all). */
  sample_n: z.number().int().min(1).max(1_000_000).default(1),
  /** As the probe's min_duration_ms, for this cgroup. Default 0. */
  min_duration_ms: z.number().min(0).max(3_600_000).default(0),
  /** As the probe's slow_ms, for this cgroup. Default 0. */
  slow_ms: z.number().min(0).max(3_600_000).default(0),
});
export type FocusSettings = z.infer<typeof focusSettingsSchema>;

const focusLimit = (m: Record<string, unknown>) => Object.keys(m).length <= FOCUS_MAX;
const focusLimitMessage = `at most ${FOCUS_MAX} focused cgroups per probe (TF_FOCUS_MAX)`;

export const filterSetSchema = <T extends z.ZodTypeAny>(item: T) =>
  z.strictObject({
    allow: idList(item).describe('when non-empty, only these pass'),
    deny: idList(item).describe('these never pass'),
  });

export const probeFiltersSchema = z
  .strictObject({
    cgroup: filterSetSchema(cgroupSchema).default({ allow: [], deny: [] }),
    pid: filterSetSchema(z.number().int().positive()).default({ allow: [], deny: [] }),
    port: filterSetSchema(portSchema).default({ allow: [], deny: [] }),
    comm: filterSetSchema(commSchema).default({ allow: [], deny: [] }),
    path_prefix: filterSetSchema(pathPrefixSchema).default({ allow: [], deny: [] }),
  })
  .superRefine((f, ctx) => {
    // A list is refused whole when it cannot fit the kernel map (TF_SET_ID_MAX, TF_SET_STR_MAX).
    for (const dim of Object.keys(FILTER_SETS) as Array<keyof typeof FILTER_SETS>) {
      const message = filterLimitError(dim, f[dim]);
      if (message) ctx.addIssue({ code: 'custom', path: [dim], message });
    }
  });
export type ProbeFilters = z.infer<typeof probeFiltersSchema>;

export const probeSettingsSchema = z.strictObject({
  /** Attached and emitting. */
  enabled: z.boolean(),
  /** Keep 1 in N events; kept events carry sample_weight N. Default 1 (all). */
  sample_n: z.number().int().min(1).max(1_000_000).default(1),
  /** Events with a duration below this are filtered (tcp close, slow syscalls). Default 0. */
  min_duration_ms: z.number().min(0).max(3_600_000).default(0),
  /** syscalls: stream every syscall slower than this; 0 turns the stream off. Default 0. */
  slow_ms: z.number().min(0).max(3_600_000).default(0),
  filters: probeFiltersSchema.default({
    cgroup: { allow: [], deny: [] },
    pid: { allow: [], deny: [] },
    port: { allow: [], deny: [] },
    comm: { allow: [], deny: [] },
    path_prefix: { allow: [], deny: [] },
  }),
  /**
   * Per-cgroup focus: these cgroups are collected with their own settings
   * whether or not `enabled` is on; every other cgroup gets the baseline
   * (when enabled) or nothing. The process probe is a floor that records
   * every cgroup and ignores it. Default {} (none).
   */
  focus: z
    .record(focusKeySchema, focusSettingsSchema)
    .refine(focusLimit, focusLimitMessage)
    .default({})
    .describe('per-cgroup focus, keyed by cgroup path or decimal id'),
});
export type ProbeSettings = z.infer<typeof probeSettingsSchema>;

/** A partial change: absent fields keep their value; a filter set given replaces the old one. */
export const probePatchSchema = z.strictObject({
  enabled: z.boolean().optional(),
  sample_n: z.number().int().min(1).max(1_000_000).optional(),
  min_duration_ms: z.number().min(0).max(3_600_000).optional(),
  slow_ms: z.number().min(0).max(3_600_000).optional(),
  filters: z
    .strictObject({
      cgroup: filterSetSchema(cgroupSchema).partial().optional(),
      pid: filterSetSchema(z.number().int().positive()).partial().optional(),
      port: filterSetSchema(portSchema).partial().optional(),
      comm: filterSetSchema(commSchema).partial().optional(),
      path_prefix: filterSetSchema(pathPrefixSchema).partial().optional(),
    })
    .optional(),
  /** Drop every filter before applying `filters`. */
  clear_filters: z.boolean().optional(),
  /**
   * Focus changes, merged key by key: an entry given replaces that cgroup's
   * focus (absent fields take their defaults), null removes it.
   */
  focus: z
    .record(
      focusKeySchema,
      z
        .strictObject({
          sample_n: z.number().int().min(1).max(1_000_000).optional(),
          min_duration_ms: z.number().min(0).max(3_600_000).optional(),
          slow_ms: z.number().min(0).max(3_600_000).optional(),
        })
        .nullable(),
    )
    .refine(focusLimit, focusLimitMessage)
    .optional(),
});
export type ProbePatch = z.infer<typeof probePatchSchema>;

export const probeNameSchema = z.enum(PROBE_NAMES as [ProbeName, ...ProbeName[]]);

export function defaultSettings(enabled: boolean): ProbeSettings {
  return probeSettingsSchema.parse({ enabled });
}

export function applyPatch(current: ProbeSettings, patch: ProbePatch): ProbeSettings {
  const base = patch.clear_filters ? defaultSettings(current.enabled).filters : current.filters;
  const filters = structuredClone(base);
  for (const [dim, set] of Object.entries(patch.filters ?? {}) as Array<
    [keyof ProbeFilters, { allow?: unknown[]; deny?: unknown[] }]
  >) {
    if (!set) continue;
    const target = filters[dim] as { allow: unknown[]; deny: unknown[] };
    if (set.allow) target.allow = set.allow;
    if (set.deny) target.deny = set.deny;
  }
  const focus = structuredClone(current.focus);
  for (const [key, entry] of Object.entries(patch.focus ?? {})) {
    if (entry === null) delete focus[key];
    else focus[key] = focusSettingsSchema.parse(entry);
  }
  for (const dim of Object.keys(FILTER_SETS) as Array<keyof typeof FILTER_SETS>) {
    const message = filterLimitError(dim, filters[dim]);
    if (message) throw new ConfigError(message, `filters.${dim}`);
  }
  if (Object.keys(focus).length > FOCUS_MAX)
    throw new ConfigError(
      `${Object.keys(focus).length} focused cgroups: ${focusLimitMessage}`,
      'focus',
    );
  return probeSettingsSchema.parse({
    enabled: patch.enabled ?? current.enabled,
    sample_n: patch.sample_n ?? current.sample_n,
    min_duration_ms: patch.min_duration_ms ?? current.min_duration_ms,
    slow_ms: patch.slow_ms ?? current.slow_ms,
    filters,
    focus,
  });
}
