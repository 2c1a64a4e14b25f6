import { pino, type Logger } from 'pino';
import { prettyFactory } from 'pino-pretty';

/**
 * The project logger, on stderr (stdout belongs to command output). On a
 * terminal, short human lines (pino-pretty: time, level, message, fields);
 * piped, or with `--log-format json` / TRACEFEED_LOG_FORMAT=json, JSON lines.
 * Level from `TRACEFEED_LOG_LEVEL` (default `info`; `silent` turns it off).
 */
export type { Logger };

export const LOG_FORMATS = ['pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/**
 * The log format: `--log-format` on the command line (read here because the
 * command modules create their loggers when loaded), TRACEFEED_LOG_FORMAT,
 * else pretty on a terminal and JSON when stderr is piped.
 */
export function resolveLogFormat(
  argv: readonly string[] = process.argv,
  env: NodeJS.ProcessEnv = process.env,
  tty: boolean = process.stderr.isTTY === true,
): LogFormat {
  let v: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a === '--log-format') v = argv[i + 1];
    else if (a.startsWith('--log-format=')) v = a.slice('--log-format='.length);
  }
  v ??= env.TRACEFEED_LOG_FORMAT;
  if (v === 'pretty' || v === 'json') return v;
  return tty ? 'pretty' : 'json';
}

/**
 * Short human lines, written synchronously to stderr; on a terminal each line
 * first clears the line, where a status line may be drawn.
 */
function prettyStream(): { write(line: string): void } {
  const tty = process.stderr.isTTY === true;
  const pretty = prettyFactory({
    colorize: tty,
    translateTime: 'SYS:HH:MM:ss',
    ignore: 'pid,hostname,name',
    singleLine: true,
  });
  return {
    write(line: string) {
      const text = pretty(line);
      process.stderr.write(tty ? `\r\x1b[K${text}` : text);
    },
  };
}

export function createLogger(
  name: string,
  level?: string,
  format: LogFormat = resolveLogFormat(),
): Logger {
  const opts = {
    name,
    level: level ?? process.env.TRACEFEED_LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
  };
  if (format === 'pretty') return pino(opts, prettyStream());
  return pino(opts, pino.destination({ fd: 2, sync: false }));
}

export const rootLogger: Logger = createLogger('tracefeed');
