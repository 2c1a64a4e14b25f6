#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
//
// Per-event kernel cost: emitting a record to the ring buffer versus counting
// the same event, on a getppid() loop (issue 3, bench 1).
//
// usage: node bench/probe-emit-cost.mjs [--json] [--rounds=7] [--calls=1000000]
// (root; builds bench/bpf and bench/c on first run)
//
// One bench object (bench/bpf/probe_cost.bpf.c) holds five programs on
// tp_btf/sys_enter, all filtered to getppid() of the loop process. Each round
// runs every variant once (order rotated per round), attaching one program at
// a time; "none" has nothing attached. The loop runs on the last CPU, this
// process (the addon's ring drain + JS) on CPU 0. Figures are medians.

import {
  QUICK,
  argNum,
  benchBpf,
  bpfDelta,
  bpfProgStats,
  cpuCount,
  enableBpfStats,
  enabledConfig,
  log,
  machine,
  median,
  pin,
  report,
  restoreBpfStats,
  sleep,
  startSyscallLoop,
  u32,
  ensureBuilt,
} from './lib/common.mjs';

const ROUNDS = argNum('rounds', QUICK ? 3 : 7);
const CALLS = argNum('calls', QUICK ? 300_000 : 1_000_000);
const RING_BYTES = argNum('ring-bytes', 4 << 20); // the agent's default ringBytes
const WAKEUP_BYTES = argNum('wakeup-bytes', 256 * 1024); // the agent's default wakeupBytes

const VARIANTS = [
  { name: 'none', prog: null, what: 'nothing attached' },
  { name: 'count_only', prog: 'count_only', what: 'filter + per-CPU counter' },
  {
    name: 'gather_count',
    prog: 'gather_count',
    what: '+ record fields, filters, sampling; no ring',
  },
  {
    name: 'emit_batched',
    prog: 'emit_batched',
    what: 'tracefeed path: 64 B record, tf_submit (NO_WAKEUP + threshold)',
  },
  {
    name: 'emit_wakeup',
    prog: 'emit_wakeup',
    what: 'same record, submit flags 0 (wake when reader caught up)',
  },
  { name: 'emit_force', prog: 'emit_force', what: 'same record, BPF_RB_FORCE_WAKEUP every event' },
  // Breakdown: count_only plus one step each.
  { name: 'step_ktime', prog: 'step_ktime', what: 'count_only + bpf_ktime_get_ns()', step: true },
  {
    name: 'step_cgroup',
    prog: 'step_cgroup',
    what: 'count_only + bpf_get_current_cgroup_id()',
    step: true,
  },
  { name: 'step_comm', prog: 'step_comm', what: 'count_only + bpf_get_current_comm()', step: true },
  {
    name: 'step_ring',
    prog: 'step_ring',
    what: 'count_only + reserve/tf_submit 64 B (op+size only)',
    step: true,
  },
  {
    name: 'step_ring_nowake',
    prog: 'step_ring_nowake',
    what: 'as step_ring, 32 MiB ring, always NO_WAKEUP (no threshold wake-ups)',
    step: true,
  },
];

