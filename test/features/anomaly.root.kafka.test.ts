/**
 * A real workload changes behaviour: steady successful connects, then a
 * burst of connects to a closed port. The failing connects show up as an
 * anomaly on tracefeed.anomalies.v1, validated by the zod schema.
 */
import { createServer, type Server } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { Topics } from '../../src/common/kafka.js';
import { NodeAgent } from '../../src/ingest/index.js';
import { FeatureStage, anomalySchema, type Anomaly } from '../../src/features/index.js';
import { testAgent, testStage } from '../helpers/pipeline.js';
import { subscribe } from '../helpers/kafka.js';
import { makeCgroup, type TestCgroup } from '../helpers/cgroup.js';

describe('anomalies from a real workload change', () => {
  const node = `anom-node-${randomBytes(3).toString('hex')}`;
  const log = createLogger('test', 'silent');
  let stage: FeatureStage;
  let agent: NodeAgent;
  let cg: TestCgroup;
  let server: Server;
  let openPort = 0;
  let closedPort = 0;
  const anomalies: Anomaly[] = [];
  const headersOf = new Map<string, Record<string, string>>();
  let stop: () => Promise<void>;

  beforeAll(async () => {
    stop = await subscribe(Topics.anomalies, (message) => {
      const a = anomalySchema.parse(JSON.parse(message.value!.toString()));
      if (a.node !== node) return;
      anomalies.push(a);
      headersOf.set(
        a.id,
        Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])),
      );
    });
    stage = testStage('anom', log, {
      allowed_lateness_seconds: 0,
      anomaly: { warmup_windows: 3 },
    });
    await stage.start();
    agent = testAgent(node, ['process', 'tcp'], log);
    cg = makeCgroup('tf-anom');
    server = createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    openPort = (server.address() as { port: number }).port;
    // A port nobody listens on: bind, read the number, close.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    closedPort = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
  }, 60_000);

  afterAll(async () => {
    await agent?.stop(2000);
    await stage?.stop();
    await stop?.();
    server?.close();
    cg?.remove();
  });

  const connects = (port: number, n: number, gapMs: number) =>
    `exec node -e "let i=0;const go=()=>{if(i++>=${n})return;const s=require('net').connect(${port},'127.0.0.1');s.on('error',()=>{});s.on('close',()=>setTimeout(go,${gapMs}))};go()"`;

  it('publishes a tcp_connect_failures anomaly for the workload', async () => {
    // Warm-up: about 8 s of healthy connects, a few per second, no failures.
    expect((await cg.run(connects(openPort, 40, 200))).code).toBe(0);
    expect(anomalies.filter((a) => a.workload === cg.path)).toEqual([]);
    // The change: 300 connects to a closed port, as fast as they fail.
    expect((await cg.run(connects(closedPort, 300, 0))).code).toBe(0);
    const deadline = Date.now() + 20_000;
    const hit = () =>
      anomalies.find((a) => a.workload === cg.path && a.metric === 'tcp_connect_failures');
    while (!hit() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const a = hit();
    expect(a, `anomalies seen: ${JSON.stringify(anomalies.map((x) => x.series_id))}`).toBeDefined();
    expect(a!.probe).toBe('tcp');
    expect(a!.observed).toBeGreaterThanOrEqual(20);
    // Judged against the series' own baseline (learned from the healthy warm-up: 0), or,
    // when the warm-up windows were too few to establish one, against a prior or the
    // node's peers, which must still be far below what was observed.
    if (a!.basis === 'baseline') expect(a!.baseline).toBe(0);
    else expect(a!.baseline).toBeLessThan(a!.observed / 2);
    expect(a!.score).toBeGreaterThanOrEqual(a!.threshold);
    expect(a!.cgroup_id).toBe(cg.id.toString());
    expect(a!.evidence[0]?.tcp_connect_failures).toBe(a!.observed);
    expect(a!.series_id).toBe(`${node}|${cg.path}|tcp|tcp_connect_failures`);
    // CloudEvents binary mode (src/common/cloudevents.ts).
    expect(headersOf.get(a!.id)).toEqual({
      ce_specversion: '1.0',
      ce_id: a!.id,
      ce_source: `/node/${node}`,
      ce_type: 'io.tracefeed.anomalies.v1',
      'content-type': 'application/json',
    });
  }, 90_000);
});
