/**
 * The agent: a question becomes tool calls over features, anomalies, probe
 * state and feedback, and an answer that cites what it used. With a model,
 * LangChain's ChatOpenAI (the `openai` client underneath) over any
 * OpenAI-compatible endpoint, with an explicit loop: the model's tool calls
 * are validated with zod and run here, their results go back as fenced data
 * in ToolMessages, malformed calls get a clear error the model can correct,
 * and the rounds are bounded. Without a model, a deterministic parser answers
 * the common questions over the same tools.
 */
import { randomUUID } from 'node:crypto';
import { ChatOpenAI } from '@langchain/openai';
import {
  AIMessage,
  AIMessageChunk,
  HumanMessage,
  SystemMessage,
  ToolMessage,
  type BaseMessage,
} from '@langchain/core/messages';
import { TracefeedError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { Anomaly } from '../features/anomaly.js';
import { anomalyRef } from './anomaly-store.js';
import {
  parseAgentConfig,
  resolveModelEndpoint,
  type AgentConfig,
  type AgentConfigInput,
  type ModelEndpoint,
} from './config.js';
import { answerDeterministically } from './deterministic.js';
import { AgentError } from './errors.js';
import { AgentMetrics, NO_USAGE, addUsage, type Usage } from './metrics.js';
import { ANALYSIS_INSTRUCTION, ANALYSIS_PROPOSE_INSTRUCTION, SYSTEM_PROMPT } from './prompt.js';
import {
  ALL_TOOLS,
  ToolError,
  langchainTools,
  type AgentDeps,
  type AgentTool,
  type Citation,
  type ToolCallRecord,
  type CoverageGap,
  type ToolResult,
} from './tools.js';
import { fenceToolData } from './untrusted.js';
import { AnswerBudget, CursorStore, fitToBudget } from './budget.js';
import { recordingSource, toolCompleteness } from './completeness.js';
import { readMoreTool } from './read-more.js';
import type { GatewayResult } from './gateway.js';
import type { FeedbackRequest } from '../feedback/request.js';

export type AgentMode = 'llm' | 'deterministic';

export type { ToolCallRecord };

export type Proposal = GatewayResult & { request: FeedbackRequest };

export interface AskResult {
  conversation_id: string;
  mode: AgentMode;
  model: string | null;
  answer: string;
  /** The windows, series and numbers the answer used (from the tool results). */
  citations: Citation[];
  tool_calls: ToolCallRecord[];
  proposals: Proposal[];
  /** Model rounds (0 without a model). */
  rounds: number;
  usage: Usage;
  cost_usd: number;
  duration_ms: number;
  /** Set without a model: says so. */
  notice?: string;
  /** What the question needed and was not (completely) collected (deterministic mode). */
  gaps?: CoverageGap[];
  /** Set when the answer waited for proposed collection: how long, and whether it arrived. */
  waited?: { ms: number; data_arrived: boolean };
}

export interface AskOptions {
  /** Continue this conversation (POST /v1/ask). Default: a new one. */
  conversationId?: string;
  /** Called with each piece of answer text as the model streams it. */
  onToken?: (text: string) => void;
  signal?: AbortSignal;
  /** The token budget of this answer's tool results (default: answer_budget_tokens). */
  budget?: AnswerBudget;
  /**
   * When the answer proposed collection it lacked, wait up to this long for the
   * change to be in force and a window of the new data to close, then answer again.
   */
  waitForDataMs?: number;
  /**
   * Ask about this node only: every tool that takes a `node` gets this one (a
   * proposal targets it alone). Default: every node.
   */
  node?: string;
  /** Poll interval while waiting for data, ms. Default 2000. */
  waitPollMs?: number;
}

export interface TracefeedAgentOptions {
  config?: AgentConfigInput;
  deps: AgentDeps;
  log: Logger;
  metrics?: AgentMetrics;
  /** Environment for OPENAI_BASE_URL / OPENAI_API_KEY / TRACEFEED_AGENT_MODEL. Default process.env. */
  env?: NodeJS.ProcessEnv;
}

interface Call {
  id: string;
  name: string;
  /** Parsed arguments (valid JSON) or undefined. */
  args: unknown;
  raw: string;
  jsonError?: string;
}

interface LoopResult {
  text: string;
  rounds: number;
  usage: Usage;
  citations: Citation[];
  tool_calls: ToolCallRecord[];
  proposals: Proposal[];
}

export const NO_MODEL_NOTICE =
  'Running without a model (deterministic answers): set OPENAI_BASE_URL and/or OPENAI_API_KEY, or --base-url, for free-form questions.';

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content))
    return content
      .map((c: unknown) =>
        typeof c === 'string'
          ? c
          : (c as { type?: string; text?: string }).type === 'text'
            ? ((c as { text?: string }).text ?? '')
            : '',
      )
      .join('');
  return '';
}

