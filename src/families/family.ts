/**
 * What a probe family contributes, in one object: its records (ops with their
 * generated layouts and how each reads), its share of a feature row (sum
 * columns, histograms, quantiles and how a record adds to them), its default
 * anomaly metrics and feedback rules, how the agent speaks of it, and how the
 * node agent loads it. src/families/registry.ts lists the families; the
 * decoder, aggregator, columns, detector, CLI and agent loop over that list.
 */
import type { NativeBpfObject } from '../ingest/native.js';
import type { RecordLayout } from '../wire/layout.js';
import type { FieldReader } from '../wire/record-reader.js';

export type AttributeValue = string | number | boolean;

/** One op (`enum tf_op` in bpf/events.h) a family emits. */
export interface FamilyOp {
  /** TF_OP_* value, from the generated layouts. */
  readonly op: number;
  /** Event type as decoders and features name it (`tcp.connect`). */
  readonly type: string;
  /** Its record struct, from the generated layouts. */
  readonly layout: RecordLayout;
  /** OpenTelemetry-style attributes of one record, read by field name. */
  readonly attributes: (r: FieldReader, flags: number) => Record<string, AttributeValue>;
}

/** Where a family's columns sit in a row's slabs (given to `aggregate`). */
export interface ColumnIndex<Sum extends string, Hist extends string> {
  /** Index of a sum column in a row's sums. */
  sum(name: Sum): number;
  /** Offset of a histogram's first slot in a row's histograms. */
  hist(name: Hist): number;
}

/**
 * Adds one record at `off` of `dv` to a row: `sums[b + i]` is sum column i of
 * the row, `hists[hb + h + slot]` slot of the histogram at offset h. `weight`
 * is the record's sample weight (1 when unsampled).
 */
export type AggregateFn = (
  op: number,
  dv: DataView,
  off: number,
  weight: number,
  sums: Float64Array,
  b: number,
  hists: Float64Array,
  hb: number,
) => void;

/** A default anomaly metric (src/features/anomaly-detector.ts metricRuleSchema input). */
export interface FamilyMetric {
  readonly metric: string;
  readonly min_delta: number;
  readonly prior_min?: number;
  readonly share_of_window?: boolean;
}

/** A default feedback rule (src/feedback/thresholds.ts ruleSchema input) triggered by this family's rows. */
export interface FamilyRule {
  readonly name: string;
  readonly metric: string | readonly string[];
  readonly action: 'tighten' | 'enable';
  /** The family the rule changes (may be another one). */
  readonly probe: string;
  readonly focus: 'workload';
  readonly ttl_seconds: number;
  readonly slow_ms?: number;
}

/**
 * A kernel aggregation map of counters that the node agent reads every
 * interval, each entry that grew becoming one record of its increase
 * (src/ingest/summaries.ts: entries are not deleted while they move).
 */
export interface FamilySummary {
  readonly map: string;
  /** The record an entry becomes (its op is the layout's). */
  readonly layout: RecordLayout;
  /** The map's key and value structs; null for a bare u64. */
  readonly key: RecordLayout | null;
  readonly value: RecordLayout | null;
  /**
   * Record field <- where it comes from: `key.<field>`, `value.<field>`, `key` or
   * `value` (a bare u64), or `interval` (ns since the previous flush). Fields not
   * named stay zero (pads).
   */
  readonly fields: Readonly<Record<string, string>>;
}

export interface Family<
  Name extends string = string,
  Sum extends string = string,
  Hist extends string = string,
  Obj extends string | null = string | null,
