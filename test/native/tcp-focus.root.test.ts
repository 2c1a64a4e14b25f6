/**
 * Per-cgroup focus and socket-owner attribution on the real tcp probe,
 * driven through ProbeController (the same map writes the node agent makes):
 * focused cgroups are collected with their own settings while the baseline
 * is off, unfocused ones get nothing, then the baseline for everyone else;
 * refused connects are attributed to the client's cgroup and pid, and
 * accepts to the listening process. Workloads run in cgroups of their own.
 * Needs root, `make -C bpf` and `node native/build.mjs`.
 */
import { existsSync } from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bpfObjectPath } from '../../src/common/paths.js';
import { CgroupResolver } from '../../src/ingest/cgroup-resolver.js';
import { decodeRecord, type TracefeedEvent } from '../../src/wire/event-decoder.js';
import { familySpec } from '../../src/families/registry.js';
import {
  fieldOffset,
  FOCUS_LAYOUT,
  FOCUS_MAX,
  PROBE_CONFIG_LAYOUT,
} from '../../src/wire/layout.js';
import { openObject, type NativeBpfObject } from '../../src/ingest/native.js';
import { ProbeController } from '../../src/ingest/probe-controller.js';
import { applyPatch, defaultSettings, type ProbePatch } from '../../src/wire/probe-settings.js';
import { makeCgroup, type TestCgroup } from '../helpers/cgroup.js';
import { ensureTracefs, waitFor } from '../helpers/native-test.js';

const isRoot = process.getuid?.() === 0;
const probePath = bpfObjectPath('tcp');

/** A port nobody listens on: bind an ephemeral one, then release it. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** `n` refused connects to `port` from a node process inside `cg`; resolves with its pid. */
async function refusedStorm(cg: TestCgroup, port: number, n: number): Promise<number> {
  const js = `
    const net = require('net');
    let left = ${n};
    const one = () => {
      const c = net.connect(${port}, '127.0.0.1');
      c.on('error', () => (--left > 0 ? one() : process.stdout.write(String(process.pid))));
      c.on('connect', () => { process.stderr.write('connected?'); process.exit(2); });
    };
    one();`;
  const { code, stdout } = await cg.run(`exec node -e "${js.replace(/"/g, '\\"')}"`);
  expect(code).toBe(0);
  return Number(stdout);
}

