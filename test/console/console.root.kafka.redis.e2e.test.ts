/**
 * The operator console in a real headless Chromium (Debian's), against a
 * running pipeline on real parts: the node agent on the real kernel, the
 * feature stage on real Kafka with 1 s windows, the feedback controller and
 * this node's worker on real Redis, the agent (no model: its deterministic
 * mode), and real workloads in cgroups of their own.
 *
 * The controller reads anomalies from a topic of this test's own, fed with
 * this node's anomalies as the stage closes its windows (other suites' nodes
 * publish on the shared anomalies topic; a rule of this test must not act on
 * them). From there on it is the controller's own path: rule, policy engine
 * (this thresholds file queues every rule request for approval), Redis, the
 * signed job, the node worker, the kernel map.
 *
 * With TRACEFEED_CONSOLE_SCREENSHOTS=<dir> (npm run docs:console) it writes a
 * screenshot of each view there.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { authHeaders } from '../../src/common/http-auth.js';
import { ensureTopics } from '../../src/common/kafka.js';
import { layout, type NodeAgent } from '../../src/ingest/index.js';
import type { Anomaly, FeatureStage } from '../../src/features/index.js';
import { AuditTrail, FeedbackController, NodeFeedbackWorker } from '../../src/feedback/index.js';
import {
  AnomalyStore,
  FeedbackServiceGateway,
  TracefeedAgent,
  agentProbeSource,
  stageFeatureSource,
} from '../../src/agent/index.js';
import { startConsole, type ConsoleServer } from '../../src/console/server.js';
import { BROKERS } from '../helpers/kafka.js';
import { startScriptedServer, type ScriptedServer } from '../agent/scripted-openai.js';
import { testAgent, testStage } from '../helpers/pipeline.js';
import { makeWorkload, type Workload } from '../agent/helpers.js';

const REDIS = process.env.TRACEFEED_REDIS_URL ?? 'redis://127.0.0.1:6379';
const CHROMIUM = process.env.TRACEFEED_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = process.env.TRACEFEED_CONSOLE_SCREENSHOTS;

async function until<T>(
  what: string,
  timeoutMs: number,
  f: () => Promise<T | undefined | false> | T | undefined | false,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The sample_n of a cgroup's tf_focus entry in the tcp object, or undefined when it has none. */
function focusSampleN(agent: NodeAgent, cgroupId: bigint): number | undefined {
  const key = Buffer.alloc(8);
  key.writeBigUInt64LE(cgroupId);
  const v = agent.object('tcp').mapLookup('tf_focus', key);
  return v ? v.readUInt32LE(layout.fieldOffset(layout.FOCUS_LAYOUT, 'sample_n')) : undefined;
}

