/**
 * Prometheus metrics of the agent: tokens, cost, questions, analyses, tool
 * calls and proposals. One registry per agent (served by the agent API at
 * GET /metrics); names follow tracefeed_<what>_<unit>, counters end in _total.
 */
import { Counter, Registry } from 'prom-client';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export const NO_USAGE: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };

export function addUsage(a: Usage, b: Partial<Usage>): Usage {
  const p = a.prompt_tokens + (b.prompt_tokens ?? 0);
  const c = a.completion_tokens + (b.completion_tokens ?? 0);
  return {
    prompt_tokens: p,
    completion_tokens: c,
    total_tokens:
      a.total_tokens + (b.total_tokens ?? (b.prompt_tokens ?? 0) + (b.completion_tokens ?? 0)),
  };
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly tokens = new Counter({
    name: 'tracefeed_agent_tokens_total',
    help: 'Model tokens used by the agent, by kind (prompt, completion)',
    labelNames: ['kind', 'purpose'],
    registers: [this.registry],
  });
  readonly cost = new Counter({
    name: 'tracefeed_agent_cost_usd_total',
    help: 'Model cost in USD at the configured prices per 1k tokens',
    labelNames: ['purpose'],
    registers: [this.registry],
  });
  readonly questions = new Counter({
    name: 'tracefeed_agent_questions_total',
    help: 'Questions answered, by mode (llm, deterministic) and outcome',
    labelNames: ['mode', 'outcome'],
    registers: [this.registry],
  });
  readonly analyses = new Counter({
    name: 'tracefeed_agent_analyses_total',
    help: 'Incident analyses written to tracefeed.analyses.v1, by mode',
    labelNames: ['mode'],
    registers: [this.registry],
  });
  readonly toolCalls = new Counter({
    name: 'tracefeed_agent_tool_calls_total',
    help: 'Tool calls, by tool and outcome (ok, invalid, error, unknown_tool)',
    labelNames: ['tool', 'outcome'],
    registers: [this.registry],
  });
  readonly proposals = new Counter({
    name: 'tracefeed_agent_proposals_total',
    help: 'Feedback proposals submitted to the policy engine, by verdict',
    labelNames: ['verdict'],
    registers: [this.registry],
  });

  /** Counts one model's usage and cost. */
  account(purpose: 'question' | 'analysis', u: Usage, costUsd: number): void {
    if (u.prompt_tokens > 0) this.tokens.inc({ kind: 'prompt', purpose }, u.prompt_tokens);
    if (u.completion_tokens > 0)
      this.tokens.inc({ kind: 'completion', purpose }, u.completion_tokens);
    if (costUsd > 0) this.cost.inc({ purpose }, costUsd);
    else this.cost.inc({ purpose }, 0);
  }
}
