/**
 * `tracefeed scenario list|run <name>|all`: real workloads on this host, one
 * incident at a time injected into a victim, the adaptive loop measured.
 */
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { brokersFrom } from '../common/kafka.js';
import { createLogger } from '../common/logger.js';
import { repoRoot } from '../common/paths.js';
import { preflight } from '../ingest/index.js';
import { redisUrlFrom } from '../feedback/index.js';
import {
  INCIDENTS,
  INCIDENT_NAMES,
  markdownReport,
  resolveIncidents,
  runScenario,
  writeReport,
} from '../scenario/index.js';
import { jsonLine, resolveFormat, table } from './output.js';

const positive = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError(`${name} must be a positive number, got "${v}"`);
  return n;
};

export function registerScenarioCommands(program: Command): void {
  const sc = program
    .command('scenario')
    .description('incidents injected into real workloads: is each caught, and at what cost');
  sc.command('list')
    .description('the incident classes a scenario can inject')
    .addOption(new Option('-o, --output <format>', 'table, json or jsonl'))
    .action((opts: { output?: string }) => {
      const format = resolveFormat(opts.output);
      const rows = INCIDENT_NAMES.map((n) => ({
        name: n,
        title: INCIDENTS[n].title,
        signals: INCIDENTS[n].signals.join(', '),
      }));
      if (format === 'table')
        process.stdout.write(
          `${table(
            ['name', 'incident', 'signals'],
            rows.map((r) => [r.name, r.title, r.signals]),
          )}\n`,
        );
      else process.stdout.write(`${rows.map((r) => jsonLine(r)).join('\n')}\n`);
    });
  sc.command('run')
    .description('run one incident class (or `all`) against the local pipeline; root, Kafka, Redis')
    .argument('<name>', `${INCIDENT_NAMES.join(', ')} or all`)
    .option('--window-seconds <s>', 'feature window', positive('--window-seconds'), 2)
    .option(
      '--ttl-seconds <s>',
      'TTL of every change the loop makes',
      positive('--ttl-seconds'),
      10,
    )
    .option(
      '--warmup-seconds <s>',
      'victim normal behaviour before the fault',
      positive('--warmup-seconds'),
      10,
    )
    .option('--no-compare-full', 'skip the second pass with every family on at full rate')
    .option(
      '--thresholds <file>',
      'rules to use (TTLs and cooldowns shortened)',
      join(repoRoot, 'config', 'thresholds.yaml'),
    )
    .option('--write-docs [dir]', 'write adaptive.md, adaptive.json and adaptive-timeline.png')
    .option(
      '--brokers <list>',
      'Kafka brokers (default: TRACEFEED_KAFKA_BROKERS or 127.0.0.1:9092)',
    )
    .option('--redis <url>', 'Redis URL (default: TRACEFEED_REDIS_URL or redis://127.0.0.1:6379)')
    .addOption(new Option('-o, --output <format>', 'table (markdown), json or jsonl'))
    .action(
      async (
        name: string,
        opts: {
          windowSeconds: number;
          ttlSeconds: number;
          warmupSeconds: number;
          compareFull: boolean;
          thresholds: string;
          writeDocs?: string | boolean;
          brokers?: string;
          redis?: string;
          output?: string;
        },
      ) => {
        const names = resolveIncidents(name);
        const log = createLogger('scenario', 'error');
        preflight(log);
        const report = await runScenario(names, {
          brokers: brokersFrom(opts.brokers),
          redisUrl: redisUrlFrom(opts.redis),
          log,
          window_seconds: opts.windowSeconds,
          ttl_seconds: opts.ttlSeconds,
          warmup_seconds: opts.warmupSeconds,
          thresholds_path: opts.thresholds,
          compare_full: opts.compareFull,
          progress: (l) => process.stderr.write(`scenario: ${l}\n`),
        });
        const command = `tracefeed scenario run ${name}`;
        if (opts.writeDocs !== undefined) {
          const dir = typeof opts.writeDocs === 'string' ? opts.writeDocs : join(repoRoot, 'docs');
          const out = writeReport(report, dir, command);
          process.stderr.write(
            `scenario: wrote ${out.markdown}, ${out.json}${out.png ? `, ${out.png}` : ` (no PNG: ${out.pngError})`}\n`,
          );
        }
        const format = resolveFormat(opts.output);
        if (format === 'table') process.stdout.write(`${markdownReport(report, command)}\n`);
        else if (format === 'json') process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        else process.stdout.write(`${jsonLine(report)}\n`);
        process.exitCode = report.incidents.every((r) => r.detected) ? 0 : 1;
      },
    );
}
