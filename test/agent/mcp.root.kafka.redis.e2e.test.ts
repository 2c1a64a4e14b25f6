/**
 * The MCP server end to end on real parts: the node agent on the real kernel,
 * the feature stage on real Kafka with 1 s windows, the policy engine on real
 * Redis, and the SDK's own Client, over stdio (`node bin/tracefeed.js mcp`,
 * reading the stage's and node's HTTP APIs) and over streamable HTTP (/mcp on
 * the agent API, behind its bearer token).
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- tool results are JSON, checked field by field below */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import { join } from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import type { Redis } from 'ioredis';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeaders } from '../../src/common/http-auth.js';
import { createLogger } from '../../src/common/logger.js';
import { repoRoot } from '../../src/common/paths.js';
import type { FeatureStage } from '../../src/features/index.js';
import { AuditTrail, FeedbackService, parseThresholds } from '../../src/feedback/index.js';
import { connectRedis, redisUrlFrom } from '../../src/feedback/redis.js';
const REDIS_URL = redisUrlFrom(undefined);
import { DEFAULT_AGENT_OPTIONS, NodeAgent, startControlApi } from '../../src/ingest/index.js';
import {
  AnomalyStore,
  FeedbackServiceGateway,
  TracefeedAgent,
  agentProbeSource,
  anomalyRef,
  stageFeatureSource,
  startAgentApi,
  type AgentDeps,
} from '../../src/agent/index.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { BROKERS } from '../helpers/kafka.js';
import { testAgent, testStage } from '../helpers/pipeline.js';
import { makeWorkload, type Workload } from './helpers.js';
import { lastToolData, startScriptedServer } from './scripted-openai.js';
import { queryFeatures, queryFeaturesSchema } from '../../src/agent/tools.js';
import { freePort } from '../helpers/net.js';

const log = createLogger('test', 'silent');
const node = `mcp-node-${randomBytes(3).toString('hex')}`;
/** The default approval rule: agent-originated changes wait for an operator. */
const T = parseThresholds(`
version: 1
floors: [process]
cooldown_seconds: 0
default_ttl_seconds: 300
max_ttl_seconds: 600
`);

// open()s /dev/null flat out for the given seconds (a storm for a deliberately small ring).
const STORM_C = `
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
	double secs = atof(argv[1]);
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		for (int i = 0; i < 1000; i++) {
			int fd = open("/dev/null", O_RDONLY);
			if (fd >= 0) close(fd);
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 >= secs) break;
	}
	return 0;
}
`;

const TOOLS = [
  'query_features',
  'top_workloads',
  'list_anomalies',
  'explain_anomaly',
  'describe_probes',
  'feedback_history',
  'propose_feedback',
  'read_more',
];

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  ms: number,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

type CallResult = { content: Array<{ type: string; text?: string }>; isError?: boolean };

/** The JSON of a tool result (fails on an error result, with its text). */
function body(r: unknown): Record<string, any> {
  const res = r as CallResult;
  const text = res.content[0]?.text ?? '';
  if (res.isError) throw new Error(`tool error: ${text}`);
  return JSON.parse(text) as Record<string, any>;
}

