/**
 * The always-on signals on a real kernel: a CPU hog held down by a CPU quota
 * shows throttling and CPU pressure in its cgroup's records and feature rows
 * while a quiet cgroup stays near zero; a process that allocates past its
 * memory limit shows up as an OOM kill; each probe reports its completeness
 * (emitted, drops by reason) every interval.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { Topics } from '../../src/common/kafka.js';
import { WindowAggregator } from '../../src/features/aggregator.js';
import { buildWindowBatch, featureSchema } from '../../src/features/arrow-batch.js';
import {
  DEFAULT_AGENT_OPTIONS,
  NodeAgent,
  decodeFrameEvents,
  type TracefeedEvent,
} from '../../src/ingest/index.js';
import { BROKERS, subscribe } from '../helpers/kafka.js';
import { makeCgroup, makeLimitedCgroup, type TestCgroup } from '../helpers/cgroup.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('always-on cgroup signals and probe stats', () => {
  const node = `sig-${randomBytes(3).toString('hex')}`;
  let agent: NodeAgent;
  const frames: Buffer[] = [];
  let stopConsumer: () => Promise<void>;
  const cgroups: TestCgroup[] = [];
  const events = (): TracefeedEvent[] =>
    frames.flatMap((f) => decodeFrameEvents(f)).filter((e) => e.node === node);
  const statsOf = (id: bigint): TracefeedEvent[] =>
    events().filter((e) => e.type === 'cgroup.stats' && e.attributes['cgroup.id'] === String(id));
  const sum = (es: TracefeedEvent[], attr: string): number =>
    es.reduce((s, e) => s + Number(e.attributes[attr] ?? 0), 0);

  beforeAll(async () => {
    stopConsumer = await subscribe(Topics.events, (m) => {
      if (m.key?.toString() === node && m.value) frames.push(m.value);
    });
    agent = new NodeAgent({
      ...DEFAULT_AGENT_OPTIONS,
      nodeName: node,
      brokers: BROKERS,
      lingerMs: 50,
      summaryIntervalMs: 1000,
      cgroupStats: { discoverEveryIntervals: 1 },
      log: createLogger('test', 'silent'),
      families: ['process'],
    });
    agent.start();
  }, 60_000);

  afterAll(async () => {
    await agent?.stop(2000);
    await stopConsumer?.();
    for (const cg of cgroups) cg.remove();
  });

  it('a throttled CPU hog shows throttling and CPU pressure; a quiet cgroup does not', async () => {
    const hog = makeLimitedCgroup('tf-sig-hog', { cpuShareOfOne: 0.1 });
    const quiet = makeCgroup('tf-sig-quiet');
    cgroups.push(hog, quiet);
    // Three busy shells on a 10 % quota: throttled every period, waiting on each other when not.
    const hogRun = hog.run(`for i in 1 2 3; do timeout 5 sh -c 'while :; do :; done' & done; wait`);
    const quietRun = quiet.run('sleep 5');
    await Promise.all([hogRun, quietRun]);
    await sleep(2500); // the next pass reports the last second, then it is framed

    const hogStats = statsOf(hog.id);
    const quietStats = statsOf(quiet.id);
    expect(hogStats.length).toBeGreaterThanOrEqual(2);
    expect(quietStats.length).toBeGreaterThanOrEqual(1);
    const hogThrottled = sum(hogStats, 'cgroup.cpu_throttled_us');
    const hogSome = sum(hogStats, 'cgroup.cpu_some_us');
    const hogUsage = sum(hogStats, 'cgroup.cpu_usage_us');
    expect(hogThrottled).toBeGreaterThan(100_000); // > 0.1 s throttled over ~5 s
    expect(sum(hogStats, 'cgroup.cpu_nr_throttled')).toBeGreaterThan(5);
    expect(hogSome).toBeGreaterThan(10_000);
    // The quota holds: ~10 % of a core for ~5 s is ~0.5 s (generous bounds for a busy host).
    expect(hogUsage).toBeGreaterThan(200_000);
    expect(hogUsage).toBeLessThan(1_500_000);
    expect(sum(quietStats, 'cgroup.cpu_throttled_us')).toBe(0);
    expect(sum(quietStats, 'cgroup.cpu_some_us')).toBeLessThan(hogSome / 10);
    for (const e of hogStats) {
      expect(e.probe).toBe('cgroup');
      expect(Number(e.attributes['cgroup.interval_ns']), JSON.stringify(e)).toBeGreaterThan(0);
    }

    // The same records as feature rows of source `cgroup`.
    const agg = new WindowAggregator({ windowMs: 60_000, allowedLatenessMs: 0, idleCloseMs: 0 });
    for (const f of frames) agg.ingestFrame(f);
    const rows = agg
      .closeDue(Date.now(), true)
      .filter((w) => w.node === node)
      .flatMap((w) => buildWindowBatch(w, agg.cgroupNames(node), featureSchema(60_000)).rows());
    const hogRows = rows.filter((r) => r.probe === 'cgroup' && r.cgroup_id === String(hog.id));
    const quietRows = rows.filter((r) => r.probe === 'cgroup' && r.cgroup_id === String(quiet.id));
    expect(hogRows.length).toBeGreaterThan(0);
    expect(hogRows[0]!.workload).toBe(hog.path);
    expect(hogRows.reduce((s, r) => s + (r.cpu_throttled_us as number), 0)).toBe(hogThrottled);
    expect(hogRows.reduce((s, r) => s + (r.cpu_pressure_some_us as number), 0)).toBe(hogSome);
    expect(quietRows.reduce((s, r) => s + (r.cpu_throttled_us as number), 0)).toBe(0);
    expect(agent.stats().cgroupStats?.readFailures).toBe(0);
  }, 60_000);

  it('allocating past the memory limit is an OOM kill of that cgroup', async () => {
    const cg = makeLimitedCgroup('tf-sig-oom', { memoryMaxBytes: 32 * 1024 * 1024 });
    cgroups.push(cg);
    const r = await cg.run(
      `sleep 1.5; python3 -c "x = b'x' * (256 * 1024 * 1024); print(len(x))"; echo "rc=$?"`,
    );
    expect(r.stdout).toMatch(/rc=137/); // SIGKILL by the OOM killer
    await sleep(2500);
    const stats = statsOf(cg.id);
    expect(stats.length).toBeGreaterThan(0);
    expect(sum(stats, 'cgroup.memory_oom_kill')).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('every interval each probe reports what it emitted and what its filters rejected', async () => {
    const cg = makeCgroup('tf-sig-filt');
    cgroups.push(cg);
    agent.setProbe('process', { filters: { cgroup: { deny: [cg.path] } } });
    const since = process.hrtime.bigint();
    await sleep(1200); // the settings are in force for a whole interval
    const n = 40;
    await cg.run(`i=0; while [ $i -lt ${n} ]; do /bin/true; i=$((i+1)); done`);
    await sleep(3500);
    agent.setProbe('process', { filters: { cgroup: { deny: [] } } });
    await sleep(1500);

    const stats = events().filter((e) => e.type === 'probe.stats' && e.probe === 'process');
    const after = stats.filter((e) => BigInt(e.ktime_ns) > since);
    expect(after.length).toBeGreaterThanOrEqual(4); // one a second
    for (const e of after) {
      const interval = Number(e.attributes['probe.interval_ns']);
      expect(interval).toBeGreaterThan(0.5e9);
      expect(interval).toBeLessThan(3e9);
      expect(e.attributes['probe.sample_n']).toBe(1);
      expect(e.attributes['probe.overload_n']).toBe(1);
    }
    // 40 execs and 40 exits of /bin/true, and the exit of the shell that ran them.
    const filtered = sum(after, 'probe.drops.filtered');
    expect(filtered).toBeGreaterThanOrEqual(2 * n + 1);
    expect(filtered).toBeLessThanOrEqual(2 * n + 2);
    // Nothing of that cgroup reached Kafka, and what was emitted is what the probe counted.
    expect(
      events().some((e) => e.probe === 'process' && e.attributes['cgroup.id'] === String(cg.id)),
    ).toBe(false);
    const emitted = sum(stats, 'probe.emitted');
    expect(emitted).toBeGreaterThan(0);
    expect(emitted).toBeLessThanOrEqual(agent.probes().find((p) => p.probe === 'process')!.emitted);
  }, 60_000);
});
