/**
 * `tracefeed feedback list|show|submit|approve|reject|revert` and
 * `tracefeed thresholds validate|show|schema`. Registered by main.ts with one
 * call: `registerFeedbackCommands(program)`.
 */
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError } from '../common/errors.js';
import { brokersFrom } from '../common/kafka.js';
import { createLogger } from '../common/logger.js';
import {
  AuditTrail,
  DEFAULT_THRESHOLDS,
  FeedbackService,
  deriveRequestId,
  loadThresholds,
  readAudit,
  redisUrlFrom,
  thresholdsJsonSchema,
  type RequestView,
} from '../feedback/index.js';
import { connectRedisChecked } from '../feedback/redis.js';
import { FeedbackStore } from '../feedback/store.js';
import { thresholdsSchema } from '../feedback/thresholds.js';
import { jsonLine, resolveFormat, table, type OutputFormat } from './output.js';

const log = createLogger('tracefeed');

const outputOption = (): Option =>
  new Option(
    '-o, --output <format>',
    'table, json or jsonl (default: table on a terminal, jsonl when piped)',
  );

interface ConnOpts {
  redis?: string;
  brokers?: string;
  output?: string;
}

function operator(): string {
  try {
    return `operator/${userInfo().username}`;
  } catch {
    return 'operator';
  }
}

/** Runs `fn` with a service on Redis (fails fast when Redis is down) and an audit trail. */
async function withService<T>(opts: ConnOpts, fn: (s: FeedbackService) => Promise<T>): Promise<T> {
  const url = redisUrlFrom(opts.redis);
  const redis = await connectRedisChecked(url);
  const audit = new AuditTrail({
    brokers: opts.brokers === '' ? undefined : brokersFrom(opts.brokers),
    log,
  });
  // Decide with the thresholds the running controller uses (it publishes them in Redis).
  const published = (await new FeedbackStore(redis).thresholdsStatus())?.thresholds;
  const parsed = thresholdsSchema.safeParse(published);
  const thresholds = parsed.success ? parsed.data : DEFAULT_THRESHOLDS;
  const service = new FeedbackService({
    redis,
    redisUrl: url,
    audit,
    thresholds: () => thresholds,
    actor: operator(),
    log,
  });
  try {
    return await fn(service);
  } finally {
    await service.close();
    await audit.close();
    redis.disconnect();
  }
}

function stateSummary(v: RequestView): string {
  const parts = Object.entries(v.status).map(([n, s]) => `${n}:${s.state}`);
  if (parts.length === 0) return v.decisions.map((d) => `${d.node}:${d.outcome}`).join(' ');
  return parts.join(' ');
}

function printViews(views: RequestView[], format: OutputFormat): void {
  if (format === 'json') process.stdout.write(`${JSON.stringify(views, null, 2)}\n`);
  else if (format === 'jsonl')
    process.stdout.write(views.map(jsonLine).join('\n') + (views.length ? '\n' : ''));
  else
    process.stdout.write(
      table(
        ['id', 'created', 'origin', 'action', 'probe', 'state', 'reason'],
        views.map((v) => [
          v.request.id,
          v.request.created_at,
          v.request.origin,
          v.request.action,
          v.request.probe,
          stateSummary(v),
          v.request.reason.slice(0, 60),
        ]),
      ) + '\n',
    );
}

