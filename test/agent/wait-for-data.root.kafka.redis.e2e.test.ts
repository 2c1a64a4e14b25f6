/**
 * An intelligence gap filled end to end: a question needs file opens, the
 * file family is off on the node, so the agent (deterministic) says the data
 * is not collected and proposes enabling it, with a TTL, through the real
 * policy engine. With the default approval the proposal waits for an
 * operator and the answer says so; asked again with waitForDataMs while an
 * operator approves it, the change is delivered to the node, the kernel
 * collects file opens, and the agent answers from the new data.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { AuditTrail, FeedbackService, parseThresholds } from '../../src/feedback/index.js';
import { connectRedis, redisUrlFrom } from '../../src/feedback/redis.js';
const REDIS_URL = redisUrlFrom(undefined);
import { ScenarioSession } from '../../src/scenario/session.js';
import {
  AnomalyStore,
  FeedbackServiceGateway,
  TracefeedAgent,
  agentProbeSource,
  stageFeatureSource,
} from '../../src/agent/index.js';
import { BROKERS } from '../helpers/kafka.js';

const log = createLogger('test', 'silent');
const BASE = `
version: 1
floors: [process]
cooldown_seconds: 0
default_ttl_seconds: 60
max_ttl_seconds: 120
`;
/** The default approval rule: every agent-originated change waits for an operator. */
const T = parseThresholds(BASE);

describe('a question whose data is not collected', () => {
  let session: ScenarioSession;
  let redis: Redis;
  let audit: AuditTrail;
  let service: FeedbackService;
  let agent: TracefeedAgent;
  let requestId = '';

  beforeAll(async () => {
    session = await new ScenarioSession({
      brokers: BROKERS,
      redisUrl: REDIS_URL,
      log,
      window_seconds: 2,
      ttl_seconds: 60,
      lifetime_seconds: 120,
    }).start();
    redis = connectRedis(REDIS_URL);
    audit = new AuditTrail({
      path: join(mkdtempSync(join(tmpdir(), 'tf-wait-audit-')), 'feedback.jsonl'),
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
    agent = new TracefeedAgent({
      deps: {
        features: stageFeatureSource(session.stage),
        anomalies: new AnomalyStore(),
        probes: [agentProbeSource(session.agent, session.node)],
        gateway: new FeedbackServiceGateway(service, () => T),
      },
      log,
      env: {},
    });
    // A few windows of the default families first.
    await new Promise((r) => setTimeout(r, 5000));
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await audit?.close();
    redis?.disconnect();
    await session?.stop();
  });

  const question = () =>
    `which workloads had the most file opens on node ${session.node} in the last 1 minute?`;

  it('says so and proposes enabling the family; by default the proposal waits for approval', async () => {
    expect(session.agent.probes().find((p) => p.probe === 'file')?.enabled).toBe(false);
    const r = await agent.ask(question(), { waitForDataMs: 3000, waitPollMs: 500 });
    expect(r.answer).toMatch(/file_opens is not collected/);
    expect(r.gaps?.some((g) => g.kind === 'family_off' && g.probe === 'file')).toBe(true);
    expect(r.proposals).toHaveLength(1);
    const p = r.proposals[0]!;
    expect(p.request).toMatchObject({ probe: 'file', action: 'enable', origin: 'agent' });
    expect(p.request.ttl_seconds).toBe(120);
    expect(p.verdict).toBe('queue_for_approval');
    expect(r.answer).toMatch(/queued for operator approval/);
    expect(r.waited?.data_arrived).toBe(false);
    expect(r.answer).toMatch(/the data has not arrived/);
    expect(session.agent.probes().find((p) => p.probe === 'file')?.enabled).toBe(false);
    requestId = p.request.id;
  }, 30_000);

  it('asked to wait while an operator approves, answers from the data once it arrived', async () => {
    const asked = agent.ask(question(), { waitForDataMs: 40_000, waitPollMs: 500 });
    await new Promise((r) => setTimeout(r, 1500));
    // Still off: the agent proposed and is waiting; the operator approves the request.
    expect(session.agent.probes().find((x) => x.probe === 'file')?.enabled).toBe(false);
    const decisions = await service.approve(requestId, 'operator/test');
    expect(decisions.map((d) => d.outcome)).toEqual(['accept']);
    const r = await asked;
    const p = r.proposals.find((x) => x.request.probe === 'file')!;
    expect(p.request.action).toBe('enable');
    expect(r.waited?.data_arrived).toBe(true);
    expect(session.agent.probes().find((x) => x.probe === 'file')?.enabled).toBe(true);
    // The second answer is a top-k over real file opens (the batch bystander writes and reads files).
    expect(r.answer).not.toMatch(/not collected/);
    expect(r.answer).toMatch(/workloads had file_opens/);
    const rows = await stageFeatureSource(session.stage).query({
      sinceMs: Date.parse(p.request.created_at),
      node: session.node,
      probe: 'file',
    });
    expect(rows.some((x) => Number(x.file_opens) > 0)).toBe(true);
  }, 60_000);
});
