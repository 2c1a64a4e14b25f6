/**
 * The agent evaluation on a small run it records itself (one incident on
 * real workloads, the real feedback loop, an operator-sampled phase): the
 * deterministic mode must be exact on every category it claims, and a
 * scripted model on an OpenAI-compatible loopback server is graded, with
 * its tokens, latency and cost, by the same checks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { redisUrlFrom } from '../../src/feedback/redis.js';
const REDIS_URL = redisUrlFrom(undefined);
import {
  CATEGORIES,
  DETERMINISTIC_CLAIMS,
  buildQuestions,
  evaluate,
  markdownReport,
  recordRun,
  type Recording,
} from '../../src/eval/index.js';
import { BROKERS } from '../helpers/kafka.js';
import { lastToolData, startScriptedServer, type ScriptedServer } from './scripted-openai.js';

const log = createLogger('test', 'silent');

describe('the agent evaluation', () => {
  let rec: Recording;
  let model: ScriptedServer;

  beforeAll(async () => {
    rec = await recordRun({
      brokers: BROKERS,
      redisUrl: REDIS_URL,
      log,
      incidents: ['refused-storm'],
      warmup_seconds: 6,
      ttl_seconds: 4,
      sampled_seconds: 4,
    });
    model = await startScriptedServer();
  }, 150_000);

  afterAll(async () => {
    await model?.close();
  });

  it('records the run it grades: rows, frames, anomalies and the incident log', () => {
    expect(rec.rows.length).toBeGreaterThan(0);
    expect(rec.frames.length).toBeGreaterThan(0);
    expect(rec.incidents.map((i) => i.incident)).toEqual(['refused-storm']);
    expect(rec.log.some((l) => l.kind === 'operator_sampling')).toBe(true);
    expect(rec.probes.find((p) => p.probe === 'tcp')?.settings.sample_n).toBe(4);
    const qs = buildQuestions(rec);
    expect(qs.length).toBeGreaterThanOrEqual(40);
    for (const c of CATEGORIES) expect(qs.some((q) => q.category === c)).toBe(true);
  });

  it('the deterministic mode is exact on every category it claims', async () => {
    const report = await evaluate(rec, { log });
    const det = report.modes[0]!;
    const misses = det.results
      .filter((r) => DETERMINISTIC_CLAIMS.includes(r.category) && !r.pass)
      .map((r) => `${r.id} ${JSON.stringify(r.question)}: ${r.why}\n${r.answer}`);
    expect(misses).toEqual([]);
    for (const c of CATEGORIES) {
      const s = det.categories[c];
      expect(s.claimed).toBe(DETERMINISTIC_CLAIMS.includes(c));
      if (!s.claimed) expect(s.accuracy).toBeNull();
      else expect(s.accuracy).toBe(1);
    }
    expect(det.claimed_questions).toBeGreaterThanOrEqual(35);
    expect(det.prompt_tokens).toBe(0);
    const md = markdownReport(report, 'test');
    expect(md).toMatch(/\| causes \| not claimed/);
    expect(md).toMatch(/\*\*claimed total\*\*/);
  }, 60_000);

  it('grades a scripted model: accuracy per category, tokens, latency and cost', async () => {
    const questions = buildQuestions(rec).length;
    // Every question: one query_features call (exec counts, the last hour), then an answer
    // naming the first group. Right for "which workloads started the most processes", wrong
    // for nearly everything else (refusals included: it never refuses).
    const step = (req: Parameters<typeof lastToolData>[0]) => {
      const last = req.messages[req.messages.length - 1]!;
      if (last.role !== 'tool')
        return {
          tool_calls: [
            {
              name: 'query_features',
              arguments: JSON.stringify({ metric: 'exec_count', since_minutes: 60, top_k: 3 }),
            },
          ],
          usage: { prompt_tokens: 300, completion_tokens: 30 },
        };
      const d = lastToolData(req) as { groups: Array<{ workload: string; value: number }> };
      const g = d.groups[0];
      return {
        content: g
          ? `The top workload is "${g.workload}" with ${g.value} exec_count.`
          : 'No workload had any exec_count.',
        usage: { prompt_tokens: 500, completion_tokens: 20 },
      };
    };
    for (let i = 0; i < 2 * questions; i++) model.push(step);
    const report = await evaluate(rec, {
      log,
      llm: [
        {
          base_url: model.url,
          model: 'scripted',
          price_per_1k_prompt_tokens_usd: 0.5,
          price_per_1k_completion_tokens_usd: 1.5,
        },
      ],
    });
    const llm = report.modes[1]!;
    expect(llm.mode).toBe('llm');
    expect(model.remaining()).toBe(0);
    expect(llm.results.every((r) => r.error === undefined)).toBe(true);
    expect(llm.prompt_tokens).toBe(questions * 800);
    expect(llm.completion_tokens).toBe(questions * 50);
    expect(llm.cost_usd).toBeCloseTo(questions * (0.8 * 0.5 + 0.05 * 1.5), 6);
    expect(llm.latency_ms.max).toBeGreaterThan(0);
    // Every category is claimed by a model and scored.
    for (const c of CATEGORIES) expect(llm.categories[c].claimed).toBe(true);
    const byId = new Map(llm.results.map((r) => [r.id, r]));
    expect(byId.get('top-k-1')?.pass).toBe(true);
    expect(llm.categories.refusals.passed).toBe(0);
    expect(llm.categories.gaps.passed).toBeLessThan(llm.categories.gaps.questions);
    expect(llm.accuracy).toBeGreaterThan(0);
    expect(llm.accuracy).toBeLessThan(0.5);
  }, 120_000);
});
