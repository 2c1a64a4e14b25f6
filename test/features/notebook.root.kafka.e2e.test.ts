/**
 * The example notebook, executed headless against features this test made
 * from a real workload: pyarrow, polars and DuckDB read them from the files,
 * from HTTP and from Kafka, and the values they compute are checked here.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { clientToken } from '../../src/common/http-auth.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { repoRoot } from '../../src/common/paths.js';
import { NodeAgent } from '../../src/ingest/index.js';
import { FeatureStage } from '../../src/features/index.js';
import { testAgent, testStage } from '../helpers/pipeline.js';
import { BROKERS, INFRA_SECRETS } from '../helpers/kafka.js';
import { makeCgroup, type TestCgroup } from '../helpers/cgroup.js';

function python(): string {
  if (process.env.TRACEFEED_PYTHON) return process.env.TRACEFEED_PYTHON;
  return execFileSync('bash', [join(repoRoot, 'scripts/python-env.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
}

interface Totals {
  [workload: string]: { [probe: string]: Record<string, number> };
}

describe('example notebook', () => {
  const node = `nb-node-${randomBytes(3).toString('hex')}`;
  const log = createLogger('test', 'silent');
  const httpPort = 20000 + Math.floor(Math.random() * 20000);
  let stage: FeatureStage;
  let agent: NodeAgent;
  let cg: TestCgroup;
  let written = 0;

  beforeAll(async () => {
    stage = testStage('nb', log, {
      http_port: httpPort,
    });
    stage.onWindow(({ rows }) => {
      written += rows
        .filter((r) => r.workload === cg?.path && r.probe === 'process')
        .reduce((a, r) => a + Number(r.exec_count), 0);
    });
    await stage.start();
    agent = testAgent(node, ['process'], log);
    cg = makeCgroup('tf-nb');
  }, 60_000);

  afterAll(async () => {
    await agent?.stop(2000);
    await stage?.stop();
    cg?.remove();
  });

  it('computes the same workload totals from files, HTTP and Kafka with pyarrow, polars and DuckDB', async () => {
    const py = python();
    expect(
      (await cg.run('for i in 1 2 3 4 5 6 7; do /bin/true; done; /bin/false; true')).code,
    ).toBe(0);
    const deadline = Date.now() + 30_000;
    while (written < 8 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(written).toBe(8);

    const out = mkdtempSync(join(tmpdir(), 'tf-nb-out-'));
    const result = join(out, 'result.json');
    // Asynchronous: the features HTTP API answers from this very process.
    await promisify(execFile)(
      py,
      [
        join(repoRoot, 'examples/notebooks/run_notebook.py'),
        join(repoRoot, 'examples/notebooks/tracefeed-features.ipynb'),
        join(out, 'executed.ipynb'),
      ],
      {
        cwd: join(repoRoot, 'examples/notebooks'),
        env: {
          ...process.env,
          TRACEFEED_ARROWS_DIR: stage.arrowsDir,
          TRACEFEED_FEATURES_URL: `http://127.0.0.1:${httpPort}/v1/features`,
          // The notebook sends it as a bearer token (it reads the token file otherwise).
          TRACEFEED_TOKEN: clientToken() ?? '',
          TRACEFEED_KAFKA: BROKERS[0],
          // The notebook's cwd is not the checkout: the state directory, absolute (its
          // Kafka password, as a reader of the local cluster).
          TRACEFEED_HOME: join(INFRA_SECRETS, '..'),
          TRACEFEED_NODE: node,
          TRACEFEED_WORKLOAD: cg.path,
          TRACEFEED_NOTEBOOK_RESULT: result,
        },
        timeout: 240_000,
      },
    );
    const r = JSON.parse(readFileSync(result, 'utf8')) as {
      files: Totals;
      http: Totals;
      kafka: Totals;
      duckdb: Record<string, { exec_count: number; exit_count: number }>;
      schema_version: string;
      window_start_type: string;
      workload_type: string;
    };
    for (const source of ['files', 'http', 'kafka'] as const) {
      const p = r[source][cg.path]?.process;
      expect(p, `${source} has the workload`).toBeDefined();
      expect(p!.exec_count, source).toBe(8);
      // 8 children and the shell
      expect(p!.exit_count, source).toBe(9);
      expect(p!.failed_exits, source).toBe(1);
      expect(Object.keys(r[source]), `${source} holds only the filtered workload`).toEqual([
        cg.path,
      ]);
    }
    expect(r.duckdb[`${cg.path}|process`]).toEqual({ exec_count: 8, exit_count: 9 });
    expect(r.schema_version).toBe('4');
    expect(r.window_start_type).toBe('timestamp[ns, tz=UTC]');
    expect(r.workload_type).toBe('dictionary<values=string, indices=int32, ordered=0>');
    expect(existsSync(join(out, 'result.png'))).toBe(true);
  }, 300_000);
});
