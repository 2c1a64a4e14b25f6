/**
 * Runs the questions against the deterministic mode and, when given one, an
 * OpenAI-compatible endpoint, over the same replayed recording, and writes
 * the report (accuracy per category, tokens, latency, cost).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../common/logger.js';
import { TracefeedAgent, type AskResult } from '../agent/agent.js';
import type { AgentConfigInput } from '../agent/config.js';
import { CATEGORIES, buildQuestions, type Category, type EvalQuestion } from './questions.js';
import type { Recording } from './recording.js';
import { replayDeps } from './replay.js';

/**
 * What the deterministic mode claims to answer exactly. The other categories
 * (causes, what changed) are run and shown, but reported as not claimed.
 */
export const DETERMINISTIC_CLAIMS: readonly Category[] = [
  'top-k',
  'time-ranges',
  'anomalies',
  'loop',
  'completeness',
  'gaps',
  'refusals',
  'processes',
];

export interface QuestionResult {
  id: string;
  category: Category;
  question: string;
  truth: unknown;
  pass: boolean;
  why: string;
  answer: string;
  tool_calls: string[];
  proposals: Array<{ probe: string; action: string; ttl_seconds: number | null; verdict: string }>;
  duration_ms: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: number;
  error?: string;
}

export interface CategoryScore {
  claimed: boolean;
  questions: number;
  passed: number;
  /** passed / questions; null when the mode does not claim the category. */
  accuracy: number | null;
}

export interface ModeReport {
  mode: 'deterministic' | 'llm';
  model: string | null;
  base_url: string | null;
  categories: Record<Category, CategoryScore>;
  /** Over claimed categories only. */
  claimed_questions: number;
  claimed_passed: number;
  accuracy: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: number;
  latency_ms: { mean: number; p50: number; p95: number; max: number };
  results: QuestionResult[];
}

export interface EvalReport {
  generated_at: string;
  recording: {
    node: string;
    seconds: number;
    window_seconds: number;
    rows: number;
    anomalies: number;
    frames: number;
    audit_records: number;
    incidents: Array<{
      incident: string;
      victim: string;
      injected_at: string;
      cleared_at: string;
      detected: boolean;
      anomaly_metric: string | null;
      changes: number;
    }>;
    log: Recording['log'];
  };
  questions: number;
  modes: ModeReport[];
}

export interface LlmTarget {
  base_url: string;
  model: string;
  api_key?: string;
  price_per_1k_prompt_tokens_usd?: number;
  price_per_1k_completion_tokens_usd?: number;
  max_tool_rounds?: number;
}

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

