/**
 * The node worker on a real NodeAgent (real kernel, real BPF maps, real Redis
 * and Kafka): requests change the tf_config map, the TTL reverts, floors hold,
 * and a noisy workload over budget is brought back under by loosening a
 * non-floor probe. Needs root and the built probes (`make -C bpf`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { bpfObjectPath } from '../../src/common/paths.js';
import { AuditTrail, readAudit } from '../../src/feedback/audit.js';
import { FeedbackController } from '../../src/feedback/controller.js';
import { NodeFeedbackWorker } from '../../src/feedback/node-worker.js';
import { connectRedis, redisUrlFrom } from '../../src/feedback/redis.js';
import { FeedbackService } from '../../src/feedback/service.js';
import { parseThresholds } from '../../src/feedback/thresholds.js';
import {
  FilterBit,
  PROBE_CONFIG_LAYOUT,
  fieldOffset,
  type ProbeName,
} from '../../src/ingest/layout.js';
import { NodeAgent, DEFAULT_AGENT_OPTIONS } from '../../src/ingest/node-agent.js';
import { BROKERS } from '../helpers/kafka.js';
import { enqueueApply, failedJob, request, until } from './helpers.js';

const isRoot = process.getuid?.() === 0;
const log = createLogger('test', process.env.TRACEFEED_LOG_LEVEL ?? 'silent');
const url = redisUrlFrom(undefined);
const available = (['process', 'tcp', 'syscalls'] as ProbeName[]).filter((p) =>
  existsSync(bpfObjectPath(p)),
);

/** tf_config of a probe, as the kernel sees it (PROBE_CONFIG_LAYOUT). */
function kernelConfig(agent: NodeAgent, probe: ProbeName) {
  const b = agent.object(probe).mapLookup('tf_config', Buffer.alloc(4));
  if (!b) throw new Error(`no tf_config in ${probe}`);
  const o = (n: string) => fieldOffset(PROBE_CONFIG_LAYOUT, n);
  return {
    enabled: b.readUInt32LE(o('enabled')),
    generation: b.readUInt32LE(o('generation')),
    sample_n: b.readUInt32LE(o('sample_n')),
    filter_mask: b.readUInt32LE(o('filter_mask')),
    slow_ns: b.readBigUInt64LE(o('slow_ns')),
  };
}