> {
  readonly name: Name;
  /** `enum tf_probe` value (from the generated layouts): the source index of its rows. */
  readonly probeId: number;
  /**
   * Its BPF object, bpf/.output/<object>.bpf.o (built from bpf/<object>.bpf.c); null for
   * a source the node agent reads from files (cgroup).
   */
  readonly object: Obj;
  /** The ops it emits; every TF_OP_* belongs to one family or to the frame (layout.ts CORE_OPS). */
  readonly ops: readonly FamilyOp[];
  /** Other structs of its own (kernel map keys and values) checked against BTF. */
  readonly layouts?: readonly RecordLayout[];
  readonly columns: {
    /** Sum columns of its rows, in slab (and schema) order. */
    readonly sums: readonly Sum[];
    /** log2 histograms kept per row. */
    readonly histograms: readonly Hist[];
    /** Quantile columns derived from those histograms. */
    readonly quantiles: ReadonlyArray<{
      readonly name: string;
      readonly hist: Hist;
      readonly q: number;
    }>;
    /** Metrics computed from its columns (a sum of them), accepted wherever a column is. */
    readonly derived?: Readonly<Record<string, readonly Sum[]>>;
  };
  /** Builds the record -> row function, given where its columns sit. */
  readonly aggregate: (ix: ColumnIndex<Sum, Hist>) => AggregateFn;
  /** Default anomaly metrics on its rows. */
  readonly anomalyMetrics: readonly FamilyMetric[];
  /** Default feedback rules triggered by its rows. */
  readonly rules: readonly FamilyRule[];
  /** One line: what it collects (describe_probes, the CLI). */
  readonly description: string;
  /** How the agent speaks of it. */
  readonly agent: {
    /** The metric that says whether it collects at all (coverage questions). */
    readonly countMetric?: Sum;
    /** Question keywords -> metric, most specific first. */
    readonly metricPatterns?: ReadonlyArray<readonly [RegExp, string]>;
    /** Metrics compared against the windows before an anomaly. */
    readonly correlated?: readonly string[];
    /** The likely cause of an anomaly on one of its metrics, or undefined. */
    readonly likelyCause?: (metric: string, up: ReadonlySet<string>) => string | undefined;
  };
  /** Enabled when the node agent starts with no other instruction. */
  readonly defaultEnabled: boolean;
  /** Kernel aggregation maps flushed into summary records every interval. */
  readonly summaries: readonly FamilySummary[];
  /** Programs that may not attach on every kernel or architecture (their absence is logged, not fatal). */
  readonly optionalPrograms?: readonly string[];
  /**
   * A per-CPU u64 array of the family's own losses, reported with its drops:
   * names by slot ('' skips a slot that counts no loss).
   */
  readonly lossCounters?: { map: string; names: readonly string[] };
  /**
   * Records the family builds in user space every summary interval from its
   * maps (dns: timed-out queries), stamped `ktime` (CLOCK_MONOTONIC now).
   */
  readonly flush?: (obj: NativeBpfObject, ktime: bigint) => { records: Buffer; count: number };
  /** Its programs attach to the cgroup v2 root (cgroup_skb), not by their section. */
  readonly attachToCgroupRoot?: boolean;
  /**
   * Programs attached as long as the family is loaded, whatever its settings (a cheap
   * steady-state signal such as dns's lookup counter); the others attach only while the
   * family is enabled or focused.
   */
  readonly alwaysAttached?: readonly string[];
  /** Metrics those always-attached programs keep filling while the family is off. */
  readonly steadyStateMetrics?: readonly string[];
}

/** Declares a family, keeping its literal names (for the registry's types). */
export function defineFamily<
  const N extends string,
  const S extends string,
  const H extends string = never,
  const O extends string | null = null,
>(f: Family<N, S, H, O>): Family<N, S, H, O> {
  return f;
}

/** log2 slot of a duration in ns, as the kernel computes it (HIST_SLOTS slots). */
export function log2Slot(v: number, slots = 32): number {
  if (v < 2) return 0;
  const s = Math.floor(Math.log2(v));
  return s < slots ? s : slots - 1;
}

const TWO32 = 4294967296;
/** A little-endian u64 as a number (exact below 2^53): two u32 reads, no BigInt. */
export function u64(dv: DataView, at: number): number {
  return dv.getUint32(at, true) + dv.getUint32(at + 4, true) * TWO32;
}

/** The p50, p95 and p99 columns of a histogram: `<prefix>_p50_ns`... */
export function percentiles<const H extends string>(
  prefix: string,
  hist: H,
): ReadonlyArray<{ name: string; hist: H; q: number }> {
  return [0.5, 0.95, 0.99].map((q) => ({ name: `${prefix}_p${Math.round(q * 100)}_ns`, hist, q }));
}

/** Adds a kernel log2 histogram (`slots` u64 at `from`) slot by slot to a row's histogram at `to`. */
export function addHistogram(
  hists: Float64Array,
  to: number,
  dv: DataView,
  from: number,
  slots: number,
): void {
  for (let i = 0; i < slots; i++) hists[to + i]! += u64(dv, from + i * 8);
}
