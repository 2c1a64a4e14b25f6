/**
 * Configuration of the agent: one zod schema, units in the names, defaults
 * documented. The model endpoint comes from the config or the environment
 * (`OPENAI_BASE_URL`, `OPENAI_API_KEY`, `TRACEFEED_AGENT_MODEL`); without a
 * base URL nor a key the agent runs without a model (deterministic answers).
 */
import { z } from 'zod';
import { ConfigError } from '../common/errors.js';

export const agentConfigSchema = z.strictObject({
  /** OpenAI-compatible endpoint, e.g. `http://127.0.0.1:11434/v1` (Ollama). Default: `OPENAI_BASE_URL`, else OpenAI when a key is set. */
  base_url: z.url().optional(),
  /** Chat model name. Default: `TRACEFEED_AGENT_MODEL`, else `gpt-4o-mini`. */
  model: z.string().min(1).max(256).optional(),
  /** API key. Default: `OPENAI_API_KEY`; local servers take any value. */
  api_key: z.string().min(1).optional(),
  /** Run without a model even when one is configured. Default false. */
  disable_model: z.boolean().default(false),
  /** Model rounds (model call, then its tool calls) per question before giving up. Default 6. */
  max_tool_rounds: z.number().int().min(1).max(50).default(6),
  /** Timeout of one model call, ms. Default 60000. */
  timeout_ms: z.number().int().min(100).max(600_000).default(60_000),
  /** Retries of a failed model call (the openai client's own back-off). Default 1. */
  max_retries: z.number().int().min(0).max(10).default(1),
  /** Sampling temperature. Default 0 (repeatable answers). */
  temperature: z.number().min(0).max(2).default(0),
  /** Price of 1000 prompt tokens, USD, for cost accounting. Default 0. */
  price_per_1k_prompt_tokens_usd: z.number().min(0).default(0),
  /** Price of 1000 completion tokens, USD. Default 0. */
  price_per_1k_completion_tokens_usd: z.number().min(0).default(0),
  /** Conversations kept in memory for `POST /v1/ask` (least recently used dropped). Default 1000. */
  max_conversations: z.number().int().min(1).max(100_000).default(1000),
  /** Question/answer turns kept per conversation. Default 20. */
  max_turns_per_conversation: z.number().int().min(1).max(1000).default(20),
  /** Largest tool result handed to the model, characters; larger results are cut and say so. Default 24000. */
  max_tool_result_chars: z.number().int().min(1000).max(1_000_000).default(24_000),
  /**
   * Token budget of one tool result (characters/4). A longer result keeps the
   * items of its largest list that fit and a cursor for read_more. Default 6000.
   */
  result_budget_tokens: z.number().int().min(200).max(32_000).default(6000),
  /**
   * Token budget of every tool result of one answer together: each result gets
   * at most what is left (at least 200). Default 24000.
   */
  answer_budget_tokens: z.number().int().min(1000).max(1_000_000).default(24_000),
});
export type AgentConfig = z.infer<typeof agentConfigSchema>;
export type AgentConfigInput = z.input<typeof agentConfigSchema>;

export const DEFAULT_MODEL = 'gpt-4o-mini';

/** The model endpoint in force, or undefined when the agent runs without a model. */
export interface ModelEndpoint {
  baseUrl: string | undefined;
  model: string;
  apiKey: string;
}

/** Parses the config (unknown keys rejected, errors name their path). */
export function parseAgentConfig(input: unknown): AgentConfig {
  const r = agentConfigSchema.safeParse(input ?? {});
  if (!r.success) {
    const first = r.error.issues[0];
    const path = first?.path.join('.') ?? '';
    throw new ConfigError(
      `invalid agent config: ${r.error.issues
        .slice(0, 5)
        .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
        .join('; ')}`,
      path,
    );
  }
  return r.data;
}

/**
 * The endpoint from the config, then the environment. A base URL alone is
 * enough (local servers need no key); a key alone means OpenAI.
 */
export function resolveModelEndpoint(
  c: AgentConfig,
  env: NodeJS.ProcessEnv = process.env,
): ModelEndpoint | undefined {
  if (c.disable_model) return undefined;
  const baseUrl = c.base_url ?? (env.OPENAI_BASE_URL || undefined);
  const apiKey = c.api_key ?? (env.OPENAI_API_KEY || undefined);
  if (baseUrl === undefined && apiKey === undefined) return undefined;
  return {
    baseUrl,
    apiKey: apiKey ?? 'not-needed',
    model: c.model ?? (env.TRACEFEED_AGENT_MODEL || DEFAULT_MODEL),
  };
}
