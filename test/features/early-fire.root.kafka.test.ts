/**
 * Cold start and early fire, end to end: a workload nobody has seen starts
 * crash-looping in a real cgroup. Its failed exits cross the prior in the
 * first window, and the anomaly reaches tracefeed.anomalies.v1 while that
 * window is still open, then is not published again when it closes.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { Topics } from '../../src/common/kafka.js';
import { NodeAgent } from '../../src/ingest/index.js';
import { FeatureStage, anomalySchema, type Anomaly } from '../../src/features/index.js';
import { testAgent, testStage } from '../helpers/pipeline.js';
import { subscribe } from '../helpers/kafka.js';
import { makeCgroup, type TestCgroup } from '../helpers/cgroup.js';

const WINDOW_S = 10;
const LATENESS_S = 2;

describe('early fire of a new crash-looping workload', () => {
  const node = `early-node-${randomBytes(3).toString('hex')}`;
  const log = createLogger('test', 'silent');
  let stage: FeatureStage;
  let agent: NodeAgent;
  let cg: TestCgroup;
  const received: Array<{ a: Anomaly; atMs: number }> = [];
  let stop: () => Promise<void>;

  beforeAll(async () => {
    stop = await subscribe(Topics.anomalies, (message) => {
      const a = anomalySchema.parse(JSON.parse(message.value!.toString()));
      if (a.node === node) received.push({ a, atMs: Date.now() });
    });
    stage = testStage('early', log, {
      window_seconds: WINDOW_S,
      allowed_lateness_seconds: LATENESS_S,
      idle_close_seconds: 5,
    });
    await stage.start();
    agent = testAgent(node, ['process'], log);
    cg = makeCgroup('tf-early');
    // The stage reads from the end of the topic: wait until it sees this node's frames.
    const ready = Date.now() + 30_000;
    while (stage.stats().frames === 0 && Date.now() < ready) {
      await cg.run('true');
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(stage.stats().frames).toBeGreaterThan(0);
  }, 60_000);

  afterAll(async () => {
    await agent?.stop(2000);
    await stage?.stop();
    await stop?.();
    cg?.remove();
  });

  it('publishes the anomaly before its window closes, and once', async () => {
    // Start just after a window boundary, so the loop sits well inside one window.
    const intoWindow = Date.now() % (WINDOW_S * 1000);
    if (intoWindow > 500)
      await new Promise((r) => setTimeout(r, WINDOW_S * 1000 - intoWindow + 200));
    // Eight failed starts in well under a second (the prior is 5 per window).
    expect((await cg.run('for i in 1 2 3 4 5 6 7 8; do sh -c "exit 3"; done; true')).code).toBe(0);
    const hit = () =>
      received.find((r) => r.a.workload === cg.path && r.a.metric === 'failed_exits');
    const deadline = Date.now() + 3 * WINDOW_S * 1000;
    while (!hit() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const first = hit();
    expect(
      first,
      `anomalies seen: ${JSON.stringify(received.map((r) => r.a.series_id))}`,
    ).toBeDefined();
    const a = first!.a;
    expect(a).toMatchObject({ basis: 'prior', partial: true, probe: 'process' });
    expect(a.observed).toBeGreaterThanOrEqual(5);
    expect(a.cgroup_id).toBe(cg.id.toString());
    // Received on Kafka before the window's end, let alone its close (end + lateness).
    const endMs = Date.parse(a.window_end);
    expect(first!.atMs).toBeLessThan(endMs);
    expect(Date.parse(a.detected_at)).toBeLessThan(endMs);
    // The close does not publish the same series and window again. Wait for the close
    // (end + lateness at the earliest; later on a loaded host), then a little more.
    const closed = (): boolean => {
      const last = stage.stats().lastWindowEnd;
      return last !== null && Date.parse(last) >= endMs;
    };
    const closeBy = endMs + LATENESS_S * 1000 + 30_000;
    while (!closed() && Date.now() < closeBy) await new Promise((r) => setTimeout(r, 200));
    await new Promise((r) => setTimeout(r, 2000));
    expect(stage.stats().lastWindowEnd).not.toBeNull();
    expect(Date.parse(stage.stats().lastWindowEnd!)).toBeGreaterThanOrEqual(endMs);
    expect(received.filter((r) => r.a.id === a.id)).toHaveLength(1);
    expect(stage.stats().anomaliesEarly).toBeGreaterThanOrEqual(1);
  }, 90_000);
});
