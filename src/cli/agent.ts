/**
 * `tracefeed ask "<question>"` and `tracefeed agent serve`. Registered by
 * main.ts with one call: `registerAgentCommands(program)`.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { apiSecuritySchema, assertBindAllowed } from '../common/http-auth.js';
import { brokersFrom } from '../common/kafka.js';
import { createLogger, type Logger } from '../common/logger.js';
import {
  AnalysisWorker,
  AnomalyStore,
  DEFAULT_AGENT_API_PORT,
  ProcessIndex,
  TracefeedAgent,
  connectFeedbackGateway,
  httpFeatureSource,
  httpProbeSource,
  readRecentAnomalies,
  startAgentApi,
  type AgentConfigInput,
  type AgentDeps,
  type AskResult,
} from '../agent/index.js';
import { DEFAULT_API_PORT } from '../ingest/control-api.js';
import { jsonLine, resolveFormat } from './output.js';

const DEFAULT_FEATURES_URL = 'http://127.0.0.1:9465';

export interface CommonOpts {
  featuresUrl?: string;
  agentUrl?: string;
  brokers?: string;
  redis?: string;
  feedback: boolean;
  model: boolean;
  baseUrl?: string;
  modelName?: string;
  maxToolRounds?: number;
  timeoutMs?: number;
  pricePrompt?: number;
  priceCompletion?: number;
  anomaliesMinutes: number;
  /** Minutes of tracefeed.events.v1 indexed by process at start (one-shot questions). */
  processesMinutes?: number;
}

function numberArg(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min)
      throw new InvalidArgumentError(`${name} must be a number >= ${min}, got "${v}"`);
    return n;
  };
}

function addCommonOptions(c: Command): Command {
  return c
    .option(
      '--features-url <url>',
      `feature stage API (default: TRACEFEED_FEATURES_URL or ${DEFAULT_FEATURES_URL})`,
    )
    .option(
      '--agent-url <url>',
      `node agent API(s) for live probe state, comma-separated for several nodes (tracefeed up --nodes N serves them on ${DEFAULT_API_PORT}, +10, +20, ...; default: http://127.0.0.1:${DEFAULT_API_PORT})`,
    )
    .option(
      '--brokers <list>',
      'Kafka bootstrap brokers (default: TRACEFEED_KAFKA_BROKERS or 127.0.0.1:9092)',
    )
    .option(
      '--redis <url>',
      'Redis of the feedback loop (default: TRACEFEED_REDIS_URL or redis://127.0.0.1:6379)',
    )
    .option(
      '--no-feedback',
      'do not connect to the feedback loop (no proposals, no feedback history)',
    )
    .option('--no-model', 'answer without a model even when one is configured')
    .option(
      '--base-url <url>',
      'OpenAI-compatible endpoint (default: OPENAI_BASE_URL); the key comes from OPENAI_API_KEY',
    )
    .option('--model-name <name>', 'chat model (default: TRACEFEED_AGENT_MODEL or gpt-4o-mini)')
    .option(
      '--max-tool-rounds <n>',
      'model rounds per question (default 6)',
      numberArg('--max-tool-rounds', 1),
    )
    .option(
      '--timeout-ms <ms>',
      'timeout of one model call (default 60000)',
      numberArg('--timeout-ms', 100),
    )
    .option(
      '--price-prompt <usd>',
      'USD per 1000 prompt tokens, for cost accounting',
      numberArg('--price-prompt', 0),
    )
    .option(
      '--price-completion <usd>',
      'USD per 1000 completion tokens',
      numberArg('--price-completion', 0),
    )
    .option(
      '--anomalies-minutes <n>',
      'anomalies read from tracefeed.anomalies.v1 at start, minutes back',
      numberArg('--anomalies-minutes', 0),
      60,
    );
}

function agentConfig(o: CommonOpts): AgentConfigInput {
  return {
    ...(o.baseUrl !== undefined ? { base_url: o.baseUrl } : {}),
    ...(o.modelName !== undefined ? { model: o.modelName } : {}),
    disable_model: !o.model,
    ...(o.maxToolRounds !== undefined ? { max_tool_rounds: o.maxToolRounds } : {}),
    ...(o.timeoutMs !== undefined ? { timeout_ms: o.timeoutMs } : {}),
    ...(o.pricePrompt !== undefined ? { price_per_1k_prompt_tokens_usd: o.pricePrompt } : {}),
    ...(o.priceCompletion !== undefined
      ? { price_per_1k_completion_tokens_usd: o.priceCompletion }
      : {}),
  };
}