async function runMode(
  rec: Recording,
  questions: EvalQuestion[],
  log: Logger,
  llm: LlmTarget | undefined,
  progress?: (line: string) => void,
): Promise<ModeReport> {
  const { deps } = replayDeps(rec);
  const config: AgentConfigInput = llm
    ? {
        base_url: llm.base_url,
        model: llm.model,
        api_key: llm.api_key ?? 'unused',
        ...(llm.max_tool_rounds !== undefined ? { max_tool_rounds: llm.max_tool_rounds } : {}),
        price_per_1k_prompt_tokens_usd: llm.price_per_1k_prompt_tokens_usd ?? 0,
        price_per_1k_completion_tokens_usd: llm.price_per_1k_completion_tokens_usd ?? 0,
      }
    : { disable_model: true };
  const agent = new TracefeedAgent({ config, deps, log, env: {} });
  const claims = llm ? CATEGORIES : DETERMINISTIC_CLAIMS;
  const results: QuestionResult[] = [];
  for (const q of questions) {
    const started = Date.now();
    let r: AskResult | undefined;
    let error: string | undefined;
    try {
      r = await agent.ask(q.question);
    } catch (err) {
      error = (err as Error).message;
    }
    const v = r ? q.check(r) : { pass: false, why: `error: ${error}` };
    results.push({
      id: q.id,
      category: q.category,
      question: q.question,
      truth: q.truth,
      pass: v.pass,
      why: v.why,
      answer: r?.answer ?? '',
      tool_calls: r?.tool_calls.map((t) => `${t.name}:${t.outcome}`) ?? [],
      proposals:
        r?.proposals.map((p) => ({
          probe: p.request.probe,
          action: p.request.action,
          ttl_seconds: p.request.ttl_seconds ?? null,
          verdict: p.verdict,
        })) ?? [],
      duration_ms: r?.duration_ms ?? Date.now() - started,
      prompt_tokens: r?.usage.prompt_tokens ?? 0,
      completion_tokens: r?.usage.completion_tokens ?? 0,
      cost_usd: r?.cost_usd ?? 0,
      ...(error !== undefined ? { error } : {}),
    });
    progress?.(
      `${llm ? llm.model : 'deterministic'} ${q.id}: ${v.pass ? 'pass' : 'FAIL'} (${v.why})`,
    );
  }
  const categories = Object.fromEntries(
    CATEGORIES.map((c) => {
      const rs = results.filter((x) => x.category === c);
      const claimed = claims.includes(c);
      const passed = rs.filter((x) => x.pass).length;
      return [
        c,
        {
          claimed,
          questions: rs.length,
          passed,
          accuracy: claimed && rs.length > 0 ? passed / rs.length : null,
        },
      ];
    }),
  ) as Record<Category, CategoryScore>;
  const claimedResults = results.filter((x) => claims.includes(x.category));
  const lat = results.map((x) => x.duration_ms);
  return {
    mode: llm ? 'llm' : 'deterministic',
    model: llm?.model ?? null,
    base_url: llm?.base_url ?? null,
    categories,
    claimed_questions: claimedResults.length,
    claimed_passed: claimedResults.filter((x) => x.pass).length,
    accuracy:
      claimedResults.length > 0
        ? claimedResults.filter((x) => x.pass).length / claimedResults.length
        : 0,
    prompt_tokens: results.reduce((s, x) => s + x.prompt_tokens, 0),
    completion_tokens: results.reduce((s, x) => s + x.completion_tokens, 0),
    cost_usd: results.reduce((s, x) => s + x.cost_usd, 0),
    latency_ms: {
      mean: lat.reduce((s, x) => s + x, 0) / Math.max(1, lat.length),
      p50: quantile(lat, 0.5),
      p95: quantile(lat, 0.95),
      max: Math.max(0, ...lat),
    },
    results,
  };
}

export async function evaluate(
  rec: Recording,
  opts: { log: Logger; llm?: LlmTarget[]; progress?: (line: string) => void },
): Promise<EvalReport> {
  const questions = buildQuestions(rec);
  const modes = [await runMode(rec, questions, opts.log, undefined, opts.progress)];
  for (const t of opts.llm ?? [])
    modes.push(await runMode(rec, questions, opts.log, t, opts.progress));
  return {
    generated_at: new Date().toISOString(),
    recording: {
      node: rec.node,
      seconds: Math.round((rec.ended_at - rec.started_at) / 1000),
      window_seconds: rec.window_seconds,
      rows: rec.rows.length,
      anomalies: rec.anomalies.length,
      frames: rec.frames.length,
      audit_records: rec.audit.length,
      incidents: rec.incidents.map((i) => ({
        incident: i.incident,
        victim: i.victim,
        injected_at: i.injected_at,
        cleared_at: i.cleared_at,
        detected: i.detected,
        anomaly_metric: i.anomaly?.metric ?? null,
        changes: i.changes.length,
      })),
      log: rec.log,
    },
    questions: questions.length,
    modes,
  };
}

const pct = (x: number | null): string =>
  x === null ? 'not claimed' : `${(x * 100).toFixed(0)} %`;

