/**
 * Closed windows -> Apache Arrow RecordBatches, built with makeData on typed
 * arrays: strings dictionary-encoded, times timestamp[ns, UTC], the schema
 * version in the schema metadata.
 */
import {
  Dictionary,
  Field,
  Float64,
  Int32,
  RecordBatch,
  Schema,
  Struct,
  TimeUnit,
  Timestamp,
  Uint64,
  Utf8,
  makeData,
  vectorFromArray,
  type Data,
  type DataType,
} from 'apache-arrow';
import { parseCgroupPath } from '../wire/cgroup-path.js';
import { quantileAt } from '../wire/histogram.js';
import { PROBE_MAX } from '../wire/layout.js';
import { SOURCE_NAMES, USER_SPACE_SOURCES } from '../families/registry.js';
import type { ClosedWindow } from './aggregator.js';
import {
  COMPLETENESS_COLUMNS,
  FEATURE_SCHEMA_VERSION,
  H,
  HISTOGRAMS,
  HIST_SLOTS,
  NHIST,
  NPS,
  NSUM,
  PS,
  QUANTILE_COLUMNS,
  SUM_COLUMNS,
} from './columns.js';

const ts = new Timestamp(TimeUnit.NANOSECOND, 'UTC');
const dictType = (id: number): Dictionary<Utf8, Int32> =>
  new Dictionary(new Utf8(), new Int32(), id);

export function featureSchema(windowMs: number): Schema {
  const fields: Field[] = [
    new Field('window_start', ts, false),
    new Field('window_end', ts, false),
    new Field('node', dictType(0), false),
    new Field('workload', dictType(1), false),
    new Field('container_id', dictType(2), true),
    new Field('cgroup_id', new Uint64(), false),
    new Field('probe', dictType(3), false),
    new Field('events_per_second', new Float64(), false),
    ...SUM_COLUMNS.map((c) => new Field(c, new Float64(), false)),
    ...QUANTILE_COLUMNS.map((q) => new Field(q.name, new Float64(), true)),
    ...COMPLETENESS_COLUMNS.map((c) => new Field(c, new Float64(), false)),
  ];
  return new Schema(
    fields,
    new Map([
      ['tracefeed.schema_version', FEATURE_SCHEMA_VERSION],
      ['tracefeed.window_seconds', String(windowMs / 1000)],
      ['tracefeed.counts', 'weighted by sample_weight'],
      [
        'tracefeed.coverage_ratio',
        "(emitted - sink_dropped) / (emitted + ringbuf_full) of the row's probe on its node in the window; 1 when nothing was lost",
      ],
    ]),
  );
}

/** Dictionary-encodes strings: indices plus a dictionary vector. */
function dictionary(
  values: Array<string | null>,
  type: Dictionary<Utf8, Int32>,
): Data<Dictionary<Utf8, Int32>> {
  const index = new Map<string, number>();
  const dict: string[] = [];
  const idx = new Int32Array(values.length);
  let nulls = 0;
  const bitmap = new Uint8Array((values.length + 7) >> 3);
  values.forEach((v, i) => {
    if (v === null) {
      nulls++;
      return;
    }
    bitmap[i >> 3]! |= 1 << (i & 7);
    let k = index.get(v);
    if (k === undefined) {
      k = dict.length;
      dict.push(v);
      index.set(v, k);
    }
    idx[i] = k;
  });
  return makeData({
    type,
    length: values.length,
    data: idx,
    dictionary: vectorFromArray(dict, new Utf8()),
    nullCount: nulls,
    nullBitmap: nulls > 0 ? bitmap : undefined,
  });
}

function f64(data: Float64Array, nullBitmap?: Uint8Array, nullCount = 0): Data<Float64> {
  return makeData({ type: new Float64(), length: data.length, data, nullBitmap, nullCount });
}

/** The workload name of a row: the cgroup path, or `cgroup:<id>` when the node did not name it. */
export function workloadName(names: Map<number, string>, cgroupId: number): string {
  return names.get(cgroupId) ?? `cgroup:${cgroupId}`;
}

export interface FeatureRows {
  batch: RecordBatch;
  /** Row-oriented view of the same values (for anomaly evidence and tests); built on first call. */
  rows: () => Array<Record<string, string | number | null>>;
}

/** The completeness columns of a closed window (COMPLETENESS_COLUMNS order), from its per-probe stats. */
export function completenessColumns(w: ClosedWindow): Float64Array[] {
  const n = w.rows;
  const cols = COMPLETENESS_COLUMNS.map(() => new Float64Array(n));
  const [wmax, sampleN, overloadN, focus, ringFull, filtered, sampled, mapFull, sinkDropped, cov] =
    cols as [
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
    ];
  const p = w.probeStats;
  for (let r = 0; r < n; r++) {
    wmax[r] = (w.weightMax[r] as number) || 1;
    cov[r] = 1;
    const probe = w.probeIds[r] as number;
    const source = SOURCE_NAMES[probe];
    if (probe >= PROBE_MAX || !source || USER_SPACE_SOURCES.has(source)) continue; // cgroup: no ring
    const b = probe * NPS;
    sampleN[r] = p[b + PS.sample_n] as number;
    overloadN[r] = p[b + PS.overload_n] as number;
    focus[r] = p[b + PS.focus_count] as number;
    ringFull[r] = p[b + PS.ringbuf_full] as number;
    filtered[r] = p[b + PS.filtered] as number;
    sampled[r] = p[b + PS.sampled_out] as number;
    mapFull[r] = p[b + PS.map_full] as number;
    sinkDropped[r] = p[b + PS.sink_dropped] as number;
    const emitted = p[b + PS.emitted] as number;
    const delivered = Math.max(0, emitted - (sinkDropped[r] as number));
    const denom = emitted + (ringFull[r] as number);
    cov[r] = denom > 0 ? Math.min(1, delivered / denom) : 1;
  }
  return cols;
}

