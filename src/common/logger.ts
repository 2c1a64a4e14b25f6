import { pino, type Logger } from 'pino';

/**
 * The project logger. JSON lines on stderr (stdout belongs to command output).
 * Level from `TRACEFEED_LOG_LEVEL` (default `info`; `silent` turns it off).
 */
export type { Logger };

export function createLogger(name: string, level?: string): Logger {
  return pino(
    {
      name,
      level: level ?? process.env.TRACEFEED_LOG_LEVEL ?? 'info',
      base: { pid: process.pid },
    },
    pino.destination({ fd: 2, sync: false }),
  );
}

export const rootLogger: Logger = createLogger('tracefeed');
