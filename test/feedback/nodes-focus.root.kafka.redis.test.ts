/**
 * Three node agents on one kernel, each owning its own cgroup (its scope), against one
 * Kafka topic and one feedback service (real kernel, real BPF maps, real Kafka and Redis).
 * A real workload runs in each node's cgroup: its records arrive under its own node's name
 * only, and no node reports a cgroup outside its scope. A focus on node 2's workload,
 * through the signed-job path to node 2's worker, changes node 2's kernel maps only, and
 * its revert puts them back; the same focus sent to all three is applied by node 2 and
 * refused by the two nodes that do not own the workload, their maps untouched.
 * Needs root and the built probes (`make -C bpf`).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { bpfObjectPath } from '../../src/common/paths.js';
import { AuditTrail } from '../../src/feedback/audit.js';
import { NodeFeedbackWorker } from '../../src/feedback/node-worker.js';
import { connectRedis, redisUrlFrom } from '../../src/feedback/redis.js';
import { FeedbackService } from '../../src/feedback/service.js';
import { parseThresholds } from '../../src/feedback/thresholds.js';
import { decodeFrameEvents, type TracefeedEvent } from '../../src/wire/event-decoder.js';
import { FOCUS_LAYOUT, fieldOffset, type ProbeName } from '../../src/wire/layout.js';
import { kernelConfig } from '../../src/ingest/control-api.js';
import { NodeAgent, DEFAULT_AGENT_OPTIONS } from '../../src/ingest/node-agent.js';
import { TracefeedAgent, pinNode } from '../../src/agent/agent.js';
import { AnomalyStore } from '../../src/agent/anomaly-store.js';
import { agentProbeSource, httpFeatureSource } from '../../src/agent/sources.js';
import { makeCgroup, type TestCgroup } from '../helpers/cgroup.js';
import { BROKERS, subscribe } from '../helpers/kafka.js';
import { Topics } from '../../src/common/kafka.js';
import { request, testSigner, until } from './helpers.js';

const isRoot = process.getuid?.() === 0;
const log = createLogger('test', process.env.TRACEFEED_LOG_LEVEL ?? 'silent');
const url = redisUrlFrom(undefined);
const families: ProbeName[] = ['process', 'tcp'];
const built = families.every((p) => existsSync(bpfObjectPath(p)));

/** A workload cgroup inside a node's scope cgroup. */
interface Workload {
  path: string;
  abs: string;
  id: bigint;
}

/**
 * `n` loopback TCP connections (server and client in one node process) run inside `w`,
 * then `busyMs` of CPU (so the cgroup's signals move across a summary interval).
 */
