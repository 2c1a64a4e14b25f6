/**
 * Reverts that cannot be lost: a `tracefeed node` process is SIGKILLed right after a
 * feedback change reached the kernel and before any of its bookkeeping (no applied
 * record, no delayed revert job in Redis), and its queue is then wiped. Restarted, the
 * node puts the change back from its own journal (it is still within its TTL) and
 * reverts it on time by itself: the kernel map says so.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Queue } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import { authHeaders } from '../../src/common/http-auth.js';
import { createLogger } from '../../src/common/logger.js';
import { repoRoot } from '../../src/common/paths.js';
import { JOB_OPTIONS, QUEUE_PREFIX, revertJobId } from '../../src/feedback/job.js';
import { loadOrCreateSigner } from '../../src/feedback/job-signing.js';
import { redisOptions, redisUrlFrom } from '../../src/feedback/redis.js';
import { journalPath } from '../../src/feedback/revert-journal.js';
import { applyJob, request, until } from './helpers.js';
import { freePort } from '../helpers/net.js';

const cli = `${repoRoot}/bin/tracefeed.js`;
const url = redisUrlFrom(undefined);
const node = `rj-${randomBytes(4).toString('hex')}`;
const TTL_S = 30;
const children: ChildProcess[] = [];
const log = createLogger('test-revert-journal');

function startNode(port: number, env: Record<string, string> = {}) {
  const child = spawn(
    process.execPath,
    [cli, 'node', '--node', node, '--probes', 'tcp', '--api-port', String(port), '--redis', url],
    {
      env: { ...process.env, TRACEFEED_LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return { child, stderr: () => err, exit };
}

async function kernel(port: number): Promise<Record<string, number>> {
  const res = await fetch(`http://127.0.0.1:${port}/v1/probes/tcp/kernel`, {
    headers: authHeaders(),
  });
  if (!res.ok) throw new Error(`kernel config: ${res.status} ${await res.text()}`);
  return (await res.json()) as Record<string, number>;
}

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

describe('the node reverts on its own', () => {
  it('SIGKILLed between the kernel change and its bookkeeping, restarted with its queue gone: the change is reverted on time', async () => {
    const port = await freePort();
    const first = startNode(port, { TRACEFEED_TEST_PAUSE_AFTER_KERNEL_CHANGE_MS: '600000' });
    await until('node up', () => first.stderr().includes('"msg":"tracefeed node"'), 60_000);
    // The node role's own health: probes attached.
    const health = await fetch(`http://127.0.0.1:${port}/v1/health`, { headers: authHeaders() });
    expect(await health.json()).toMatchObject({ ok: true, role: 'node', node, probes: ['tcp'] });
    const before = await kernel(port);
    expect(before.sample_n).toBe(1);

    const queue = new Queue(node, { prefix: QUEUE_PREFIX, connection: redisOptions(url) });
    const signer = loadOrCreateSigner();
    const req = request({ target: { nodes: [node] }, probe: 'tcp' });
    const revert = signer.sign({
      kind: 'revert',
      node,
      request_id: req.id,
      probe: 'tcp',
      cause: 'ttl',
      created_at: new Date().toISOString(),
    });
    const job = signer.sign({
      ...applyJob(queue, req, { sample_n: 4 }, 'journal test'),
      ttl_seconds: TTL_S,
      ttl_revert: revert,
    });
    await queue.add('apply', job, { ...JOB_OPTIONS, jobId: req.id });

    await until('the kernel change, then the pause', () =>
      first.stderr().includes('paused after the kernel change'),
    );
    expect((await kernel(port)).sample_n).toBe(4);
    first.child.kill('SIGKILL');
    expect(await first.exit).toBeNull();
    // No bookkeeping happened: no delayed revert in Redis. Then the cluster side is gone.
    expect(await queue.getJob(revertJobId(req.id))).toBeUndefined();
    await queue.obliterate({ force: true });
    await queue.close();

    const journal = readFileSync(journalPath(node), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { t: string; id: string; revert_at_ms?: number });
    const intent = journal.find((e) => e.t === 'intent' && e.id === req.id)!;
    expect(intent).toBeDefined();
    expect(journal.some((e) => e.t === 'applied' && e.id === req.id)).toBe(false);
    const revertAt = intent.revert_at_ms!;

    const second = startNode(port);
    await until('node restarted', () => second.stderr().includes('"msg":"tracefeed node"'), 60_000);
    expect(Date.now()).toBeLessThan(revertAt - 2000); // the test needs the TTL still running
    // Still in force: put back from the journal.
    expect((await kernel(port)).sample_n).toBe(4);
    expect(second.stderr()).toContain('journaled change put back');
    // Reverted by the node itself, on time.
    const revertedAt = await until(
      'the TTL revert in the kernel',
      async () => ((await kernel(port)).sample_n === 1 ? Date.now() : undefined),
      TTL_S * 1000 + 15_000,
    );
    log.info({ ttl_s: TTL_S, late_ms: revertedAt - revertAt }, 'reverted by the node');
    expect(revertedAt).toBeGreaterThanOrEqual(revertAt);
    expect(revertedAt - revertAt).toBeLessThan(3000);
    expect(second.stderr()).toContain('the node reverts on its own');
    const after = readFileSync(journalPath(node), 'utf8');
    expect(after).toMatch(new RegExp(`"t":"reverted","id":"${req.id}"`));
    const metrics = await (
      await fetch(`http://127.0.0.1:${port}/metrics`, { headers: authHeaders() })
    ).text();
    expect(metrics).toMatch(
      /^tracefeed_node_feedback_jobs_total\{outcome="reverted_locally"\} 1$/m,
    );
    expect(metrics).toMatch(
      /^tracefeed_node_feedback_jobs_total\{outcome="restored_from_journal"\} 1$/m,
    );
    second.child.kill('SIGTERM');
    await second.exit;
  }, 180_000);
});
