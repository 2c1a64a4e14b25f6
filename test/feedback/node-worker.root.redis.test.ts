/**
 * The node worker on a real NodeAgent (real kernel, real BPF maps, real Redis
 * and Kafka): requests change the tf_config and tf_focus maps, focuses on
 * different workloads coexist and revert independently, a tenant's storm
 * focuses collection on that tenant without blinding the others, the TTL reverts, floors hold,
 * jobs not signed by the controller (or altered since) are refused and change nothing, and a noisy workload over budget is brought back under by loosening a
 * non-floor probe. Needs root and the built probes (`make -C bpf`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
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
import { Topics } from '../../src/common/kafka.js';
import type { Anomaly } from '../../src/features/anomaly.js';
import { requestsFromAnomaly } from '../../src/feedback/rules.js';
import { decodeFrameEvents, type TracefeedEvent } from '../../src/wire/event-decoder.js';
import {
  FOCUS_LAYOUT,
  PROBE_CONFIG_LAYOUT,
  fieldOffset,
  type ProbeName,
} from '../../src/wire/layout.js';
import { NodeAgent, DEFAULT_AGENT_OPTIONS } from '../../src/ingest/node-agent.js';
import { makeCgroup, type TestCgroup } from '../helpers/cgroup.js';
import { BROKERS, subscribe } from '../helpers/kafka.js';
import { applyJob, enqueueApply, failedJob, request, testSigner, until } from './helpers.js';

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
    focus_count: b.readUInt32LE(o('focus_count')),
  };
}

/** A port nobody listens on: bind an ephemeral one, then release it. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** `n` refused connects to `port` from a node process inside `cg`. */
async function refusedStorm(cg: TestCgroup, port: number, n: number): Promise<void> {
  const js = `const net=require('net');let left=${n};const one=()=>{const c=net.connect(${port},'127.0.0.1');c.on('error',()=>{if(--left>0)one()});c.on('connect',()=>process.exit(2))};one();`;
  const { code } = await cg.run(`exec ${process.execPath} -e "${js}"`);
  expect(code).toBe(0);
}