describe('the MCP server over real features, anomalies and the real policy engine', () => {
  let stage: FeatureStage;
  let nodeAgent: NodeAgent;
  let nodeApi: HttpServer;
  let agentApi: HttpServer;
  let redis: Redis;
  let audit: AuditTrail;
  let service: FeedbackService;
  let deps: AgentDeps;
  let wl: Workload;
  let sampledWl: Workload;
  let featuresPort: number;
  let nodePort: number;
  let agentPort: number;
  let ref: string;
  const started = Date.now();

  beforeAll(async () => {
    featuresPort = await freePort();
    stage = testStage('mcp', log, { http_port: featuresPort });
    deps = { features: stageFeatureSource(stage), anomalies: new AnomalyStore() };
    stage.onWindow((w) => {
      for (const a of w.anomalies) deps.anomalies.add(a);
    });
    await stage.start();

    redis = connectRedis(REDIS_URL);
    audit = new AuditTrail({
      path: join(mkdtempSync(join(tmpdir(), 'tf-mcp-audit-')), 'feedback.jsonl'),
      log,
    });
    service = new FeedbackService({
      redis,
      redisUrl: REDIS_URL,
      audit,
      thresholds: () => T,
      actor: 'agent',
      log,
    });
    await service.store.registerNode(node);
    deps.gateway = new FeedbackServiceGateway(service, () => T);

    nodeAgent = testAgent(node, ['process', 'tcp'], log);
    deps.probes = [agentProbeSource(nodeAgent, node)];
    nodePort = await freePort();
    nodeApi = await startControlApi(nodeAgent, nodePort, log);
    agentPort = await freePort();
    agentApi = await startAgentApi(new TracefeedAgent({ deps, log, env: {} }), agentPort, { log });

    // A steady low exec rate for the detector's warm-up, then a burst: an anomaly.
    wl = makeWorkload('tf-mcp');
    const steady = 'for i in 1 2 3 4 5 6 7 8 9; do /bin/true; sleep 1; done';
    const burst = 'i=0; while [ $i -lt 1500 ]; do /bin/true; i=$((i+1)); done';
    expect(await wl.run(`${steady}; ${burst}`)).toBe(0);
    const a = await waitFor(
      'the exec_count anomaly of the workload',
      () => deps.anomalies.list({ workload: wl.path, metric: 'exec_count' })[0],
      45_000,
    );
    ref = anomalyRef(a.id);

    // Then the process probe sampled 1 in 4 by the node (real kernel sampling), and a second workload.
    nodeAgent.setProbe('process', { sample_n: 4 });
    sampledWl = makeWorkload('tf-mcp-sampled');
    expect(await sampledWl.run('i=0; while [ $i -lt 400 ]; do /bin/true; i=$((i+1)); done')).toBe(
      0,
    );
    await waitFor(
      'sampled windows of the second workload',
      async () =>
        (await deps.features.query({ workload: sampledWl.path, probe: 'process' })).find(
          (r) => Number(r.sample_weight_max) > 1,
        ),
      30_000,
    );
    nodeAgent.setProbe('process', { sample_n: 1 });
  }, 150_000);

  afterAll(async () => {
    agentApi?.close();
    nodeApi?.close();
    await nodeAgent?.stop(2000);
    await stage?.stop();
    await service
      ?.queue(node)
      .obliterate({ force: true })
      .catch(() => undefined);
    await service?.store.unregisterNode(node);
    await service?.close();
    await audit?.close();
    redis?.disconnect();
    wl?.remove();
    sampledWl?.remove();
  });

  /** Lists and calls every tool; checks what each says about the real pipeline. */
  async function exerciseEveryTool(client: Client): Promise<void> {
    const listed = await client.listTools();
    expect(listed.tools.map((t) => t.name).sort()).toEqual([...TOOLS].sort());
    const propose = listed.tools.find((t) => t.name === 'propose_feedback')!;
    expect(propose.annotations?.readOnlyHint).toBe(false);
    expect(listed.tools.find((t) => t.name === 'query_features')!.annotations?.readOnlyHint).toBe(
      true,
    );

    const q = body(
      await client.callTool({
        name: 'query_features',
        arguments: {
          metric: 'exec_count',
          node,
          workload: wl.path,
          since_minutes: 10,
          max_tokens: 4000,
        },
      }),
    );
    expect(q.data.groups[0]).toMatchObject({ workload: wl.path });
    expect(q.data.groups[0].value).toBeGreaterThanOrEqual(1500);
    expect(q.completeness.feature_rows).toBeGreaterThan(0);
    expect(q.completeness.windows).toBeGreaterThan(0);

    const top = body(
      await client.callTool({
        name: 'top_workloads',
        arguments: { metric: 'exec_count', node, since_minutes: 10, k: 1 },
      }),
    );
    // The node agent sees every process on the host: other programs may outrank the workload.
    expect(top.data.top).toHaveLength(1);
    expect(top.data.top[0]).toMatchObject({ rank: 1, node });
    expect(top.data.totals.workloads).toBeGreaterThanOrEqual(2);
    expect(top.data.histogram.buckets.reduce((s: number, b: any) => s + b.count, 0)).toBe(
      top.data.totals.workloads,
    );
    // Drill down: the rest of the workloads, ranked after the first, page by page.
    expect(top.data.drill_down.remaining).toBe(top.data.totals.workloads - 1);
    const all = [...top.data.top];
    let cursor: string | undefined = top.data.drill_down.cursor;
    while (cursor) {
      const page = body(
        await client.callTool({ name: 'read_more', arguments: { cursor, max_tokens: 32000 } }),
      );
      all.push(...page.items);
      cursor = page.truncation?.cursor;
    }
    expect(all.map((x) => x.rank)).toEqual(all.map((_, i) => i + 1));
    expect(all.length).toBe(top.data.totals.workloads);
    for (let i = 1; i < all.length; i++) expect(all[i].value).toBeLessThanOrEqual(all[i - 1].value);
    // The total is over every workload; the burst's workload is among them with its execs.
    const sum = all.reduce((s, x) => s + x.value, 0);
    expect(Math.abs(sum - top.data.totals.value)).toBeLessThan(1e-6 * sum + 0.01);
    const burst = all.find((x) => x.workload === wl.path);
    expect(burst.value).toBeGreaterThanOrEqual(1500);
    expect(burst.value).toBe(q.data.groups[0].value);

    const an = body(
      await client.callTool({
        name: 'list_anomalies',
        arguments: { workload: wl.path, since_minutes: 30 },
      }),
    );
    expect(an.data.anomalies.map((x: any) => x.ref)).toContain(ref);
    expect(an.completeness.feature_rows).toBeGreaterThan(0);

    const ex = body(
      await client.callTool({ name: 'explain_anomaly', arguments: { anomaly: ref } }),
    );
    expect(ex.data.anomaly.ref).toBe(ref);
    expect(ex.completeness.feature_rows).toBeGreaterThan(0);
    const missing = (await client.callTool({
      name: 'explain_anomaly',
      arguments: { anomaly: 'an-0000000000' },
    })) as CallResult;
    expect(missing.isError).toBe(true);
    expect(missing.content[0]!.text).toMatch(/no anomaly "an-0000000000" is known/);

    const pr = body(await client.callTool({ name: 'describe_probes', arguments: { node } }));
    expect(pr.data.nodes[0].node).toBe(node);
    expect(pr.data.nodes[0].probes.map((p: any) => p.probe).sort()).toEqual(['process', 'tcp']);
    expect(pr.completeness.source).toBe('live probe counters');

    const reason = `mcp test ${randomBytes(4).toString('hex')}`;
    const fb = body(
      await client.callTool({
        name: 'propose_feedback',
        arguments: {
          probe: 'tcp',
          action: 'tighten',
          node,
          workload: wl.path,
          sample_n: 1,
          ttl_seconds: 120,
          reason,
        },
      }),
    );
    // The policy engine decided: agent-originated changes wait for an operator.
    expect(fb.data.verdict).toBe('queue_for_approval');
    expect(fb.data.request.origin).toBe('agent');
    expect(fb.data.decisions).toEqual([
      expect.objectContaining({ node, outcome: 'queue_for_approval' }),
    ]);

    const hist = body(
      await client.callTool({
        name: 'feedback_history',
        arguments: { probe: 'tcp', origin: 'agent', limit: 200 },
      }),
    );
    const mine = hist.data.requests.find((r: any) => r.request_id === fb.data.request.id);
    expect(mine).toMatchObject({ origin: 'agent', probe: 'tcp', action: 'tighten' });
    expect(mine.states[node]).toMatch(/queue/);

    const bad = (await client.callTool({
      name: 'query_features',
      arguments: { metric: 'no_such_metric' },
    })) as CallResult;
    expect(bad.isError).toBe(true);
  }

  it('serves every tool, the resources and the prompt over stdio (tracefeed mcp)', async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [
        join(repoRoot, 'bin', 'tracefeed.js'),
        'mcp',
        '--features-url',
        `http://127.0.0.1:${featuresPort}`,
        '--agent-url',
        `http://127.0.0.1:${nodePort}`,
        '--brokers',
        BROKERS.join(','),
        '--redis',
        REDIS_URL,
        '--anomalies-minutes',
        '10',
      ],
      env: { ...(process.env as Record<string, string>), TRACEFEED_LOG_LEVEL: 'warn' },
      stderr: 'inherit',
    });
    const client = new Client({ name: 'tracefeed-test', version: '1.0.0' });
    await client.connect(transport);
    try {
      await exerciseEveryTool(client);

      const resources = await client.listResources();
      expect(resources.resources.map((r) => r.uri).sort()).toEqual([
        'tracefeed://features/recent',
        'tracefeed://features/schema',
      ]);
      const schema = await client.readResource({ uri: 'tracefeed://features/schema' });
      const doc = JSON.parse(String((schema.contents[0] as { text: string }).text));
      expect(doc.columns.map((c: any) => c.name)).toEqual(
        expect.arrayContaining(['window_start', 'workload', 'coverage_ratio', 'sample_weight_max']),
      );
      // Recent windows as Arrow IPC: the rows of the node's workloads, decoded with apache-arrow.
      const win = await client.readResource({ uri: 'tracefeed://features/recent/10' });
      const blob = win.contents[0] as { blob: string; mimeType: string };
      expect(blob.mimeType).toBe('application/vnd.apache.arrow.stream');
      const table = tableFromIPC(Buffer.from(blob.blob, 'base64'));
      const workloads = new Set(
        [...table.getChild('workload')!].filter((_, i) => table.getChild('node')!.get(i) === node),
      );
      expect(workloads.has(wl.path)).toBe(true);

      const prompts = await client.listPrompts();
      expect(prompts.prompts.map((p) => p.name)).toEqual(['incident_triage']);
      const p = await client.getPrompt({ name: 'incident_triage', arguments: { anomaly: ref } });
      expect((p.messages[0]!.content as { text: string }).text).toContain(JSON.stringify(ref));
    } finally {
      await client.close();
    }
  });

  it('serves every tool over streamable HTTP at /mcp with the bearer token', async () => {
    const client = new Client({ name: 'tracefeed-test-http', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(
      new URL(`http://127.0.0.1:${agentPort}/mcp`),
      { requestInit: { headers: authHeaders() } },
    );
    await client.connect(transport);
    try {
      expect(transport.sessionId).toMatch(/^[0-9a-f-]{36}$/);
      await exerciseEveryTool(client);
      const win = await client.readResource({ uri: 'tracefeed://features/recent' });
      expect((win.contents[0] as { mimeType: string }).mimeType).toBe(
        'application/vnd.apache.arrow.stream',
      );
    } finally {
      await transport.terminateSession().catch(() => undefined);
      await client.close();
    }
  });

  it('refuses an unauthenticated MCP session over HTTP (401)', async () => {
    const init = {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-06-18',
        capabilities: {},
        clientInfo: { name: 'anonymous', version: '0' },
      },
    };
    const res = await fetch(`http://127.0.0.1:${agentPort}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify(init),
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('mcp-session-id')).toBeNull();
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await fetch(`http://127.0.0.1:${agentPort}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${'0'.repeat(64)}`,
      },
      body: JSON.stringify(init),
    });
    expect(wrong.status).toBe(401);
    // The SDK client without the token cannot open a session either.
    const client = new Client({ name: 'anonymous', version: '0' });
    await expect(
      client.connect(
        new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${agentPort}/mcp`)),
      ),
    ).rejects.toMatchObject({ code: 401, message: expect.stringMatching(/missing bearer token/) });
  });

  it('cuts a result over its token budget and returns the rest behind a cursor', async () => {
    const client = new Client({ name: 'tracefeed-test-budget', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(
      new URL(`http://127.0.0.1:${agentPort}/mcp`),
      { requestInit: { headers: authHeaders() } },
    );
    await client.connect(transport);
    try {
      // A fixed, closed range: every window of this run on this node, one group per window.
      const args = {
        metric: 'events',
        node,
        group_by: 'window',
        top_k: 50,
        since: new Date(started - 5000).toISOString(),
        until: new Date(Date.now() - 5000).toISOString(),
      };
      const whole = body(
        await client.callTool({
          name: 'query_features',
          arguments: { ...args, max_tokens: 32000 },
        }),
      );
      expect(whole.truncation).toBeUndefined();
      expect(whole.data.groups.length).toBeGreaterThan(10);
      const cut = body(
        await client.callTool({ name: 'query_features', arguments: { ...args, max_tokens: 600 } }),
      );
      expect(JSON.stringify(cut).length).toBeLessThanOrEqual(600 * 4);
      expect(cut.truncation).toMatchObject({
        truncated: true,
        path: 'data.groups',
        total: whole.data.groups.length,
      });
      expect(cut.truncation.returned).toBeLessThan(whole.data.groups.length);
      // The completeness of the windows stays in the cut result.
      expect(cut.completeness.feature_rows).toBe(whole.completeness.feature_rows);
      // Page through the rest with read_more: together, exactly the whole list.
      const got = [...cut.data.groups];
      let cursor: string | undefined = cut.truncation.cursor;
      let pages = 0;
      while (cursor) {
        const page = body(
          await client.callTool({ name: 'read_more', arguments: { cursor, max_tokens: 600 } }),
        );
        expect(JSON.stringify(page).length).toBeLessThanOrEqual(600 * 4);
        got.push(...page.items);
        cursor = page.truncation?.cursor;
        pages++;
        expect(pages).toBeLessThan(100);
      }
      expect(pages).toBeGreaterThan(1);
      expect(got).toEqual(whole.data.groups);
      const stale = (await client.callTool({
        name: 'read_more',
        arguments: { cursor: 'bm8tc3VjaC1jdXJzb3I' },
      })) as CallResult;
      expect(stale.isError).toBe(true);
      expect(stale.content[0]!.text).toMatch(/cursor is malformed/);
    } finally {
      await client.close();
    }
  });

  it('says so when the windows it used were sampled by the kernel', async () => {
    const client = new Client({ name: 'tracefeed-test-completeness', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(
      new URL(`http://127.0.0.1:${agentPort}/mcp`),
      { requestInit: { headers: authHeaders() } },
    );
    await client.connect(transport);
    try {
      const sampled = body(
        await client.callTool({
          name: 'query_features',
          arguments: { metric: 'exec_count', node, workload: sampledWl.path, since_minutes: 10 },
        }),
      );
      expect(sampled.completeness).toMatchObject({ complete: false, sampled: true });
      expect(sampled.completeness.sample_weight_max).toBe(4);
      expect(sampled.completeness.incomplete).toContainEqual(
        // probe_sample_n is 0 in a window no probe.stats record fell in; the records' weight says it.
        expect.objectContaining({ node, probe: 'process', sample_weight_max: 4 }),
      );
      expect(sampled.completeness.summary).toMatch(
        /SAMPLED in \d+ node\/probe pair\(s\) \(up to 1 in 4/,
      );
      // The weighted count still estimates the 400 execs (plus the shell).
      expect(sampled.data.groups[0].value).toBeGreaterThan(200);

      // The first workload's windows, before the sampling, were complete.
      const before = body(
        await client.callTool({
          name: 'query_features',
          arguments: {
            metric: 'exec_count',
            node,
            workload: wl.path,
            since_minutes: 10,
          },
        }),
      );
      expect(before.completeness.sampled).toBe(false);
    } finally {
      await client.close();
    }
  });
  it("keeps the agent's answer within its token budget: each result gets what is left, read_more returns the rest", async () => {
    const model = await startScriptedServer();
    try {
      const agent = new TracefeedAgent({
        config: {
          base_url: model.url,
          model: 'scripted-model',
          api_key: 'test-key',
          result_budget_tokens: 1000,
          answer_budget_tokens: 1000,
        },
        deps,
        log,
        env: {},
      });
      const tokens = (v: unknown): number => Math.ceil(JSON.stringify(v).length / 4);
      const argsNow = (): string =>
        JSON.stringify({
          metric: 'events',
          node,
          group_by: 'window',
          top_k: 50,
          since: new Date(started - 5000).toISOString(),
          until: new Date(Date.now() - 5000).toISOString(),
        });
      // Enough windows that the whole result is over the 1000-token budget (top_k caps it near 2000).
      let args = argsNow();
      for (const end = Date.now() + 90_000; Date.now() < end;) {
        const whole = await queryFeatures.run(queryFeaturesSchema.parse(JSON.parse(args)), deps);
        if (tokens(whole.data) > 1300) break;
        await new Promise((r) => setTimeout(r, 1000));
        args = argsNow();
      }
      const seen: any[] = [];
      model.push(
        { tool_calls: [{ name: 'query_features', arguments: args }] },
        (req) => {
          seen.push(lastToolData(req));
          return { tool_calls: [{ name: 'query_features', arguments: args }] };
        },
        (req) => {
          seen.push(lastToolData(req));
          return {
            tool_calls: [
              {
                name: 'read_more',
                arguments: JSON.stringify({ cursor: seen[0].truncation.cursor, max_tokens: 32000 }),
              },
            ],
          };
        },
        (req) => {
          seen.push(lastToolData(req));
          return { content: 'done' };
        },
      );
      const r = await agent.ask('how many events per window on this node?');
      expect(r.tool_calls.map((c) => [c.name, c.outcome])).toEqual([
        ['query_features', 'ok'],
        ['query_features', 'ok'],
        ['read_more', 'ok'],
      ]);
      const [first, second, rest] = seen;
      // The first result: within the per-result budget, cut, completeness first.
      expect(Object.keys(first)[0]).toBe('completeness');
      expect(first.truncation).toMatchObject({ truncated: true, path: 'groups' });
      expect(tokens(first)).toBeLessThanOrEqual(1000);
      // The second, the same query: only what the answer had left (at least 200 tokens), so cut.
      expect(tokens(second)).toBeLessThanOrEqual(Math.max(200, 1000 - tokens(first)) + 1);
      expect(second.truncation).toMatchObject({ truncated: true });
      // read_more: the rest of the first result, whole.
      expect(rest.complete).toBeDefined();
      const whole = [...first.groups, ...rest.items];
      expect(whole.length).toBe(first.truncation.total);
      const direct = await queryFeatures.run(queryFeaturesSchema.parse(JSON.parse(args)), deps);
      expect(whole).toEqual((direct.data as { groups: unknown[] }).groups);
    } finally {
      await model.close();
    }
  });
  it('says so when the windows it used lost events in the kernel (ring buffer full)', async () => {
    // A second node with a deliberately small ring, the file probe on one workload, and a storm.
    const dir = mkdtempSync(join(tmpdir(), 'tf-mcp-storm-'));
    writeFileSync(join(dir, 'storm.c'), STORM_C);
    const storm = join(dir, 'storm');
    execFileSync('gcc', ['-O2', '-o', storm, join(dir, 'storm.c')]);
    const stormWl = makeWorkload('tf-mcp-storm');
    const lossyNode = `mcp-lossy-${randomBytes(3).toString('hex')}`;
    const lossy = new NodeAgent({
      ...DEFAULT_AGENT_OPTIONS,
      nodeName: lossyNode,
      brokers: BROKERS,
      lingerMs: 50,
      ringBytes: 64 * 1024,
      wakeupBytes: 16 * 1024,
      summaryIntervalMs: 1000,
      log,
      families: ['file'],
      probes: { file: { enabled: true, filters: { cgroup: { allow: [stormWl.path] } } } },
    });
    lossy.start();
    const client = new Client({ name: 'tracefeed-test-drops', version: '1.0.0' });
    try {
      expect(await stormWl.run(`exec ${storm} 3`)).toBe(0);
      await waitFor(
        'windows of the storm with coverage under 1',
        async () =>
          (await deps.features.query({ node: lossyNode, probe: 'file' })).find(
            (r) => Number(r.coverage_ratio) < 1,
          ),
        30_000,
      );
      await client.connect(
        new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${agentPort}/mcp`), {
          requestInit: { headers: authHeaders() },
        }),
      );
      const r = body(
        await client.callTool({
          name: 'query_features',
          arguments: { metric: 'file_opens', node: lossyNode, since_minutes: 5 },
        }),
      );
      expect(r.data.groups[0]).toMatchObject({ workload: stormWl.path });
      expect(r.completeness).toMatchObject({ complete: false, lossy: true });
      expect(r.completeness.coverage_min).toBeLessThan(1);
      expect(r.completeness.drops.ringbuf_full).toBeGreaterThan(0);
      expect(r.completeness.incomplete).toContainEqual(
        expect.objectContaining({ node: lossyNode, probe: 'file' }),
      );
      expect(r.completeness.summary).toMatch(/events were LOST in 1 node\/probe pair\(s\)/);
      // The same windows through top_workloads say it too.
      const top = body(
        await client.callTool({
          name: 'top_workloads',
          arguments: { metric: 'file_opens', node: lossyNode, since_minutes: 5 },
        }),
      );
      expect(top.completeness.lossy).toBe(true);
    } finally {
      await client.close();
      await lossy.stop(2000);
      stormWl.remove();
    }
  });
});
