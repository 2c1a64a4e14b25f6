/**
 * The families tracefeed ships, one line each, in `enum tf_probe` order (which
 * is also the order of their columns in a feature row). Everything that names
 * families (the decoder, the aggregator, the feature columns, the anomaly
 * detector, the feedback rules, the node agent, the CLI and the agent's tools)
 * reads this list. Adding a family: bpf/<name>.bpf.c; its record struct, ops
 * and probe id in bpf/events.h and the struct in bpf/layout.bpf.c (then
 * `npm run gen:layouts`); src/families/<name>/; its import and one line here;
 * its ops in the Python decoder and its columns in docs/features.md.
 * test/families/registry.test.ts names whatever is missing.
 */
import {
  CGROUP_INFO_LAYOUT,
  CORE_LAYOUTS,
  CORE_OP_TYPES,
  PROBE_MAX,
  type RecordLayout,
} from '../wire/layout.js';
import type { Family, FamilyOp } from './family.js';
import { PROCESS_FAMILY } from './process/index.js';
import { TCP_FAMILY } from './tcp/index.js';
import { SYSCALLS_FAMILY } from './syscalls/index.js';
import { FILE_FAMILY } from './file/index.js';
import { SCHED_FAMILY } from './sched/index.js';
import { CGROUP_FAMILY } from './cgroup/index.js';
import { DNS_FAMILY } from './dns/index.js';

export const FAMILIES = [
  PROCESS_FAMILY,
  TCP_FAMILY,
  SYSCALLS_FAMILY,
  FILE_FAMILY,
  SCHED_FAMILY,
  CGROUP_FAMILY,
  DNS_FAMILY,
] as const;

type AnyFamily = (typeof FAMILIES)[number];
/** Where a feature row's records come from: a family's name. */
export type SourceName = AnyFamily['name'];
/** A family with a BPF object: what the node agent loads and the probe settings name. */
export type ProbeFamily = Extract<AnyFamily, { object: string }>;
export type ProbeName = ProbeFamily['name'];
/** Every sum column of every family. */
export type FamilySumColumn = AnyFamily['columns']['sums'][number];
export type FamilyHistogram = AnyFamily['columns']['histograms'][number];

/** The families with a BPF object (bpf/.output/<object>.bpf.o), in registry order. */
export const PROBE_FAMILIES: readonly ProbeFamily[] = FAMILIES.filter(
  (f): f is ProbeFamily => f.object !== null,
);
/** Their names. */
export const PROBE_NAMES: readonly ProbeName[] = PROBE_FAMILIES.map((f) => f.name);

/** Source name by `enum tf_probe` value (the row's probe id). */
export const SOURCE_NAMES: readonly SourceName[] = (() => {
  const out: SourceName[] = [];
  for (const f of FAMILIES) {
    if (f.probeId >= PROBE_MAX || out[f.probeId] !== undefined)
      throw new Error(`family ${f.name}: probe id ${f.probeId} out of range or taken`);
    out[f.probeId] = f.name;
  }
  for (let i = 0; i < out.length; i++)
    if (out[i] === undefined) throw new Error(`no family has probe id ${i}`);
  return out;
})();
/** Sources read by the node agent from files, not by a kernel program (no ring, no probe stats). */
export const USER_SPACE_SOURCES: ReadonlySet<SourceName> = new Set(
  FAMILIES.filter((f) => f.object === null).map((f) => f.name),
);

/** The probe family of that name (one with a BPF object). */
export function familySpec(name: string): ProbeFamily | undefined {
  return PROBE_FAMILIES.find((f) => f.name === name);
}
/** The family or user-space source of that name. */
export function sourceOf(name: string): Family | undefined {
  return FAMILIES.find((f) => f.name === name);
}

/** Every op a family emits, with its family. */
export const FAMILY_OPS: ReadonlyArray<FamilyOp & { family: SourceName }> = FAMILIES.flatMap((f) =>
  f.ops.map((o) => ({ ...o, family: f.name })),
);
{
  const seen = new Map<number, string>();
  for (const o of FAMILY_OPS) {
    const other = seen.get(o.op) ?? (CORE_OP_TYPES.has(o.op) ? 'the frame' : undefined);
    if (other) throw new Error(`op ${o.op} (${o.type}) of ${o.family} is also ${other}'s`);
    seen.set(o.op, o.family);
  }
}

/** Event type name of each op, as decoders and features name it. */
export const OP_TYPE: ReadonlyMap<number, string> = new Map([
  ...FAMILY_OPS.map((o) => [o.op, o.type] as const),
  ...CORE_OP_TYPES,
]);

/** Record layouts of the family ops (tcp ops share one struct). */
export const RECORD_LAYOUTS: readonly RecordLayout[] = [
  ...FAMILY_OPS.map((o) => o.layout),
  CORE_LAYOUTS.PROBE_STATS,
];

/** Layouts checked against the BTF of the compiled objects. */
export const CHECKED_LAYOUTS: readonly RecordLayout[] = [
  ...Object.values(CORE_LAYOUTS),
  ...FAMILIES.flatMap((f) => [...f.ops.map((o) => o.layout), ...(f.layouts ?? [])]),
].filter((l, i, all) => all.findIndex((m) => m.struct === l.struct) === i);

/** Record size by op; undefined for an unknown op. */
export const RECORD_SIZE_BY_OP: ReadonlyMap<number, number> = new Map(
  RECORD_LAYOUTS.map((l) => [l.op, l.size]),
);

/**
 * Source of each op, used for per-probe counters and feature rows.
 * TF_OP_PROBE_STATS and TF_OP_CGROUP_INFO belong to none: the first describes
 * the probe named in its body, the second names a cgroup.
 */
export const PROBE_OF_OP: ReadonlyMap<number, SourceName> = new Map(
  FAMILY_OPS.map((o) => [o.op, o.family] as const),
);

/** Offset of the cgroup id in each op's record (absent: the op carries none). */
export const CGROUP_OFFSET_BY_OP: ReadonlyMap<number, number> = new Map(
  [...RECORD_LAYOUTS, CGROUP_INFO_LAYOUT].flatMap((l) => {
    const f = l.fields.find((x) => x.name === 'cgroup_id');
    return f ? [[l.op, f.offset] as const] : [];
  }),
);

/** Hot-path forms of the maps above, indexed by op (0..255). */
export const OpTable = {
  /** Offset of the cgroup id; 0 when the op carries none. */
  cgroupOffset: Uint8Array.from({ length: 256 }, (_, op) => CGROUP_OFFSET_BY_OP.get(op) ?? 0),
  /** Index into SOURCE_NAMES of the op's source; 255 when the op belongs to none. */
  probeIndex: Uint8Array.from({ length: 256 }, (_, op) => {
    const probe = PROBE_OF_OP.get(op);
    return probe === undefined ? 255 : SOURCE_NAMES.indexOf(probe);
  }),
} as const;
