/**
 * A Kafka cluster of a test's own: infra/kafka.sh start --brokers N in a temporary
 * TRACEFEED_HOME, on free loopback ports, sharing only the jars of the test
 * infrastructure. Never the suites' broker on 9092.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, stateDir } from '../../src/common/paths.js';
import { freePort } from './net.js';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs infra/kafka.sh with `args` under `env`; its exit code and output, never a throw. */
export function runKafkaSh(env: NodeJS.ProcessEnv, ...args: string[]): Promise<Run> {
  return new Promise((done) => {
    execFile(
      'bash',
      [join(repoRoot, 'infra', 'kafka.sh'), ...args],
      { cwd: repoRoot, env, timeout: 150_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        done({ code, stdout, stderr });
      },
    );
  });
}

async function bindable(port: number): Promise<boolean> {
  const s = createServer();
  return new Promise((ok) => {
    s.once('error', () => ok(false));
    s.listen(port, '127.0.0.1', () => s.close(() => ok(true)));
  });
}

/** `n` consecutive loopback ports that were all free a moment ago. */
export async function freePortRun(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = await freePort();
    if (base + n - 1 > 65535) continue;
    let all = true;
    for (let p = base + 1; p < base + n && all; p++) all = await bindable(p);
    if (all) return base;
  }
  throw new Error(`no run of ${n} free loopback ports found`);
}

export interface TestCluster {
  home: string;
  count: number;
  /** Client ports, by node id (1-based). */
  ports: Map<number, number>;
  brokers: string[];
  kafkaSh: (...args: string[]) => Promise<Run>;
  /** The pid of node `id` from its pid file (kafka.pid for node 1, kafka-<id>.pid else). */
  pid: (id: number) => number;
  /** Stops every node (SIGKILL) and removes the home. */
  destroy: () => Promise<void>;
}

/** Starts a cluster of `count` nodes; throws with the script's output if it fails. */
export async function startTestCluster(count: number, heap = '-Xmx384m'): Promise<TestCluster> {
  const pom = readFileSync(join(repoRoot, 'infra', 'kafka', 'pom.xml'), 'utf8');
  const version = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(pom)![1]!;
  const jars = join(stateDir(), 'kafka', version);
  const home = mkdtempSync(join(tmpdir(), 'tf-cluster-'));
  mkdirSync(join(home, 'kafka'), { recursive: true });
  symlinkSync(jars, join(home, 'kafka', version));
  const base = await freePortRun(2 * count);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TRACEFEED_HOME: home,
    TRACEFEED_KAFKA_PORT: String(base),
    TRACEFEED_KAFKA_CONTROLLER_PORT: String(base + 1),
    TRACEFEED_KAFKA_HEAP_OPTS: heap,
    TRACEFEED_KAFKA_BROKER_COUNT: String(count),
  };
  const kafkaSh = (...args: string[]): Promise<Run> => runKafkaSh(env, ...args);
  const ports = new Map<number, number>();
  for (let id = 1; id <= count; id++) ports.set(id, base + 2 * (id - 1));
  const cluster: TestCluster = {
    home,
    count,
    ports,
    brokers: [...ports.values()].map((p) => `127.0.0.1:${p}`),
    kafkaSh,
    pid: (id) =>
      Number(
        readFileSync(
          join(home, 'kafka', id === 1 ? 'kafka.pid' : `kafka-${id}.pid`),
          'utf8',
        ).trim(),
      ),
    destroy: async () => {
      await kafkaSh('stop', '--kill');
      rmSync(home, { recursive: true, force: true });
    },
  };
  const r = await kafkaSh('start');
  if (r.code !== 0) {
    await cluster.destroy();
    throw new Error(
      `infra/kafka.sh start --brokers ${count} failed (${r.code}): ${r.stderr}${r.stdout}`,
    );
  }
  return cluster;
}
