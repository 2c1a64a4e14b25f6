/**
 * End to end on real parts: a real workload in its own cgroup, the node agent
 * on the real kernel, the feature stage consuming real Kafka; the workload's
 * features read back from Kafka, from the .arrows files and from HTTP.
 */
import { createServer, type Server } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { tableFromIPC } from 'apache-arrow';
import { authHeaders } from '../../src/common/http-auth.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { Topics } from '../../src/common/kafka.js';
import { DEFAULT_AGENT_OPTIONS, NodeAgent } from '../../src/ingest/index.js';
import { FeatureStage, readArrowsFile } from '../../src/features/index.js';
import { BROKERS, subscribe } from '../helpers/kafka.js';
import { makeCgroup, type TestCgroup } from '../helpers/cgroup.js';

type Row = Record<string, unknown>;

function sum(rows: Row[], probe: string, col: string): number {
  return rows.filter((r) => r.probe === probe).reduce((a, r) => a + Number(r[col] ?? 0), 0);
}

describe('features of a real workload', () => {
  const node = `feat-node-${randomBytes(3).toString('hex')}`;
  const log = createLogger('test', 'silent');
  let agent: NodeAgent;
  let stage: FeatureStage;
  let cg: TestCgroup;
  let server: Server;
  let port = 0;
  const httpPort = 20000 + Math.floor(Math.random() * 20000);
  const kafkaRows: Row[] = [];
  const kafkaHeaders: Array<Record<string, string>> = [];
  let stopKafka: () => Promise<void>;

  beforeAll(async () => {
    // An independent consumer of the features topic, started first.
    stopKafka = await subscribe(Topics.features, (message) => {
      if (message.key?.toString() !== node || !message.value) return;
      for (const r of tableFromIPC(message.value).toArray()) kafkaRows.push(r.toJSON() as Row);
      kafkaHeaders.push(
        Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])),
      );
    });

    stage = new FeatureStage(
      {
        brokers: BROKERS,
        group_id: `tracefeed-features-test-${randomUUID()}`,
        window_seconds: 1,
        allowed_lateness_seconds: 1,
        idle_close_seconds: 1,
        data_dir: mkdtempSync(join(tmpdir(), 'tf-features-')),
        http_port: httpPort,
      },
      log,
    );
    await stage.start();
    agent = new NodeAgent({
      ...DEFAULT_AGENT_OPTIONS,
      nodeName: node,
      brokers: BROKERS,
      lingerMs: 50,
      log,
      families: ['process', 'tcp'],
    });
    agent.start();
    cg = makeCgroup('tf-feat');
    server = createServer((sock) => {
      let got = 0;
      sock.on('data', (d) => {
        got += d.length;
        if (got === 50_000) sock.end(Buffer.alloc(7_000, 1));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
  }, 60_000);

  afterAll(async () => {
    await agent?.stop(2000);
    await stage?.stop();
    await stopKafka?.();
    server?.close();
    cg?.remove();
  });

  it('counts execs, exits, connections and bytes of the workload, in Kafka, files and HTTP', async () => {
    const client = `exec node -e "const s=require('net').connect(${port},'127.0.0.1',()=>s.write(Buffer.alloc(50000,2)));let n=0;s.on('data',d=>n+=d.length);s.on('end',()=>{s.end();process.exitCode=n===7000?0:9})"`;
    expect(
      (await cg.run(`for i in 1 2 3 4 5 6 7 8 9 10 11 12; do /bin/true; done; /bin/false; exit 0`))
        .code,
    ).toBe(0);
    expect((await cg.run(client)).code).toBe(0);

    // Windows close one second after they end plus lateness; wait for ours.
    const deadline = Date.now() + 30_000;
    const want = (rows: Row[]) =>
      sum(
        rows.filter((r) => r.workload === cg.path),
        'process',
        'exec_count',
      ) >= 14 &&
      sum(
        rows.filter((r) => r.workload === cg.path),
        'tcp',
        'tcp_closes',
      ) >= 1;
    while (!want(kafkaRows) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));

    const check = (rows: Row[], where: string) => {
      const mine = rows.filter((r) => r.workload === cg.path && r.node === node);
      // 12 x /bin/true, /bin/false, and `exec node` of the client
      expect(sum(mine, 'process', 'exec_count'), where).toBe(14);
      // 13 children, the first shell, and the second shell (which became the client by exec)
      expect(sum(mine, 'process', 'exit_count'), where).toBe(15);
      expect(sum(mine, 'process', 'failed_exits'), where).toBe(1);
      expect(sum(mine, 'tcp', 'tcp_connects'), where).toBe(1);
      expect(sum(mine, 'tcp', 'tcp_closes'), where).toBe(1);
      expect(sum(mine, 'tcp', 'tcp_bytes_sent'), where).toBe(50_000);
      expect(sum(mine, 'tcp', 'tcp_bytes_received'), where).toBe(7_000);
      for (const r of mine) expect(String(r.cgroup_id), where).toBe(cg.id.toString());
    };
    check(kafkaRows, 'kafka');
    // CloudEvents binary mode (src/common/cloudevents.ts), and the window's own headers.
    for (const h of kafkaHeaders) {
      expect(h).toMatchObject({
        ce_specversion: '1.0',
        ce_id: `${node}@${h.tracefeed_window_start}`,
        ce_source: `/node/${node}`,
        ce_type: 'io.tracefeed.features.v1',
        'content-type': 'application/vnd.apache.arrow.stream',
        tracefeed_source_partition: expect.stringMatching(/^\d+$/),
        tracefeed_rows: expect.stringMatching(/^\d+$/),
      });
      expect(Date.parse(h.ce_time!)).toBeGreaterThan(Date.now() - 120_000);
    }

    const fileRows: Row[] = [];
    const { readdirSync } = await import('node:fs');
    for (const f of readdirSync(stage.arrowsDir).filter((f) => f.endsWith('.arrows'))) {
      for (const b of readArrowsFile(join(stage.arrowsDir, f)))
        for (const r of b.toArray()) fileRows.push(r.toJSON() as Row);
    }
    check(fileRows, 'files');

    const res = await fetch(
      `http://127.0.0.1:${httpPort}/v1/features?workload=${encodeURIComponent(cg.path)}&node=${node}`,
      { headers: authHeaders() },
    );
    expect(res.headers.get('content-type')).toBe('application/vnd.apache.arrow.stream');
    const httpTable = tableFromIPC(new Uint8Array(await res.arrayBuffer()));
    const httpRows = httpTable.toArray().map((r) => r.toJSON() as Row);
    expect(httpRows.every((r) => r.workload === cg.path)).toBe(true);
    check(httpRows, 'http');

    const bad = await fetch(`http://127.0.0.1:${httpPort}/v1/features?since=yesterday`, {
      headers: authHeaders(),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(
      /since must be an ISO 8601 time/,
    );

    const metrics = await (
      await fetch(`http://127.0.0.1:${httpPort}/metrics`, { headers: authHeaders() })
    ).text();
    expect(metrics).toMatch(/tracefeed_features_windows_total [1-9]/);
    expect(metrics).toMatch(/tracefeed_features_late_events_total 0/);
    const s = stage.stats();
    expect(s.windowsClosed).toBeGreaterThan(0);
    expect(s.late).toBe(0);
  }, 90_000);
});
