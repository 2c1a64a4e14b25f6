/**
 * A probe plane in memory with NodeAgent's setProbe/probes contract (same
 * schema, same applyPatch), recording every call: the delivery suites count
 * applies with it. The kernel side is covered by node-worker.root.redis.test.ts.
 */
import { ConfigError } from '../../src/common/errors.js';
import type { ProbeTarget } from '../../src/feedback/node-worker.js';
import type { ProbeStats } from '../../src/ingest/node-agent.js';
import type { ProbeState } from '../../src/ingest/probe-controller.js';
import {
  applyPatch,
  defaultSettings,
  probePatchSchema,
  type ProbePatch,
  type ProbeSettings,
} from '../../src/wire/probe-settings.js';

export class RecordingTarget implements ProbeTarget {
  readonly calls: Array<{ probe: string; patch: ProbePatch }> = [];
  private readonly state = new Map<string, { settings: ProbeSettings; generation: number }>();
  eps: Record<string, number> = {};

  constructor(probes: string[] = ['process', 'tcp', 'syscalls']) {
    for (const p of probes) this.state.set(p, { settings: defaultSettings(true), generation: 1 });
  }

  setProbe(name: string, patch: unknown): ProbeState {
    const s = this.state.get(name);
    if (!s) throw new ConfigError(`unknown probe "${name}"`, 'probe');
    const parsed = probePatchSchema.parse(patch);
    this.calls.push({ probe: name, patch: parsed });
    s.settings = applyPatch(s.settings, parsed);
    s.generation++;
    return this.stateOf(name);
  }

  settings(name: string): ProbeSettings {
    return this.state.get(name)!.settings;
  }

  private stateOf(name: string): ProbeState {
    const s = this.state.get(name)!;
    return {
      probe: name,
      description: name,
      enabled: s.settings.enabled,
      attached: s.settings.enabled,
      always_attached: [],
      programIds: [],
      generation: s.generation,
      settings: s.settings,
      emitted: 0,
      map_update_failures: {},
      drops: {},
      overload_n: 1,
      effective_sample_n: s.settings.sample_n,
      focus_count: Object.keys(s.settings.focus).length,
      focus: Object.fromEntries(
        Object.entries(s.settings.focus).map(([k, f]) => [
          k,
          { ...f, cgroup_id: /^\d+$/.test(k) ? k : '', effective_sample_n: f.sample_n },
        ]),
      ),
    };
  }

  probes(): ProbeStats[] {
    return [...this.state.keys()].map((p) => ({
      ...this.stateOf(p),
      events: 0,
      eventsPerSecond: this.eps[p] ?? 0,
      bytesPerSecond: 0,
      kernelDrops: {},
    }));
  }
}
