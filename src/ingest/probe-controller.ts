/**
 * Live control of one probe family: settings become writes to the object's
 * maps (config entry, filter sets) and attach/detach of its programs. Never a
 * reload: program ids stay the same; the generation in records advances.
 */
import { BpfError, ConfigError } from '../common/errors.js';
import { cgroup2Root, type CgroupResolver } from './cgroup-resolver.js';
import { inCgroupScope, type CgroupScope } from './cgroup-scope.js';
import type { ProbeFamily as FamilySpec } from '../families/registry.js';
import {
  DROP_REASON_MAX,
  DROP_REASON_NAMES,
  FILTER_SETS,
  FOCUS_LAYOUT,
  FilterBit,
  PATH_PREFIX_LEN,
  PROBE_CONFIG_LAYOUT,
  SET_ALLOW,
  fieldOffset,
  SET_DENY,
  SK_LOST_NAMES,
} from '../wire/layout.js';
import { toBpfError, type NativeBpfObject } from './native.js';
import {
  normalizePathPrefix,
  type FocusSettings,
  type ProbeSettings,
} from '../wire/probe-settings.js';

export interface ProbeState {
  probe: string;
  description: string;
  enabled: boolean;
  attached: boolean;
  /** Programs attached whatever the settings (FamilySpec.alwaysAttached), while attached. */
  always_attached: string[];
  programIds: number[];
  generation: number;
  settings: ProbeSettings;
  /** Events the kernel emitted since load. */
  emitted: number;
  /**
   * Events the kernel did not emit, by reason; the tcp probe adds `socket_evicted`
   * (a new socket took the table way of the oldest: its close goes unreported) and
   * `socket_claim_lost` (racing claims took every way).
   */
  drops: Record<string, number>;
  /** Map writes that failed (each one rolled the settings back), by map, since load. */
  map_update_failures: Record<string, number>;
  /** The node's overload factor in force (1 = none): kernel sample_n = min(1e6, sample_n * overload_n). */
  overload_n: number;
  /** Baseline sample_n in the kernel, overload included. */
  effective_sample_n: number;
  /** Focused cgroups in the kernel's tf_focus map (distinct cgroup ids). */
  focus_count: number;
  /** The focuses in force, by the key they were given with, with the cgroup id each resolved to. */
  focus: Record<string, FocusSettings & { cgroup_id: string; effective_sample_n: number }>;
}

/** Largest sample_n the kernel takes (as the settings' bound). */
const MAX_SAMPLE_N = 1_000_000;

/** The sample_n the kernel applies under an overload factor. */
export function overloadSampleN(sampleN: number, overloadN: number): number {
  return Math.min(MAX_SAMPLE_N, Math.max(1, sampleN) * overloadN);
}

/** struct tf_focus, the value of a probe's tf_focus map. */
export function encodeFocus(f: {
  sample_n: number;
  min_duration_ns: bigint;
  slow_ns: bigint;
}): Buffer {
  const L = FOCUS_LAYOUT;
  const b = Buffer.alloc(L.size);
  b.writeUInt32LE(f.sample_n, fieldOffset(L, 'sample_n'));
  b.writeBigUInt64LE(f.min_duration_ns, fieldOffset(L, 'min_duration_ns'));
  b.writeBigUInt64LE(f.slow_ns, fieldOffset(L, 'slow_ns'));
  return b;
}

const msToNs = (ms: number): bigint => BigInt(Math.round(ms * 1e6));

/** struct tf_probe_config, the value of a probe's tf_config[0]. */
export interface ProbeConfigValue {
  enabled: boolean;
  generation: number;
  /** Keep 1 in N. Default 1. */
  sample_n?: number;
  /** TF_FILTER_* bits. Default 0. */
  filter_mask?: number;
  /** Default 0. */
  min_duration_ns?: bigint;
  /** Default 0. */
  slow_ns?: bigint;
  /** Entries in the tf_focus map. Default 0. */
  focus_count?: number;
  /** The node's cgroup scope (bpf/control.h): only this cgroup and its descendants. Default none (whole host). */
  scope?: { id: bigint; level: number };
}

