/**
 * The registry (src/families/registry.ts) is the one list of families: every
 * op of bpf/events.h belongs to one of them (or to the frame), every family's
 * records decode and aggregate into its own rows and columns, and every list
 * that names families or metrics (feature schema, detector defaults, rules,
 * agent metrics, probe enums, docs) is derived from it or agrees with it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/common/paths.js';
import {
  CHECKED_LAYOUTS,
  FAMILIES,
  OP_TYPE,
  PROBE_FAMILIES,
  PROBE_NAMES,
  PROBE_OF_OP,
  RECORD_SIZE_BY_OP,
  SOURCE_NAMES,
  USER_SPACE_SOURCES,
} from '../../src/families/registry.js';
import { CORE_OP_TYPES, HEADER_LAYOUT, fieldOffset } from '../../src/wire/layout.js';
import { TF_ENUMS, TF_STRUCTS } from '../../src/wire/layout.generated.js';
import { decodeFrameEvents, encodeFrame } from '../../src/ingest/index.js';
import { probeNameSchema } from '../../src/wire/probe-settings.js';
import { summaryPlan } from '../../src/ingest/summaries.js';
import type { Family } from '../../src/families/family.js';
import { WindowAggregator } from '../../src/features/aggregator.js';
import { featureSchema } from '../../src/features/arrow-batch.js';
import {
  DERIVED_METRICS,
  H,
  HISTOGRAMS,
  HIST_SLOTS,
  NHIST,
  NSUM,
  QUANTILE_COLUMNS,
  S,
  SUM_COLUMNS,
} from '../../src/features/columns.js';
import { DEFAULT_METRICS } from '../../src/features/anomaly-detector.js';
import { DEFAULT_RULES } from '../../src/feedback/thresholds.js';
import { METRICS, metricProbe } from '../../src/agent/feature-math.js';

const families: readonly Family[] = FAMILIES;
const CGROUP = 4242n;

/** The metrics a family's rows carry: its sums, quantiles and derived metrics. */
function metricsOf(f: Family): string[] {
  return [
    ...f.columns.sums,
    ...f.columns.quantiles.map((q) => q.name),
    ...Object.keys(f.columns.derived ?? {}),
  ];
}

/** One record of `op` with every field filled (cgroup CGROUP, the rest from a seed). */
function record(op: number, layout: Family['ops'][number]['layout'], seed: number): Buffer {
  const b = Buffer.alloc(layout.size);
  b.writeUInt8(op, fieldOffset(HEADER_LAYOUT, 'op'));
  b.writeUInt32LE(layout.size, fieldOffset(HEADER_LAYOUT, 'size'));
  b.writeBigUInt64LE(1_000_000n, fieldOffset(HEADER_LAYOUT, 'ktime_ns'));
  b.writeUInt32LE(1, fieldOffset(HEADER_LAYOUT, 'sample_weight'));
  let x = seed;
  const next = (): number => (x = (x * 1103515245 + 12345) % 2 ** 31);
  for (const f of layout.fields) {
    if (f.name === 'hdr' || f.name.startsWith('pad')) continue;
    const width = f.size / f.count;
    for (let i = 0; i < f.count; i++) {
      const at = f.offset + i * width;
      if (f.kind === 'char') {
        b.write(`${f.name}-${next() % 100}`.slice(0, f.size - 1), f.offset, 'latin1');
        break;
      }
      if (f.name === 'cgroup_id') b.writeBigUInt64LE(CGROUP, at);
      else if (f.name === 'family') b.writeUInt16LE(2, at);
      // Signed fields (results, exit codes) negative in every other record: both branches run.
      else if (f.kind === 's32' || f.kind === 's64') {
        const v = (seed % 2 === 0 ? -1 : 1) * (next() % 1000);
        if (width === 8) b.writeBigInt64LE(BigInt(v), at);
        else b.writeInt32LE(v, at);
      } else if (width === 8) b.writeBigUInt64LE(BigInt(1 + (next() % 1_000_000)), at);
      else if (width === 4) b.writeUInt32LE(next() % 1000, at);
      else if (width === 2) b.writeUInt16LE(next() % 1000, at);
      else b.writeUInt8(next() % 8, at);
    }
  }
  return b;
}

function frameOf(chunks: Buffer[], nowMs: number): Uint8Array {
  return encodeFrame({
    node: 'registry-test',
    // ktime 1 ms after boot: the records fall at nowMs.
    bootTimeNs: BigInt(nowMs - 1) * 1_000_000n,
    sequence: 1n,
    chunks,
    eventCount: chunks.length,
  });
}