function tcpWorkload(w: Workload, n: number, busyMs = 0): Promise<number> {
  const js =
    `const net=require('net');const s=net.createServer(c=>{c.on('data',()=>{});c.on('end',()=>c.end())});` +
    `s.listen(0,'127.0.0.1',()=>{const p=s.address().port;let left=${n};` +
    `const one=()=>{const c=net.connect(p,'127.0.0.1',()=>{c.end('x'.repeat(100))});` +
    `c.on('data',()=>{});c.on('close',()=>{if(--left>0)one();else{s.close();const t=Date.now();while(Date.now()-t<${busyMs});}})};one()})`;
  return new Promise((resolve, reject) => {
    const child = spawn(
      'sh',
      ['-c', `echo $$ > ${w.abs}/cgroup.procs && exec ${process.execPath} -e "${js}"`],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    child.on('error', reject);
    child.on('exit', (code) => resolve(code ?? -1));
  });
}

describe.skipIf(!isRoot || !built)('three nodes on one host', () => {
  const run = randomBytes(4).toString('hex');
  const names = [1, 2, 3].map((i) => `nodes-${run}-${i}`);
  const auditPath = join(mkdtempSync(join(tmpdir(), 'tf-audit-')), 'feedback.jsonl');
  const signer = testSigner();
  const thresholds = parseThresholds('version: 1\ncooldown_seconds: 0\n');
  const events: TracefeedEvent[] = [];
  let scopes: TestCgroup[] = [];
  let work: Workload[] = [];
  let agents: NodeAgent[] = [];
  const workers: NodeFeedbackWorker[] = [];
  let stopCollector: (() => Promise<void>) | undefined;
  let redis: Redis;
  let audit: AuditTrail;
  let service: FeedbackService;

  beforeAll(async () => {
    scopes = [1, 2, 3].map((i) => makeCgroup(`tf-node${i}`));
    work = scopes.map((s) => {
      const abs = join(s.abs, 'work');
      mkdirSync(abs);
      return { path: `${s.path}/work`, abs, id: BigInt(statSync(abs, { bigint: true }).ino) };
    });
    // The shared events topic (the node role writes no other), read from its end; only
    // this run's node names count.
    stopCollector = await subscribe(Topics.events, (m) => {
      if (m.value && names.includes(m.key?.toString() ?? ''))
        events.push(...decodeFrameEvents(m.value));
    });
    agents = names.map((nodeName, i) => {
      const a = new NodeAgent({
        ...DEFAULT_AGENT_OPTIONS,
        nodeName,
        brokers: BROKERS,
        lingerMs: 50,
        summaryIntervalMs: 1000,
        // A walk of the (scoped) hierarchy every pass: busy cgroups outside the scope would show.
        cgroupStats: { discoverEveryIntervals: 1 },
        families,
        probes: { process: { enabled: true }, tcp: { enabled: true } },
        cgroupScope: scopes[i]!.path,
        log,
      });
      a.start();
      return a;
    });
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
    for (const [i, a] of agents.entries())
      workers.push(
        await new NodeFeedbackWorker(a, {
          node: names[i]!,
          redisUrl: url,
          audit,
          log,
          verifier: signer.verifier(),
          reportIntervalMs: 1000,
        }).start(),
      );
  }, 60_000);

  afterAll(async () => {
    for (const w of workers) await w.stop();
    for (const n of names) {
      await service?.store.unregisterNode(n);
      await service?.queue(n).obliterate({ force: true });
    }
    await service?.close();
    await audit?.close();
    redis?.disconnect();
    for (const a of agents) await a.stop(2000);
    await stopCollector?.();
    for (const w of work) {
      try {
        rmdirSync(w.abs);
      } catch {
        /* a process still leaving: the scope's removal reports nothing either */
      }
    }
    for (const s of scopes) s.remove();
  }, 60_000);

  /** The tcp probe's maps of one node as the kernel holds them: tf_config, tf_focus of every workload. */
  function kernelMaps(i: number) {
    const obj = agents[i]!.object('tcp');
    const focus = work.map((w) => {
      const key = Buffer.alloc(8);
      key.writeBigUInt64LE(w.id);
      const v = obj.mapLookup('tf_focus', key);
      return v
        ? {
            sample_n: v.readUInt32LE(fieldOffset(FOCUS_LAYOUT, 'sample_n')),
            slow_ns: v.readBigUInt64LE(fieldOffset(FOCUS_LAYOUT, 'slow_ns')),
          }
        : null;
    });
    return { config: kernelConfig(agents[i]!, 'tcp'), focus };
  }

  it("each workload's records arrive under its own node only; no node reports outside its scope", async () => {
    const runs = await Promise.all(work.map((w) => tcpWorkload(w, 5, 2500)));
    expect(runs).toEqual([0, 0, 0]);
    const mine = (i: number, type: string) =>
      events.filter(
        (e) =>
          e.node === names[i] &&
          e.type === type &&
          e.attributes['cgroup.id'] === String(work[i]!.id),
      );
    for (let i = 0; i < 3; i++) {
      await until(`node ${i + 1}: its workload's cgroup signals`, () =>
        mine(i, 'cgroup.stats').length >= 1 ? true : undefined,
      );
      await until(`node ${i + 1}: its workload's exec and connects`, () =>
        mine(i, 'process.exec').length >= 1 && mine(i, 'tcp.connect').length >= 5
          ? true
          : undefined,
      );
    }
    // Every record of a node that names a cgroup names one in that node's scope.
    for (let i = 0; i < 3; i++) {
      const own = new Set([String(scopes[i]!.id), String(work[i]!.id)]);
      const named = events.filter(
        (e) => e.node === names[i] && e.attributes['cgroup.id'] !== undefined,
      );
      expect(named.length).toBeGreaterThan(0);
      const outside = named.filter((e) => !own.has(String(e.attributes['cgroup.id'])));
      expect(outside.map((e) => `${e.type} ${String(e.attributes['cgroup.id'])}`)).toEqual([]);
    }
    // So a workload is reported by its own node alone.
    for (let i = 0; i < 3; i++) {
      const by = new Set(
        events.filter((e) => e.attributes['cgroup.id'] === String(work[i]!.id)).map((e) => e.node),
      );
      expect([...by]).toEqual([names[i]]);
    }
    // The scope is in each node's kernel config.
    for (let i = 0; i < 3; i++) {
      const c = kernelMaps(i).config;
      expect(BigInt(c.scope_cgroup_id!)).toBe(scopes[i]!.id);
      expect(c.scope_level).toBe(1);
    }
  }, 60_000);

  it("a focus on node 2's workload changes only node 2's kernel maps, and its revert puts them back", async () => {
    const before = [0, 1, 2].map(kernelMaps);
    for (const b of before) {
      expect(b.config.focus_count).toBe(0);
      expect(b.focus).toEqual([null, null, null]);
    }
    const w2 = work[1]!;
    const req = request({
      target: { nodes: [names[1]!] },
      probe: 'tcp',
      action: 'tighten',
      workload: w2.path,
      params: { focus: { [String(w2.id)]: { slow_ms: 9 } } },
      ttl_seconds: 4,
    });
    const sub = await service.submit(req);
    expect(sub.decisions.map((d) => [d.node, d.outcome])).toEqual([[names[1], 'accept']]);
    await until(
      'applied on node 2',
      async () => (await service.get(req.id))?.status[names[1]!]?.state === 'applied',
    );
    const during = [0, 1, 2].map(kernelMaps);
    // Node 2: the focus on its workload, counted in its config.
    expect(during[1]!.focus).toEqual([null, { sample_n: 1, slow_ns: 9_000_000n }, null]);
    expect(during[1]!.config.focus_count).toBe(1);
    expect(during[1]!.config.generation).toBeGreaterThan(before[1]!.config.generation!);
    // Nodes 1 and 3: nothing changed, not even the generation.
    expect(during[0]).toEqual(before[0]);
    expect(during[2]).toEqual(before[2]);

    // The focused workload's records on node 2 are collected under the focus.
    const gen = during[1]!.config.generation!;
    expect(await tcpWorkload(w2, 3)).toBe(0);
    await until('focused records of node 2', () =>
      events.some(
        (e) =>
          e.node === names[1] &&
          e.type === 'tcp.connect' &&
          e.focused &&
          e.generation >= gen &&
          e.attributes['cgroup.id'] === String(w2.id),
      )
        ? true
        : undefined,
    );

    await until(
      'reverted on node 2',
      async () => (await service.get(req.id))?.status[names[1]!]?.state === 'reverted',
      20_000,
    );
    const after = [0, 1, 2].map(kernelMaps);
    expect(after[1]!.focus).toEqual([null, null, null]);
    expect({ ...after[1]!.config, generation: 0 }).toEqual({
      ...before[1]!.config,
      generation: 0,
    });
    expect(after[0]).toEqual(before[0]);
    expect(after[2]).toEqual(before[2]);
  }, 60_000);

  it('the focus sent to every node is one job per node: node 2 applies it, the nodes that do not own the workload refuse it', async () => {
    const before = [0, 1, 2].map(kernelMaps);
    const w2 = work[1]!;
    const req = request({
      target: { nodes: names },
      probe: 'tcp',
      action: 'tighten',
      workload: w2.path,
      params: { focus: { [String(w2.id)]: {} } },
      ttl_seconds: 30,
    });
    const sub = await service.submit(req);
    expect(sub.decisions.map((d) => d.outcome)).toEqual(['accept', 'accept', 'accept']);
    const status = await until('every node answered', async () => {
      const v = await service.get(req.id);
      const states = names.map((n) => v?.status[n]?.state);
      return states.every((s) => s === 'applied' || s === 'failed') ? v : undefined;
    });
    expect(names.map((n) => status.status[n]?.state)).toEqual(['failed', 'applied', 'failed']);
    for (const i of [0, 2])
      expect(status.status[names[i]!]?.reason).toMatch(/outside this node's cgroup scope/);
    const during = [0, 1, 2].map(kernelMaps);
    expect(during[1]!.focus[1]).not.toBeNull();
    expect(during[0]).toEqual(before[0]);
    expect(during[2]).toEqual(before[2]);
    await service.revert(req.id, 'test');
    await until(
      'reverted on node 2',
      async () => (await service.get(req.id))?.status[names[1]!]?.state === 'reverted',
    );
    expect(kernelMaps(1).focus).toEqual([null, null, null]);
  }, 60_000);

  it('a question about node 2 sees node 2 alone; one about every node sees the three', async () => {
    const ai = new TracefeedAgent({
      config: { disable_model: true },
      deps: {
        // No feature stage in this test: the probe questions do not read features.
        features: httpFeatureSource('http://127.0.0.1:1'),
        anomalies: new AnomalyStore(),
        probes: agents.map((a, i) => agentProbeSource(a, names[i]!)),
      },
      env: {},
      log,
    });
    const nodesOf = async (tools = ai.tools, args: Record<string, unknown> = {}) => {
      const r = await ai.runTool({ id: 'q', name: 'describe_probes', args }, 0, tools);
      expect(r.record.outcome).toBe('ok');
      return (r.result!.data as { nodes: Array<{ node: string }> }).nodes.map((n) => n.node);
    };
    expect(await nodesOf()).toEqual([...names].sort());
    // Pinned to node 2: whatever node the call names.
    const pinned = pinNode(ai.tools, names[1]!);
    expect(await nodesOf(pinned)).toEqual([names[1]]);
    expect(await nodesOf(pinned, { node: names[0] })).toEqual([names[1]]);
  });
});
