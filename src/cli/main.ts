/** The `tracefeed` command: noun-verb subcommands, `-o table|json|jsonl`. */
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, TracefeedError } from '../common/errors.js';
import { createLogger, LOG_FORMATS } from '../common/logger.js';
import { brokersFrom } from '../common/kafka.js';
import { repoRoot } from '../common/paths.js';
import { runInfraScript } from '../infra/index.js';
import { resolveFormat } from './output.js';
import { runUp } from './up.js';
import { redisUrlFrom } from '../feedback/index.js';
import { runTail } from './events-tail.js';
import { listProbes, parseFocusOption, setProbe } from './probes.js';
import { registerFeedbackCommands } from './feedback.js';
import { registerAgentCommands } from './agent.js';
import { registerMcpCommand } from './mcp.js';
import { registerScenarioCommands } from './scenario.js';
import { registerRoleCommands } from './roles.js';
import { DEFAULT_API_PORT } from '../ingest/control-api.js';
import { DEFAULT_CONSOLE_PORT } from '../console/server.js';
import { authHeaders } from '../common/http-auth.js';
import type { ProbePatch } from '../wire/probe-settings.js';

function nonNegativeNumber(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0)
      throw new InvalidArgumentError(`${name} must be a number >= 0, got "${v}"`);
    return n;
  };
}

function list<T>(name: string, parse: (s: string) => T) {
  return (v: string): T[] =>
    v
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean)
      .map((x) => {
        try {
          return parse(x);
        } catch (err) {
          throw new InvalidArgumentError(`${name}: ${(err as Error).message}`);
        }
      });
}

const intItem = (x: string): number => {
  const n = Number(x);
  if (!Number.isInteger(n) || n < 0) throw new Error(`"${x}" is not a whole number`);
  return n;
};
const cgroupItem = (x: string): string | number => (/^\d+$/.test(x) ? Number(x) : x);

function positiveNumber(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0)
      throw new InvalidArgumentError(`${name} must be a positive number, got "${v}"`);
    return n;
  };
}

const version = (
  JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }
).version;
const log = createLogger('tracefeed');
const program = new Command('tracefeed')
  .description(
    'eBPF kernel events to Kafka and Arrow, with a feedback loop that tunes what the kernel collects',
  )
  .version(version)
  .addOption(
    new Option(
      '--log-format <format>',
      'log lines: pretty (short human lines) or json (default: pretty on a terminal, json when piped; or TRACEFEED_LOG_FORMAT)',
    ).choices(LOG_FORMATS),
  )
  .showHelpAfterError();

// A Kafka cluster of your own: these flags set the environment that kafkaClient reads
// (src/common/kafka.ts kafkaAuth), for this process and the ones it starts. No password
// flag: a command line is visible to every user; the password comes from a file.
program
  .option(
    '--kafka-username <name>',
    'SASL user for a Kafka cluster of your own (TRACEFEED_KAFKA_USERNAME)',
  )
  .option(
    '--kafka-password-file <file>',
    "that user's password, in a file of mode 0600 (TRACEFEED_KAFKA_PASSWORD_FILE)",
  )
  .option(
    '--kafka-sasl-mechanism <name>',
    'scram-sha-512 (default), scram-sha-256, plain, or none (TRACEFEED_KAFKA_SASL_MECHANISM)',
  )
  .option('--kafka-tls', 'TLS to Kafka (TRACEFEED_KAFKA_TLS=1)')
  .option('--kafka-tls-ca <file>', 'PEM CA for Kafka TLS (TRACEFEED_KAFKA_TLS_CA)')
  .hook('preAction', () => {
    const o = program.opts<{
      kafkaUsername?: string;
      kafkaPasswordFile?: string;
      kafkaSaslMechanism?: string;
      kafkaTls?: boolean;
      kafkaTlsCa?: string;
    }>();
    if (o.kafkaUsername) process.env.TRACEFEED_KAFKA_USERNAME = o.kafkaUsername;
    if (o.kafkaPasswordFile) process.env.TRACEFEED_KAFKA_PASSWORD_FILE = o.kafkaPasswordFile;
    if (o.kafkaSaslMechanism) process.env.TRACEFEED_KAFKA_SASL_MECHANISM = o.kafkaSaslMechanism;
    if (o.kafkaTls) process.env.TRACEFEED_KAFKA_TLS = '1';
    if (o.kafkaTlsCa) process.env.TRACEFEED_KAFKA_TLS_CA = o.kafkaTlsCa;
  });

const outputOption = (): Option =>
  new Option(
    '-o, --output <format>',
    'table, json or jsonl (default: table on a terminal, jsonl when piped)',
  );