/** Encodes a tf_config value at the offsets of PROBE_CONFIG_LAYOUT (tests and benches write it too). */
export function encodeProbeConfig(v: ProbeConfigValue): Buffer {
  const L = PROBE_CONFIG_LAYOUT;
  const b = Buffer.alloc(L.size);
  b.writeUInt32LE(v.enabled ? 1 : 0, fieldOffset(L, 'enabled'));
  b.writeUInt32LE(v.generation, fieldOffset(L, 'generation'));
  b.writeUInt32LE(v.sample_n ?? 1, fieldOffset(L, 'sample_n'));
  b.writeUInt32LE(v.filter_mask ?? 0, fieldOffset(L, 'filter_mask'));
  b.writeBigUInt64LE(v.min_duration_ns ?? 0n, fieldOffset(L, 'min_duration_ns'));
  b.writeBigUInt64LE(v.slow_ns ?? 0n, fieldOffset(L, 'slow_ns'));
  b.writeUInt32LE(v.focus_count ?? 0, fieldOffset(L, 'focus_count'));
  b.writeUInt32LE(v.scope?.level ?? 0, fieldOffset(L, 'scope_level'));
  b.writeBigUInt64LE(v.scope?.id ?? 0n, fieldOffset(L, 'scope_cgroup_id'));
  return b;
}

type SetName = 'tf_set_cgroup' | 'tf_set_pid' | 'tf_set_port' | 'tf_set_comm' | 'tf_set_path';

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}
function u64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
}
function comm(s: string): Buffer {
  const b = Buffer.alloc(16);
  b.write(s, 0, 15, 'utf8');
  return b;
}
function pathKey(prefix: string): Buffer {
  // Settings come normalised from the schema; a prefix that is not is refused, not guessed at.
  const normal = normalizePathPrefix(prefix);
  if (normal !== prefix)
    throw new ConfigError(
      `path prefix "${prefix}" is not normalised (the kernel compares resolved paths): use "${normal}"`,
      'filters.path_prefix',
    );
  const bytes = Buffer.from(prefix, 'utf8');
  const b = Buffer.alloc(4 + PATH_PREFIX_LEN);
  b.writeUInt32LE(bytes.length * 8, 0);
  bytes.copy(b, 4);
  return b;
}

export class ProbeController {
  private generation = 0;
  private settings: ProbeSettings;
  /** What each filter set map holds now: hex key -> value bits. */
  private readonly sets = new Map<SetName, Map<string, number>>();
  /** Optional programs this kernel cannot attach. */
  private readonly unavailable = new Set<string>();
  /** What the tf_focus map holds now: hex cgroup id -> hex value. */
  private focusEntries = new Map<string, string>();
  /** Focus key -> cgroup id, as last applied. */
  private focusIds = new Map<string, bigint>();
  /** The node's overload sampling factor (1 = none). */
  private overloadN = 1;
  /** Failed map writes by map. */
  private readonly mapFailures: Record<string, number> = {};

  constructor(
    readonly spec: FamilySpec,
    private readonly obj: NativeBpfObject,
    private readonly cgroups: CgroupResolver,
    initial: ProbeSettings,
    /** The node's cgroup scope, fixed for the object's life; none: the whole host. */
    private readonly scope?: CgroupScope,
  ) {
    this.settings = initial;
  }

  get currentGeneration(): number {
    return this.generation;
  }

  get current(): ProbeSettings {
    return this.settings;
  }

  /**
   * The node's own overload sampling: the kernel keeps 1 in
   * min(1e6, sample_n * n) for the baseline and for every focus. The
   * configured settings stay as they are (state().settings); state() reports
   * `overload_n`. 1 turns it off.
   */
  setOverloadFactor(n: number): ProbeState {
    if (!Number.isInteger(n) || n < 1 || n > MAX_SAMPLE_N)
      throw new ConfigError(
        `overload factor ${n} is not an integer in 1..${MAX_SAMPLE_N}`,
        'overload_n',
      );
    if (n === this.overloadN) return this.state();
    this.overloadN = n;
    return this.apply(this.settings);
  }

  get overloadFactor(): number {
    return this.overloadN;
  }