async function main() {
  ensureBuilt();
  const { BpfObject } = (await import('../native/index.js')).loadNative();
  const ncpu = cpuCount();
  const loopCpu = ncpu - 1;
  const loop = await startSyscallLoop(loopCpu);
  if (ncpu > 1) pin(process.pid, 0);

  const obj = new BpfObject(`${benchBpf}/probe_cost.bpf.o`, {
    ringbufBytes: { rb: RING_BYTES },
    consts: { target_tgid: loop.pid, wakeup_bytes: BigInt(WAKEUP_BYTES) },
  });
  obj.load();
  obj.mapUpdate('tf_config', u32(0), enabledConfig(obj));

  let received = 0;
  const onBatch = (batch, n) => {
    // Touch every record as the agent does (walk by the size field).
    let off = 0;
    let k = 0;
    while (off < batch.length) {
      off += batch.readUInt32LE(off + 4);
      k++;
    }
    received += k;
    if (k !== n) throw new Error(`batch says ${n} events, walked ${k}`);
  };
  const ringOpts = { batchBytes: 256 * 1024, flushMs: 100, maxPendingBatches: 16 }; // the agent's
  obj.startRing('rb', ringOpts, onBatch);
  // One ring per object in the addon: a second instance drains rb_nowake.
  const obj2 = new BpfObject(`${benchBpf}/probe_cost.bpf.o`, {
    consts: { target_tgid: loop.pid, wakeup_bytes: BigInt(WAKEUP_BYTES) },
  });
  obj2.load();
  obj2.mapUpdate('tf_config', u32(0), enabledConfig(obj2));
  obj2.startRing('rb_nowake', ringOpts, onBatch);
  const objOf = (v) => (v.name === 'step_ring_nowake' ? obj2 : obj);
  const idOf = (v) =>
    objOf(v)
      .programs()
      .find((p) => p.name === v.prog).id;

  enableBpfStats();
  const samples = new Map(VARIANTS.map((v) => [v.name, []]));
  const drops = () =>
    Number(obj.sumPercpuCounters('tf_drops')[0] + obj2.sumPercpuCounters('tf_drops')[0]);

  const window = async (v, calls) => {
    // Snapshots taken with nothing attached: bpftool's own syscalls stay out.
    const before = bpfProgStats();
    if (v.prog) objOf(v).attach(v.prog);
    const recv0 = received;
    const drop0 = drops();
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const ns = await loop.run(calls);
    if (v.prog) objOf(v).detach(v.prog);
    const after = bpfProgStats();
    // Let the drain catch up (a partial batch waits at most flushMs).
    await sleep(250);
    const wall = Number(process.hrtime.bigint() - t0);
    const cpu = process.cpuUsage(cpu0);
    const k = v.prog ? bpfDelta(before, after, [idOf(v)]) : { runTimeNs: 0, runCnt: 0 };
    return {
      nsPerCall: ns / calls,
      bpfNsPerRun: k.runCnt ? k.runTimeNs / k.runCnt : 0,
      bpfNsPerEvent: k.runTimeNs / calls,
      runsPerCall: k.runCnt / calls,
      received: received - recv0,
      drops: drops() - drop0,
      consumerCpuPct: ((cpu.user + cpu.system) * 1000 * 100) / wall,
      consumerUsPerEvent: received - recv0 ? (cpu.user + cpu.system) / (received - recv0) : 0,
    };
  };

  log(`warm-up (${VARIANTS.length} variants)`);
  for (const v of VARIANTS) await window(v, Math.min(CALLS, 200_000));
  for (let r = 0; r < ROUNDS; r++) {
    const order = VARIANTS.map((_, i) => VARIANTS[(i + r) % VARIANTS.length]);
    for (const v of order) samples.get(v.name).push(await window(v, CALLS));
    const none = samples.get('none').at(-1).nsPerCall;
    for (const v of VARIANTS)
      samples.get(v.name).at(-1).wallOverheadNs = samples.get(v.name).at(-1).nsPerCall - none;
    log(
      `round ${r + 1}/${ROUNDS}: ` +
        order
          .map((v) => `${v.name}=${samples.get(v.name).at(-1).nsPerCall.toFixed(1)}ns`)
          .join(' '),
    );
  }

  obj.stopRing();
  obj2.stopRing();
  const ringStats = obj.ringStats();
  obj.close();
  obj2.close();
  restoreBpfStats();
  await loop.close();

  const med = (name, key) => median(samples.get(name).map((s) => s[key]));
  const all = VARIANTS.map((v) => {
    const s = samples.get(v.name);
    const ns = med(v.name, 'nsPerCall');
    return {
      variant: v.name,
      what: v.what,
      nsPerCall: ns,
      wallOverheadNs: v.prog ? median(s.map((x) => x.wallOverheadNs)) : 0,
      bpfNsPerRun: v.prog ? med(v.name, 'bpfNsPerRun') : null,
      bpfNsPerEvent: v.prog ? med(v.name, 'bpfNsPerEvent') : null,
      runsPerCall: v.prog ? med(v.name, 'runsPerCall') : null,
      eventsReceived: s.reduce((a, x) => a + x.received, 0),
      drops: s.reduce((a, x) => a + x.drops, 0),
      consumerCpuPct: med(v.name, 'consumerCpuPct'),
      consumerUsPerEvent: med(v.name, 'consumerUsPerEvent'),
    };
  });
  const row = (n) => all.find((x) => x.variant === n);
  const rows = all.filter((r) => !VARIANTS.find((v) => v.name === r.variant).step);
  const steps = all.filter((r) => VARIANTS.find((v) => v.name === r.variant).step);
  // Median of per-round ratios: each pair was measured minutes apart at most.
  const ratio = (a, b, key) =>
    median(samples.get(a).map((x, i) => x[key] / samples.get(b)[i][key]));
  const ratios = {
    emitVsCount_bpf: ratio('emit_batched', 'count_only', 'bpfNsPerEvent'),
    emitVsCount_wallOverhead: ratio('emit_batched', 'count_only', 'wallOverheadNs'),
    emitVsCount_syscall: ratio('emit_batched', 'count_only', 'nsPerCall'),
    emitVsGather_bpf: ratio('emit_batched', 'gather_count', 'bpfNsPerEvent'),
    wakeupVsBatched_bpf: ratio('emit_wakeup', 'emit_batched', 'bpfNsPerEvent'),
    wakeupVsBatched_wallOverhead: ratio('emit_wakeup', 'emit_batched', 'wallOverheadNs'),
    forceVsBatched_bpf: ratio('emit_force', 'emit_batched', 'bpfNsPerEvent'),
    forceVsBatched_wallOverhead: ratio('emit_force', 'emit_batched', 'wallOverheadNs'),
  };
  const target = 1.3;
  const result = {
    bench: 'probe-emit-cost',
    machine: machine(),
    params: {
      rounds: ROUNDS,
      callsPerWindow: CALLS,
      ringBytes: RING_BYTES,
      wakeupBytes: WAKEUP_BYTES,
      loopCpu,
      consumerCpu: ncpu > 1 ? 0 : 'any',
      recordBytes: 64,
    },
    variants: rows,
    breakdown: steps,
    ratios,
    ringStats,
    target: {
      emitOverCountMax: target,
      bpfRatio: ratios.emitVsCount_bpf,
      wallRatio: ratios.emitVsCount_wallOverhead,
      metByBpfStats: ratios.emitVsCount_bpf <= target,
      metByWallTime: ratios.emitVsCount_wallOverhead <= target,
    },
    tables: [
      {
        title: `Per-event cost on getppid() (medians of ${ROUNDS} interleaved rounds x ${CALLS.toLocaleString()} calls)`,
        head: [
          'variant',
          'ns/call',
          'wall +ns/event',
          'bpf ns/run',
          'bpf ns/event',
          'runs/call',
          'JS events',
          'drops',
          'drain CPU %',
          'drain us/event',
        ],
        digits: 1,
        rows: rows.map((r) => [
          r.variant,
          r.nsPerCall,
          r.wallOverheadNs,
          r.bpfNsPerRun ?? '-',
          r.bpfNsPerEvent ?? '-',
          r.runsPerCall === null ? '-' : r.runsPerCall.toFixed(3),
          String(r.eventsReceived),
          String(r.drops),
          r.consumerCpuPct,
          r.consumerUsPerEvent === 0 ? '-' : r.consumerUsPerEvent.toFixed(3),
        ]),
        notes: [
          'wall +ns/event: loop ns/call minus the "none" ns/call of the same round (includes enabling the sys_enter hook)',
          'bpf ns/event: kernel.bpf_stats run_time_ns over the window / getppid calls (the program runs for every syscall, filtered in-program)',
          'bpf stats add two clock reads per program run to every variant alike',
          ...VARIANTS.filter((v) => !v.step).map((v) => `${v.name}: ${v.what}`),
        ],
      },
      {
        title: 'Where the emit path goes: count_only plus one step (same rounds)',
        head: ['step', 'bpf ns/event', 'over count_only', 'wall +ns/event', 'over count_only'],
        digits: 1,
        rows: steps.map((r) => [
          r.variant,
          r.bpfNsPerEvent,
          r.bpfNsPerEvent - row('count_only').bpfNsPerEvent,
          r.wallOverheadNs,
          r.wallOverheadNs - row('count_only').wallOverheadNs,
        ]),
        notes: VARIANTS.filter((v) => v.step).map((v) => `${v.name}: ${v.what}`),
      },
      {
        title: 'Ratios (target: emit_batched <= 1.3 x count_only)',
        head: ['ratio', 'bpf stats', 'wall overhead'],
        digits: 2,
        rows: [
          ['emit_batched / count_only', ratios.emitVsCount_bpf, ratios.emitVsCount_wallOverhead],
          [
            'emit_batched / gather_count',
            ratios.emitVsGather_bpf,
            ratio('emit_batched', 'gather_count', 'wallOverheadNs'),
          ],
          [
            'emit_wakeup (flags 0) / emit_batched',
            ratios.wakeupVsBatched_bpf,
            ratios.wakeupVsBatched_wallOverhead,
          ],
          [
            'emit_force / emit_batched',
            ratios.forceVsBatched_bpf,
            ratios.forceVsBatched_wallOverhead,
          ],
        ],
        notes: [
          'medians of per-round ratios',
          `whole syscall (ns/call) emit_batched / count_only: ${ratios.emitVsCount_syscall.toFixed(3)}`,
        ],
      },
    ],
  };
  report(result);
}

main().catch((err) => {
  restoreBpfStats();
  console.error(err);
  process.exit(1);
});
