/**
 * Streamable HTTP at `/mcp` on the agent API. The API's guard (bearer token,
 * Host, Origin, JSON bodies: src/common/http-auth.ts) has already accepted a
 * request before it gets here, so an unauthenticated client never reaches a
 * session. Sessions are stateful (Mcp-Session-Id): one McpServer each, at most
 * `maxSessions` (the least recently used is closed), closed after `idleMs`.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { Logger } from '../../common/logger.js';

const MAX_BODY_BYTES = 1024 * 1024;

interface Session {
  transport: StreamableHTTPServerTransport;
  server: McpServer;
  lastUsed: number;
}

function rpcError(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY_BYTES)
      throw Object.assign(new Error(`request body over ${MAX_BODY_BYTES} bytes`), { status: 413 });
    chunks.push(c as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw Object.assign(new Error(`request body is not JSON: ${(err as Error).message}`), {
      status: 400,
    });
  }
}

export class McpHttpEndpoint {
  private readonly sessions = new Map<string, Session>();
  private readonly timer: NodeJS.Timeout;
  readonly stats = { sessions_opened: 0, sessions_closed: 0, unknown_session: 0 };

  constructor(
    private readonly makeServer: () => McpServer,
    private readonly opts: { log?: Logger; maxSessions?: number; idleMs?: number } = {},
  ) {
    this.timer = setInterval(() => this.sweep(), 60_000);
    this.timer.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  private sweep(): void {
    const idle = this.opts.idleMs ?? 30 * 60_000;
    const now = Date.now();
    for (const [id, s] of this.sessions) if (now - s.lastUsed > idle) void this.closeSession(id);
  }

  private async closeSession(id: string): Promise<void> {
    const s = this.sessions.get(id);
    if (!s) return;
    this.sessions.delete(id);
    this.stats.sessions_closed++;
    await s.transport.close().catch(() => undefined);
    await s.server.close().catch(() => undefined);
  }

  /** Handles one request to /mcp (POST, GET for the event stream, DELETE to end a session). */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const sid = req.headers['mcp-session-id'];
      const body = req.method === 'POST' ? await readBody(req) : undefined;
      if (typeof sid === 'string') {
        const s = this.sessions.get(sid);
        if (!s) {
          this.stats.unknown_session++;
          return rpcError(res, 404, 'unknown or closed MCP session: initialize a new one');
        }
        s.lastUsed = Date.now();
        await s.transport.handleRequest(req, res, body);
        return;
      }
      if (req.method !== 'POST' || !isInitializeRequest(body))
        return rpcError(
          res,
          400,
          'no Mcp-Session-Id: the first request must be an initialize POST',
        );
      const server = this.makeServer();
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          this.sessions.set(id, { transport, server, lastUsed: Date.now() });
          this.stats.sessions_opened++;
          const max = this.opts.maxSessions ?? 64;
          while (this.sessions.size > max) {
            let oldest: [string, Session] | undefined;
            for (const e of this.sessions)
              if (!oldest || e[1].lastUsed < oldest[1].lastUsed) oldest = e;
            void this.closeSession(oldest![0]);
          }
        },
        onsessionclosed: (id) => void this.closeSession(id),
      });
      transport.onclose = () => {
        if (transport.sessionId) void this.closeSession(transport.sessionId);
      };
      await server.connect(transport);
      await transport.handleRequest(req, res, body);
    } catch (err) {
      const status = (err as { status?: number }).status ?? 500;
      if (status >= 500) this.opts.log?.error({ err }, 'MCP request failed');
      if (!res.headersSent) rpcError(res, status, (err as Error).message);
      else res.end();
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.sessions.keys()].map((id) => this.closeSession(id)));
  }
}