/** Polls `get` until `ok` holds (or fails after `timeoutMs`). */
async function untilValue<T>(
  what: string,
  get: () => T,
  ok: (v: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
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
    const signer = testSigner();

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
        signer,
      });
      worker = await new NodeFeedbackWorker(agent, {
        node,
        redisUrl: url,
        audit,
        log,
        verifier: signer.verifier(),
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

    /** The tf_focus entry of a cgroup in a probe's kernel map (FOCUS_LAYOUT), if any. */
    function kernelFocus(probe: ProbeName, id: bigint) {
      const key = Buffer.alloc(8);
      key.writeBigUInt64LE(id);
      const v = agent.object(probe).mapLookup('tf_focus', key);
      if (!v) return undefined;
      const o = (n: string) => fieldOffset(FOCUS_LAYOUT, n);
      return {
        sample_n: v.readUInt32LE(o('sample_n')),
        min_duration_ns: v.readBigUInt64LE(o('min_duration_ns')),
        slow_ns: v.readBigUInt64LE(o('slow_ns')),
      };
    }

    /** An anomaly-shaped object of a workload, as the feature stage raises them. */
    const anomalyOf = (cg: TestCgroup, metric: string, window: number): Anomaly => ({
      schema_version: 1,
      id: `${node}|${cg.path}|tcp|${metric}@${window}`,
      series_id: `${node}|${cg.path}|tcp|${metric}`,
      node,
      workload: cg.path,
      cgroup_id: String(cg.id),
      container_id: null,
      probe: 'tcp',
      metric,
      window_start: new Date(window).toISOString(),
      window_end: new Date(window + 1000).toISOString(),
      observed: 40,
      baseline: 0,
      spread: 1,
      basis: 'baseline',
      partial: false,
      score: 40,
      threshold: 4,
      direction: 'high',
      severity: 'warning',
      evidence: [],
      detected_at: new Date().toISOString(),
    });

    it('two focused tightenings on different workloads coexist in tf_focus and revert independently', async () => {
      const a = makeCgroup('tf-nw-a');
      const b = makeCgroup('tf-nw-b');
      try {
        const before = kernelConfig(agent, 'tcp');
        const ttl = { [a.path]: 3, [b.path]: 8 };
        const t = parseThresholds(
          [
            'version: 1',
            'rules:',
            '  - { name: refused, metric: tcp_connect_failures, action: tighten, probe: tcp, focus: workload, slow_ms: 7 }',
          ].join('\n'),
        );
        const reqs = [a, b].map((cg) => {
          const [r] = requestsFromAnomaly(anomalyOf(cg, 'tcp_connect_failures', Date.now()), t);
          return { ...r!, ttl_seconds: ttl[cg.path]! };
        });
        for (const r of reqs) {
          const sub = await service.submit(r);
          expect(sub.decisions[0]?.outcome).toBe('accept');
          await until(
            'applied',
            async () => (await service.get(r.id))?.status[node]?.state === 'applied',
          );
        }
        // Both workloads are focused at once, at full rate, with the rule's setting;
        // the baseline (everyone else) and the filters are as they were.
        for (const cg of [a, b])
          expect(kernelFocus('tcp', cg.id)).toEqual({
            sample_n: 1,
            min_duration_ns: 0n,
            slow_ns: 7_000_000n,
          });
        const k = kernelConfig(agent, 'tcp');
        expect(k.focus_count).toBe(2);
        expect(k.enabled).toBe(before.enabled);
        expect(k.sample_n).toBe(before.sample_n);
        expect(k.filter_mask).toBe(before.filter_mask);
        const state = agent.probes().find((p) => p.probe === 'tcp')!;
        expect(Object.keys(state.focus).sort()).toEqual([String(a.id), String(b.id)].sort());

        // a's TTL ends first: only a's focus goes.
        await until(
          'a reverted',
          async () => (await service.get(reqs[0]!.id))?.status[node]?.state === 'reverted',
          15_000,
        );
        expect(kernelFocus('tcp', a.id)).toBeUndefined();
        expect(kernelFocus('tcp', b.id)).toBeDefined();
        expect(kernelConfig(agent, 'tcp').focus_count).toBe(1);
        // Then b's.
        await until(
          'b reverted',
          async () => (await service.get(reqs[1]!.id))?.status[node]?.state === 'reverted',
          20_000,
        );
        expect(kernelFocus('tcp', b.id)).toBeUndefined();
        const after = kernelConfig(agent, 'tcp');
        expect(after.focus_count).toBe(0);
        expect(after.sample_n).toBe(before.sample_n);
        expect(after.enabled).toBe(before.enabled);
        const states = readAudit(auditPath, reqs[0]!.id).map((x) => x.state);
        expect(states).toEqual(['submitted', 'accepted', 'delivered', 'applied', 'reverted']);
      } finally {
        a.remove();
        b.remove();
      }
    }, 60_000);

    it("a refused-connect storm from one tenant focuses tcp on that tenant only; another tenant's records keep flowing at the baseline", async () => {
      const noisy = makeCgroup('tf-nw-noisy');
      const quiet = makeCgroup('tf-nw-quiet');
      const events: TracefeedEvent[] = [];
      const baseline = agent.probes().find((p) => p.probe === 'tcp')!;
      const stopCollector = await subscribe(Topics.events, (m) => {
        if (m.value) events.push(...decodeFrameEvents(m.value));
      });
      try {
        // Baseline: tcp on at 1 in 4 for everyone.
        agent.setProbe('tcp', { enabled: true, sample_n: 4 });
        const t = parseThresholds(
          [
            'version: 1',
            'rules:',
            '  - { name: refused, metric: tcp_connect_failures, action: tighten, probe: tcp, focus: workload, ttl_seconds: 20 }',
          ].join('\n'),
        );
        // The consumer starts at the end of the topic: wait until it reads this node's records.
        const warm = await closedPort();
        for (let i = 0; i < 50 && !events.some((e) => e.node === node); i++) {
          await refusedStorm(quiet, warm, 2);
          await new Promise((r) => setTimeout(r, 200));
        }
        // The storm, before any change: its records carry the tenant's cgroup.
        const port = await closedPort();
        await refusedStorm(noisy, port, 40);
        const attributed = await untilValue(
          'storm records attributed to the tenant',
          () =>
            events.filter(
              (e) =>
                e.node === node &&
                e.type === 'tcp.connect_fail' &&
                e.attributes['network.peer.port'] === port,
            ),
          (xs) => xs.length > 0,
        );
        for (const e of attributed) expect(e.attributes['cgroup.id']).toBe(String(noisy.id));
        // The feature stage would name the tenant from those records: the rule's request.
        const [req] = requestsFromAnomaly(anomalyOf(noisy, 'tcp_connect_failures', Date.now()), t);
        expect(req!.params).toEqual({ focus: { [String(noisy.id)]: {} } });
        await service.submit(req!);
        await until(
          'applied',
          async () => (await service.get(req!.id))?.status[node]?.state === 'applied',
        );
        const gen = kernelConfig(agent, 'tcp').generation;
        expect(kernelConfig(agent, 'tcp').sample_n).toBe(4);
        expect(kernelFocus('tcp', noisy.id)?.sample_n).toBe(1);

        // During the TTL: the tenant at full rate under its focus, the other at the baseline.
        const p1 = await closedPort();
        const p2 = await closedPort();
        await refusedStorm(noisy, p1, 40);
        await refusedStorm(quiet, p2, 200);
        const fails = (p: number) =>
          events.filter(
            (e) =>
              e.node === node &&
              e.type === 'tcp.connect_fail' &&
              e.attributes['network.peer.port'] === p &&
              e.generation >= gen,
          );
        await untilValue(
          'the focused storm',
          () => fails(p1),
          (xs) => xs.length >= 40,
        );
        await untilValue(
          'the other tenant',
          () => fails(p2),
          (xs) => xs.length >= 20,
        );
        for (const e of fails(p1)) {
          expect(e.focused).toBe(true);
          expect(e.sample_weight).toBe(1);
          expect(e.attributes['cgroup.id']).toBe(String(noisy.id));
        }
        const q = fails(p2);
        // 1 in 4 of 200, weight 4, not focused, attributed to the other tenant.
        expect(q.length).toBeLessThan(110);
        for (const e of q) {
          expect(e.focused).toBe(false);
          expect(e.sample_weight).toBe(4);
          expect(e.attributes['cgroup.id']).toBe(String(quiet.id));
        }
        await service.revert(req!.id, 'operator/test');
        await until(
          'reverted',
          async () => (await service.get(req!.id))?.status[node]?.state === 'reverted',
        );
        expect(kernelFocus('tcp', noisy.id)).toBeUndefined();
        expect(kernelConfig(agent, 'tcp').sample_n).toBe(4);
      } finally {
        agent.setProbe('tcp', { sample_n: baseline.settings.sample_n });
        await stopCollector();
        noisy.remove();
        quiet.remove();
      }
    }, 60_000);

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
      await enqueueApply(service.queue(node), signer, bypass, { enabled: false }, 'bypass');
      const job = await failedJob(service.queue(node), bypass.id);
      expect(job.failedReason).toMatch(/floor/);
      const k = kernelConfig(agent, 'process');
      expect(k.enabled).toBe(1);
      expect(k.generation).toBe(gen);
      expect(agent.probes().find((p) => p.probe === 'process')?.attached).toBe(true);
    });

    /** Waits for the job to fail, checks its audited refusal, and that `probe`'s kernel config did not move. */
    async function refusedUnchanged(
      id: string,
      probe: ProbeName,
      before: ReturnType<typeof kernelConfig>,
      reason: RegExp,
    ): Promise<void> {
      const job = await failedJob(service.queue(node), id);
      expect(job.failedReason).toMatch(reason);
      expect(job.attemptsMade).toBe(1);
      const audited = await until(`${id} audited`, () =>
        readAudit(auditPath, id).find((r) => r.state === 'rejected'),
      );
      expect(audited).toMatchObject({ actor: `node/${node}`, node });
      expect(audited.reason).toMatch(reason);
      expect(audited.reason).toMatch(/not applied/);
      expect(readAudit(auditPath, id).some((r) => r.state === 'applied')).toBe(false);
      const status = await until(
        `${id} status`,
        async () => (await service.store.statuses(id))[node],
      );
      expect(status.state).toBe('rejected');
      expect(kernelConfig(agent, probe)).toEqual(before);
    }

    it('a job written straight into Redis without a valid signature is refused, audited, and changes nothing', async () => {
      const before = kernelConfig(agent, 'tcp');
      const q = service.queue(node);
      // Unsigned, as anyone who can write to Redis could queue it.
      const unsigned = request({ target: { nodes: [node] }, action: 'set', origin: 'operator' });
      await enqueueApply(q, null, unsigned, { sample_n: 999 }, 'forged');
      await refusedUnchanged(unsigned.id, 'tcp', before, /carries no signature/);
      // Signed by a key that is not the controller's.
      const other = request({ target: { nodes: [node] }, action: 'set', origin: 'operator' });
      await enqueueApply(q, testSigner(), other, { sample_n: 999 }, 'forged');
      await refusedUnchanged(other.id, 'tcp', before, /does not verify/);
      // A garbage signature.
      const junk = request({ target: { nodes: [node] }, action: 'set', origin: 'operator' });
      await q.add(
        'apply',
        { ...applyJob(q, junk, { sample_n: 999 }, 'forged'), signature: 'AAAA' },
        { jobId: junk.id },
      );
      await refusedUnchanged(junk.id, 'tcp', before, /not a base64 Ed25519 signature/);
      expect(worker.counts.badSignature).toBeGreaterThanOrEqual(3);
    });

    it('a validly signed job whose patch was altered afterwards is refused', async () => {
      const before = kernelConfig(agent, 'tcp');
      const q = service.queue(node);
      const req = request({ target: { nodes: [node] }, action: 'set', origin: 'operator' });
      const signed = signer.sign(applyJob(q, req, { sample_n: 2 }, 'honest'));
      const altered = { ...signed, patch: { sample_n: 900 } };
      await q.add('apply', altered, { jobId: req.id });
      await refusedUnchanged(req.id, 'tcp', before, /does not verify/);
      // Signed for another node: refused here.
      const elsewhere = request({ target: { nodes: [node] }, action: 'set', origin: 'operator' });
      await q.add(
        'apply',
        signer.sign({ ...applyJob(q, elsewhere, { sample_n: 2 }, 'x'), node: 'other-node' }),
        { jobId: elsewhere.id },
      );
      await refusedUnchanged(elsewhere.id, 'tcp', before, /signed for node other-node/);
    });

    it('the node enforces floors and bounds itself, even on validly signed jobs', async () => {
      const q = service.queue(node);
      const proc = kernelConfig(agent, 'process');
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{ sample_n: 2 }, /floor.*sample_n 2 refused/],
        [{ filters: { pid: { allow: [1] } } }, /floor.*filters\.pid\.allow refused/],
        [{ filters: { comm: { deny: ['bash'] } } }, /floor.*filters\.comm\.deny refused/],
        [{ min_duration_ms: 5 }, /floor.*min_duration_ms 5 refused/],
        [{ focus: { '1': { sample_n: 50 } } }, /floor.*focus\.1\.sample_n 50 refused/],
      ];
      for (const [patch, reason] of cases) {
        const req = request({
          target: { nodes: [node] },
          probe: 'process',
          action: 'set',
          origin: 'operator',
        });
        await enqueueApply(q, signer, req, patch, 'signed but narrows a floor');
        await refusedUnchanged(req.id, 'process', proc, reason);
      }
      // Any probe: never sampled beyond the node's own bound (maxSampleN, default 1000).
      const tcp = kernelConfig(agent, 'tcp');
      const sparse = request({ target: { nodes: [node] }, action: 'set', origin: 'operator' });
      await enqueueApply(q, signer, sparse, { sample_n: 5000 }, 'too sparse');
      await refusedUnchanged(
        sparse.id,
        'tcp',
        tcp,
        /sample_n 5000 on tcp is above this node's bound \(maxSampleN 1000\)/,
      );
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
            `version: 1\nrules: []\nbudget: { events_per_second: ${budget} }\nbudget_cooldown_seconds: 3\nprobes: { syscalls: { max_sample_n: 100000 }, tcp: { max_sample_n: 100000 } }\n`,
          );
          thresholds = parseThresholds(readFileSync(path, 'utf8'));
          controller = await new FeedbackController({
            brokers: BROKERS,
            redisUrl: url,
            thresholdsPath: path,
            audit,
            log,
            groupId: `tracefeed-feedback-test-${node}`,
            budgetIntervalMs: 1000,
            signer,
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