function readInput(file: string): unknown {
  const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file}: not JSON: ${(err as Error).message}`, '');
  }
}

/** Operator conveniences: origin operator, created now, id from the content. */
/** `--node a,b` targets those nodes, `--node all` every node (one job per node); else the file's target. */
export function nodeTarget(v: string): { nodes: string[] } | { all: true } {
  const names = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new InvalidArgumentError('--node needs a node name or "all"');
  if (names.includes('all')) {
    if (names.length > 1) throw new InvalidArgumentError('--node all stands alone');
    return { all: true };
  }
  return { nodes: names };
}

function withDefaults(input: unknown, target?: ReturnType<typeof nodeTarget>): unknown {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return input;
  const r = { ...(input as Record<string, unknown>) };
  if (target) r.target = target;
  r.origin ??= 'operator';
  r.created_at ??= new Date().toISOString();
  r.reason ??= 'submitted by an operator';
  r.id ??= deriveRequestId('operator', JSON.stringify(r));
  return r;
}

export function registerFeedbackCommands(program: Command): void {
  const conn = (c: Command): Command =>
    c
      .option('--redis <url>', 'Redis URL (default: TRACEFEED_REDIS_URL or redis://127.0.0.1:6379)')
      .option(
        '--brokers <list>',
        'Kafka brokers for the audit topic (default: TRACEFEED_KAFKA_BROKERS or 127.0.0.1:9092)',
      )
      .addOption(outputOption());

  const fb = program
    .command('feedback')
    .description('feedback requests: what the loop changed on which node, why, and for how long');

  conn(fb.command('list').description('requests, newest first, with their state per node'))
    .option('--limit <n>', 'at most this many', (v) => Number(v), 50)
    .action(async (opts: ConnOpts & { limit: number }) => {
      await withService(opts, async (s) =>
        printViews(await s.list(opts.limit), resolveFormat(opts.output)),
      );
    });

  conn(
    fb
      .command('show <id>')
      .description('one request: decisions, state per node, applied settings, audit trail'),
  ).action(async (id: string, opts: ConnOpts) => {
    await withService(opts, async (s) => {
      const v = await s.get(id);
      if (!v) throw new ConfigError(`no feedback request "${id}"`, 'id');
      const audit = readAudit(undefined, id);
      const format = resolveFormat(opts.output);
      if (format !== 'table') {
        process.stdout.write(
          format === 'json'
            ? `${JSON.stringify({ ...v, audit }, null, 2)}\n`
            : `${jsonLine({ ...v, audit })}\n`,
        );
        return;
      }
      printViews([v], 'table');
      process.stdout.write(
        table(
          ['node', 'decision', 'state', 'reason'],
          v.decisions.map((d) => [
            d.node,
            d.outcome,
            v.status[d.node]?.state ?? '-',
            (v.status[d.node]?.reason ?? d.reason).slice(0, 100),
          ]),
        ) + '\n',
      );
      if (audit.length)
        process.stdout.write(
          table(
            ['at', 'state', 'actor', 'node', 'reason'],
            audit.map((a) => [a.at, a.state, a.actor, a.node ?? '', (a.reason ?? '').slice(0, 80)]),
          ) + '\n',
        );
    });
  });

  conn(
    fb
      .command('submit <file>')
      .description(
        'submit a request (JSON file, or - for stdin); id, origin and created_at default for operators',
      ),
  )
    .option(
      '--node <names>',
      'target these nodes (comma-separated), or "all" (one job per node); overrides the file\'s target',
      nodeTarget,
    )
    .action(async (file: string, opts: ConnOpts & { node?: ReturnType<typeof nodeTarget> }) => {
      const input = withDefaults(readInput(file), opts.node);
      await withService(opts, async (s) => {
        const r = await s.submit(input);
        const format = resolveFormat(opts.output);
        if (format === 'table')
          process.stdout.write(
            `${r.request_id}${r.duplicate ? ' (already submitted)' : ''}\n` +
              table(
                ['node', 'outcome', 'reason'],
                r.decisions.map((d) => [d.node, d.outcome, d.reason]),
              ) +
              '\n',
          );
        else
          process.stdout.write(
            format === 'json' ? `${JSON.stringify(r, null, 2)}\n` : `${jsonLine(r)}\n`,
          );
        if (r.decisions.every((d) => d.outcome === 'reject')) process.exitCode = 2;
      });
    });

  conn(
    fb
      .command('approve <id>')
      .description('approve a request queued for approval (decided again, then delivered)'),
  ).action(async (id: string, opts: ConnOpts) => {
    await withService(opts, async (s) => {
      const ds = await s.approve(id, operator());
      process.stdout.write(ds.map((d) => jsonLine(d)).join('\n') + '\n');
    });
  });

  conn(fb.command('reject <id>').description('reject a request queued for approval'))
    .option('--reason <text>', 'why', 'rejected by operator')
    .action(async (id: string, opts: ConnOpts & { reason: string }) => {
      await withService(opts, async (s) => {
        await s.reject(id, operator(), opts.reason);
        process.stdout.write(`${id} rejected\n`);
      });
    });

  conn(
    fb.command('revert <id>').description('revert a request now on every node where it is applied'),
  ).action(async (id: string, opts: ConnOpts) => {
    await withService(opts, async (s) => {
      const nodes = await s.revert(id, operator());
      process.stdout.write(`${id}: revert sent to ${nodes.join(', ')}\n`);
    });
  });

  const th = program.command('thresholds').description('the feedback thresholds file');
  th.command('validate <file>')
    .description('check a thresholds file; exit 1 with the offending path when invalid')
    .addOption(outputOption())
    .action((file: string, opts: { output?: string }) => {
      const t = loadThresholds(file);
      const format = resolveFormat(opts.output);
      if (format === 'table')
        process.stdout.write(
          `${file}: valid (${t.rules.length} rules, floors ${t.floors.join(', ')}, budget ${t.budget.events_per_second} events/s)\n`,
        );
      else
        process.stdout.write(
          format === 'json' ? `${JSON.stringify(t, null, 2)}\n` : `${jsonLine(t)}\n`,
        );
    });
  th.command('show')
    .description(
      "the thresholds in force: a file (--file), or the running controller's with its last reload error",
    )
    .option('--file <path>', 'show this file, resolved with defaults')
    .option('--redis <url>', 'Redis URL')
    .addOption(outputOption())
    .action(async (opts: { file?: string; redis?: string; output?: string }) => {
      let out: unknown;
      if (opts.file) out = { path: opts.file, thresholds: loadThresholds(opts.file) };
      else
        out = await withService({ redis: opts.redis, brokers: '' }, async (s) => {
          return (
            (await s.store.thresholdsStatus()) ?? {
              path: null,
              thresholds: DEFAULT_THRESHOLDS,
              note: 'no controller has published its thresholds; built-in defaults',
            }
          );
        });
      const format = resolveFormat(opts.output);
      process.stdout.write(
        format === 'jsonl' ? `${jsonLine(out)}\n` : `${JSON.stringify(out, null, 2)}\n`,
      );
    });
  th.command('schema')
    .description('print the JSON Schema of the thresholds file')
    .action(() => {
      process.stdout.write(`${JSON.stringify(thresholdsJsonSchema(), null, 2)}\n`);
    });
}
