/**
 * Overload degrades by sampling: a real open() storm into a deliberately small
 * ring overflows it (ringbuf_full), the node raises the file family's sampling
 * itself, the records it keeps carry the weight so the weighted count matches
 * the operations the workload made, and the sampling returns to 1 once the
 * storm is over.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { Topics } from '../../src/common/kafka.js';
import {
  DEFAULT_AGENT_OPTIONS,
  NodeAgent,
  decodeFrameEvents,
  type TracefeedEvent,
} from '../../src/ingest/index.js';
import { agentMetrics } from '../../src/ingest/metrics.js';
import { BROKERS, subscribe } from '../helpers/kafka.js';
import { makeCgroup, type TestCgroup } from '../helpers/cgroup.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// open()s /dev/null flat out for the given seconds and prints how many it made.
const STORM_C = `
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
	double secs = atof(argv[1]);
	struct timespec t0, t;
	long n = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		for (int i = 0; i < 1000; i++) {
			int fd = open("/dev/null", O_RDONLY);
			if (fd >= 0) close(fd);
			n++;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 >= secs) break;
	}
	printf("%ld\\n", n);
	return 0;
}
`;

describe('overload turns into weighted sampling', () => {
  const node = `ovl-${randomBytes(3).toString('hex')}`;
  let agent: NodeAgent;
  let cg: TestCgroup;
  let storm: string;
  const frames: Buffer[] = [];
  let stopConsumer: () => Promise<void>;
  const events = (): TracefeedEvent[] =>
    frames.flatMap((f) => decodeFrameEvents(f)).filter((e) => e.node === node);

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-ovl-'));
    writeFileSync(join(dir, 'storm.c'), STORM_C);
    storm = join(dir, 'storm');
    execFileSync('gcc', ['-O2', '-o', storm, join(dir, 'storm.c')]);
    cg = makeCgroup('tf-ovl');
    stopConsumer = await subscribe(Topics.events, (m) => {
      if (m.key?.toString() === node && m.value) frames.push(m.value);
    });
    agent = new NodeAgent({
      ...DEFAULT_AGENT_OPTIONS,
      nodeName: node,
      brokers: BROKERS,
      lingerMs: 50,
      ringBytes: 64 * 1024, // a few hundred records: the storm overflows it at once
      wakeupBytes: 16 * 1024,
      summaryIntervalMs: 1000,
      overload: { calmSeconds: 1 },
      log: createLogger('test', 'silent'),
      families: ['file'],
      probes: { file: { enabled: true, filters: { cgroup: { allow: [cg.path] } } } },
    });
    agent.start();
  }, 60_000);

  afterAll(async () => {
    await agent?.stop(2000);
    await stopConsumer?.();
    cg?.remove();
  });

  it('raises sampling under a storm, keeps counts unbiased, and returns to 1 after', async () => {
    const file = () => agent.probes().find((p) => p.probe === 'file')!;
    expect(file().overload_n).toBe(1);
    const r = await cg.run(`${storm} 6`);
    const opens = Number(r.stdout.trim());
    expect(opens).toBeGreaterThan(100_000); // a storm, not a trickle
    const peak = Math.max(
      ...events()
        .filter((e) => e.type === 'probe.stats' && e.probe === 'file')
        .map((e) => Number(e.attributes['probe.overload_n'])),
    );
    expect(peak).toBeGreaterThanOrEqual(4);

    // Pressure gone: back to unsampled within a few calm steps.
    const deadline = Date.now() + 15_000;
    while (file().overload_n > 1 && Date.now() < deadline) await sleep(250);
    expect(file().overload_n).toBe(1);
    expect(file().effective_sample_n).toBe(1);
    await sleep(2500); // the last probe stats and records reach Kafka

    const all = events();
    const opensSeen = all.filter(
      (e) => e.type === 'file.open' && e.attributes['cgroup.id'] === String(cg.id),
    );
    const weighted = opensSeen.reduce((s, e) => s + e.sample_weight, 0);
    expect(opensSeen.some((e) => e.sample_weight > 1)).toBe(true);
    const stats = all.filter((e) => e.type === 'probe.stats' && e.probe === 'file');
    const ringbufFull = stats.reduce(
      (s, e) => s + Number(e.attributes['probe.drops.ringbuf_full']),
      0,
    );
    expect(ringbufFull).toBeGreaterThan(0); // the storm did overflow the ring
    // Events lost in the ring, each standing for the sampling in force in its interval.
    const lostWeighted = stats.reduce(
      (s, e) =>
        s +
        Number(e.attributes['probe.drops.ringbuf_full']) * Number(e.attributes['probe.sample_n']),
      0,
    );
    const real = opens; // plus a few opens of the loader (libc), well inside the tolerance
    // Kept records, weighted, plus what the counters say was lost: the workload's real count ±10 %.
    expect(Math.abs(weighted + lostWeighted - real) / real).toBeLessThan(0.1);
    // Most of the storm is represented by the records themselves, not only by loss counters.
    expect(weighted / real).toBeGreaterThan(0.5);
    console.log(
      `storm: ${real} opens; kept ${opensSeen.length} records, weighted ${weighted} ` +
        `(${((100 * weighted) / real).toFixed(1)} %); ringbuf_full ${ringbufFull} ` +
        `(~${lostWeighted} weighted); peak overload x${peak}`,
    );

    // Every step counted: up and down, in the metric operators scrape.
    const metrics = await agentMetrics(agent).metrics();
    expect(metrics).toMatch(
      /tracefeed_overload_changes_total\{probe="file",direction="up"\} [1-9]/,
    );
    expect(metrics).toMatch(
      /tracefeed_overload_changes_total\{probe="file",direction="down"\} [1-9]/,
    );
  }, 90_000);
});