  /** Applies settings: filter sets and focuses, then the config entry, then attach or detach. */
  apply(next: ProbeSettings): ProbeState {
    const desired = this.desiredSets(next);
    const focus = this.desiredFocus(next);
    let mask = 0;
    const bit = (cond: boolean, b: number): void => {
      if (cond) mask |= b;
    };
    const f = next.filters;
    bit(f.cgroup.allow.length > 0, FilterBit.ALLOW_CGROUP);
    bit(f.cgroup.deny.length > 0, FilterBit.DENY_CGROUP);
    bit(f.pid.allow.length > 0, FilterBit.ALLOW_PID);
    bit(f.pid.deny.length > 0, FilterBit.DENY_PID);
    bit(f.port.allow.length > 0, FilterBit.ALLOW_PORT);
    bit(f.port.deny.length > 0, FilterBit.DENY_PORT);
    bit(f.comm.allow.length > 0, FilterBit.ALLOW_COMM);
    bit(f.comm.deny.length > 0, FilterBit.DENY_COMM);
    bit(f.path_prefix.allow.length > 0, FilterBit.ALLOW_PATH);
    bit(f.path_prefix.deny.length > 0, FilterBit.DENY_PATH);

    // Refused whole, before any write, when a set cannot fit its map (ids resolved, so a
    // cgroup given by path and by id counts once).
    for (const { map, maxEntries } of Object.values(FILTER_SETS)) {
      const n = desired.get(map)?.size ?? 0;
      if (n > maxEntries)
        throw new ConfigError(
          `${n} entries for the kernel map ${map}, which holds ${maxEntries} (allow and deny together)`,
          'filters',
        );
    }
    // Every write until the config switch is journaled: a failure midway restores what the
    // maps held, so the kernel holds nothing the controller does not track.
    const journal: Array<{ map: string; key: Buffer; prev: Buffer | null }> = [];
    // `prev` comes from what the controller tracks (an LPM lookup would match a shorter prefix).
    const write = (map: string, key: Buffer, value: Buffer, prev: Buffer | null): void => {
      try {
        this.obj.mapUpdate(map, key, value);
      } catch (err) {
        this.mapFailures[map] = (this.mapFailures[map] ?? 0) + 1;
        this.rollback(journal);
        const e = toBpfError(err);
        if (!(e instanceof BpfError)) throw e;
        throw new BpfError(
          `${this.spec.name}: update of map ${map} failed (${e.code}); the probe keeps its previous settings`,
          e.step,
          e.errno,
          e.code,
          e.object,
          { cause: e },
        );
      }
      journal.push({ map, key, prev });
    };
    const remove = (map: string, key: Buffer, prev: Buffer): void => {
      try {
        this.obj.mapDelete(map, key);
      } catch (err) {
        this.mapFailures[map] = (this.mapFailures[map] ?? 0) + 1;
        this.rollback(journal);
        throw err;
      }
      journal.push({ map, key, prev });
    };
    // New members first, so a set is complete before its bit turns on.
    for (const [map, entries] of desired) {
      const have = this.sets.get(map) ?? new Map<string, number>();
      let added = 0;
      for (const hex of entries.keys()) if (!have.has(hex)) added++;
      const limit = Object.values(FILTER_SETS).find((d) => d.map === map)?.maxEntries ?? Infinity;
      if (have.size + added > limit) {
        // No room for new members beside the old ones: stale members go first.
        for (const [hex, old] of have)
          if (!entries.has(hex)) remove(map, Buffer.from(hex, 'hex'), Buffer.from([old]));
      }
      for (const [hex, value] of entries) {
        const old = have.get(hex);
        if (old !== value)
          write(
            map,
            Buffer.from(hex, 'hex'),
            Buffer.from([value]),
            old === undefined ? null : Buffer.from([old]),
          );
      }
    }
    // New and changed focuses first: the count never covers an entry not yet written.
    for (const [hex, value] of focus.entries) {
      const old = this.focusEntries.get(hex);
      if (old !== value)
        write(
          'tf_focus',
          Buffer.from(hex, 'hex'),
          Buffer.from(value, 'hex'),
          old === undefined ? null : Buffer.from(old, 'hex'),
        );
    }
    const active = next.enabled || focus.entries.size > 0;
    const cfg = encodeProbeConfig({
      enabled: next.enabled,
      generation: this.generation + 1,
      sample_n: overloadSampleN(next.sample_n, this.overloadN),
      filter_mask: mask,
      min_duration_ns: msToNs(next.min_duration_ms),
      slow_ns: msToNs(next.slow_ms),
      focus_count: focus.entries.size,
      scope: this.scope,
    });
    write('tf_config', u32(0), cfg, this.obj.mapLookup('tf_config', u32(0)));
    this.generation++;
    if (!active) this.detachAll();
    this.focusEntries = this.deleteStale('tf_focus', this.focusEntries, focus.entries);
    this.focusIds = focus.ids;
    // Stale members last, once the config no longer relies on them.
    for (const [map, entries] of desired)
      this.sets.set(map, this.deleteStale(map, this.sets.get(map) ?? new Map(), entries));
    // Off: only the always-attached programs (a steady-state signal) stay.
    const always = this.spec.alwaysAttached ?? [];
    for (const p of this.obj.programs()) {
      if (this.unavailable.has(p.name)) continue;
      if (!active && !always.includes(p.name)) continue;
      try {
        if (this.spec.attachToCgroupRoot) {
          const root = cgroup2Root();
          if (!root) throw new Error(`${this.spec.name}: no cgroup v2 mount to attach to`);
          this.obj.attach(p.name, root);
        } else {
          this.obj.attach(p.name);
        }
      } catch (err) {
        if (!this.spec.optionalPrograms?.includes(p.name)) throw err;
        this.unavailable.add(p.name); // e.g. no sys_enter_open tracepoint on this architecture
      }
    }
    this.settings = next;
    return this.state();
  }

