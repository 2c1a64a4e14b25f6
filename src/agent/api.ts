/**
 * The agent's HTTP API, on loopback by default:
 *
 *   POST /v1/ask      {"question": "...", "conversation_id"?: "...", "stream"?: true}
 *                     -> AskResult as JSON; with "stream": true (or Accept:
 *                     text/event-stream) server-sent events: `token` {text}
 *                     pieces, then one `result` (the AskResult) or `error`.
 *   GET  /v1/status   mode, model, anomalies known
 *   GET  /metrics     Prometheus text format (tokens, cost, questions, ...)
 *   GET  /healthz     {"ok":true}, without a token
 *   POST/GET/DELETE /mcp   the MCP server over streamable HTTP (docs/mcp.md)
 *
 * Every other request needs the installation's bearer token and JSON bodies
 * (see src/common/http-auth.ts); a non-loopback `host` needs TLS or
 * `allow_plaintext`.
 */
import type { Server, ServerResponse } from 'node:http';
import { z } from 'zod';
import { TracefeedError } from '../common/errors.js';
import { serveApi, type ApiSecurityInput } from '../common/http-auth.js';
import { HttpError, readJsonBody } from '../common/http.js';
import type { Logger } from '../common/logger.js';
import type { TracefeedAgent } from './agent.js';
import { McpHttpEndpoint } from './mcp/http.js';
import { createMcpServer } from './mcp/server.js';

export const DEFAULT_AGENT_API_PORT = 9466;

export const askRequestSchema = z.strictObject({
  question: z.string().min(1).max(8000),
  /** Continue a conversation; default: a new one (its id is in the answer). */
  conversation_id: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits, ".", "_", ":", "-"')
    .optional(),
  stream: z.boolean().default(false),
  /** When the answer proposes collection it lacks, wait up to this long for the data, then answer again. */
  wait_for_data_seconds: z.number().min(0).max(600).optional(),
  /** Ask about this node only (the tools answer for it alone); default: every node. */
  node: z.string().min(1).max(253).optional(),
});

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

export async function startAgentApi(
  agent: TracefeedAgent,
  port: number = DEFAULT_AGENT_API_PORT,
  opts: {
    host?: string;
    log?: Logger;
    security?: ApiSecurityInput;
    /** Serve MCP at /mcp (default true); resultTokens: default budget of one tool result. */
    mcp?: boolean | { resultTokens?: number };
  } = {},
): Promise<Server> {
  const host = opts.host ?? '127.0.0.1';
  const mcpOpts = typeof opts.mcp === 'object' ? opts.mcp : {};
  const mcp =
    opts.mcp === false
      ? undefined
      : new McpHttpEndpoint(
          () =>
            createMcpServer({
              deps: agent.deps,
              ...(opts.log ? { log: opts.log } : {}),
              ...(mcpOpts.resultTokens !== undefined ? { resultTokens: mcpOpts.resultTokens } : {}),
            }),
          { ...(opts.log ? { log: opts.log } : {}) },
        );
  const { server } = await serveApi(
    {
      what: 'agent API',
      flag: 'pass --port',
      port,
      host,
      ...(opts.security ? { security: opts.security } : {}),
      ...(opts.log ? { log: opts.log } : {}),
    },
    (req, res, url) =>
      void (async () => {
        let streaming = false;
        try {
          if (url.pathname === '/mcp' && mcp) {
            await mcp.handle(req, res);
          } else if (req.method === 'POST' && url.pathname === '/v1/ask') {
            const parsed = askRequestSchema.safeParse(await readJsonBody(req));
            if (!parsed.success)
              throw new HttpError(
                400,
                `invalid request: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}`,
              );
            const body = parsed.data;
            streaming = body.stream || (req.headers.accept ?? '').includes('text/event-stream');
            const ac = new AbortController();
            res.on('close', () => {
              if (!res.writableFinished) ac.abort();
            });
            if (!streaming) {
              send(
                res,
                200,
                await agent.ask(body.question, {
                  ...(body.conversation_id ? { conversationId: body.conversation_id } : {}),
                  ...(body.wait_for_data_seconds !== undefined
                    ? { waitForDataMs: body.wait_for_data_seconds * 1000 }
                    : {}),
                  ...(body.node ? { node: body.node } : {}),
                  signal: ac.signal,
                }),
              );
              return;
            }
            res.writeHead(200, {
              'content-type': 'text/event-stream',
              'cache-control': 'no-cache',
              connection: 'keep-alive',
            });
            const event = (name: string, data: unknown): void => {
              res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
            };
            const result = await agent.ask(body.question, {
              ...(body.conversation_id ? { conversationId: body.conversation_id } : {}),
              ...(body.wait_for_data_seconds !== undefined
                ? { waitForDataMs: body.wait_for_data_seconds * 1000 }
                : {}),
              ...(body.node ? { node: body.node } : {}),
              signal: ac.signal,
              onToken: (text) => event('token', { text }),
            });
            event('result', result);
            res.end();
          } else if (req.method === 'GET' && url.pathname === '/v1/status') {
            send(res, 200, {
              mode: agent.mode,
              model: agent.endpoint?.model ?? null,
              base_url: agent.endpoint?.baseUrl ?? null,
              anomalies_known: agent.deps.anomalies.size,
            });
          } else if (req.method === 'GET' && url.pathname === '/metrics') {
            res.writeHead(200, { 'content-type': agent.metrics.registry.contentType });
            res.end(await agent.metrics.registry.metrics());
          } else {
            send(res, 404, { error: `no route for ${req.method} ${url.pathname}` });
          }
        } catch (err) {
          const status =
            err instanceof HttpError
              ? err.status
              : err instanceof TracefeedError && !err.retriable
                ? 400
                : 502;
          if (status >= 500) opts.log?.error({ err }, 'agent API request failed');
          const body = {
            error: err instanceof Error ? err.message : String(err),
            ...(err instanceof TracefeedError && err.hint ? { hint: err.hint } : {}),
          };
          if (streaming && res.headersSent) {
            res.write(`event: error\ndata: ${JSON.stringify(body)}\n\n`);
            res.end();
          } else send(res, status, body);
        }
      })(),
  );
  if (mcp) {
    // Open MCP event streams would hold close() back: end the sessions first.
    const close = server.close.bind(server);
    server.close = ((cb?: (err?: Error) => void) => {
      void mcp.close();
      return close(cb);
    }) as typeof server.close;
  }
  return server;
}