/** The agent's data sources and policy gateway; each is best-effort (the tools say what is unavailable). */
export async function buildDeps(
  o: CommonOpts,
  log: Logger,
): Promise<{ deps: AgentDeps; close: () => Promise<void> }> {
  const brokers = brokersFrom(o.brokers);
  const anomalies = new AnomalyStore();
  const deps: AgentDeps = {
    features: httpFeatureSource(
      o.featuresUrl ?? process.env.TRACEFEED_FEATURES_URL ?? DEFAULT_FEATURES_URL,
    ),
    anomalies,
    probes: (o.agentUrl ?? `http://127.0.0.1:${DEFAULT_API_PORT}`)
      .split(',')
      .map((u) => u.trim())
      .filter(Boolean)
      .map((u) => httpProbeSource(u)),
  };
  const closers: Array<() => Promise<void>> = [];
  if (o.feedback) {
    try {
      const g = await connectFeedbackGateway({ redisUrl: o.redis, brokers, log });
      deps.gateway = g.gateway;
      closers.push(g.close);
    } catch (err) {
      log.warn(
        { err: (err as Error).message },
        'feedback loop unavailable: no proposals, no feedback history',
      );
    }
  }
  if (o.anomaliesMinutes > 0) {
    try {
      await readRecentAnomalies(anomalies, {
        brokers,
        sinceMs: Date.now() - o.anomaliesMinutes * 60_000,
        log,
      });
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'could not read recent anomalies from Kafka');
    }
  }
  if ((o.processesMinutes ?? 0) > 0) {
    const processes = new ProcessIndex();
    try {
      await processes.readRecent({
        brokers,
        sinceMs: Date.now() - o.processesMinutes! * 60_000,
        log,
        timeoutMs: 15_000,
      });
      deps.processes = processes;
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'could not read recent events from Kafka');
    }
  }
  return { deps, close: async () => void (await Promise.all(closers.map((c) => c()))) };
}

function printText(r: AskResult, streamed: boolean): void {
  if (!streamed) process.stdout.write(r.answer);
  process.stdout.write('\n');
  const err = process.stderr;
  if (r.citations.length > 0) {
    err.write('\nSources:\n');
    for (const c of r.citations.slice(0, 20)) {
      const parts = [
        c.tool,
        c.series !== undefined ? JSON.stringify(c.series) : c.ref,
        c.window_start && c.window_end ? `${c.window_start}..${c.window_end}` : '',
        c.value !== undefined ? `= ${c.value}` : '',
      ];
      err.write(`  ${parts.filter(Boolean).join(' ')}\n`);
    }
    if (r.citations.length > 20)
      err.write(`  ... ${r.citations.length - 20} more (-o json shows all)\n`);
  }
  if (r.mode === 'llm')
    err.write(
      `\n${r.model}: ${r.rounds} round(s), ${r.tool_calls.length} tool call(s), ${r.usage.prompt_tokens} prompt + ${r.usage.completion_tokens} completion tokens, $${r.cost_usd.toFixed(6)}\n`,
    );
}