  /** Restores journaled writes, newest first; a restore that fails too is counted. */
  private rollback(journal: Array<{ map: string; key: Buffer; prev: Buffer | null }>): void {
    for (const { map, key, prev } of journal.reverse()) {
      try {
        if (prev) this.obj.mapUpdate(map, key, prev);
        else this.obj.mapDelete(map, key);
      } catch {
        this.mapFailures[map] = (this.mapFailures[map] ?? 0) + 1;
      }
    }
  }

  /**
   * Deletes the keys of `have` that `want` lacks. A delete that fails is counted and its
   * key stays tracked (retried on the next apply), so no kernel entry goes untracked.
   */
  private deleteStale<V>(map: string, have: Map<string, V>, want: Map<string, V>): Map<string, V> {
    const out = new Map(want);
    for (const [hex, v] of have) {
      if (want.has(hex)) continue;
      try {
        this.obj.mapDelete(map, Buffer.from(hex, 'hex'));
      } catch {
        this.mapFailures[map] = (this.mapFailures[map] ?? 0) + 1;
        out.set(hex, v);
      }
    }
    return out;
  }

  /** Sockets of this probe whose close goes unreported, by SK_LOST_NAMES (tcp only; {} elsewhere). */
  private socketLosses(): Record<string, number> {
    if (!this.obj.maps().some((m) => m.name === 'tf_sk_lost')) return {};
    const c = this.obj.sumPercpuCounters('tf_sk_lost');
    return Object.fromEntries(SK_LOST_NAMES.map((n, i) => [n, Number(c[i] ?? 0n)]));
  }

  /** The family's own loss counters (FamilySpec.lossCounters), by name. */
  private familyLosses(): Record<string, number> {
    const spec = this.spec.lossCounters;
    if (!spec) return {};
    const c = this.obj.sumPercpuCounters(spec.map);
    const out: Record<string, number> = {};
    spec.names.forEach((n, i) => {
      if (n) out[n] = Number(c[i] ?? 0n);
    });
    return out;
  }

  /** Per-cgroup focuses in force in the kernel (distinct cgroup ids). */
  get focusCount(): number {
    return this.focusEntries.size;
  }

  /** The kernel's counters of this probe since load: records emitted and drops by reason (DROP_REASON_NAMES order). */
  counters(): { emitted: number; drops: number[] } {
    const d = this.obj.sumPercpuCounters('tf_drops');
    const e = this.obj.sumPercpuCounters('tf_emitted');
    const drops: number[] = [];
    for (let r = 0; r < DROP_REASON_MAX; r++)
      drops.push(Number(d[this.spec.probeId * DROP_REASON_MAX + r] ?? 0n));
    return { emitted: Number(e[this.spec.probeId] ?? 0n), drops };
  }

  state(): ProbeState {
    const programs = this.obj.programs().filter((p) => !this.unavailable.has(p.name));
    const counters = this.obj.sumPercpuCounters('tf_drops');
    const emitted = this.obj.sumPercpuCounters('tf_emitted');
    const drops: Record<string, number> = {};
    for (let r = 0; r < DROP_REASON_MAX; r++) {
      drops[DROP_REASON_NAMES[r] ?? String(r)] = Number(
        counters[this.spec.probeId * DROP_REASON_MAX + r] ?? 0n,
      );
    }
    Object.assign(drops, this.socketLosses(), this.familyLosses());
    return {
      probe: this.spec.name,
      description: this.spec.description,
      enabled: this.settings.enabled,
      attached: programs.length > 0 && programs.every((p) => p.attached),
      always_attached: programs
        .filter((p) => p.attached && this.spec.alwaysAttached?.includes(p.name))
        .map((p) => p.name),
      programIds: programs.map((p) => p.id),
      generation: this.generation,
      settings: this.settings,
      emitted: Number(emitted[this.spec.probeId] ?? 0n),
      drops,
      map_update_failures: { ...this.mapFailures },
      overload_n: this.overloadN,
      effective_sample_n: overloadSampleN(this.settings.sample_n, this.overloadN),
      focus_count: this.focusEntries.size,
      focus: Object.fromEntries(
        Object.entries(this.settings.focus).map(([key, f]) => [
          key,
          {
            ...f,
            cgroup_id: String(this.focusIds.get(key) ?? ''),
            effective_sample_n: overloadSampleN(f.sample_n, this.overloadN),
          },
        ]),
      ),
    };
  }

