/**
 * Delivery over BullMQ on the real Redis: deterministic job ids dedupe, a
 * malformed job is failed and audited (an unsigned one refused), unknown probes and nodes are rejected,
 * the TTL reverts, and a Redis restart mid-flight loses nothing and applies
 * nothing twice. The probe plane is RecordingTarget (it counts applies).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { repoRoot } from '../../src/common/paths.js';
import { AuditTrail, readAudit } from '../../src/feedback/audit.js';
import { QUEUE_PREFIX } from '../../src/feedback/job.js';
import { NodeFeedbackWorker } from '../../src/feedback/node-worker.js';
import { connectRedis, redisOptions, redisUrlFrom } from '../../src/feedback/redis.js';
import { FeedbackService } from '../../src/feedback/service.js';
import { parseThresholds } from '../../src/feedback/thresholds.js';
import { RecordingTarget } from './probe-target.js';
import { applyJob, enqueueApply, failedJob, request, testSigner, until } from './helpers.js';

const log = createLogger('test', process.env.TRACEFEED_LOG_LEVEL ?? 'silent');
const url = redisUrlFrom(undefined);
const thresholds = parseThresholds(
  'version: 1\nprobes: { tcp: { max_sample_n: 100000 } }\ncooldown_seconds: 0\n',
);

describe('feedback delivery over BullMQ (real Redis)', () => {
  const node = `test-${randomBytes(4).toString('hex')}`;
  const auditPath = join(mkdtempSync(join(tmpdir(), 'tf-audit-')), 'feedback.jsonl');
  let redis: Redis;
  let audit: AuditTrail;
  let service: FeedbackService;
  let target: RecordingTarget;
  let worker: NodeFeedbackWorker;
  const signer = testSigner();

  beforeAll(async () => {
    redis = connectRedis(url);
    audit = new AuditTrail({ path: auditPath, log });
    service = new FeedbackService({
      redis,
      redisUrl: url,
      audit,
      thresholds: () => thresholds,
      actor: 'test',
      log,
      signer,
    });
    target = new RecordingTarget();
    worker = await new NodeFeedbackWorker(target, {
      node,
      redisUrl: url,
      audit,
      log,
      verifier: signer.verifier(),
      // The node's own sample_n bound, raised with the thresholds' tcp max_sample_n.
      maxSampleN: 100_000,
      rateSettleMs: 300,
      reportIntervalMs: 500,
      lockDurationMs: 10_000,
      stalledIntervalMs: 5000,
    }).start();
  });

  afterAll(async () => {
    // Always leave Redis running.
    execFileSync('bash', [join(repoRoot, 'infra/redis.sh'), 'start'], { stdio: 'ignore' });
    await worker?.stop();
    await service?.store.unregisterNode(node);
    await service?.queue(node).obliterate({ force: true });
    await service?.close();
    redis?.disconnect();
  });

  const applies = (n: number): number => target.calls.filter((c) => c.patch.sample_n === n).length;
  const auditOf = (id: string, state: string): number =>
    readAudit(auditPath, id).filter((r) => r.state === state).length;

  it('applies a request once however often it is submitted or enqueued', async () => {
    const req = request({
      target: { nodes: [node] },
      action: 'set',
      params: { sample_n: 7 },
      origin: 'operator',
      ttl_seconds: 0,
    });
    const first = await service.submit(req);
    expect(first.decisions).toMatchObject([{ node, outcome: 'accept' }]);
    const again = await service.submit(req);
    expect(again.duplicate).toBe(true);
    // The same job id straight into the queue, as a retrying producer would.
    await service.queue(node).add(
      'apply',
      signer.sign({
        ...applyJob(service.queue(node), req, { sample_n: 7 }, 'dup'),
        ttl_seconds: 0,
      }),
      { jobId: req.id },
    );
    const v = await until('applied', async () => {
      const s = await service.get(req.id);
      return s?.status[node]?.state === 'applied' && auditOf(req.id, 'applied') > 0 ? s : undefined;
    });
    expect(v.status[node]?.result).toMatchObject({
      generation: expect.any(Number),
      applied: { sample_n: 7 },
    });
    // Applied (and audited) when the kernel changed; the job completes once the rate after is measured.
    const job = await until('completed', async () => {
      const j = await service.queue(node).getJob(req.id);
      return j && (await j.getState()) === 'completed' ? j : undefined;
    });
    expect(job.returnvalue).toMatchObject({
      state: 'applied',
      request_id: req.id,
      events_per_second_before: 0,
    });
    expect(target.settings('tcp').sample_n).toBe(7);
    expect(applies(7)).toBe(1);
    expect(auditOf(req.id, 'submitted')).toBe(1);
    expect(auditOf(req.id, 'accepted')).toBe(1);
    expect(auditOf(req.id, 'delivered')).toBe(1);
    expect(auditOf(req.id, 'applied')).toBe(1);
  });

  it('fails a malformed job placed directly in the queue with a clear, audited reason, and applies nothing', async () => {
    const q = new Queue(node, { prefix: QUEUE_PREFIX, connection: redisOptions(url) });
    const before = target.calls.length;
    try {
      // Signed, so that the shape is what the worker refuses.
      for (const [id, data] of [
        ['bad-1', { kind: 'apply', node, request: { id: 'bad-1' }, patch: {} }],
        ['bad-3', { kind: 'format-disk', node }],
      ] as const) {
        await q.add('apply', signer.sign(data), { jobId: id, attempts: 3 });
      }
      await q.add('apply', 'not even an object', { jobId: 'bad-2', attempts: 3 });
      const notObject = await failedJob(q, 'bad-2');
      expect(notObject.failedReason).toMatch(/bad-2 \(apply\) refused: the job is not an object/);
      expect(notObject.attemptsMade).toBe(1);
      const audited = await until('bad-2 audited', async () =>
        readAudit(auditPath, 'bad-2').find((r) => r.state === 'rejected'),
      );
      expect(audited.reason).toMatch(/not applied/);
      for (const id of ['bad-1', 'bad-3']) {
        const job = await failedJob(q, id);
        expect(job.failedReason).toMatch(new RegExp(`malformed feedback job ${id}`));
        expect(job.attemptsMade).toBe(1); // unrecoverable: not retried
        const audited = await until(`${id} audited`, async () =>
          readAudit(auditPath, id).find((r) => r.state === 'failed'),
        );
        expect(audited.reason).toMatch(/not applied/);
      }
      expect((await q.getJob('bad-1'))?.failedReason).toMatch(/request\.target/);
    } finally {
      await q.close();
    }
    expect(target.calls.length).toBe(before);
  });

  it('rejects and audits unknown probes and unknown nodes', async () => {
    const ghost = await service.submit(
      request({ target: { nodes: ['ghost-node'] }, origin: 'operator' }),
    );
    expect(ghost.decisions[0]).toMatchObject({
      outcome: 'reject',
      reason: expect.stringMatching(/unknown node "ghost-node"/),
    });
    expect(auditOf(ghost.request_id, 'rejected')).toBe(1);

    const noFile = await service.submit(
      request({ target: { nodes: [node] }, probe: 'file', origin: 'operator' }),
    );
    expect(noFile.decisions[0]?.reason).toMatch(/probe file is not loaded on node/);

    await expect(
      service.submit({ ...request(), probe: 'kprobe', id: 'fb-bogus-probe' }),
    ).rejects.toThrow(/probe/);
    expect(auditOf('fb-bogus-probe', 'rejected')).toBe(1);

    // An apply job for a probe this node does not load, straight into the queue.
    const req = request({ target: { nodes: [node] }, probe: 'sched', action: 'enable' });
    await enqueueApply(service.queue(node), signer, req, { enabled: true }, 'x');
    const job = await failedJob(service.queue(node), req.id);
    expect(job.failedReason).toMatch(/probe sched is not loaded on node/);
    expect(auditOf(req.id, 'rejected')).toBe(1);
  });

  it('reverts at TTL expiry, restoring what was in force before', async () => {
    const before = structuredClone(target.settings('syscalls'));
    const req = request({
      target: { nodes: [node] },
      probe: 'syscalls',
      action: 'tighten',
      params: { slow_ms: 3, filters: { pid: { allow: [1] } } },
      ttl_seconds: 2,
      origin: 'operator',
    });
    await service.submit(req);
    await until(
      'applied',
      async () => (await service.get(req.id))?.status[node]?.state === 'applied',
    );
    expect(target.settings('syscalls')).toMatchObject({
      slow_ms: 3,
      filters: { pid: { allow: [1] } },
    });
    const v = await until(
      'reverted',
      async () => {
        const s = await service.get(req.id);
        return s?.status[node]?.state === 'reverted' ? s : undefined;
      },
      10_000,
    );
    expect(target.settings('syscalls')).toEqual(before);
    expect(v.status[node]?.reason).toMatch(/TTL of 2 s expired; restored slow_ms, filters\.pid/);
    expect(auditOf(req.id, 'reverted')).toBe(1);
  });

  it('operator revert promotes the TTL revert job: reverted once', async () => {
    const req = request({
      target: { nodes: [node] },
      action: 'set',
      params: { sample_n: 31 },
      ttl_seconds: 600,
      origin: 'operator',
    });
    await service.submit(req);
    await until(
      'applied',
      async () => (await service.get(req.id))?.status[node]?.state === 'applied',
    );
    expect(await service.revert(req.id, 'operator/test')).toEqual([node]);
    await until(
      'reverted',
      async () => (await service.get(req.id))?.status[node]?.state === 'reverted',
    );
    expect(target.settings('tcp').sample_n).toBe(7);
    await expect(service.revert(req.id, 'operator/test')).rejects.toThrow(/applied on no node/);
    expect(auditOf(req.id, 'reverted')).toBe(1);
  });

  it('overlapping requests revert in any order without leaving each other behind', async () => {
    const before = structuredClone(target.settings('tcp'));
    const focus = (cgroup: number) =>
      request({
        target: { nodes: [node] },
        probe: 'tcp',
        action: 'tighten',
        params: { filters: { cgroup: { allow: [cgroup] } } },
        ttl_seconds: 600,
        origin: 'operator',
      });
    const a = focus(101);
    const b = focus(202);
    for (const r of [a, b]) {
      await service.submit(r);
      await until(
        'applied',
        async () => (await service.get(r.id))?.status[node]?.state === 'applied',
      );
    }
    expect(target.settings('tcp').filters.cgroup.allow).toEqual([202]);
    // The first request goes first: the second one's focus stays.
    await service.revert(a.id, 'operator/test');
    await until(
      'a reverted',
      async () => (await service.get(a.id))?.status[node]?.state === 'reverted',
    );
    expect(target.settings('tcp').filters.cgroup.allow).toEqual([202]);
    expect(target.settings('tcp').sample_n).toBe(1);
    // Then the second: everything is as it was before either.
    await service.revert(b.id, 'operator/test');
    await until(
      'b reverted',
      async () => (await service.get(b.id))?.status[node]?.state === 'reverted',
    );
    expect(target.settings('tcp')).toEqual(before);
  });

  it('focused tightenings on different workloads coexist and revert independently', async () => {
    const before = structuredClone(target.settings('tcp'));
    const focusOn = (cgroup: string) =>
      request({
        target: { nodes: [node] },
        probe: 'tcp',
        action: 'tighten',
        params: { focus: { [cgroup]: { slow_ms: 3 } } },
        ttl_seconds: 600,
        origin: 'operator',
      });
    const a = focusOn('/tenant-a');
    const b = focusOn('/tenant-b');
    for (const r of [a, b]) {
      await service.submit(r);
      await until(
        'applied',
        async () => (await service.get(r.id))?.status[node]?.state === 'applied',
      );
    }
    const both = target.settings('tcp');
    expect(Object.keys(both.focus).sort()).toEqual(['/tenant-a', '/tenant-b']);
    expect(both.focus['/tenant-a']).toEqual({ sample_n: 1, slow_ms: 3, min_duration_ms: 0 });
    // The baseline is the same: nobody else is affected.
    expect({ ...both, focus: {} }).toEqual({ ...before, focus: {} });
    // An operator changes the baseline meanwhile: kept through both reverts.
    target.setProbe('tcp', { sample_n: 7 });
    await service.revert(a.id, 'operator/test');
    await until(
      'a reverted',
      async () => (await service.get(a.id))?.status[node]?.state === 'reverted',
    );
    expect(Object.keys(target.settings('tcp').focus)).toEqual(['/tenant-b']);
    await service.revert(b.id, 'operator/test');
    await until(
      'b reverted',
      async () => (await service.get(b.id))?.status[node]?.state === 'reverted',
    );
    expect(target.settings('tcp')).toEqual({ ...before, sample_n: 7 });
    target.setProbe('tcp', { sample_n: before.sample_n });
  });

  it('Redis restarted while requests are in flight: none lost, none applied twice', async () => {
    const ids: string[] = [];
    const submitOne = async (i: number): Promise<void> => {
      const req = request({
        target: { nodes: [node] },
        action: 'set',
        params: { sample_n: 1000 + i },
        ttl_seconds: 0,
        origin: 'operator',
      });
      ids.push(req.id);
      await service.submit(req);
    };
    // Slow applies so some are mid-job when Redis goes away.
    for (let i = 0; i < 10; i++) await submitOne(i);
    await until(
      'some applied',
      () => target.calls.filter((c) => (c.patch.sample_n ?? 0) >= 1000).length >= 2 || undefined,
    );
    execFileSync('bash', [join(repoRoot, 'infra/redis.sh'), 'stop'], { stdio: 'ignore' });
    // Submissions while Redis is down wait (ioredis offline queue) and go through after.
    const during = Promise.all(Array.from({ length: 10 }, (_, i) => submitOne(10 + i)));
    await new Promise((r) => setTimeout(r, 1500));
    execFileSync('bash', [join(repoRoot, 'infra/redis.sh'), 'start'], { stdio: 'ignore' });
    await during;
    // Retried submissions after the restart (a producer that did not see its ack).
    for (const id of ids.slice(0, 5)) {
      const s = await service.store.get(id);
      expect((await service.submit(s!.request)).duplicate).toBe(true);
    }
    await until(
      'all applied',
      async () => {
        for (const id of ids)
          if ((await service.get(id))?.status[node]?.state !== 'applied') return undefined;
        return true;
      },
      60_000,
    );
    for (let i = 0; i < 20; i++) expect(applies(1000 + i), `request ${i}`).toBe(1);
    await until(
      'applied audited',
      () => ids.every((id) => auditOf(id, 'applied') === 1) || undefined,
    );
    for (const id of ids) {
      expect(auditOf(id, 'submitted')).toBe(1);
      expect(auditOf(id, 'applied')).toBe(1);
    }
  }, 120_000);
});