program
  .command('up')
  .description('run the node pipeline on this host: infrastructure, probes, ingest to Kafka')
  .option(
    '--duration <seconds>',
    'stop by itself after this many seconds and print a summary',
    positiveNumber('--duration'),
  )
  .option('--node <name>', 'node name used as the Kafka key', hostname())
  .option(
    '--nodes <n>',
    'node agents on this host (tests, demos): named <node>-1..N, each owning the cgroup /tracefeed-node-<i> (made when absent), with local APIs on --api-port, +10, +20, ...',
    positiveNumber('--nodes'),
    1,
  )
  .option(
    '--node-cgroups <list>',
    'comma-separated cgroups (relative to the cgroup v2 root) the nodes own, one per node, instead of /tracefeed-node-<i>',
    (v: string) =>
      v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
  )
  .option(
    '--brokers <list>',
    'Kafka bootstrap brokers (default: TRACEFEED_KAFKA_BROKERS or 127.0.0.1:9092)',
  )
  .option('--no-infra', 'do not start the local Kafka and Redis (use running ones)')
  .option(
    '--buffer-max-bytes <bytes>',
    'frames held while Kafka is unreachable before drops',
    positiveNumber('--buffer-max-bytes'),
    64 * 1024 * 1024,
  )
  .option(
    '--api-port <port>',
    'local API port (metrics, probe control); 0 turns it off',
    nonNegativeNumber('--api-port'),
    DEFAULT_API_PORT,
  )
  .option('--no-features', 'do not run the feature stage in this process')
  .option('--no-feedback', 'do not run the feedback controller and worker in this process')
  .option(
    '--no-agent',
    'do not run the agent (questions, automatic anomaly analysis) in this process',
  )
  .option(
    '--agent-port <port>',
    'agent HTTP API port (POST /v1/ask); 0 turns it off',
    nonNegativeNumber('--agent-port'),
    9466,
  )
  .option(
    '--controller-port <port>',
    'controller HTTP API port (health, status, metrics); 0 turns it off',
    nonNegativeNumber('--controller-port'),
    0,
  )
  .option(
    '--thresholds <file>',
    'thresholds file (YAML, hot-reloaded)',
    join(repoRoot, 'config', 'thresholds.yaml'),
  )
  .option('--redis <url>', 'Redis URL (default: TRACEFEED_REDIS_URL or redis://127.0.0.1:6379)')
  .option('--window-seconds <s>', 'feature window length', positiveNumber('--window-seconds'), 10)
  .option(
    '--features-port <port>',
    'features HTTP API port; 0 turns it off',
    nonNegativeNumber('--features-port'),
    9465,
  )
  .option(
    '--console-port <port>',
    'operator console port (browser, on loopback); 0 turns it off',
    nonNegativeNumber('--console-port'),
    DEFAULT_CONSOLE_PORT,
  )
  .option(
    '--metrics-open',
    'serve GET /metrics of the local APIs without the bearer token (for scrapers that cannot send one)',
    false,
  )
  .addOption(outputOption())
  .action(
    async (opts: {
      consolePort: number;
      metricsOpen: boolean;
      agent: boolean;
      agentPort: number;
      controllerPort: number;
      feedback: boolean;
      thresholds: string;
      redis?: string;
      features: boolean;
      windowSeconds: number;
      featuresPort: number;
      duration?: number;
      node: string;
      nodes: number;
      nodeCgroups?: string[];
      brokers?: string;
      infra: boolean;
      bufferMaxBytes: number;
      apiPort: number;
      output?: string;
    }) => {
      process.exitCode = await runUp({
        duration: opts.duration,
        node: opts.node,
        nodes: opts.nodes,
        ...(opts.nodeCgroups ? { nodeCgroups: opts.nodeCgroups } : {}),
        brokers: brokersFrom(opts.brokers),
        infra: opts.infra,
        bufferMaxBytes: opts.bufferMaxBytes,
        apiPort: opts.apiPort,
        features: opts.features,
        windowSeconds: opts.windowSeconds,
        featuresPort: opts.featuresPort,
        feedback: opts.feedback,
        agent: opts.agent,
        agentPort: opts.agentPort,
        consolePort: opts.consolePort,
        controllerPort: opts.controllerPort,
        metricsOpen: opts.metricsOpen,
        thresholdsPath: opts.thresholds,
        redisUrl: redisUrlFrom(opts.redis),
        format: resolveFormat(opts.output),
        log,
      });
    },
  );

registerRoleCommands(program, log);

