/**
 * Live control of one probe family: settings become writes to the object's
 * maps (config entry, filter sets) and attach/detach of its programs. Never a
 * reload: program ids stay the same; the generation in records advances.
 */
import { ConfigError } from '../common/errors.js';
import type { CgroupResolver } from './cgroup-resolver.js';
import type { FamilySpec } from './families.js';
import {
  DROP_REASON_MAX,
  DROP_REASON_NAMES,
  FilterBit,
  PATH_PREFIX_LEN,
  PROBE_CONFIG_LAYOUT,
  SET_ALLOW,
  fieldOffset,
  SET_DENY,
} from './layout.js';
import type { NativeBpfObject } from './native.js';
import type { ProbeSettings } from './probe-settings.js';

export interface ProbeState {
  probe: string;
  description: string;
  enabled: boolean;
  attached: boolean;
  programIds: number[];
  generation: number;
  settings: ProbeSettings;
  /** Events the kernel emitted since load. */
  emitted: number;
  /** Events the kernel did not emit, by reason. */
  drops: Record<string, number>;
  /** Factor the node applied to sample_n itself under overload; 1 when none. */
  overload_n: number;
  /** sample_n the kernel applies: min(1_000_000, settings.sample_n * overload_n). */
  effective_sample_n: number;
}

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
  const bytes = Buffer.from(prefix, 'utf8');
  if (bytes.length > PATH_PREFIX_LEN)
    throw new ConfigError(
      `path prefix "${prefix}" is over ${PATH_PREFIX_LEN} bytes`,
      'filters.path_prefix',
    );
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
  /** The node's own overload sampling factor (setOverloadFactor); 1 when none. */
  private overloadFactor = 1;

  constructor(
    readonly spec: FamilySpec,
    private readonly obj: NativeBpfObject,
    private readonly cgroups: CgroupResolver,
    initial: ProbeSettings,
  ) {
    this.settings = initial;
  }

  get currentGeneration(): number {
    return this.generation;
  }

  get current(): ProbeSettings {
    return this.settings;
  }

  /** Applies settings: filter sets, then the config entry, then attach or detach. */
  apply(next: ProbeSettings): ProbeState {
    const desired = this.desiredSets(next);
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

    // New members first, so a set is complete before its bit turns on.
    for (const [map, entries] of desired) {
      const have = this.sets.get(map) ?? new Map<string, number>();
      for (const [hex, value] of entries) {
        if (have.get(hex) !== value)
          this.obj.mapUpdate(map, Buffer.from(hex, 'hex'), Buffer.from([value]));
      }
    }
    if (!next.enabled) this.detachAll();
    this.generation++;
    const cfg = encodeProbeConfig({
      enabled: next.enabled,
      generation: this.generation,
      sample_n: this.effectiveSampleN(next.sample_n),
      filter_mask: mask,
      min_duration_ns: BigInt(Math.round(next.min_duration_ms * 1e6)),
      slow_ns: BigInt(Math.round(next.slow_ms * 1e6)),
    });
    this.obj.mapUpdate('tf_config', u32(0), cfg);
    // Stale members last, once the config no longer relies on them.
    for (const [map, entries] of desired) {
      const have = this.sets.get(map) ?? new Map<string, number>();
      for (const hex of have.keys())
        if (!entries.has(hex)) this.obj.mapDelete(map, Buffer.from(hex, 'hex'));
      this.sets.set(map, entries);
    }
    if (next.enabled) {
      for (const p of this.obj.programs()) {
        if (this.unavailable.has(p.name)) continue;
        try {
          this.obj.attach(p.name);
        } catch (err) {
          if (!this.spec.optionalPrograms?.includes(p.name)) throw err;
          this.unavailable.add(p.name); // e.g. no sys_enter_open tracepoint on this architecture
        }
      }
    }
    this.settings = next;
    return this.state();
  }

  /**
   * The node's own overload sampling: the kernel keeps 1 in
   * min(1_000_000, sample_n * n) (records carry that weight). 1 turns it off.
   */
  setOverloadFactor(n: number): ProbeState {
    if (!Number.isInteger(n) || n < 1)
      throw new ConfigError(`overload factor must be an integer >= 1, got ${n}`, 'overload_n');
    if (n === this.overloadFactor) return this.state();
    this.overloadFactor = n;
    return this.apply(this.settings);
  }

  get overloadN(): number {
    return this.overloadFactor;
  }

  /** Per-cgroup focuses in force (none until focuses are written to the kernel). */
  get focusCount(): number {
    return 0;
  }

  private effectiveSampleN(sampleN: number): number {
    return Math.min(1_000_000, sampleN * this.overloadFactor);
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
    return {
      probe: this.spec.name,
      description: this.spec.description,
      enabled: this.settings.enabled,
      attached: programs.length > 0 && programs.every((p) => p.attached),
      programIds: programs.map((p) => p.id),
      generation: this.generation,
      settings: this.settings,
      emitted: Number(emitted[this.spec.probeId] ?? 0n),
      drops,
      overload_n: this.overloadFactor,
      effective_sample_n: this.effectiveSampleN(this.settings.sample_n),
    };
  }

  private detachAll(): void {
    for (const p of this.obj.programs()) this.obj.detach(p.name);
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

  private cgroupId(c: string | number): bigint {
    if (typeof c === 'number') return BigInt(c);
    const id = this.cgroups.idOf(c);
    if (id === undefined)
      throw new ConfigError(
        `cgroup ${c} does not exist under the cgroup v2 root`,
        'filters.cgroup',
      );
    return id;
  }
}
