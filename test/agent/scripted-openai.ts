/**
 * An OpenAI-compatible chat completions server on loopback for the agent
 * tests: POST /v1/chat/completions, non-streaming and streaming (SSE, with a
 * usage chunk when `stream_options.include_usage`). It answers from a script
 * (tool calls, then a final answer) and records every request it was sent.
 */
import { createServer, type Server } from 'node:http';

export interface ScriptedToolCall {
  id?: string;
  name: string;
  /** The raw `arguments` string (may be deliberately malformed). */
  arguments: string;
}

export interface ScriptedReply {
  content?: string;
  tool_calls?: ScriptedToolCall[];
  usage?: { prompt_tokens: number; completion_tokens: number };
}

export interface RecordedMessage {
  role: string;
  content: string | Array<{ type: string; text?: string }> | null;
  tool_call_id?: string;
  tool_calls?: Array<{ id: string; type: string; function: { name: string; arguments: string } }>;
}

export interface RecordedRequest {
  model: string;
  messages: RecordedMessage[];
  tools?: Array<{
    type: string;
    function: { name: string; description?: string; parameters: Record<string, unknown> };
  }>;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  [k: string]: unknown;
}

export type ScriptStep = ScriptedReply | ((req: RecordedRequest) => ScriptedReply);

export function text(m: RecordedMessage): string {
  if (typeof m.content === 'string') return m.content;
  if (Array.isArray(m.content)) return m.content.map((c) => c.text ?? '').join('');
  return '';
}

/** The JSON inside the last tool message's fence. */
export function lastToolData(req: RecordedRequest): unknown {
  const tools = req.messages.filter((m) => m.role === 'tool');
  const t = text(tools[tools.length - 1]!);
  const m = t.match(/```json tool-data\n([\s\S]*)\n```$/);
  if (!m) throw new Error(`no fenced tool data in: ${t.slice(0, 200)}`);
  return JSON.parse(m[1]!);
}

export interface ScriptedServer {
  url: string;
  requests: RecordedRequest[];
  /** Appends steps to the script. */
  push: (...steps: ScriptStep[]) => void;
  /** Steps not consumed yet. */
  remaining: () => number;
  close: () => Promise<void>;
}

let seq = 0;

export async function startScriptedServer(steps: ScriptStep[] = []): Promise<ScriptedServer> {
  const script = [...steps];
  const requests: RecordedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}` } }));
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as RecordedRequest;
      requests.push(body);
      const step = script.shift();
      if (!step) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({ error: { message: 'the script is exhausted', type: 'server_error' } }),
        );
        return;
      }
      let reply: ScriptedReply;
      try {
        reply = typeof step === 'function' ? step(body) : step;
      } catch (err) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            error: {
              message: `script step failed: ${(err as Error).message}`,
              type: 'server_error',
            },
          }),
        );
        return;
      }
      const id = `chatcmpl-${++seq}`;
      const created = Math.floor(Date.now() / 1000);
      const usage = reply.usage ?? { prompt_tokens: 100, completion_tokens: 20 };
      const fullUsage = { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens };
      const toolCalls = (reply.tool_calls ?? []).map((t, i) => ({
        id: t.id ?? `call_${seq}_${i}`,
        type: 'function',
        function: { name: t.name, arguments: t.arguments },
      }));
      const finish = toolCalls.length > 0 ? 'tool_calls' : 'stop';
      if (!body.stream) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            id,
            object: 'chat.completion',
            created,
            model: body.model,
            choices: [
              {
                index: 0,
                message: {
                  role: 'assistant',
                  content: reply.content ?? null,
                  ...(toolCalls.length ? { tool_calls: toolCalls } : {}),
                },
                finish_reason: finish,
              },
            ],
            usage: fullUsage,
          }),
        );
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const chunk = (delta: Record<string, unknown>, finish_reason: string | null = null): void => {
        res.write(
          `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices: [{ index: 0, delta, finish_reason }] })}\n\n`,
        );
      };
      chunk({ role: 'assistant', content: '' });
      const content = reply.content ?? '';
      for (let i = 0; i < content.length; i += 7) chunk({ content: content.slice(i, i + 7) });
      toolCalls.forEach((t, index) => {
        const half = Math.floor(t.function.arguments.length / 2);
        chunk({
          tool_calls: [
            {
              index,
              id: t.id,
              type: 'function',
              function: { name: t.function.name, arguments: t.function.arguments.slice(0, half) },
            },
          ],
        });
        chunk({
          tool_calls: [{ index, function: { arguments: t.function.arguments.slice(half) } }],
        });
      });
      chunk({}, finish);
      if (body.stream_options?.include_usage)
        res.write(
          `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices: [], usage: fullUsage })}\n\n`,
        );
      res.write('data: [DONE]\n\n');
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    push: (...s) => script.push(...s),
    remaining: () => script.length,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