const probes = program.command('probes').description('probe families on the running agent');
probes
  .command('list')
  .description('attached probes, events/s, drops by reason, filters, generation')
  .option(
    '--api-port <port>',
    'the agent API port',
    nonNegativeNumber('--api-port'),
    DEFAULT_API_PORT,
  )
  .addOption(outputOption())
  .action(async (opts: { apiPort: number; output?: string }) => {
    process.exitCode = await listProbes(opts.apiPort, resolveFormat(opts.output));
  });

interface SetOpts {
  apiPort: number;
  output?: string;
  enable?: boolean;
  disable?: boolean;
  sample?: number;
  minDurationMs?: number;
  slowMs?: number;
  cgroup?: Array<string | number>;
  pid?: number[];
  port?: number[];
  comm?: string[];
  pathPrefix?: string[];
  denyCgroup?: Array<string | number>;
  denyPid?: number[];
  denyPort?: number[];
  denyComm?: string[];
  denyPathPrefix?: string[];
  clearFilters?: boolean;
  focus?: string[];
  unfocus?: string[];
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

probes
  .command('set <probe>')
  .description('change a probe live: map updates in the kernel, no reload')
  .option('--enable', 'attach and emit')
  .option('--disable', 'detach')
  .option('--sample <n>', 'keep 1 in N events', positiveNumber('--sample'))
  .option(
    '--min-duration-ms <ms>',
    'filter events shorter than this',
    nonNegativeNumber('--min-duration-ms'),
  )
  .option(
    '--slow-ms <ms>',
    'syscalls: stream syscalls slower than this (0: off)',
    nonNegativeNumber('--slow-ms'),
  )
  .option(
    '--cgroup <list>',
    'only these cgroups (paths under the cgroup v2 root, or ids)',
    list('--cgroup', cgroupItem),
  )
  .option('--pid <list>', 'only these pids', list('--pid', intItem))
  .option('--port <list>', 'only these ports (either end)', list('--port', intItem))
  .option(
    '--comm <list>',
    'only these process names',
    list('--comm', (x) => x),
  )
  .option(
    '--path-prefix <list>',
    'only paths under these prefixes',
    list('--path-prefix', (x) => x),
  )
  .option('--deny-cgroup <list>', 'never these cgroups', list('--deny-cgroup', cgroupItem))
  .option('--deny-pid <list>', 'never these pids', list('--deny-pid', intItem))
  .option('--deny-port <list>', 'never these ports', list('--deny-port', intItem))
  .option(
    '--deny-comm <list>',
    'never these process names',
    list('--deny-comm', (x) => x),
  )
  .option(
    '--deny-path-prefix <list>',
    'never paths under these prefixes',
    list('--deny-path-prefix', (x) => x),
  )
  .option('--clear-filters', 'drop every filter first')
  .option(
    '--focus <cgroup[:settings]>',
    'collect this cgroup (path or id) with its own settings whatever the baseline, e.g. /a/b:sample_n=1,slow_ms=5 (repeatable)',
    collect,
  )
  .option('--unfocus <cgroup>', 'remove the focus on this cgroup (repeatable)', collect)
  .option(
    '--api-port <port>',
    'the agent API port',
    nonNegativeNumber('--api-port'),
    DEFAULT_API_PORT,
  )
  .addOption(outputOption())
  .action(async (probe: string, opts: SetOpts) => {
    if (opts.enable && opts.disable)
      throw new ConfigError('--enable and --disable together', 'enable');
    const patch: ProbePatch = {};
    if (opts.enable) patch.enabled = true;
    if (opts.disable) patch.enabled = false;
    if (opts.sample !== undefined) patch.sample_n = opts.sample;
    if (opts.minDurationMs !== undefined) patch.min_duration_ms = opts.minDurationMs;
    if (opts.slowMs !== undefined) patch.slow_ms = opts.slowMs;
    if (opts.clearFilters) patch.clear_filters = true;
    const filters: NonNullable<ProbePatch['filters']> = {};
    const dim = (
      k: keyof typeof filters,
      allow: unknown[] | undefined,
      deny: unknown[] | undefined,
    ): void => {
      if (allow === undefined && deny === undefined) return;
      (filters as Record<string, unknown>)[k] = {
        ...(allow ? { allow } : {}),
        ...(deny ? { deny } : {}),
      };
    };
    dim('cgroup', opts.cgroup, opts.denyCgroup);
    dim('pid', opts.pid, opts.denyPid);
    dim('port', opts.port, opts.denyPort);
    dim('comm', opts.comm, opts.denyComm);
    dim('path_prefix', opts.pathPrefix, opts.denyPathPrefix);
    if (Object.keys(filters).length > 0) patch.filters = filters;
    if (opts.focus?.length || opts.unfocus?.length) {
      const focus: NonNullable<ProbePatch['focus']> = {};
      for (const spec of opts.focus ?? []) {
        const [key, settings] = parseFocusOption(spec);
        focus[key] = settings;
      }
      for (const key of opts.unfocus ?? []) focus[key] = null;
      patch.focus = focus;
    }
    if (Object.keys(patch).length === 0) {
      throw new ConfigError(
        'nothing to change: give --enable, --disable, --sample, a filter, --focus, ...',
        'probe',
      );
    }
    process.exitCode = await setProbe(opts.apiPort, probe, patch, resolveFormat(opts.output));
  });

const infra = program
  .command('infra')
  .description('local Kafka (KRaft, one node or a replicated cluster) and Redis');
infra
  .command('up')
  .description('start Kafka and Redis, or reuse them if running')
  .option(
    '--brokers <n>',
    'Kafka nodes on loopback, 1-9 (default: TRACEFEED_KAFKA_BROKER_COUNT, else the cluster last started, else 1); replication factor min(3, n)',
    (v: string): string => {
      if (!/^[1-9]$/.test(v))
        throw new InvalidArgumentError(
          `--brokers must be a number of brokers from 1 to 9, got "${v}"`,
        );
      return v;
    },
  )
  .action((opts: { brokers?: string }) => {
    process.exitCode = runInfraScript(
      'up',
      opts.brokers !== undefined ? ['--brokers', opts.brokers] : [],
      true,
    ).status;
  });
for (const [verb, script, what] of [
  ['down', 'down', 'stop Kafka (every node) and Redis'],
  ['status', 'status', 'show whether Kafka (every node) and Redis run'],
] as const) {
  infra
    .command(verb)
    .description(what)
    .action(() => {
      process.exitCode = runInfraScript(script, [], true).status;
    });
}

const events = program.command('events').description('the raw kernel event stream');
events
  .command('tail')
  .description(`print decoded events from the events topic`)
  .option('--brokers <list>', 'Kafka bootstrap brokers')
  .option('--probe <name>', 'only events of this probe family (process, ...)')
  .option('--node <name>', 'only events from this node')
  .option(
    '--type <prefix>',
    'only events whose type starts with this (process.exec, tcp., probe.stats, ...)',
  )
  .option('--from-beginning', 'start at the oldest retained event instead of now', false)
  .option('--limit <n>', 'exit after printing this many events', positiveNumber('--limit'))
  .option('--timeout <seconds>', 'exit after this many seconds', positiveNumber('--timeout'))
  .addOption(outputOption())
  .action(
    async (opts: {
      brokers?: string;
      probe?: string;
      node?: string;
      type?: string;
      fromBeginning: boolean;
      limit?: number;
      timeout?: number;
      output?: string;
    }) => {
      process.exitCode = await runTail({
        brokers: brokersFrom(opts.brokers),
        format: resolveFormat(opts.output),
        probe: opts.probe,
        node: opts.node,
        type: opts.type,
        fromBeginning: opts.fromBeginning,
        limit: opts.limit,
        timeoutSeconds: opts.timeout,
        log,
      });
    },
  );

program
  .command('console-login')
  .description('print a fresh one-time login link to the operator console of `tracefeed up`')
  .option('--port <port>', 'the console port', nonNegativeNumber('--port'), DEFAULT_CONSOLE_PORT)
  .action(async (opts: { port: number }) => {
    const r = await fetch(`http://127.0.0.1:${opts.port}/v1/login-codes`, {
      method: 'POST',
      headers: authHeaders(),
    }).catch((err: unknown) => {
      throw new TracefeedError(`cannot reach the console on 127.0.0.1:${opts.port}`, {
        cause: err,
        hint: 'is `tracefeed up` running (with --console-port)?',
      });
    });
    const body = (await r.json()) as { url?: string; error?: string; hint?: string };
    if (!r.ok || !body.url)
      throw new TracefeedError(`the console refused: ${body.error ?? r.status}`, {
        ...(body.hint ? { hint: body.hint } : {}),
      });
    process.stdout.write(`${body.url}\n`);
  });

// feedback and thresholds command groups (src/cli/feedback.ts)
registerFeedbackCommands(program);

// ask and agent command groups (src/cli/agent.ts)
registerAgentCommands(program);

// the MCP server on stdio (src/cli/mcp.ts)
registerMcpCommand(program, version);

// scenario suite (src/cli/scenario.ts)
registerScenarioCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof TracefeedError) {
    process.stderr.write(`tracefeed: ${err.message}\n`);
    if (err.hint) process.stderr.write(`  fix: ${err.hint}\n`);
  } else {
    process.stderr.write(
      `tracefeed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
  }
  process.exitCode = 1;
}

// kafkajs and the addon may hold handles a moment longer than needed: exit once logs are out.
log.flush(() => process.exit(process.exitCode ?? 0));