export function markdownReport(r: EvalReport, command: string): string {
  const out: string[] = [];
  out.push('# Agent evaluation');
  out.push('');
  out.push(
    `Generated ${r.generated_at} by \`${command}\`: ${r.questions} questions over a run recorded by the evaluation itself (node \`${r.recording.node}\`, ${r.recording.seconds} s, ${r.recording.window_seconds} s windows, ${r.recording.rows} feature rows, ${r.recording.frames} event frames, ${r.recording.anomalies} anomalies, ${r.recording.audit_records} audit records). Each answer is checked against ground truth computed from the recorded rows, event frames, incident log, audit trail, probe state and thresholds.`,
  );
  out.push('');
  out.push(
    'The recording is made by the evaluation from a fresh start: a scenario session on this host (node agent on the real kernel, feature stage on Kafka, the feedback controller and node worker on Redis, three bystander workloads), one incident after another in its own victim workload, then a phase in which an operator samples the tcp family 1 in 4. The agent then reads the recording as its sources, with the clock at the end of the recording: feature rows, anomalies, probe state at the end, feedback history from the audit trail, a process index fed with the event frames, and the policy engine (decisions only, nothing delivered).',
  );
  out.push('');
  out.push(
    `Categories: ${CATEGORIES.join(', ')}. The deterministic mode claims ${DETERMINISTIC_CLAIMS.join(', ')}; it must be exact on those (\`npm run eval:agent\` exits non-zero otherwise). The categories it does not claim are run and shown as "not claimed", never counted as passes. A model (\`--base-url\`, \`--model\`, or OPENAI_BASE_URL) is graded on every category with the same checks, with its tokens, latency and cost (\`--price-prompt\`, \`--price-completion\`, USD per 1000 tokens).`,
  );
  out.push('');
  out.push('Injected incidents and actions:');
  out.push('');
  for (const i of r.recording.incidents)
    out.push(
      `- ${i.incident} in \`${i.victim}\` from ${i.injected_at} to ${i.cleared_at}: detected ${i.detected ? `(${i.anomaly_metric})` : 'no'}, ${i.changes} change(s) by the loop`,
    );
  for (const l of r.recording.log.filter((x) => x.kind !== 'incident'))
    out.push(`- ${l.kind} from ${l.at} to ${l.until}: ${JSON.stringify(l.detail)}`);
  out.push('');
  out.push('## Accuracy per category');
  out.push('');
  const head = [
    'category',
    ...r.modes.map((m) => (m.mode === 'llm' ? `${m.model}` : 'deterministic')),
  ];
  out.push(`| ${head.join(' | ')} |`);
  out.push(`|${head.map(() => '---').join('|')}|`);
  for (const c of CATEGORIES) {
    const cells = r.modes.map((m) => {
      const s = m.categories[c];
      return s.claimed
        ? `${s.passed}/${s.questions} (${pct(s.accuracy)})`
        : `not claimed (${s.passed}/${s.questions} would pass)`;
    });
    out.push(`| ${c} | ${cells.join(' | ')} |`);
  }
  out.push(
    `| **claimed total** | ${r.modes.map((m) => `**${m.claimed_passed}/${m.claimed_questions} (${pct(m.accuracy)})**`).join(' | ')} |`,
  );
  out.push('');
  out.push('## Cost and latency');
  out.push('');
  out.push(
    '| mode | prompt tokens | completion tokens | cost (USD) | latency mean / p50 / p95 / max (ms) |',
  );
  out.push('|---|---|---|---|---|');
  for (const m of r.modes)
    out.push(
      `| ${m.mode === 'llm' ? `${m.model} (${m.base_url})` : 'deterministic'} | ${m.prompt_tokens} | ${m.completion_tokens} | ${m.cost_usd.toFixed(6)} | ${Math.round(m.latency_ms.mean)} / ${m.latency_ms.p50} / ${m.latency_ms.p95} / ${m.latency_ms.max} |`,
    );
  out.push('');
  out.push('## Failures');
  out.push('');
  for (const m of r.modes) {
    const f = m.results.filter((x) => !x.pass);
    out.push(`${m.mode === 'llm' ? m.model : 'deterministic'}: ${f.length === 0 ? 'none' : ''}`);
    out.push('');
    for (const x of f)
      out.push(
        `- ${x.id}${m.categories[x.category].claimed ? '' : ' (not claimed)'}: ${JSON.stringify(x.question)}: ${x.why}`,
      );
    out.push('');
  }
  out.push('Every question, its truth and each answer are in `docs/eval-agent.json`.');
  return `${out.join('\n')}\n`;
}

export function writeEvalReport(r: EvalReport, base: string, command: string): void {
  mkdirSync(dirname(base), { recursive: true });
  writeFileSync(`${base}.json`, `${JSON.stringify(r, null, 2)}\n`);
  writeFileSync(`${base}.md`, markdownReport(r, command));
}
