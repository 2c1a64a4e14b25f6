/** HTTP helpers shared by the components' local APIs. */
import type { IncomingMessage, Server } from 'node:http';
import { TracefeedError } from './errors.js';

/**
 * Listens on host:port; a port already taken becomes a TracefeedError that
 * names the API (`what`) and how to choose another port (`flag`).
 */
export function listen(
  server: Server,
  port: number,
  host: string,
  what: string,
  flag: string,
): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new TracefeedError(`port ${port} on ${host} is in use, so the ${what} cannot listen`, {
              cause: err,
              hint: `stop the other process (ss -ltnp 'sport = :${port}') or ${flag}`,
            })
          : err,
      ),
    );
    server.listen(port, host, () => resolve(server));
  });
}

/** An HTTP error status with its message, for the APIs' error handlers to send. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Bytes a JSON request body may have. */
export const MAX_JSON_BODY_BYTES = 64 * 1024;

/** A request's JSON body ({} when empty); HttpError 413 when too large, 400 when not JSON. */
export async function readJsonBody(
  req: IncomingMessage,
  maxBytes = MAX_JSON_BODY_BYTES,
): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > maxBytes) throw new HttpError(413, `request body over ${maxBytes} bytes`);
    chunks.push(c as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch (err) {
    throw new HttpError(400, `request body is not JSON: ${(err as Error).message}`);
  }
}