describe('family registry', () => {
  it('every op of bpf/events.h belongs to exactly one family, or to the frame', () => {
    for (const [name, op] of Object.entries(TF_ENUMS.tf_op)) {
      const owners = families.filter((f) => f.ops.some((o) => o.op === op)).map((f) => f.name);
      const core = CORE_OP_TYPES.has(op) ? ['frame'] : [];
      expect([name, [...owners, ...core]]).toEqual([name, [expect.any(String)]]);
    }
    // And no family claims an op events.h does not have.
    const known = new Set<number>(Object.values(TF_ENUMS.tf_op));
    for (const f of families) for (const o of f.ops) expect(known.has(o.op)).toBe(true);
    expect(OP_TYPE.size).toBe(known.size);
  });

  it('every probe id of bpf/events.h is one family, named after it, with its program', () => {
    const ids = Object.entries(TF_ENUMS.tf_probe).filter(([n]) => n !== 'TF_PROBE_MAX');
    expect(SOURCE_NAMES).toHaveLength(ids.length);
    for (const [name, id] of ids) {
      const f = families.find((x) => x.probeId === id);
      expect([name, f?.name.toUpperCase()]).toEqual([name, name.slice('TF_PROBE_'.length)]);
      expect(SOURCE_NAMES[id]).toBe(f?.name);
    }
    for (const f of families) {
      if (f.object === null) {
        expect([...USER_SPACE_SOURCES]).toContain(f.name);
        continue;
      }
      // The Makefile builds bpf/<object>.bpf.c into bpf/.output/<object>.bpf.o.
      expect(existsSync(join(repoRoot, 'bpf', `${f.object}.bpf.c`)), f.object).toBe(true);
      expect(PROBE_NAMES).toContain(f.name);
    }
    expect([...probeNameSchema.options]).toEqual([...PROBE_NAMES]);
    expect(PROBE_FAMILIES.map((f) => f.name)).toEqual(PROBE_NAMES);
  });

  it("every family op's layout is its struct in the generated layouts, checked against BTF", () => {
    const checked = new Set(CHECKED_LAYOUTS.map((l) => l.struct));
    for (const f of families) {
      for (const o of f.ops) {
        const s = TF_STRUCTS[o.layout.struct as keyof typeof TF_STRUCTS];
        expect(s, o.layout.struct).toBeDefined();
        expect([o.type, o.layout.op, o.layout.size]).toEqual([o.type, o.op, s.size]);
        expect(o.type.length).toBeGreaterThan(0);
        expect(RECORD_SIZE_BY_OP.get(o.op)).toBe(s.size);
        expect(PROBE_OF_OP.get(o.op)).toBe(f.name);
        expect(checked.has(o.layout.struct)).toBe(true);
      }
      for (const l of f.layouts ?? []) expect(checked.has(l.struct)).toBe(true);
    }
  });

  it("every family's summaries fill each field of their record from a field of the map entry", () => {
    for (const f of families) {
      for (const sm of f.summaries) {
        expect(f.ops.map((o) => o.op)).toContain(sm.layout.op);
        const plan = summaryPlan(sm); // throws on a field missing or of another size
        const filled = new Set(plan.steps.map((st) => st.to));
        for (const field of sm.layout.fields) {
          if (field.name === 'hdr' || field.name.startsWith('pad')) continue;
          expect([sm.map, field.name, filled.has(field.offset)]).toEqual([
            sm.map,
            field.name,
            true,
          ]);
        }
      }
    }
  });

  it("every family's ops decode by field name into its events", () => {
    const now = Date.now();
    for (const f of families) {
      const chunks = f.ops.map((o, i) => record(o.op, o.layout, i + 1));
      const events = decodeFrameEvents(frameOf(chunks, now));
      expect(events.map((e) => [e.type, e.probe])).toEqual(f.ops.map((o) => [o.type, f.name]));
      for (const e of events) {
        expect(e.attributes['cgroup.id'], e.type).toBe(CGROUP.toString());
        // Beyond the cgroup and host: the record's own fields.
        expect(Object.keys(e.attributes).length, e.type).toBeGreaterThan(2);
      }
    }
  });

  it('every family owns its columns: in the feature schema, in order, fed only by its records', () => {
    const schema = featureSchema(10_000).fields.map((x) => x.name);
    const owner = new Map<string, string>();
    for (const f of families) {
      for (const c of [...metricsOf(f), ...f.columns.histograms]) {
        expect([c, owner.get(c)]).toEqual([c, undefined]);
        owner.set(c, f.name);
      }
      for (const q of f.columns.quantiles) expect(f.columns.histograms).toContain(q.hist);
      for (const c of f.columns.sums) expect(schema).toContain(c);
      for (const q of f.columns.quantiles) expect(schema).toContain(q.name);
      for (const h of f.columns.histograms) expect(HISTOGRAMS).toContain(h);
      for (const [d, parts] of Object.entries(f.columns.derived ?? {})) {
        expect(DERIVED_METRICS.get(d)).toEqual(parts);
        for (const p of parts) expect(f.columns.sums).toContain(p);
      }
    }
    // The schema's sum columns are `events` and the families' own, nothing else.
    expect([...SUM_COLUMNS]).toEqual(['events', ...families.flatMap((f) => f.columns.sums)]);
    expect(QUANTILE_COLUMNS.map((q) => q.name)).toEqual(
      families.flatMap((f) => f.columns.quantiles.map((q) => q.name)),
    );
    expect(NHIST).toBe(HISTOGRAMS.length * HIST_SLOTS);

    // Each family's records land in a row of its source and touch its columns only.
    const now = Date.now();
    for (const f of families) {
      const chunks = f.ops.flatMap((o, i) =>
        [1, 2, 3].map((k) => record(o.op, o.layout, k * 31 + i)),
      );
      const agg = new WindowAggregator({}, {}, now);
      expect(agg.ingestFrame(frameOf(chunks, now), 0, 0, now)).toBe(chunks.length);
      const [w] = agg.closeDue(now + 60_000, true);
      expect(w?.rows, f.name).toBe(1);
      expect(w!.probeIds[0]).toBe(f.probeId);
      expect(w!.sums[S.events]).toBe(chunks.length);
      const own = new Set<number>(f.columns.sums.map((c) => S[c as keyof typeof S]));
      const touched = SUM_COLUMNS.filter((c, i) => c !== 'events' && w!.sums[i] !== 0);
      expect(touched.length, `${f.name}: no column of its own moved`).toBeGreaterThan(0);
      for (const c of touched) expect([f.name, c, own.has(S[c])]).toEqual([f.name, c, true]);
      const ownHist = new Set(f.columns.histograms.map((h) => H[h as keyof typeof H]));
      for (let i = 0; i < NHIST; i++) {
        if (w!.hists[i] === 0) continue;
        const base = i - (i % HIST_SLOTS);
        expect([f.name, ownHist.has(base)]).toEqual([f.name, true]);
      }
      expect(w!.sums).toHaveLength(NSUM);
    }
  });

  it('every default anomaly metric and rule comes from a family, on that family’s rows', () => {
    const known = new Set(['events_per_second', ...SUM_COLUMNS, ...DERIVED_METRICS.keys()]);
    expect(DEFAULT_METRICS.length).toBe(families.reduce((n, f) => n + f.anomalyMetrics.length, 0));
    for (const m of DEFAULT_METRICS) {
      const f = families.find((x) => x.name === m.probe)!;
      expect(f.anomalyMetrics.some((a) => a.metric === m.metric)).toBe(true);
      // events_per_second is every row's; any other metric is the family's own.
      if (m.metric !== 'events_per_second') expect(metricsOf(f)).toContain(m.metric);
      expect(known.has(m.metric) || QUANTILE_COLUMNS.some((q) => q.name === m.metric)).toBe(true);
    }
    expect(DEFAULT_RULES.length).toBe(families.reduce((n, f) => n + f.rules.length, 0));
    for (const r of DEFAULT_RULES) {
      const f = families.find((x) => x.name === r.source)!;
      const metrics = typeof r.metric === 'string' ? [r.metric] : r.metric;
      for (const m of metrics)
        expect([r.name, metricsOf(f)]).toEqual([r.name, expect.arrayContaining([m])]);
      expect(PROBE_NAMES).toContain(r.probe);
    }
  });

  it('the agent knows every family metric and which family carries it', () => {
    for (const f of families) {
      for (const m of metricsOf(f)) {
        expect(METRICS).toContain(m);
        expect([m, metricProbe(m)]).toEqual([m, f.name]);
      }
      if (f.agent.countMetric) expect(f.columns.sums).toContain(f.agent.countMetric);
      for (const m of f.agent.correlated ?? []) expect(metricsOf(f)).toContain(m);
      for (const [, m] of f.agent.metricPatterns ?? []) expect(metricsOf(f)).toContain(m);
      expect(f.description.length).toBeGreaterThan(10);
    }
  });

  it('docs/features.md names every source and every sum column', () => {
    const doc = readFileSync(join(repoRoot, 'docs/features.md'), 'utf8');
    for (const f of families) {
      expect(doc).toContain(`\`${f.name}\``);
      for (const c of f.columns.sums) expect(doc, c).toContain(`\`${c}\``);
    }
  });
});
