/**
 * Filter lists against the kernel's filter set maps, on the real tcp probe
 * object through ProbeController (the node agent's map writes): the limits
 * in layout.ts are the maps' max_entries; a list beyond a map is refused
 * whole with the kernel maps unchanged; an update that fails midway in the
 * kernel (E2BIG) rolls back and leaves no untracked entry.
 * Needs root, `make -C bpf` and `node native/build.mjs`.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bpfObjectPath } from '../../src/common/paths.js';
import { CgroupResolver } from '../../src/ingest/cgroup-resolver.js';
import { familySpec } from '../../src/families/registry.js';
import { FILTER_SETS, SET_ID_MAX, SET_STR_MAX } from '../../src/wire/layout.js';
import { openObject, type NativeBpfObject } from '../../src/ingest/native.js';
import { ProbeController } from '../../src/ingest/probe-controller.js';
import { applyPatch, defaultSettings, type ProbePatch } from '../../src/wire/probe-settings.js';

const isRoot = process.getuid?.() === 0;
const probePath = bpfObjectPath('tcp');

describe.skipIf(!isRoot || !existsSync(probePath))('filter limits of the kernel maps', () => {
  let obj: NativeBpfObject;
  let ctrl: ProbeController;
  const set = (patch: ProbePatch) => ctrl.apply(applyPatch(ctrl.current, patch));
  const keysOf = (map: string): string[] => {
    const d = obj.mapDump(map);
    const size = d.count === 0 ? 0 : d.keys.length / d.count;
    const out: string[] = [];
    for (let i = 0; i < d.count; i++)
      out.push(d.keys.subarray(i * size, (i + 1) * size).toString('hex'));
    return out.sort();
  };
  const pidKey = (p: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(p);
    return b;
  };
  const pids = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

  beforeAll(() => {
    obj = openObject(probePath, { ringbufBytes: { rb: 1 << 16 } });
    obj.load();
    ctrl = new ProbeController(
      familySpec('tcp')!,
      obj,
      new CgroupResolver(),
      defaultSettings(false),
    );
    ctrl.apply(defaultSettings(false));
  });

  afterAll(() => obj?.close());

  it('mirrors the max_entries of every filter set map', () => {
    const maps = new Map(obj.maps().map((m) => [m.name, m.maxEntries]));
    for (const { map, maxEntries } of Object.values(FILTER_SETS))
      expect(maps.get(map), map).toBe(maxEntries);
    expect(maps.get('tf_set_pid')).toBe(SET_ID_MAX);
    expect(maps.get('tf_set_comm')).toBe(SET_STR_MAX);
    // Socket-table losses are read from the kernel alongside the drop reasons.
    expect(maps.has('tf_sk_lost')).toBe(true);
    expect(ctrl.state().drops).toMatchObject({ socket_evicted: 0, socket_claim_lost: 0 });
  });

  it('refuses a list beyond the kernel map whole and leaves the maps as they were', () => {
    set({ filters: { pid: { deny: [11, 12] }, comm: { allow: ['keep'] } } });
    const before = { pid: keysOf('tf_set_pid'), comm: keysOf('tf_set_comm') };
    expect(before.pid).toHaveLength(2);
    const gen = ctrl.currentGeneration;

    // 700 + 400 distinct pids: each list is within 1024, together they are not.
    expect(() =>
      set({ filters: { pid: { allow: pids(1000, 700), deny: pids(5000, 400) } } }),
    ).toThrow(
      /filters\.pid: 1100 entries in allow and deny together, but the kernel map tf_set_pid holds 1024/,
    );
    const comms = Array.from({ length: 200 }, (_, i) => `c${i}`);
    expect(() =>
      set({ filters: { comm: { allow: comms, deny: comms.map((c) => `d${c}`) } } }),
    ).toThrow(/filters\.comm: 400 entries .* tf_set_comm holds 256/);

    expect(keysOf('tf_set_pid')).toEqual(before.pid);
    expect(keysOf('tf_set_comm')).toEqual(before.comm);
    expect(ctrl.currentGeneration).toBe(gen);
    expect(ctrl.current.filters.pid.deny).toEqual([11, 12]);

    // Exactly the map's size fits (a pid in both lists is one entry).
    const st = set({
      filters: { pid: { allow: pids(1000, 1000), deny: [1000, ...pids(9000, 24)] } },
    });
    expect(keysOf('tf_set_pid')).toHaveLength(SET_ID_MAX);
    expect(st.map_update_failures).toEqual({});
  });

  it('rolls back a change that fails midway in the kernel and names the map', () => {
    set({ clear_filters: true, filters: { pid: { deny: [21, 22] } } });
    const gen = ctrl.currentGeneration;
    // Another writer filled the map behind the controller's back: the kernel says E2BIG
    // part way through a list the schema accepts.
    const foreign = pids(100_000, SET_ID_MAX - 2 - 10);
    for (const p of foreign) obj.mapUpdate('tf_set_pid', pidKey(p), Buffer.from([1]));
    const before = keysOf('tf_set_pid');
    expect(before).toHaveLength(SET_ID_MAX - 10);

    expect(() => set({ filters: { pid: { allow: pids(200, 50) } } })).toThrow(
      /tcp: update of map tf_set_pid failed \(E2BIG\); the probe keeps its previous settings/,
    );
    // Nothing the controller wrote stays behind; what was there is still there.
    expect(keysOf('tf_set_pid')).toEqual(before);
    expect(ctrl.current.filters.pid).toEqual({ allow: [], deny: [21, 22] });
    expect(ctrl.currentGeneration).toBe(gen);
    expect(ctrl.state().map_update_failures).toEqual({ tf_set_pid: 1 });

    for (const p of foreign) obj.mapDelete('tf_set_pid', pidKey(p));
    expect(
      set({ filters: { pid: { allow: pids(200, 50) } } }).settings.filters.pid.allow,
    ).toHaveLength(50);
  });
});
