/** The `tracefeed` command: noun-verb subcommands, `-o table|json|jsonl`. */
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { TracefeedError } from '../common/errors.js';
import { createLogger } from '../common/logger.js';
import { brokersFrom } from '../common/kafka.js';
import { repoRoot } from '../common/paths.js';
import { runInfraScript } from '../infra/index.js';
import { resolveFormat } from './output.js';
import { runUp } from './up.js';
import { runTail } from './events-tail.js';

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
  .showHelpAfterError();

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
  .addOption(outputOption())
  .action(
    async (opts: {
      duration?: number;
      node: string;
      brokers?: string;
      infra: boolean;
      bufferMaxBytes: number;
      output?: string;
    }) => {
      process.exitCode = await runUp({
        duration: opts.duration,
        node: opts.node,
        brokers: brokersFrom(opts.brokers),
        infra: opts.infra,
        bufferMaxBytes: opts.bufferMaxBytes,
        format: resolveFormat(opts.output),
        log,
      });
    },
  );

const infra = program.command('infra').description('local single-node Kafka (KRaft) and Redis');
for (const [verb, script, what] of [
  ['up', 'up', 'start Kafka and Redis, or reuse them if running'],
  ['down', 'down', 'stop Kafka and Redis'],
  ['status', 'status', 'show whether Kafka and Redis run'],
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
  .option('--from-beginning', 'start at the oldest retained event instead of now', false)
  .option('--limit <n>', 'exit after printing this many events', positiveNumber('--limit'))
  .option('--timeout <seconds>', 'exit after this many seconds', positiveNumber('--timeout'))
  .addOption(outputOption())
  .action(
    async (opts: {
      brokers?: string;
      probe?: string;
      node?: string;
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
        fromBeginning: opts.fromBeginning,
        limit: opts.limit,
        timeoutSeconds: opts.timeout,
        log,
      });
    },
  );

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