  /** The tf_focus entries of these settings: hex cgroup id -> hex value (a later key for the same cgroup wins). */
  private desiredFocus(s: ProbeSettings): {
    entries: Map<string, string>;
    ids: Map<string, bigint>;
  } {
    const entries = new Map<string, string>();
    const ids = new Map<string, bigint>();
    for (const [key, f] of Object.entries(s.focus)) {
      const id = /^[0-9]+$/.test(key) ? BigInt(key) : this.cgroupId(key, `focus.${key}`);
      this.checkScope(key, id);
      ids.set(key, id);
      const value = encodeFocus({
        sample_n: overloadSampleN(f.sample_n, this.overloadN),
        min_duration_ns: msToNs(f.min_duration_ms),
        slow_ns: msToNs(f.slow_ms),
      });
      entries.set(u64(id).toString('hex'), value.toString('hex'));
    }
    return { entries, ids };
  }

  /**
   * A focus outside the node's scope would collect nothing here (the kernel checks the
   * scope first): it belongs to another node, and is refused naming both.
   */
  private checkScope(key: string, id: bigint): void {
    const scope = this.scope;
    if (!scope) return;
    const path = /^[0-9]+$/.test(key)
      ? this.cgroups.resolve(id)?.path
      : `/${key.replace(/^\/+/, '')}`;
    if (path === undefined || !inCgroupScope(path, scope))
      throw new ConfigError(
        `focus on cgroup ${key}${path && path !== key ? ` (${path})` : ''} is outside this node's cgroup scope ${scope.path}`,
        `focus.${key}`,
      );
  }

  /** Detaches every program but the always-attached ones. */
  private detachAll(): void {
    const always = this.spec.alwaysAttached ?? [];
    for (const p of this.obj.programs()) if (!always.includes(p.name)) this.obj.detach(p.name);
  }

  private desiredSets(s: ProbeSettings): Map<SetName, Map<string, number>> {
    const out = new Map<SetName, Map<string, number>>();
    const add = (map: SetName, key: Buffer, bitValue: number): void => {
      const m = out.get(map) ?? new Map<string, number>();
      const hex = key.toString('hex');
      m.set(hex, (m.get(hex) ?? 0) | bitValue);
      out.set(map, m);
    };
    for (const map of [
      'tf_set_cgroup',
      'tf_set_pid',
      'tf_set_port',
      'tf_set_comm',
      'tf_set_path',
    ] as const)
      out.set(map, new Map());
    const f = s.filters;
    for (const [list, bits] of [
      [f.cgroup.allow, SET_ALLOW],
      [f.cgroup.deny, SET_DENY],
    ] as const) {
      for (const c of list) add('tf_set_cgroup', u64(this.cgroupId(c)), bits);
    }
    for (const p of f.pid.allow) add('tf_set_pid', u32(p), SET_ALLOW);
    for (const p of f.pid.deny) add('tf_set_pid', u32(p), SET_DENY);
    for (const p of f.port.allow) add('tf_set_port', u32(p), SET_ALLOW);
    for (const p of f.port.deny) add('tf_set_port', u32(p), SET_DENY);
    for (const c of f.comm.allow) add('tf_set_comm', comm(c), SET_ALLOW);
    for (const c of f.comm.deny) add('tf_set_comm', comm(c), SET_DENY);
    for (const p of f.path_prefix.allow) add('tf_set_path', pathKey(p), SET_ALLOW);
    for (const p of f.path_prefix.deny) add('tf_set_path', pathKey(p), SET_DENY);
    return out;
  }

  private cgroupId(c: string | number, where = 'filters.cgroup'): bigint {
    if (typeof c === 'number') return BigInt(c);
    const id = this.cgroups.idOf(c);
    if (id === undefined)
      throw new ConfigError(`cgroup ${c} does not exist under the cgroup v2 root`, where);
    return id;
  }
}
