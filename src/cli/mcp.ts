/**
 * `tracefeed mcp`: the MCP server over stdio, for MCP clients that start it
 * as a subprocess. Reads features from the feature stage API, probe state
 * from the node agent API, anomalies from Kafka, and proposes feedback to the
 * policy engine in Redis. stdout carries only MCP messages; logs go to stderr.
 */
import { Command, InvalidArgumentError } from 'commander';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { brokersFrom } from '../common/kafka.js';
import { createLogger } from '../common/logger.js';
import { readRecentAnomalies } from '../agent/index.js';
import { DEFAULT_RESULT_TOKENS, MAX_RESULT_TOKENS, MIN_RESULT_TOKENS } from '../agent/budget.js';
import { createMcpServer } from '../agent/mcp/server.js';
import { DEFAULT_API_PORT } from '../ingest/control-api.js';
import { buildDeps } from './agent.js';

function intArg(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(
        `${name} must be a whole number in [${min}, ${max}], got "${v}"`,
      );
    return n;
  };
}

interface McpOpts {
  featuresUrl?: string;
  agentUrl?: string;
  brokers?: string;
  redis?: string;
  feedback: boolean;
  anomaliesMinutes: number;
  maxTokens: number;
  refreshSeconds: number;
}

export function registerMcpCommand(program: Command, version: string): void {
  program
    .command('mcp')
    .description(
      'serve the agent tools, feature resources and a triage prompt over MCP on stdio (for MCP clients; HTTP: /mcp on `tracefeed agent serve`)',
    )
    .option(
      '--features-url <url>',
      'feature stage API (default: TRACEFEED_FEATURES_URL or http://127.0.0.1:9465)',
    )
    .option('--agent-url <url>', `node agent API (default: http://127.0.0.1:${DEFAULT_API_PORT})`)
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
    .option(
      '--anomalies-minutes <n>',
      'anomalies read from Kafka, minutes back',
      intArg('--anomalies-minutes', 0, 7 * 24 * 60),
      60,
    )
    .option(
      '--refresh-seconds <n>',
      'read newer anomalies before an anomaly tool when the last read is older than this',
      intArg('--refresh-seconds', 1, 3600),
      15,
    )
    .option(
      '--max-tokens <n>',
      `default token budget of one tool result (characters/4)`,
      intArg('--max-tokens', MIN_RESULT_TOKENS, MAX_RESULT_TOKENS),
      DEFAULT_RESULT_TOKENS,
    )
    .action(async (o: McpOpts) => {
      const log = createLogger('tracefeed-mcp');
      const brokers = brokersFrom(o.brokers);
      const { deps, close } = await buildDeps(
        { ...o, model: false, anomaliesMinutes: o.anomaliesMinutes },
        log,
      );
      let lastRead = Date.now();
      let reading: Promise<void> | undefined;
      const refreshAnomalies = async (): Promise<void> => {
        if (o.anomaliesMinutes === 0 || Date.now() - lastRead < o.refreshSeconds * 1000) return;
        reading ??= (async () => {
          const since = lastRead - 5000;
          lastRead = Date.now();
          try {
            await readRecentAnomalies(deps.anomalies, { brokers, sinceMs: since, log });
          } catch (err) {
            log.warn({ err: (err as Error).message }, 'could not read newer anomalies from Kafka');
          } finally {
            reading = undefined;
          }
        })();
        await reading;
      };
      const server = createMcpServer({
        deps,
        log,
        resultTokens: o.maxTokens,
        refreshAnomalies,
        version,
      });
      const transport = new StdioServerTransport();
      await server.connect(transport);
      log.info(
        { features: deps.features.name, feedback: deps.gateway !== undefined },
        'MCP server on stdio',
      );
      await new Promise<void>((resolve) => {
        process.stdin.once('end', resolve);
        process.stdin.once('close', resolve);
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await server.close().catch(() => undefined);
      await close();
    });
}