export function registerAgentCommands(program: Command): void {
  const log = createLogger('tracefeed');
  addCommonOptions(
    program
      .command('ask')
      .description(
        'ask the agent about the cluster: features, anomalies, probes, feedback (works without a model for common questions)',
      )
      .argument(
        '<question...>',
        'the question, e.g. "which workloads had TCP retransmits in the last five minutes?"',
      ),
  )
    .addOption(
      new Option(
        '-o, --output <format>',
        'text (streamed; default on a terminal), json, or jsonl (default when piped)',
      ),
    )
    .option(
      '--processes-minutes <n>',
      'events read from tracefeed.events.v1 at start for per-process answers, minutes back (0: none)',
      numberArg('--processes-minutes', 0),
      5,
    )
    .option(
      '--wait-for-data <seconds>',
      'when the answer proposes collection it lacks, wait up to this long for the data, then answer again',
      numberArg('--wait-for-data', 0),
    )
    .option('--node <name>', 'ask about this node only (default: every node)')
    .action(
      async (
        words: string[],
        o: CommonOpts & { output?: string; waitForData?: number; node?: string },
      ) => {
        const format = o.output === 'text' ? 'table' : resolveFormat(o.output);
        const { deps, close } = await buildDeps(o, log);
        try {
          const agent = new TracefeedAgent({ config: agentConfig(o), deps, log });
          const text = format === 'table';
          let streamed = false;
          const r = await agent.ask(words.join(' '), {
            ...(o.waitForData !== undefined ? { waitForDataMs: o.waitForData * 1000 } : {}),
            ...(o.node ? { node: o.node } : {}),
            ...(text
              ? {
                  onToken: (t: string) => {
                    streamed = true;
                    process.stdout.write(t);
                  },
                }
              : {}),
          });
          if (text) printText(r, streamed);
          else if (format === 'json') process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
          else process.stdout.write(`${jsonLine(r)}\n`);
          process.exitCode = 0;
        } finally {
          await close();
        }
      },
    );

  const agentCmd = program
    .command('agent')
    .description('the agent service: HTTP /v1/ask and automatic anomaly analysis');
  addCommonOptions(
    agentCmd
      .command('serve')
      .description(
        'serve POST /v1/ask and write an analysis per incident to tracefeed.analyses.v1',
      ),
  )
    .option(
      '--port <port>',
      `API port (default ${DEFAULT_AGENT_API_PORT})`,
      numberArg('--port', 1),
      DEFAULT_AGENT_API_PORT,
    )
    .option(
      '--host <host>',
      'API address; beyond loopback it needs --tls-cert/--tls-key or --allow-plaintext',
      '127.0.0.1',
    )
    .option('--tls-cert <file>', 'PEM certificate: serve HTTPS')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option(
      '--allow-plaintext',
      'accept plain HTTP on a non-loopback --host (the bearer token crosses the network in clear)',
      false,
    )
    .option('--metrics-open', 'serve GET /metrics without the bearer token', false)
    .option('--no-analysis', 'do not analyse anomalies')
    .option(
      '--propose-feedback',
      'let analyses propose feedback (the policy engine decides)',
      false,
    )
    .option('--no-processes', 'do not index process names from tracefeed.events.v1')
    .action(
      async (
        o: CommonOpts & {
          port: number;
          host: string;
          tlsCert?: string;
          tlsKey?: string;
          allowPlaintext: boolean;
          metricsOpen: boolean;
          analysis: boolean;
          proposeFeedback: boolean;
          processes: boolean;
        },
      ) => {
        const brokers = brokersFrom(o.brokers);
        const security = {
          metrics_open: o.metricsOpen,
          allow_plaintext: o.allowPlaintext,
          ...(o.tlsCert !== undefined ? { tls_cert_path: o.tlsCert } : {}),
          ...(o.tlsKey !== undefined ? { tls_key_path: o.tlsKey } : {}),
        };
        // Refuse an unsafe binding before connecting to anything.
        assertBindAllowed(o.host, apiSecuritySchema.parse(security), 'agent API', '--host');
        const { deps, close } = await buildDeps(
          { ...o, anomaliesMinutes: o.analysis ? 0 : o.anomaliesMinutes },
          log,
        );
        const agent = new TracefeedAgent({ config: agentConfig(o), deps, log });
        let processes: ProcessIndex | undefined;
        let worker: AnalysisWorker | undefined;
        const server = await startAgentApi(agent, o.port, { host: o.host, log, security });
        try {
          if (o.processes) {
            processes = await new ProcessIndex().start({ brokers, log });
            deps.processes = processes;
          }
          if (o.analysis)
            worker = await new AnalysisWorker({
              agent,
              brokers,
              log,
              proposeFeedback: o.proposeFeedback,
            }).start();
          log.info(
            { port: o.port, mode: agent.mode, model: agent.endpoint?.model ?? null },
            'agent serving',
          );
          await new Promise<void>((resolve) => {
            process.once('SIGINT', resolve);
            process.once('SIGTERM', resolve);
          });
        } finally {
          server.close();
          await worker?.stop();
          await processes?.stop();
          await close();
        }
      },
    );
}