describe.skipIf(!isRoot || !existsSync(probePath))('tcp focus and attribution (root)', () => {
  let obj: NativeBpfObject;
  let ctrl: ProbeController;
  const events: TracefeedEvent[] = [];
  const cgs: TestCgroup[] = [];

  const set = (patch: ProbePatch) => ctrl.apply(applyPatch(ctrl.current, patch));
  const failsTo = (port: number) =>
    events.filter(
      (e) => e.type === 'tcp.connect_fail' && e.attributes['network.peer.port'] === port,
    );

  beforeAll(() => {
    ensureTracefs();
    obj = openObject(probePath, { ringbufBytes: { rb: 1 << 22 }, consts: { wakeup_bytes: 1n } });
    obj.load();
    ctrl = new ProbeController(
      familySpec('tcp')!,
      obj,
      new CgroupResolver(),
      defaultSettings(false),
    );
    ctrl.apply(defaultSettings(false));
    obj.startRing('rb', { flushMs: 10 }, (batch) => {
      for (let off = 0; off < batch.length; off += batch.readUInt32LE(off + 4))
        events.push(decodeRecord(batch, off, 'test', 0n));
    });
    for (let i = 0; i < 3; i++) cgs.push(makeCgroup('tf-focus'));
  });

  afterAll(() => {
    obj?.close();
    for (const c of cgs) c.remove();
  });

  it('collects two focused cgroups with their own weights while the baseline is off, then the baseline for the rest', async () => {
    const [a, b, c] = cgs as [TestCgroup, TestCgroup, TestCgroup];
    // Programs are detached while nothing is on.
    expect(ctrl.state().attached).toBe(false);
    const st = set({
      focus: { [String(a.id)]: { sample_n: 1 }, [b.path]: { sample_n: 2 } },
    });
    expect(st.attached).toBe(true);
    expect(st.enabled).toBe(false);
    expect(st.focus_count).toBe(2);
    expect(st.focus[b.path]?.cgroup_id).toBe(String(b.id));
    // The kernel map holds exactly the two cgroups with their settings.
    const v = obj.mapLookup('tf_focus', Buffer.from(new BigUint64Array([b.id]).buffer));
    expect(v?.readUInt32LE(fieldOffset(FOCUS_LAYOUT, 'sample_n'))).toBe(2);
    expect(obj.maps().find((m) => m.name === 'tf_focus')?.maxEntries).toBe(FOCUS_MAX);

    const [pa, pb, pc] = [await closedPort(), await closedPort(), await closedPort()];
    const pidA = await refusedStorm(a, pa, 20);
    const pidB = await refusedStorm(b, pb, 200);
    await refusedStorm(c, pc, 20);
    expect(await waitFor(() => failsTo(pa).length >= 20, 5000)).toBe(true);
    await waitFor(() => failsTo(pb).length >= 60, 5000);
    await new Promise((r) => setTimeout(r, 200));

    const fa = failsTo(pa);
    expect(fa).toHaveLength(20);
    for (const e of fa) {
      expect(e.focused).toBe(true);
      expect(e.sample_weight).toBe(1);
      expect(e.attributes['cgroup.id']).toBe(String(a.id));
      expect(e.attributes['process.pid']).toBe(pidA);
    }
    const fb = failsTo(pb);
    // 1 in 2 of 200: far from 0 and from 200.
    expect(fb.length).toBeGreaterThan(60);
    expect(fb.length).toBeLessThan(140);
    for (const e of fb) {
      expect(e.focused).toBe(true);
      expect(e.sample_weight).toBe(2);
      expect(e.attributes['process.pid']).toBe(pidB);
    }
    // Not focused, baseline off: nothing, and not counted as a drop.
    expect(failsTo(pc)).toHaveLength(0);
    // Nobody else's socket records either.
    expect(
      events.filter(
        (e) => ![String(a.id), String(b.id)].includes(String(e.attributes['cgroup.id'])),
      ),
    ).toEqual([]);

    // Baseline on: the third cgroup gets baseline records, without the flag.
    set({ enabled: true });
    const pc2 = await closedPort();
    const pa2 = await closedPort();
    await refusedStorm(c, pc2, 10);
    await refusedStorm(a, pa2, 10);
    expect(await waitFor(() => failsTo(pc2).length >= 10 && failsTo(pa2).length >= 10, 5000)).toBe(
      true,
    );
    for (const e of failsTo(pc2)) {
      expect(e.focused).toBe(false);
      expect(e.sample_weight).toBe(1);
      expect(e.attributes['cgroup.id']).toBe(String(c.id));
    }
    for (const e of failsTo(pa2)) expect(e.focused).toBe(true);

    // Removing one focus leaves the other in the kernel.
    const after = set({ focus: { [String(a.id)]: null } });
    expect(after.focus_count).toBe(1);
    expect(Object.keys(after.focus)).toEqual([b.path]);
    expect(obj.mapLookup('tf_focus', Buffer.from(new BigUint64Array([a.id]).buffer))).toBeNull();
    set({ enabled: false, focus: { [b.path]: null } });
    expect(ctrl.state().attached).toBe(false);
  });

  it('attributes a refused-connect storm to the client: cgroup and pid on connect_fail and reset_received; the reset to a closed port has no owner', async () => {
    const [a] = cgs as [TestCgroup];
    set({ enabled: true });
    const port = await closedPort();
    const pid = await refusedStorm(a, port, 30);
    const of = (type: string) =>
      events.filter(
        (e) =>
          e.type === type &&
          (e.attributes['network.peer.port'] === port ||
            e.attributes['network.local.port'] === port),
      );
    expect(
      await waitFor(
        () =>
          of('tcp.connect_fail').length >= 30 &&
          of('tcp.reset_received').length >= 30 &&
          of('tcp.reset_sent').length >= 30,
        5000,
      ),
    ).toBe(true);
    for (const type of ['tcp.connect_fail', 'tcp.reset_received']) {
      for (const e of of(type)) {
        expect(e.attributes['cgroup.id'], type).toBe(String(a.id));
        expect(e.attributes['process.pid'], type).toBe(pid);
        expect(e.attributes['process.executable.name'], type).toBe('node');
      }
    }
    // The reset answering a SYN to a closed port is sent without a socket: no owner.
    for (const e of of('tcp.reset_sent')) {
      expect(e.attributes['cgroup.id']).toBe('0');
      expect(e.attributes['process.pid']).toBe(0);
    }
    set({ enabled: false });
  });

  it("attributes accepts to the listening process (pid, comm, cgroup) from the listener's owner", async () => {
    const [, b] = cgs as [TestCgroup, TestCgroup];
    set({ enabled: true });
    const port = await closedPort();
    // A server in cgroup b: listens, accepts 5 connections, prints its pid.
    const js = `
      const net = require('net');
      let n = 0;
      const s = net.createServer((c) => { c.on('error', () => {}); c.end(); if (++n === 5) s.close(); });
      s.listen(${port}, '127.0.0.1');
      s.on('close', () => process.stdout.write(String(process.pid)));`;
    const server = b.run(`exec node -e "${js.replace(/"/g, '\\"')}"`);
    const connectOnce = () =>
      new Promise<void>((resolve) => {
        const c = net.connect(port, '127.0.0.1');
        c.on('connect', () => c.end());
        c.on('close', () => resolve());
        c.on('error', () => resolve());
      });
    // Connect until five were accepted (refused until the server listens).
    let accepted = 0;
    for (let i = 0; i < 300 && accepted < 5; i++) {
      await connectOnce();
      await new Promise((r) => setTimeout(r, 20));
      accepted = events.filter(
        (e) => e.type === 'tcp.accept' && e.attributes['network.local.port'] === port,
      ).length;
    }
    const { code, stdout } = await server;
    expect(code).toBe(0);
    const serverPid = Number(stdout);
    await waitFor(
      () =>
        events.filter((e) => e.type === 'tcp.accept' && e.attributes['network.local.port'] === port)
          .length >= 5,
      3000,
    );
    const accepts = events.filter(
      (e) => e.type === 'tcp.accept' && e.attributes['network.local.port'] === port,
    );
    expect(accepts).toHaveLength(5);
    for (const e of accepts) {
      expect(e.attributes['process.pid']).toBe(serverPid);
      expect(e.attributes['process.executable.name']).toBe('node');
      expect(e.attributes['cgroup.id']).toBe(String(b.id));
    }
    // The accepted sockets' closes carry the same owner (the table entry took it at the SYN).
    const closes = events.filter(
      (e) => e.type === 'tcp.close' && e.attributes['network.local.port'] === port,
    );
    for (const e of closes) expect(e.attributes['process.pid']).toBe(serverPid);
    set({ enabled: false });
  });
  it('the overload factor multiplies the kernel sample_n of the baseline and of every focus, not the settings', () => {
    const [a] = cgs as [TestCgroup];
    const key = Buffer.from(new BigUint64Array([a.id]).buffer);
    const kernel = () => {
      const c = obj.mapLookup('tf_config', Buffer.alloc(4))!;
      const f = obj.mapLookup('tf_focus', key)!;
      return {
        baseline: c.readUInt32LE(fieldOffset(PROBE_CONFIG_LAYOUT, 'sample_n')),
        focus: f.readUInt32LE(fieldOffset(FOCUS_LAYOUT, 'sample_n')),
      };
    };
    set({ enabled: true, sample_n: 3, focus: { [a.path]: { sample_n: 2 } } });
    expect(kernel()).toEqual({ baseline: 3, focus: 2 });
    const st = ctrl.setOverloadFactor(5);
    expect(kernel()).toEqual({ baseline: 15, focus: 10 });
    expect(st.overload_n).toBe(5);
    expect(st.effective_sample_n).toBe(15);
    expect(st.focus[a.path]?.effective_sample_n).toBe(10);
    expect(st.settings.sample_n).toBe(3);
    expect(st.settings.focus[a.path]?.sample_n).toBe(2);
    // Later changes keep the factor; the product is capped at 1e6.
    set({ sample_n: 500_000 });
    expect(kernel().baseline).toBe(1_000_000);
    expect(() => ctrl.setOverloadFactor(0)).toThrow(/overload factor 0 is not an integer/);
    ctrl.setOverloadFactor(1);
    expect(kernel()).toEqual({ baseline: 500_000, focus: 2 });
    set({ enabled: false, sample_n: 1, focus: { [a.path]: null } });
  });
});