describe('the operator console, in a browser, on a running pipeline', () => {
  const node = `console-${randomBytes(3).toString('hex')}`;
  const topic = `tracefeed.test.console-anomalies-${randomBytes(4).toString('hex')}`;
  const log = createLogger('test', 'silent');
  const dir = mkdtempSync(join(tmpdir(), 'tf-console-'));
  const thresholdsPath = join(dir, 'thresholds.yaml');
  let agent: NodeAgent;
  let stage: FeatureStage;
  let audit: AuditTrail;
  let worker: NodeFeedbackWorker;
  let controller: FeedbackController;
  let console_: ConsoleServer;
  let browser: Browser;
  let model: ScriptedServer;
  let page: Page;
  let base: string;
  const pageErrors: string[] = [];
  const anomalies: Anomaly[] = [];
  const workloads: Workload[] = [];
  const relayErrors: string[] = [];
  const relaying: Array<Promise<unknown>> = [];

  const shot = async (view: string): Promise<void> => {
    if (!SHOTS) return;
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, `${view}.png`) as `${string}.png`, fullPage: true });
  };
  const nodeNumber = async (probe: string, field: string): Promise<number> => {
    const text = await page.$eval(
      `[data-node="${node}"] tr[data-probe="${probe}"] [data-field="${field}"]`,
      (el) => el.textContent ?? '',
    );
    return Number(text.replace(/,/g, ''));
  };

  beforeAll(async () => {
    writeFileSync(
      thresholdsPath,
      [
        'version: 1',
        'floors: [process]',
        'cooldown_seconds: 0',
        'default_ttl_seconds: 300',
        '# every rule request waits for an operator',
        'approval: { actions: [disable], origins: [rule, agent] }',
        'probes:',
        '  tcp: { min_sample_n: 1, max_sample_n: 100 }',
        'rules:',
        '  - name: console-refused',
        '    metric: tcp_connect_failures',
        '    action: tighten',
        '    probe: tcp',
        '    focus: workload',
        '    ttl_seconds: 300',
        '',
      ].join('\n'),
    );
    await ensureTopics(BROKERS, log, 1, [topic]);
    stage = testStage('console', log);
    await stage.start();
    agent = testAgent(node, ['process', 'tcp'], log);
    audit = new AuditTrail({ brokers: BROKERS, log, path: join(dir, 'audit.jsonl') });
    worker = await new NodeFeedbackWorker(agent, { node, redisUrl: REDIS, audit, log }).start();
    controller = await new FeedbackController({
      brokers: BROKERS,
      redisUrl: REDIS,
      thresholdsPath,
      audit,
      log,
      topic,
      groupId: `tracefeed-feedback-test-console-${randomUUID()}`,
    }).start();
    await controller.ready;
    stage.onWindow((w) => {
      for (const a of w.anomalies) {
        if (a.node !== node) continue;
        anomalies.push(a);
        relaying.push(
          controller.handleAnomaly(Buffer.from(JSON.stringify(a))).catch((err: unknown) => {
            relayErrors.push(String(err));
            return [];
          }),
        );
      }
    });
    // The agent on the real LangChain/openai client code; the model is the only fake: an
    // OpenAI-compatible server on loopback answering from this test's script.
    model = await startScriptedServer();
    const ai = new TracefeedAgent({
      config: { base_url: model.url, model: 'scripted-model', api_key: 'test-key' },
      deps: {
        features: stageFeatureSource(stage),
        anomalies: new AnomalyStore(),
        probes: [agentProbeSource(agent, node)],
        gateway: new FeedbackServiceGateway(controller.service!, () => controller.thresholds),
      },
      log,
      env: {},
    });
    console_ = await startConsole(
      { nodes: [agent], stage, feedback: () => controller.service, agent: ai },
      { port: 0, log },
    );
    base = `http://127.0.0.1:${console_.port}`;
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await console_?.close();
    await model?.close();
    // The stage first: its windows feed the controller.
    await stage?.stop();
    await Promise.all(relaying);
    // Leave no request of this node waiting for approval in the shared Redis.
    const service = controller?.service;
    if (service)
      for (const v of await service.list(500))
        if (v.status[node]?.state === 'queued')
          await service.reject(v.request.id, 'test', 'test over').catch(() => undefined);
    await controller?.stop();
    await worker?.stop();
    await audit?.close();
    await agent?.stop(2000);
    for (const w of workloads) w.remove();
  });

  it('refuses an unauthenticated load, a used login link, and a forged cookie', async () => {
    const anon = await fetch(`${base}/`);
    expect(anon.status).toBe(401);
    expect(((await anon.json()) as { error: string }).error).toMatch(/not logged in/);
    for (const path of ['/v1/now', '/v1/feedback', '/assets/app.js', '/v1/features']) {
      expect((await fetch(`${base}${path}`)).status, path).toBe(401);
    }
    const forged = await fetch(`${base}/`, {
      headers: { cookie: 'tracefeed_session=' + 'a'.repeat(64) },
    });
    expect(forged.status).toBe(401);
    // A cross-site post with the bearer still fails on its Origin.
    const cross = await fetch(`${base}/v1/feedback/x/approve`, {
      method: 'POST',
      headers: {
        ...authHeaders(),
        origin: 'http://evil.example',
        'content-type': 'application/json',
      },
      body: '{}',
    });
    expect(cross.status).toBe(403);

    // In the browser too: a fresh context (no cookie) gets the refusal, not the page.
    const ctx = await browser.createBrowserContext();
    const p = await ctx.newPage();
    const r = await p.goto(`${base}/`);
    expect(r?.status()).toBe(401);
    expect(await p.$('#view-now')).toBeNull();
    // A login link works once.
    const link = console_.loginUrl();
    const first = await p.goto(link);
    expect(first?.status()).toBe(200);
    expect(p.url()).toBe(`${base}/`);
    const cookies = await ctx.cookies();
    const c = cookies.find((k) => k.name === 'tracefeed_session')!;
    expect(c.httpOnly).toBe(true);
    expect(c.sameSite).toBe('Strict');
    const ctx2 = await browser.createBrowserContext();
    const p2 = await ctx2.newPage();
    expect((await p2.goto(link))?.status()).toBe(401);
    await ctx.close();
    await ctx2.close();

    // The bearer token mints links (tracefeed console-login).
    const minted = await fetch(`${base}/v1/login-codes`, {
      method: 'POST',
      headers: authHeaders(),
    });
    expect(minted.status).toBe(200);
    expect(((await minted.json()) as { url: string }).url).toMatch(/\/login\?code=[0-9a-f]{64}$/);
  });

  it('loads without console errors and shows this node live', async () => {
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => pageErrors.push(`pageerror: ${(e as Error).message}`));
    page.on('requestfailed', (r) => {
      // The live stream is cut when the page closes. An answer stream that had its 200
      // and is reported aborted once its body is read is not a failure of the page: the
      // ask test checks that the whole answer and its citations arrived. Anything else
      // failing is an error.
      if (r.url().endsWith('/v1/now/stream')) return;
      const text = r.failure()?.errorText ?? '';
      if (
        r.url().endsWith('/v1/ask') &&
        text === 'net::ERR_ABORTED' &&
        r.response()?.status() === 200
      )
        return;
      pageErrors.push(`requestfailed: ${r.url()} ${text}`);
    });
    await page.goto(console_.loginUrl());
    expect(page.url()).toBe(`${base}/`);
    await page.waitForSelector(`[data-node="${node}"] tr[data-probe="process"]`, {
      timeout: 15_000,
    });
    await page.evaluate(() => ((globalThis as unknown as { loadMark: number }).loadMark = 42));
    expect(await nodeNumber('process', 'generation')).toBeGreaterThanOrEqual(1);
    // One heading per column.
    const heads = await page.$$eval(`[data-node="${node}"] th`, (els) =>
      els.map((e) => e.textContent ?? ''),
    );
    const cells = await page.$$eval(
      `[data-node="${node}"] tr[data-probe="process"] td`,
      (els) => els.length,
    );
    expect(heads).toContain('bytes/s');
    expect(heads.length).toBe(cells);
    expect(pageErrors).toEqual([]);
  });

  it('moves the live numbers when a workload starts (no reload)', async () => {
    // Quiet baseline of this node's process probe (every exec on the host counts).
    const before = await nodeNumber('process', 'eps');
    const wl = makeWorkload('tf-console-exec');
    workloads.push(wl);
    const running = wl.run('i=0; while [ $i -lt 6000 ]; do /bin/true; i=$((i+1)); done');
    const seen = await until('the process events/s on the page to rise', 20_000, async () => {
      const v = await nodeNumber('process', 'eps');
      return v >= Math.max(200, before * 2 + 100) ? v : undefined;
    });
    expect(seen).toBeGreaterThan(before);
    // Bytes/s per family move with it: whole records, each at least a header long.
    const bps = await page.$eval(
      `[data-node="${node}"] tr[data-probe="process"] [data-field="bps"]`,
      (el) => el.textContent ?? '',
    );
    expect(bps).toMatch(/^[\d.,]+ (B|KiB|MiB)\/s$/);
    expect(bps).not.toBe('0 B/s');
    const proc = agent.probes().find((p) => p.probe === 'process')!;
    if (proc.eventsPerSecond > 0) {
      const perEvent = proc.bytesPerSecond / proc.eventsPerSecond;
      expect(perEvent).toBeGreaterThanOrEqual(layout.EVENT_HEADER_SIZE);
      expect(perEvent).toBeLessThanOrEqual(4096);
    }
    await running;
    expect(
      await page.evaluate(() => (globalThis as unknown as { loadMark?: number }).loadMark),
    ).toBe(42);
    await shot('now');
    expect(pageErrors).toEqual([]);
  });

  it('draws an injected refused-connection storm and its tighten on the timeline', async () => {
    const wl = makeWorkload('tf-console-refused');
    workloads.push(wl);
    const closed = 40_000 + (randomBytes(2).readUInt16LE(0) % 20_000);
    const js = `setTimeout(()=>process.exit(0),15000).unref();const net=require('net');setInterval(()=>{net.connect(${closed},'127.0.0.1').on('error',()=>{})},10);`;
    void wl.run(`exec ${process.execPath} -e "${js}"`);
    const anomaly = await until('a connect-failure anomaly on the workload', 30_000, () =>
      anomalies.find((a) => a.workload === wl.path && a.metric === 'tcp_connect_failures'),
    );
    const service = controller.service!;
    const req = await until('the rule request queued for approval', 15_000, async () => {
      for (const v of await service.list(200))
        if (v.request.workload === wl.path && v.status[node]?.state === 'queued') return v;
      return undefined;
    });
    expect(relayErrors).toEqual([]);
    expect(req.request.action).toBe('tighten');
    expect(req.request.origin).toBe('rule');

    await page.goto(`${base}/?node=${node}#timeline`);
    await page.waitForSelector(
      `tr[data-kind="anomaly"][data-workload="${wl.path}"][data-metric="${anomaly.metric}"]`,
      { timeout: 15_000 },
    );
    await page.waitForSelector(
      `tr[data-kind="action"][data-action="tighten"][data-request="${req.request.id}"]`,
      { timeout: 15_000 },
    );
    // The charts are drawn from the Arrow features, with this workload among the series.
    await page.waitForSelector('#chart-eps canvas', { timeout: 15_000 });
    // The node filter keeps other nodes' rows out.
    const where = await page.$$eval('table.markers tr[data-kind] td:nth-child(3)', (els) =>
      els.map((e) => e.textContent ?? ''),
    );
    expect(where.length).toBeGreaterThan(0);
    for (const w of where) expect(w.startsWith(node)).toBe(true);
    const labels = await page.$$eval('#chart-eps .u-legend th, #chart-eps .u-series', (els) =>
      els.map((e) => e.textContent ?? ''),
    );
    expect(labels.join(' ')).toContain(node);
    await shot('timeline');

    // Approve it from the Feedback view: the same policy path as the CLI, then the kernel map.
    expect(focusSampleN(agent, wl.id)).toBeUndefined();
    await page.goto(`${base}/?node=${node}#feedback`);
    const button = `tr[data-request="${req.request.id}"] button[data-act="approve"]`;
    await page.waitForSelector(button, { timeout: 10_000 });
    await shot('feedback');
    await page.click(button);
    await until('the focus in the kernel map', 20_000, () => focusSampleN(agent, wl.id) === 1);
    const tcp = agent.probes().find((p) => p.probe === 'tcp')!;
    expect(Object.keys(tcp.focus)).toContain(String(wl.id));
    const res = await fetch(`${base}/v1/now`, { headers: authHeaders() });
    const now = (await res.json()) as {
      nodes: Array<{ node: string; probes: Array<{ probe: string; focus_count: number }> }>;
    };
    expect(
      now.nodes.find((n) => n.node === node)!.probes.find((p) => p.probe === 'tcp')!.focus_count,
    ).toBeGreaterThanOrEqual(1);
    await page.waitForSelector(`tr[data-request="${req.request.id}"] .tag.applied`, {
      timeout: 15_000,
    });
    const v = await service.get(req.request.id);
    expect(v!.status[node]!.state).toBe('applied');
    await page.waitForSelector(`tr[data-request="${req.request.id}"] button[data-act="revert"]`);
    await shot('feedback-applied');

    // Revert it from the page: the focus leaves the kernel map, the timeline draws the revert.
    await page.click(`tr[data-request="${req.request.id}"] button[data-act="revert"]`);
    await until('the focus gone from the kernel map', 20_000, () =>
      focusSampleN(agent, wl.id) === undefined ? true : undefined,
    );
    await until('the request reverted', 15_000, async () =>
      (await service.get(req.request.id))?.status[node]?.state === 'reverted' ? true : undefined,
    );
    await page.goto(`${base}/?node=${node}#timeline`);
    await page.waitForSelector(
      `tr[data-kind="action"][data-action="revert"][data-request="${req.request.id}"]`,
      { timeout: 15_000 },
    );
    expect(pageErrors).toEqual([]);
  });

  it('asks the agent and shows the streamed answer with its citations', async () => {
    const answerText = `The refused connections come from the tf-console-refused workload on ${node}.`;
    const toolCall = {
      name: 'query_features',
      arguments: JSON.stringify({
        metric: 'tcp_connect_failures',
        since_minutes: 10,
        node,
        group_by: 'workload',
      }),
    };
    // Over the API first: the answer arrives as several token events, then the result.
    model.push({ tool_calls: [toolCall] }, { content: answerText });
    const res = await fetch(`${base}/v1/ask`, {
      method: 'POST',
      headers: { ...authHeaders(), 'content-type': 'application/json' },
      body: JSON.stringify({ question: 'who fails to connect?' }),
    });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const sse = await res.text();
    const tokens = [...sse.matchAll(/^event: token\ndata: (.*)$/gm)].map(
      (m) => (JSON.parse(m[1]!) as { text: string }).text,
    );
    expect(tokens.length).toBeGreaterThan(1);
    expect(tokens.join('')).toBe(answerText);
    expect(sse).toMatch(/^event: result$/m);

    // In the page.
    model.push({ tool_calls: [toolCall] }, { content: answerText });
    await page.goto(`${base}/?node=${node}#ask`);
    await page.waitForSelector('#ask-q');
    await page.type('#ask-q', `which workloads on ${node} fail to connect?`);
    await page.click('#ask-go');
    await page.waitForFunction(
      () =>
        (
          (
            globalThis as unknown as {
              document: { getElementById(id: string): { textContent: string | null } | null };
            }
          ).document.getElementById('ask-meta')?.textContent ?? ''
        ).includes('ms'),
      { timeout: 30_000 },
    );
    expect(await page.$eval('#ask-answer', (e) => e.textContent ?? '')).toBe(answerText);
    expect(await page.$eval('#ask-meta', (e) => e.textContent ?? '')).toMatch(
      /^llm \(scripted-model\)/,
    );
    const cites = await page.$$eval('#ask-citations li', (els) =>
      els.map((e) => e.textContent ?? ''),
    );
    expect(cites.length).toBeGreaterThan(0);
    expect(cites.every((c) => c.startsWith('query_features'))).toBe(true);
    expect(cites.join(' ')).toContain('tcp_connect_failures');
    expect(model.remaining()).toBe(0);
    await shot('ask');
    expect(pageErrors).toEqual([]);
  });

  it('shows the thresholds in force, read-only', async () => {
    await page.goto(`${base}/?node=${node}#thresholds`);
    await page.waitForSelector('#th-body');
    const shown = await page.$eval('#th-body', (e) => e.textContent ?? '');
    const status = (await controller.service!.store.thresholdsStatus())!;
    expect(JSON.parse(shown)).toEqual(status.thresholds);
    expect(await page.$('#view-thresholds button, #view-thresholds input')).toBeNull();
    expect(await page.$eval('#th-error', (e) => e.textContent ?? '')).toBe('no validation error');

    // An invalid edit: the controller keeps the old file in force and says why; the page shows it.
    const good = readFileSync(thresholdsPath, 'utf8');
    writeFileSync(thresholdsPath, good.replace('cooldown_seconds: 0', 'cooldown_seconds: -5'));
    await page.waitForFunction(
      () =>
        (
          (
            globalThis as unknown as {
              document: { getElementById(id: string): { textContent: string | null } | null };
            }
          ).document.getElementById('th-error')?.textContent ?? ''
        ).includes('cooldown_seconds'),
      { timeout: 20_000 },
    );
    expect(JSON.parse(await page.$eval('#th-body', (e) => e.textContent ?? ''))).toEqual(
      status.thresholds,
    );
    await shot('thresholds');
    writeFileSync(thresholdsPath, good);
    expect(pageErrors).toEqual([]);
  });
});