function dedupeCitations(cs: Citation[]): Citation[] {
  const seen = new Set<string>();
  return cs.filter((c) => {
    const k = JSON.stringify(c);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * An assistant message carrying raw tool calls. Sent back verbatim (the
 * converter uses `additional_kwargs.tool_calls` when `tool_calls` is empty),
 * so a malformed call keeps its id and its text and every ToolMessage answers
 * a call the endpoint knows. Set after construction: the constructor would
 * re-parse them (and warn).
 */
function assistantWithCalls(content: string, calls: Call[]): AIMessage {
  const m = new AIMessage({ content, tool_calls: [], invalid_tool_calls: [] });
  m.additional_kwargs.tool_calls = calls.map((c) => ({
    id: c.id,
    type: 'function' as const,
    function: { name: c.name, arguments: c.raw },
  }));
  return m;
}

/** The metric whose coverage shows a probe's data arrived. */
function coverageMetricOf(probe: string): string {
  return (
    (
      {
        process: 'exec_count',
        tcp: 'tcp_connects',
        syscalls: 'syscall_count',
        file: 'file_opens',
        sched: 'runq_count',
      } as Record<string, string>
    )[probe] ?? 'events_per_second'
  );
}

export class TracefeedAgent {
  readonly config: AgentConfig;
  readonly endpoint: ModelEndpoint | undefined;
  readonly metrics: AgentMetrics;
  readonly deps: AgentDeps;
  /** Cursors of cut tool results (read_more). */
  readonly cursors = new CursorStore();
  readonly tools: AgentTool[] = [...ALL_TOOLS, readMoreTool(this.cursors) as unknown as AgentTool];
  private readonly log: Logger;
  private readonly model: ChatOpenAI | undefined;
  /** Conversation id -> messages of past turns (least recently used first). */
  private readonly conversations = new Map<string, BaseMessage[][]>();

  constructor(opts: TracefeedAgentOptions) {
    this.config = parseAgentConfig(opts.config ?? {});
    this.endpoint = resolveModelEndpoint(this.config, opts.env ?? process.env);
    this.metrics = opts.metrics ?? new AgentMetrics();
    this.deps = opts.deps;
    this.log = opts.log;
    if (this.endpoint) {
      this.model = new ChatOpenAI({
        model: this.endpoint.model,
        apiKey: this.endpoint.apiKey,
        temperature: this.config.temperature,
        timeout: this.config.timeout_ms,
        maxRetries: this.config.max_retries,
        streamUsage: true,
        useResponsesApi: false,
        configuration:
          this.endpoint.baseUrl !== undefined ? { baseURL: this.endpoint.baseUrl } : {},
      });
    }
  }

  get mode(): AgentMode {
    return this.model ? 'llm' : 'deterministic';
  }

  /** USD for a usage at the configured prices. */
  cost(u: Usage): number {
    return (
      (u.prompt_tokens / 1000) * this.config.price_per_1k_prompt_tokens_usd +
      (u.completion_tokens / 1000) * this.config.price_per_1k_completion_tokens_usd
    );
  }

  /**
   * Answers one question (with the model when there is one). With
   * `waitForDataMs`, an answer that proposed collection it lacked waits for
   * the data (the probe in force and a window of it closed after the
   * proposal) and is asked again.
   */
  async ask(question: string, opts: AskOptions = {}): Promise<AskResult> {
    const first = await this.askOnce(question, opts);
    const wait = opts.waitForDataMs ?? 0;
    const pending = first.proposals.filter((p) => p.verdict !== 'reject');
    if (wait <= 0 || pending.length === 0) return first;
    const started = Date.now();
    const proposedAt = Date.parse(pending[0]!.request.created_at);
    const arrived = async (): Promise<boolean> => {
      for (const p of pending) {
        const r = await this.runTool(
          {
            id: `wait_${p.request.id}`,
            name: 'check_coverage',
            args: { metric: coverageMetricOf(p.request.probe), since_minutes: 60 },
          },
          0,
        );
        const d = r.result?.data as
          { gaps: CoverageGap[]; nodes: Array<{ node: string; windows: number }> } | undefined;
        if (!d) return false;
        const nodes = 'nodes' in p.request.target ? p.request.target.nodes : undefined;
        const mine = (n: string): boolean => nodes === undefined || nodes.includes(n);
        if (d.gaps.some((g) => g.kind === 'family_off' && mine(g.node))) return false;
        // A window of the probe that closed after the proposal.
        const rows = await this.deps.features.query({
          sinceMs: proposedAt,
          untilMs: (this.deps.now?.() ?? Date.now()) + 1,
          probe: p.request.probe,
        });
        if (!rows.some((x) => mine(String(x.node)))) return false;
      }
      return true;
    };
    let ok = false;
    while (Date.now() - started < wait && !opts.signal?.aborted) {
      if ((ok = await arrived())) break;
      await new Promise((r) => setTimeout(r, opts.waitPollMs ?? 2000));
    }
    const waited = { ms: Date.now() - started, data_arrived: ok };
    if (!ok)
      return {
        ...first,
        answer: `${first.answer}\n\nWaited ${Math.round(waited.ms / 1000)} s: the data has not arrived (the change may be waiting for approval).`,
        waited,
      };
    const again = await this.askOnce(question, { ...opts, conversationId: first.conversation_id });
    return { ...again, proposals: [...first.proposals, ...again.proposals], waited };
  }

  private async askOnce(question: string, opts: AskOptions): Promise<AskResult> {
    const started = Date.now();
    const q = question.trim();
    if (q.length === 0) throw new AgentError('the question is empty', 'api');
    if (q.length > 8000) throw new AgentError('the question is over 8000 characters', 'api');
    const conversation_id = opts.conversationId ?? randomUUID();
    const tools = opts.node ? pinNode(this.tools, opts.node) : this.tools;
    if (!this.model) {
      try {
        // The same agent, its tool calls going to the pinned tools.
        const self = opts.node
          ? (Object.create(this, {
              runTool: {
                value: (call: Parameters<TracefeedAgent['runTool']>[0], round: number) =>
                  this.runTool(call, round, tools),
              },
            }) as TracefeedAgent)
          : this;
        const r = await answerDeterministically(q, self);
        this.metrics.questions.inc({ mode: 'deterministic', outcome: 'ok' });
        this.remember(conversation_id, [new HumanMessage(q), new AIMessage(r.answer)]);
        const result: AskResult = {
          conversation_id,
          mode: 'deterministic',
          model: null,
          answer: `${NO_MODEL_NOTICE}\n\n${r.answer}`,
          citations: dedupeCitations(r.citations),
          tool_calls: r.tool_calls,
          proposals: r.proposals,
          gaps: r.gaps,
          rounds: 0,
          usage: { ...NO_USAGE },
          cost_usd: 0,
          duration_ms: Date.now() - started,
          notice: NO_MODEL_NOTICE,
        };
        opts.onToken?.(result.answer);
        this.log.info(
          { conversation_id, mode: 'deterministic', tool_calls: r.tool_calls.length },
          'question answered',
        );
        return result;
      } catch (err) {
        this.metrics.questions.inc({ mode: 'deterministic', outcome: 'error' });
        throw err;
      }
    }
    const history = this.conversations.get(conversation_id) ?? [];
    const human = new HumanMessage(q);
    const messages: BaseMessage[] = [
      new SystemMessage(SYSTEM_PROMPT),
      ...(opts.node
        ? [
            new SystemMessage(
              `This question is about node ${JSON.stringify(opts.node)} only: the tools answer for that node alone.`,
            ),
          ]
        : []),
      ...history.flat(),
      human,
    ];
    let loop: LoopResult;
    try {
      loop = await this.runLoop(messages, tools, opts);
    } catch (err) {
      this.metrics.questions.inc({ mode: 'llm', outcome: 'error' });
      throw err;
    }
    const cost_usd = this.cost(loop.usage);
    this.metrics.questions.inc({ mode: 'llm', outcome: 'ok' });
    this.metrics.account('question', loop.usage, cost_usd);
    this.remember(conversation_id, [human, new AIMessage(loop.text)]);
    this.log.info(
      {
        conversation_id,
        mode: 'llm',
        model: this.endpoint?.model,
        rounds: loop.rounds,
        tool_calls: loop.tool_calls.length,
        usage: loop.usage,
        cost_usd,
      },
      'question answered',
    );
    return {
      conversation_id,
      mode: 'llm',
      model: this.endpoint?.model ?? null,
      answer: loop.text,
      citations: dedupeCitations(loop.citations),
      tool_calls: loop.tool_calls,
      proposals: loop.proposals,
      rounds: loop.rounds,
      usage: loop.usage,
      cost_usd,
      duration_ms: Date.now() - started,
    };
  }

  private remember(id: string, turn: BaseMessage[]): void {
    const turns = this.conversations.get(id) ?? [];
    this.conversations.delete(id);
    turns.push(turn);
    while (turns.length > this.config.max_turns_per_conversation) turns.shift();
    this.conversations.set(id, turns);
    while (this.conversations.size > this.config.max_conversations)
      this.conversations.delete(this.conversations.keys().next().value as string);
  }

  /** Turns of a conversation kept in memory. */
  conversationTurns(id: string): number {
    return this.conversations.get(id)?.length ?? 0;
  }

  /**
   * Runs one tool call: looks the tool up, validates the arguments with its
   * zod schema, runs it. Never throws: failures become a clear error text for
   * the model (and the record says which kind).
   */
  async runTool(
    call: { id: string; name: string; args: unknown; jsonError?: string; raw?: string },
    round: number,
    tools: AgentTool[] = this.tools,
    /** The answer's budget: this result gets at most what is left of it. */
    budget?: AnswerBudget,
  ): Promise<{ content: string; record: ToolCallRecord; result?: ToolResult }> {
    const names = tools.map((t) => t.name).join(', ');
    const fail = (outcome: ToolCallRecord['outcome'], error: string) => {
      this.metrics.toolCalls.inc({
        tool: tools.some((t) => t.name === call.name) ? call.name : 'unknown',
        outcome,
      });
      this.log.warn({ tool: call.name, outcome, error }, 'tool call failed');
      return {
        content: `Error: ${error}`,
        record: {
          round,
          id: call.id,
          name: call.name,
          args: call.args ?? call.raw,
          outcome,
          error,
        },
      };
    };
    const t = tools.find((x) => x.name === call.name);
    if (!t)
      return fail(
        'unknown_tool',
        `unknown tool ${JSON.stringify(call.name)}. Available tools: ${names}. Call one of them with JSON arguments matching its schema.`,
      );
    if (call.jsonError !== undefined)
      return fail(
        'invalid',
        `the arguments of ${t.name} are not valid JSON (${call.jsonError}). Send one JSON object matching the ${t.name} schema.`,
      );
    const parsed = t.schema.safeParse(call.args ?? {});
    if (!parsed.success) {
      const issues = parsed.error.issues
        .slice(0, 6)
        .map((i) => `${i.path.join('.') || '(arguments)'}: ${i.message}`)
        .join('; ');
      return fail(
        'invalid',
        `invalid arguments for ${t.name}: ${issues}. Fix these fields and call ${t.name} again.`,
      );
    }
    try {
      const rec = recordingSource(this.deps.features);
      const result = await t.run(parsed.data, { ...this.deps, features: rec.source });
      this.metrics.toolCalls.inc({ tool: t.name, outcome: 'ok' });
      if (result.proposal) this.metrics.proposals.inc({ verdict: result.proposal.verdict });
      // Summary first and within budget: how complete the data was, then the data, cut to fit.
      let shown: unknown = result.data;
      if (t.name !== 'read_more') {
        const perResult = this.config.result_budget_tokens;
        const tokens = budget ? budget.next(perResult) : perResult;
        const completeness = await toolCompleteness(
          t.name,
          parsed.data,
          result.data,
          rec.rows(),
          this.deps,
        );
        const data =
          result.data !== null && typeof result.data === 'object' && !Array.isArray(result.data)
            ? { completeness, ...(result.data as Record<string, unknown>) }
            : { completeness, result: result.data };
        const fit = fitToBudget(t.name, data, tokens, this.cursors, []);
        budget?.spend(fit.tokens);
        shown = JSON.parse(fit.text) as unknown;
      }
      return {
        content: fenceToolData(t.name, shown, this.config.max_tool_result_chars),
        record: { round, id: call.id, name: t.name, args: parsed.data, outcome: 'ok' },
        result,
      };
    } catch (err) {
      if (err instanceof ToolError) return fail('error', `${t.name}: ${err.message}`);
      // An unreachable source (features API, node agent): say so, with the fix.
      if (err instanceof TracefeedError)
        return fail(
          'error',
          `${t.name} failed: ${err.message}${err.hint ? ` (fix: ${err.hint})` : ''}`,
        );
      this.log.error({ err, tool: t.name }, 'tool failed');
      return fail('error', `${t.name} failed: ${(err as Error).message}`);
    }
  }

  private async callModel(
    model: ReturnType<ChatOpenAI['bindTools']> | ChatOpenAI,
    messages: BaseMessage[],
    opts: AskOptions,
  ): Promise<AIMessage> {
    try {
      if (!opts.onToken)
        return (await model.invoke(messages, { signal: opts.signal })) as AIMessage;
      let full: AIMessageChunk | undefined;
      for await (const chunk of await model.stream(messages, { signal: opts.signal })) {
        const t = textOf(chunk.content);
        if (t) opts.onToken(t);
        full = full ? full.concat(chunk) : chunk;
      }
      if (!full) throw new AgentError('the model sent an empty stream', 'model');
      const msg = new AIMessage({
        content: full.content,
        tool_calls: full.tool_calls ?? [],
        invalid_tool_calls: full.invalid_tool_calls ?? [],
        ...(full.usage_metadata ? { usage_metadata: full.usage_metadata } : {}),
        response_metadata: full.response_metadata,
      });
      // Tool call order as streamed (ids only; the calls themselves come from tool_call_chunks).
      msg.additional_kwargs.tool_calls = (full.tool_call_chunks ?? [])
        .slice()
        .sort((a, b) => (a.index ?? 0) - (b.index ?? 0))
        .map((c) => ({
          id: c.id ?? '',
          type: 'function' as const,
          function: { name: c.name ?? '', arguments: c.args ?? '' },
        }));
      return msg;
    } catch (err) {
      if (err instanceof AgentError) throw err;
      throw new AgentError(
        `the model endpoint ${this.endpoint?.baseUrl ?? 'api.openai.com'} (model ${this.endpoint?.model}) failed: ${(err as Error).message}`,
        'model',
        {
          cause: err,
          retriable: true,
          hint: 'check OPENAI_BASE_URL / --base-url, the model name and the key; or run without a model (--no-model)',
        },
      );
    }
  }

  /** The model's tool calls, valid and malformed alike, in one list with ids. */
  private callsOf(ai: AIMessage, round: number): Call[] {
    const out: Call[] = [];
    let i = 0;
    for (const c of ai.tool_calls ?? []) {
      out.push({
        id: c.id || `call_${round}_${i}`,
        name: c.name,
        args: c.args,
        raw: JSON.stringify(c.args ?? {}),
      });
      i++;
    }
    for (const c of ai.invalid_tool_calls ?? []) {
      const raw = typeof c.args === 'string' ? c.args : JSON.stringify(c.args ?? '');
      let args: unknown;
      let jsonError: string | undefined;
      try {
        args = JSON.parse(raw);
      } catch (err) {
        jsonError = (err as Error).message;
      }
      out.push({
        id: c.id || `call_${round}_${i}`,
        name: c.name ?? '',
        args,
        raw,
        ...(jsonError !== undefined ? { jsonError } : { jsonError: c.error ?? 'unparseable' }),
      });
      i++;
    }
    // In the order the model sent them (LangChain lists valid and malformed calls apart).
    const rawOrder = ((ai.additional_kwargs?.tool_calls ?? []) as Array<{ id?: string }>).map(
      (c) => c.id,
    );
    const pos = (c: Call): number => {
      const k = rawOrder.indexOf(c.id);
      return k < 0 ? Number.MAX_SAFE_INTEGER : k;
    };
    return out
      .map((c, k) => ({ c, k }))
      .sort((x, y) => pos(x.c) - pos(y.c) || x.k - y.k)
      .map((x) => x.c);
  }

  /** The assistant turn as sent back: every call (malformed ones with their raw text) keeps its id. */
  private historyMessage(ai: AIMessage, calls: Call[]): AIMessage {
    return assistantWithCalls(textOf(ai.content), calls);
  }

  private async runLoop(
    messages: BaseMessage[],
    tools: AgentTool[],
    opts: AskOptions,
  ): Promise<LoopResult> {
    const bound = this.model!.bindTools(langchainTools(tools));
    const budget = opts.budget ?? new AnswerBudget(this.config.answer_budget_tokens);
    let usage: Usage = { ...NO_USAGE };
    const citations: Citation[] = [];
    const tool_calls: ToolCallRecord[] = [];
    const proposals: Proposal[] = [];
    const account = (ai: AIMessage): void => {
      const u = ai.usage_metadata;
      if (u)
        usage = addUsage(usage, {
          prompt_tokens: u.input_tokens,
          completion_tokens: u.output_tokens,
          total_tokens: u.total_tokens,
        });
    };
    for (let round = 1; round <= this.config.max_tool_rounds; round++) {
      const ai = await this.callModel(bound, messages, opts);
      account(ai);
      const calls = this.callsOf(ai, round);
      if (calls.length === 0)
        return {
          text: textOf(ai.content).trim(),
          rounds: round,
          usage,
          citations,
          tool_calls,
          proposals,
        };
      messages.push(this.historyMessage(ai, calls));
      for (const c of calls) {
        const r = await this.runTool(c, round, tools, budget);
        tool_calls.push(r.record);
        if (r.result) {
          citations.push(...r.result.citations);
          if (r.result.proposal) proposals.push(r.result.proposal);
        }
        messages.push(new ToolMessage({ content: r.content, tool_call_id: c.id, name: c.name }));
      }
    }
    // Out of rounds: one last call without tools for an answer from what is known.
    messages.push(
      new HumanMessage(
        `You have used the ${this.config.max_tool_rounds} tool rounds allowed. Answer now from the tool results above, and say what is missing.`,
      ),
    );
    const last = await this.callModel(this.model!, messages, opts);
    account(last);
    return {
      text: textOf(last.content).trim(),
      rounds: this.config.max_tool_rounds + 1,
      usage,
      citations,
      tool_calls,
      proposals,
    };
  }

  /**
   * The model's analysis of one anomaly. The incident reaches the model as
   * the result of an explain_anomaly call (by opaque ref), so its strings stay
   * inside tool data. `propose` also offers propose_feedback.
   */
  async analyzeWithModel(a: Anomaly, propose: boolean): Promise<LoopResult & { cost_usd: number }> {
    if (!this.model) throw new AgentError('no model is configured', 'analysis');
    const ref = anomalyRef(a.id);
    const tools = propose ? this.tools : this.tools.filter((t) => !t.writes);
    const call: Call = {
      id: `call_explain_${ref}`,
      name: 'explain_anomaly',
      args: { anomaly: ref },
      raw: JSON.stringify({ anomaly: ref }),
    };
    const budget = new AnswerBudget(this.config.answer_budget_tokens);
    const pre = await this.runTool(call, 0, tools, budget);
    const messages: BaseMessage[] = [
      new SystemMessage(SYSTEM_PROMPT),
      new HumanMessage(
        `A new incident was detected (anomaly ${ref}). ${ANALYSIS_INSTRUCTION}${propose ? ANALYSIS_PROPOSE_INSTRUCTION : ''}`,
      ),
      assistantWithCalls('', [call]),
      new ToolMessage({ content: pre.content, tool_call_id: call.id, name: call.name }),
    ];
    const loop = await this.runLoop(messages, tools, { budget });
    loop.tool_calls.unshift(pre.record);
    if (pre.result) loop.citations.unshift(...pre.result.citations);
    const cost_usd = this.cost(loop.usage);
    this.metrics.account('analysis', loop.usage, cost_usd);
    return { ...loop, citations: dedupeCitations(loop.citations), cost_usd };
  }
}

/**
 * The tools with `node` fixed: a tool whose arguments take a `node` runs with this one,
 * whatever the call said (no tool reads another node's data, a proposal targets it alone).
 */
export function pinNode(tools: AgentTool[], node: string): AgentTool[] {
  return tools.map((t) => {
    const shape = (t.schema as { shape?: Record<string, unknown> }).shape;
    if (!shape || !('node' in shape)) return t;
    return { ...t, run: (args, deps) => t.run({ ...(args as object), node }, deps) };
  });
}