/** Builds one RecordBatch for a closed window of one node. */
export function buildWindowBatch(
  w: ClosedWindow,
  names: Map<number, string>,
  schema: Schema,
): FeatureRows {
  const n = w.rows;
  const seconds = (w.windowEndMs - w.windowStartMs) / 1000;
  const starts = new BigInt64Array(n).fill(BigInt(w.windowStartMs) * 1_000_000n);
  const ends = new BigInt64Array(n).fill(BigInt(w.windowEndMs) * 1_000_000n);
  const workloads: string[] = [];
  const containers: Array<string | null> = [];
  const containerOf = new Map<string, string | null>();
  const probes: string[] = [];
  const cgroups = new BigUint64Array(n);
  const eps = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    const id = w.cgroupIds[r] as number;
    const wl = workloadName(names, id);
    workloads.push(wl);
    let c = containerOf.get(wl);
    if (c === undefined) {
      c = parseCgroupPath(wl).containerId ?? null;
      containerOf.set(wl, c);
    }
    containers.push(c);
    probes.push(SOURCE_NAMES[w.probeIds[r] as number] ?? 'unknown');
    cgroups[r] = BigInt(id);
    eps[r] = (w.sums[r * NSUM] as number) / seconds;
  }
  const children: Data<DataType>[] = [
    makeData({ type: ts, length: n, data: starts }),
    makeData({ type: ts, length: n, data: ends }),
    dictionary(new Array<string>(n).fill(w.node), dictType(0)),
    dictionary(workloads, dictType(1)),
    dictionary(containers, dictType(2)),
    makeData({ type: new Uint64(), length: n, data: cgroups }),
    dictionary(probes, dictType(3)),
    f64(eps),
  ];
  const sumCols: Float64Array[] = [];
  for (let c = 0; c < NSUM; c++) {
    const col = new Float64Array(n);
    for (let r = 0; r < n; r++) col[r] = w.sums[r * NSUM + c] as number;
    sumCols.push(col);
    children.push(f64(col));
  }
  // Quantiles: one pass over each row's histogram answers all of its quantiles.
  const quantCols = QUANTILE_COLUMNS.map(() => ({
    col: new Float64Array(n),
    bitmap: new Uint8Array((n + 7) >> 3),
    nulls: 0,
  }));
  for (const hist of HISTOGRAMS) {
    const targets = QUANTILE_COLUMNS.map((q, i) => ({ q: q.q, i, hist: q.hist })).filter(
      (t) => t.hist === hist,
    );
    for (let r = 0; r < n; r++) {
      const base = r * NHIST + H[hist];
      let total = 0;
      for (let k = 0; k < HIST_SLOTS; k++) total += w.hists[base + k] as number;
      if (total === 0) {
        for (const t of targets) quantCols[t.i]!.nulls++;
        continue;
      }
      for (const t of targets) {
        const qc = quantCols[t.i]!;
        qc.col[r] = quantileAt(w.hists, base, HIST_SLOTS, total, t.q);
        qc.bitmap[r >> 3]! |= 1 << (r & 7);
      }
    }
  }
  for (const qc of quantCols)
    children.push(f64(qc.col, qc.nulls > 0 ? qc.bitmap : undefined, qc.nulls));
  const compCols = completenessColumns(w);
  for (const col of compCols) children.push(f64(col));
  const batch = new RecordBatch(
    schema,
    makeData({ type: new Struct(schema.fields), length: n, children, nullCount: 0 }),
  );
  let cached: ReturnType<FeatureRows['rows']> | undefined;
  const rows = (): ReturnType<FeatureRows['rows']> => (cached ??= rowView());
  const rowView = (): ReturnType<FeatureRows['rows']> => {
    const out: ReturnType<FeatureRows['rows']> = [];
    for (let r = 0; r < n; r++) {
      const row: Record<string, string | number | null> = {
        window_start: new Date(w.windowStartMs).toISOString(),
        window_end: new Date(w.windowEndMs).toISOString(),
        node: w.node,
        workload: workloads[r] as string,
        container_id: containers[r] ?? null,
        cgroup_id: String(w.cgroupIds[r]),
        probe: probes[r] as string,
        events_per_second: eps[r] as number,
      };
      SUM_COLUMNS.forEach((c, i) => (row[c] = sumCols[i]![r] as number));
      QUANTILE_COLUMNS.forEach((q, i) => {
        const { col, bitmap } = quantCols[i]!;
        row[q.name] = ((bitmap[r >> 3] as number) >> (r & 7)) & 1 ? (col[r] as number) : null;
      });
      COMPLETENESS_COLUMNS.forEach((c, i) => (row[c] = compCols[i]![r] as number));
      out.push(row);
    }
    return out;
  };
  return { batch, rows };
}
