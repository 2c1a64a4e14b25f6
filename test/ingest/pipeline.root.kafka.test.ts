/**
 * The walking skeleton end to end: `tracefeed up` loads the process probe on
 * the real kernel, a real program runs, and an independent Kafka consumer
 * finds its exec and exit events in tracefeed.events.v1.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/common/paths.js';
import { startCollector } from '../helpers/kafka.js';
import { uniqueProgram } from '../helpers/workload.js';

const cli = `${repoRoot}/bin/tracefeed.js`;

interface Running {
  exit: Promise<number>;
  stdout: () => string;
  stderr: () => string;
  ready: Promise<void>;
}

function startUp(args: string[]): Running {
  const child = spawn(process.execPath, [cli, 'up', ...args], {
    env: { ...process.env, TRACEFEED_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let markReady!: () => void;
  const ready = new Promise<void>((r) => (markReady = r));
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    if (err.includes('"msg":"tracefeed up"')) markReady();
  });
  const exit = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
  void exit.then(() => markReady());
  return { exit, stdout: () => out, stderr: () => err, ready };
}

describe('process events reach Kafka', () => {
  let collector: Awaited<ReturnType<typeof startCollector>>;
  beforeAll(async () => {
    collector = await startCollector();
  });
  afterAll(async () => {
    await collector?.stop();
  });

  it('tracefeed up publishes exec and exit of a real program with the right pid, comm, filename and exit code', async () => {
    const node = `test-node-${randomBytes(3).toString('hex')}`;
    const up = startUp(['--no-infra', '--duration', '12', '--node', node, '-o', 'json']);
    await up.ready;
    // `events tail` as a user runs it, piped: JSON lines of this node's exec events.
    const tail = spawn(
      process.execPath,
      [
        cli,
        'events',
        'tail',
        '--node',
        node,
        '--probe',
        'process',
        // The process probe's own probe.stats records may come first on a busy host.
        '--type',
        'process.',
        '--limit',
        '2',
        '--timeout',
        '30',
      ],
      { env: { ...process.env, TRACEFEED_LOG_LEVEL: 'silent' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let tailOut = '';
    tail.stdout.on('data', (d: Buffer) => (tailOut += d.toString()));
    const tailDone = new Promise<number>((r) => tail.on('exit', (c) => r(c ?? -1)));
    await new Promise((r) => setTimeout(r, 3000)); // let it join its group
    const prog = uniqueProgram('tf-skel');
    const { pid, code } = await prog.run(7);
    expect(code).toBe(7);

    const exec = await collector.waitFor(
      (e) => e.type === 'process.exec' && e.attributes['process.executable.path'] === prog.path,
      15_000,
    );
    expect(exec.attributes['process.pid']).toBe(pid);
    expect(exec.attributes['process.executable.name']).toBe(prog.name.slice(0, 15));
    expect(exec.attributes['process.parent_pid']).toBe(process.pid);
    expect(exec.node).toBe(node);
    const exit = await collector.waitFor(
      (e) => e.type === 'process.exit' && e.attributes['process.pid'] === pid,
      15_000,
    );
    expect(exit.attributes['process.exit.code']).toBe(7);
    expect(exit.attributes['process.executable.name']).toBe(prog.name.slice(0, 15));
    expect(BigInt(exit.time_unix_nano)).toBeGreaterThan(BigInt(exec.time_unix_nano));
    // Event time is wall-clock time: within a minute of now.
    expect(Math.abs(Date.parse(exec.time) - Date.now())).toBeLessThan(60_000);

    const record = collector.records.find((r) => r.events.includes(exec));
    expect(record?.key).toBe(node);
    expect(record?.headers.ce_specversion).toBe('1.0');
    expect(record?.headers.ce_source).toBe(`/node/${node}`);
    expect(record?.headers.ce_type).toBe('io.tracefeed.events.v1');
    expect(record?.headers['content-type']).toBe('application/vnd.tracefeed.frame.v1');
    expect(Number(record?.headers.tracefeed_event_count)).toBe(record?.events.length);

    expect(await tailDone).toBe(0);
    const tailed = tailOut
      .trim()
      .split('\n')
      .map(
        (l) => JSON.parse(l) as { node: string; type: string; attributes: Record<string, unknown> },
      );
    expect(tailed).toHaveLength(2);
    expect(tailed.every((e) => e.node === node && e.type.startsWith('process.'))).toBe(true);

    expect(await up.exit).toBe(0);
    const summary = JSON.parse(up.stdout()) as {
      eventsByType: Record<string, number>;
      publisher: { eventsSent: number; eventsDropped: number };
    };
    expect(summary.eventsByType['process.exec']).toBeGreaterThanOrEqual(1);
    expect(summary.publisher.eventsSent).toBeGreaterThanOrEqual(2);
    expect(summary.publisher.eventsDropped).toBe(0);
  }, 60_000);

  it('says clearly when Kafka is unreachable and exits non-zero', () => {
    const r = spawnSync(
      process.execPath,
      [cli, 'up', '--no-infra', '--brokers', '127.0.0.1:1', '--duration', '5'],
      {
        encoding: 'utf8',
        env: { ...process.env, TRACEFEED_LOG_LEVEL: 'silent' },
        timeout: 60_000,
      },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/Kafka is unreachable at 127\.0\.0\.1:1/);
    expect(r.stderr).toMatch(/fix: start the local broker with `tracefeed infra up`/);
  }, 70_000);

  it('says clearly that loading probes needs root', () => {
    const r = spawnSync(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        process.execPath,
        cli,
        'up',
        '--no-infra',
        '--duration',
        '1',
      ],
      {
        encoding: 'utf8',
        env: { ...process.env, TRACEFEED_LOG_LEVEL: 'silent', TRACEFEED_HOME: '/tmp' },
        timeout: 60_000,
      },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/needs root/);
    expect(r.stderr).toMatch(/fix: run as root/);
  }, 70_000);
});