describe.skipIf(!isRoot || !available.includes('process') || !available.includes('tcp'))(
  'node feedback worker on a real agent',
  () => {
    const node = `test-${randomBytes(4).toString('hex')}`;
    const auditPath = join(mkdtempSync(join(tmpdir(), 'tf-audit-')), 'feedback.jsonl');
    let agent: NodeAgent;
    let redis: Redis;
    let audit: AuditTrail;
    let service: FeedbackService;
    let worker: NodeFeedbackWorker;
    let thresholds = parseThresholds('version: 1\ncooldown_seconds: 0\n');

    beforeAll(async () => {
      agent = new NodeAgent({
        ...DEFAULT_AGENT_OPTIONS,
        nodeName: node,
        brokers: BROKERS,
        families: available,
        log,
      });
      agent.start();
      redis = connectRedis(url);
      audit = new AuditTrail({ path: auditPath, brokers: BROKERS, log });
      service = new FeedbackService({
        redis,
        redisUrl: url,
        audit,
        thresholds: () => thresholds,
        actor: 'test',
        log,
      });
      worker = await new NodeFeedbackWorker(agent, {
        node,
        redisUrl: url,
        audit,
        log,
        rateSettleMs: 500,
        reportIntervalMs: 1000,
      }).start();
    });

    afterAll(async () => {
      await worker?.stop();
      await service?.store.unregisterNode(node);
      await service?.queue(node).obliterate({ force: true });
      await service?.close();
      await audit?.close();
      redis?.disconnect();
      await agent?.stop(2000);
    });

    it('a tighten focused on a workload lands in the kernel map, and the TTL reverts it', async () => {
      const cg = readFileSync('/proc/self/cgroup', 'utf8').trim().split('::')[1] ?? '/';
      const cgid = agent.cgroups.idOf(cg);
      expect(cgid).toBeDefined();
      const before = kernelConfig(agent, 'tcp');
      const req = request({
        target: { nodes: [node] },
        probe: 'tcp',
        action: 'tighten',
        params: { filters: { cgroup: { allow: [Number(cgid)] } } },
        ttl_seconds: 3,
        workload: cg,
      });
      const r = await service.submit(req);
      expect(r.decisions[0]?.outcome).toBe('accept');
      const applied = await until('applied', async () => {
        const s = await service.get(req.id);
        return s?.status[node]?.state === 'applied' ? s : undefined;
      });
      const k = kernelConfig(agent, 'tcp');
      expect(k.generation).toBeGreaterThan(before.generation);
      expect(k.generation).toBe(
        (applied.status[node]?.result as { generation: number }).generation,
      );
      expect(k.sample_n).toBe(1);
      expect(k.filter_mask & FilterBit.ALLOW_CGROUP).toBe(FilterBit.ALLOW_CGROUP);
      const key = Buffer.alloc(8);
      key.writeBigUInt64LE(cgid!);
      expect(agent.object('tcp').mapLookup('tf_set_cgroup', key)).not.toBeNull();

      await until(
        'reverted',
        async () => (await service.get(req.id))?.status[node]?.state === 'reverted',
        15_000,
      );
      const after = kernelConfig(agent, 'tcp');
      expect(after.filter_mask).toBe(before.filter_mask);
      expect(after.sample_n).toBe(before.sample_n);
      expect(after.generation).toBeGreaterThan(k.generation);
      expect(agent.object('tcp').mapLookup('tf_set_cgroup', key)).toBeNull();
      const states = readAudit(auditPath, req.id).map((a) => a.state);
      expect(states).toEqual(['submitted', 'accepted', 'delivered', 'applied', 'reverted']);
    });

    it('set sample_n changes the kernel sampling rate', async () => {
      const req = request({
        target: { nodes: [node] },
        action: 'set',
        params: { sample_n: 8 },
        origin: 'operator',
        ttl_seconds: 60,
      });
      await service.submit(req);
      await until(
        'applied',
        async () => (await service.get(req.id))?.status[node]?.state === 'applied',
      );
      expect(kernelConfig(agent, 'tcp').sample_n).toBe(8);
      await service.revert(req.id, 'operator/test');
      await until(
        'reverted',
        async () => (await service.get(req.id))?.status[node]?.state === 'reverted',
      );
      expect(kernelConfig(agent, 'tcp').sample_n).toBe(1);
    });

    it('floors hold: disabling process is rejected by the policy and by the node itself', async () => {
      const gen = kernelConfig(agent, 'process').generation;
      const r = await service.submit(
        request({
          target: { nodes: [node] },
          probe: 'process',
          action: 'disable',
          origin: 'operator',
        }),
      );
      expect(r.decisions[0]).toMatchObject({
        outcome: 'reject',
        reason: expect.stringMatching(/floor/),
      });
      const bypass = request({
        target: { nodes: [node] },
        probe: 'process',
        action: 'disable',
        origin: 'operator',
      });
      await enqueueApply(service.queue(node), bypass, { enabled: false }, 'bypass');
      const job = await failedJob(service.queue(node), bypass.id);
      expect(job.failedReason).toMatch(/floor/);
      const k = kernelConfig(agent, 'process');
      expect(k.enabled).toBe(1);
      expect(k.generation).toBe(gen);
      expect(agent.probes().find((p) => p.probe === 'process')?.attached).toBe(true);
    });

    it.skipIf(!available.includes('syscalls'))(
      'a noisy workload over the events/s budget is brought back under by loosening a non-floor probe',
      async () => {
        // Noisy: the slow-syscall stream on with a 1 µs threshold, and process churn.
        agent.setProbe('syscalls', { enabled: true, slow_ms: 0.001 });
        const script = join(mkdtempSync(join(tmpdir(), 'tf-churn-')), 'churn.sh');
        writeFileSync(script, 'while :; do /bin/true; done\n');
        const churn: ChildProcess[] = [0, 1].map(() =>
          spawn('/bin/sh', [script], { stdio: 'ignore' }),
        );
        const dir = mkdtempSync(join(tmpdir(), 'tf-thr-'));
        let controller: FeedbackController | undefined;
        try {
          await new Promise((r) => setTimeout(r, 3000));
          const rate = (p: string): number =>
            agent.probes().find((x) => x.probe === p)?.eventsPerSecond ?? 0;
          const processEps = rate('process');
          const syscallsEps = rate('syscalls');
          const total = agent.probes().reduce((s, p) => s + p.eventsPerSecond, 0);
          log.info({ processEps, syscallsEps, total }, 'noisy rates');
          expect(syscallsEps).toBeGreaterThan(processEps);
          // Over budget by a wide margin, reachable by sampling syscalls alone.
          const budget = Math.ceil(total - syscallsEps * 0.8);
          const path = join(dir, 'thresholds.yaml');
          writeFileSync(
            path,
            `version: 1\nbudget: { events_per_second: ${budget} }\nbudget_cooldown_seconds: 3\nprobes: { syscalls: { max_sample_n: 100000 }, tcp: { max_sample_n: 100000 } }\n`,
          );
          thresholds = parseThresholds(readFileSync(path, 'utf8'));
          controller = await new FeedbackController({
            brokers: BROKERS,
            redisUrl: url,
            thresholdsPath: path,
            audit,
            log,
            groupId: `tf-test-${node}`,
            budgetIntervalMs: 1000,
          }).start();
          const processBefore = agent.probes().find((p) => p.probe === 'process')!;
          await until(
            'under budget',
            () => {
              const now = agent.probes().reduce((s, p) => s + p.eventsPerSecond, 0);
              return controller!.counters.budgetLoosenings > 0 && now < budget ? now : undefined;
            },
            40_000,
          );
          const syscalls = agent.probes().find((p) => p.probe === 'syscalls')!;
          expect(syscalls.settings.sample_n).toBeGreaterThan(1);
          expect(kernelConfig(agent, 'syscalls').sample_n).toBe(syscalls.settings.sample_n);
          const processAfter = agent.probes().find((p) => p.probe === 'process')!;
          expect(processAfter.settings).toEqual(processBefore.settings);
          expect(processAfter.generation).toBe(processBefore.generation);
          const loosened = readAudit(auditPath).filter(
            (a) => a.state === 'applied' && a.node === node && a.reason?.includes('generation'),
          );
          expect(
            loosened.some((a) => (a.data?.applied as { probe: string }).probe === 'syscalls'),
          ).toBe(true);
          expect(
            loosened.some((a) => (a.data?.applied as { probe: string }).probe === 'process'),
          ).toBe(false);
          log.info(
            { budget, counters: controller.counters, sample_n: syscalls.settings.sample_n },
            'budget result',
          );
        } finally {
          for (const c of churn) c.kill('SIGKILL');
          await controller?.stop();
          agent.setProbe('syscalls', { enabled: false, slow_ms: 0, sample_n: 1 });
        }
      },
      90_000,
    );
  },
);
