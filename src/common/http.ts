/** HTTP helpers shared by the components' local APIs. */
import type { Server } from 'node:http';
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
