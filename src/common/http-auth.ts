/**
 * Authentication and request hygiene shared by every local HTTP API (the
 * node's control API, the features API, the agent API): one implementation,
 * used through `serveApi()`.
 *
 * - A per-installation bearer token (32 random bytes, hex) lives in
 *   `$TRACEFEED_HOME/api-token`, mode 0600, created atomically on first use.
 *   A token file that its group or other users can read is refused.
 * - Every request but `GET /healthz` (and `GET /metrics` when the operator
 *   opens it) needs `Authorization: Bearer <token>`, compared in constant time.
 * - The Host header must name a loopback address, `localhost`, or the address
 *   the API is bound to (DNS rebinding); a foreign Origin header is refused
 *   (403); request bodies must be `application/json` (415), so a cross-site
 *   form post fails before any work.
 * - Binding beyond loopback needs TLS, or an explicit acceptance of plaintext.
 *
 * Clients (the CLI, the agent's data sources, tests) call `authHeaders()`:
 * TRACEFEED_TOKEN when set, otherwise the token file.
 *
 * A browser cannot send a bearer header when it loads a page, so an API that
 * serves pages (the console) also takes `BrowserSessions`: a holder of the
 * token mints a one-time login code (`issueCode()`, or `POST /v1/login-codes`
 * on that API); `GET /login?code=…` redeems it once and sets an HttpOnly,
 * SameSite=Strict session cookie; requests carrying that cookie pass the
 * guard like the bearer token. The Host, Origin and media-type checks apply
 * to both.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError, TracefeedError } from './errors.js';
import { listen } from './http.js';
import type { Logger } from './logger.js';
import { stateDir } from './paths.js';
import { createFileOnce, readSecretFile, SecretFileError } from './secret-file.js';

/** Environment variable that overrides the token file (remote use). */
export const TOKEN_ENV = 'TRACEFEED_TOKEN';
/** Environment variable that names another token file. */
export const TOKEN_FILE_ENV = 'TRACEFEED_TOKEN_FILE';

const TOKEN_RE = /^[A-Za-z0-9_-]{32,256}$/;

/** The token file: TRACEFEED_TOKEN_FILE or `<state dir>/api-token`. */
export function tokenPath(): string {
  return process.env[TOKEN_FILE_ENV] || join(stateDir(), 'api-token');
}

/** A token file that cannot be used; the message names the file and the fix. */
export { SecretFileError as TokenFileError } from './secret-file.js';

function readTokenFile(file: string): string {
  const token = readSecretFile(
    file,
    'the API token',
    `run the command as the user that owns ${file} (root), or set ${TOKEN_ENV}`,
  ).trim();
  if (!TOKEN_RE.test(token))
    throw new SecretFileError(
      `the API token ${file} does not hold a token (32 to 256 characters of [A-Za-z0-9_-])`,
      file,
      `remove ${file} so that a new one is created`,
    );
  return token;
}

/**
 * The installation's token, created on first use: 32 random bytes, hex, in a
 * file of mode 0600 (see createFileOnce: a reader never sees a partial token
 * and two creators agree).
 */
export function loadOrCreateToken(file: string = tokenPath()): string {
  try {
    return readTokenFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  createFileOnce(file, `${randomBytes(32).toString('hex')}\n`, 0o600);
  return readTokenFile(file);
}

/**
 * The token a client sends: TRACEFEED_TOKEN when set, otherwise the token
 * file; undefined when neither exists (the server then answers 401 with a hint).
 */
export function clientToken(): string | undefined {
  const env = process.env[TOKEN_ENV];
  if (env) return env.trim();
  try {
    return readTokenFile(tokenPath());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** `{ authorization: 'Bearer …' }` for fetch(), or `{}` without a token. */
export function authHeaders(): Record<string, string> {
  const t = clientToken();
  return t === undefined ? {} : { authorization: `Bearer ${t}` };
}

/** How an API authenticates and where it may listen (zod-first; every field has a default). */
export const apiSecuritySchema = z.strictObject({
  /** The bearer token; default: the token file (created on first use). */
  token: z
    .string()
    .regex(TOKEN_RE, '32 to 256 characters of [A-Za-z0-9_-]')
    .optional()
    .describe('bearer token; default: the installation token file'),
  /** Serve GET /metrics without a token (for scrapers that cannot send one). Default false. */
  metrics_open: z.boolean().default(false).describe('serve GET /metrics without a token'),
  /** PEM certificate for HTTPS; with tls_key_path. Default: none (HTTP). */
  tls_cert_path: z.string().min(1).optional().describe('PEM certificate file (HTTPS)'),
  /** PEM private key for HTTPS; with tls_cert_path. Default: none (HTTP). */
  tls_key_path: z.string().min(1).optional().describe('PEM private key file (HTTPS)'),
  /** Accept serving plain HTTP on a non-loopback address. Default false. */
  allow_plaintext: z
    .boolean()
    .default(false)
    .describe(
      'accept plain HTTP on a non-loopback address (the token crosses the network in clear)',
    ),
  /** More names the Host header may carry (e.g. a DNS name of this host). Default none. */
  allowed_hosts: z.array(z.string().min(1)).default([]).describe('extra accepted Host names'),
});
export type ApiSecurityInput = z.input<typeof apiSecuritySchema>;
export type ApiSecurity = z.output<typeof apiSecuritySchema>;

/** Whether `host` (an address or name to bind or to name in a Host header) is loopback. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (h === '::1') return true;
  if (h.startsWith('::ffff:')) return isLoopbackHost(h.slice(7));
  return false;
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

/**
 * The binding rule: loopback is always allowed; any other address needs TLS
 * or `allow_plaintext` (a token is always in force).
 */
export function assertBindAllowed(
  host: string,
  sec: ApiSecurity,
  what: string,
  flag: string,
): void {
  if ((sec.tls_cert_path === undefined) !== (sec.tls_key_path === undefined))
    throw new ConfigError(`the ${what} needs both a TLS certificate and a key`, 'tls', {
      hint: `pass both ${flag.replace('host', 'tls-cert')} and ${flag.replace('host', 'tls-key')}`,
    });
  if (isLoopbackHost(host) || sec.tls_cert_path !== undefined || sec.allow_plaintext) return;
  throw new ConfigError(
    `refusing to serve the ${what} on ${host} over plain HTTP: its bearer token would cross the network in clear`,
    'host',
    {
      hint: `configure TLS (--tls-cert and --tls-key), bind to 127.0.0.1, or accept plaintext explicitly with --allow-plaintext`,
    },
  );
}

function hostOfHeader(h: string): string {
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']')).toLowerCase();
  const i = h.lastIndexOf(':');
  return (i >= 0 && h.indexOf(':') === i ? h.slice(0, i) : h).toLowerCase();
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** The console's session cookie. */
export const SESSION_COOKIE = 'tracefeed_session';

/** The value of cookie `name` in a Cookie header, if any. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/**
 * One-time login codes and the browser sessions they open, in memory (a
 * restart logs every browser out). Codes and session ids are 32 random bytes,
 * kept as digests; a code works once and only until it expires.
 */
export class BrowserSessions {
  private readonly codes = new Map<string, number>();
  private readonly sessions = new Map<string, number>();

  constructor(
    /** How long a login code stays valid, ms. Default 10 minutes. */
    readonly codeTtlMs = 10 * 60_000,
    /** How long a session lasts, ms. Default 12 hours. */
    readonly sessionTtlMs = 12 * 3600_000,
  ) {}

  private static key(s: string): string {
    return createHash('sha256').update(s).digest('hex');
  }

  private sweep(now: number): void {
    for (const [k, t] of this.codes) if (t <= now) this.codes.delete(k);
    for (const [k, t] of this.sessions) if (t <= now) this.sessions.delete(k);
  }

  /** A fresh one-time login code. */
  issueCode(now = Date.now()): string {
    this.sweep(now);
    const code = randomBytes(32).toString('hex');
    this.codes.set(BrowserSessions.key(code), now + this.codeTtlMs);
    return code;
  }

  /** Redeems a login code (once): the new session id, or undefined for an unknown, used or expired code. */
  redeem(code: string, now = Date.now()): string | undefined {
    this.sweep(now);
    const k = BrowserSessions.key(code);
    if (!this.codes.delete(k)) return undefined;
    const session = randomBytes(32).toString('hex');
    this.sessions.set(BrowserSessions.key(session), now + this.sessionTtlMs);
    return session;
  }

  /** Whether a Cookie header carries a live session. */
  valid(cookieHeader: string | undefined, now = Date.now()): boolean {
    const id = cookieValue(cookieHeader, SESSION_COOKIE);
    if (!id) return false;
    const until = this.sessions.get(BrowserSessions.key(id));
    return until !== undefined && until > now;
  }

  /** The Set-Cookie value of a session. */
  cookie(session: string, secure: boolean): string {
    return `${SESSION_COOKIE}=${session}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${Math.floor(this.sessionTtlMs / 1000)}${secure ? '; Secure' : ''}`;
  }
}

/** Counts of refused requests, by reason (exposed on each API's stats). */
export interface ApiGuardStats {
  unauthorized: number;
  forbidden_host: number;
  forbidden_origin: number;
  unsupported_media_type: number;
}

/** The request checks, in order: Host, Origin, token, media type. */
export class ApiGuard {
  readonly stats: ApiGuardStats = {
    unauthorized: 0,
    forbidden_host: 0,
    forbidden_origin: 0,
    unsupported_media_type: 0,
  };
  private readonly tokenDigest: Buffer;
  private readonly hosts: Set<string>;

  constructor(
    private readonly sec: ApiSecurity,
    bindHost: string,
    token: string,
    /** Browser sessions accepted in place of the bearer token (APIs that serve pages). */
    private readonly sessions?: BrowserSessions,
  ) {
    this.tokenDigest = digest(token);
    const hosts = new Set<string>(['localhost', ...sec.allowed_hosts.map((h) => h.toLowerCase())]);
    if (isWildcard(bindHost)) {
      hosts.add(hostname().toLowerCase());
      for (const list of Object.values(networkInterfaces()))
        for (const a of list ?? []) hosts.add(a.address.toLowerCase());
    } else hosts.add(bindHost.replace(/^\[|\]$/g, '').toLowerCase());
    this.hosts = hosts;
  }

  /** Whether a Host header value names this API. */
  hostAllowed(header: string | undefined): boolean {
    if (!header) return false;
    const h = hostOfHeader(header);
    return isLoopbackHost(h) || this.hosts.has(h);
  }

  /** Checks a request; answers it and returns false when it is refused. */
  check(req: IncomingMessage, res: ServerResponse, pathname: string): boolean {
    const host = req.headers.host;
    if (!this.hostAllowed(host)) {
      this.stats.forbidden_host++;
      sendJson(res, 403, {
        error: `Host "${host ?? ''}" does not name this API (DNS rebinding is refused)`,
      });
      return false;
    }
    const origin = req.headers.origin;
    if (origin !== undefined) {
      const scheme = this.sec.tls_cert_path !== undefined ? 'https' : 'http';
      if (origin.toLowerCase() !== `${scheme}://${host!.toLowerCase()}`) {
        this.stats.forbidden_origin++;
        sendJson(res, 403, { error: `cross-origin requests are refused (Origin ${origin})` });
        return false;
      }
    }
    const open =
      req.method === 'GET' &&
      (pathname === '/healthz' ||
        (pathname === '/metrics' && this.sec.metrics_open) ||
        // The handler redeems the one-time code; a bad one is refused there.
        (pathname === '/login' && this.sessions !== undefined));
    const authenticated =
      this.tokenMatches(req.headers.authorization) ||
      (this.sessions?.valid(req.headers.cookie) ?? false);
    if (!open && !authenticated) {
      this.stats.unauthorized++;
      const given = req.headers.authorization !== undefined;
      sendJson(
        res,
        401,
        {
          error: given
            ? 'invalid bearer token'
            : this.sessions
              ? 'not logged in (no bearer token, no live session cookie)'
              : 'missing bearer token',
          hint: this.sessions
            ? 'open the one-time login URL that `tracefeed up` printed, or get a new one with `tracefeed console-login`'
            : `send "Authorization: Bearer <token>"; the token is in ${tokenPath()} (root only) or set ${TOKEN_ENV}`,
        },
        {
          'www-authenticate': given
            ? 'Bearer realm="tracefeed", error="invalid_token"'
            : 'Bearer realm="tracefeed"',
        },
      );
      return false;
    }
    const hasBody =
      req.headers['transfer-encoding'] !== undefined ||
      Number(req.headers['content-length'] ?? 0) > 0 ||
      (req.method !== 'GET' && req.method !== 'HEAD' && req.headers['content-type'] !== undefined);
    if (hasBody) {
      const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/json') {
        this.stats.unsupported_media_type++;
        sendJson(res, 415, {
          error: `request bodies must be application/json, got ${type || 'no content-type'}`,
        });
        return false;
      }
    }
    return true;
  }

  private tokenMatches(header: string | undefined): boolean {
    const m = /^Bearer[ ]+([^ ]+)[ ]*$/i.exec(header ?? '');
    // Compare digests: constant time and constant length whatever was sent.
    return timingSafeEqual(digest(m?.[1] ?? ''), this.tokenDigest) && m !== null;
  }
}

/** What `serveApi()` needs to know about one API. */
export interface ServeApiOptions {
  /** Name used in messages, e.g. "agent API". */
  what: string;
  /** How the user changes the port, for the EADDRINUSE hint. */
  flag: string;
  port: number;
  /** Address to bind. Default 127.0.0.1. */
  host?: string;
  /** Authentication and TLS; see apiSecuritySchema. Default: token file, loopback, HTTP. */
  security?: ApiSecurityInput;
  /** Browser sessions (cookie) accepted in place of the bearer token; `GET /login` is left to the handler. */
  sessions?: BrowserSessions;
  log?: Logger;
  /**
   * The component's health: `GET /healthz` (no token) answers `{"ok":…}` only, 200 when ok
   * and 503 otherwise; `GET /v1/health` (token) answers all of it, with the reason. Default:
   * `{"ok":true}` while the process serves.
   */
  health?: () => { ok: boolean } & Record<string, unknown>;
}

export type ApiHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => void;

/** A started API: the server and its guard (refusal counters). */
export interface ApiServer {
  server: Server;
  guard: ApiGuard;
}

/**
 * Creates, guards and starts one API. `GET /healthz` answers whether the
 * component is healthy (`opts.health`, default `{"ok":true}`) and nothing else; every other request reaches `handler` only once the
 * guard has accepted it.
 */
export async function serveApi(opts: ServeApiOptions, handler: ApiHandler): Promise<ApiServer> {
  const host = opts.host ?? '127.0.0.1';
  const parsed = apiSecuritySchema.safeParse(opts.security ?? {});
  if (!parsed.success)
    throw new ConfigError(
      `invalid ${opts.what} security options: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      String(parsed.error.issues[0]?.path.join('.') ?? ''),
    );
  const sec = parsed.data;
  assertBindAllowed(host, sec, opts.what, '--host');
  const guard = new ApiGuard(sec, host, sec.token ?? loadOrCreateToken(), opts.sessions);
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      sendJson(res, 400, { error: 'bad request target' });
      return;
    }
    if (!guard.check(req, res, url.pathname)) {
      req.resume();
      return;
    }
    if (req.method === 'GET' && (url.pathname === '/healthz' || url.pathname === '/v1/health')) {
      let h: { ok: boolean } & Record<string, unknown> = { ok: true };
      try {
        if (opts.health) h = opts.health();
      } catch (err) {
        h = { ok: false, reason: (err as Error).message };
      }
      // Without a token, /healthz says ok or not and nothing else; /v1/health (token) says why.
      sendJson(res, h.ok ? 200 : 503, url.pathname === '/healthz' ? { ok: h.ok } : h);
      return;
    }
    handler(req, res, url);
  };
  let server: Server;
  if (sec.tls_cert_path !== undefined && sec.tls_key_path !== undefined) {
    let cert: Buffer, key: Buffer;
    try {
      cert = readFileSync(sec.tls_cert_path);
      key = readFileSync(sec.tls_key_path);
    } catch (err) {
      throw new TracefeedError(`cannot read the ${opts.what}'s TLS certificate or key`, {
        cause: err,
        hint: `check ${sec.tls_cert_path} and ${sec.tls_key_path}`,
      });
    }
    server = createHttpsServer({ cert, key }, onRequest) as unknown as Server;
  } else server = createHttpServer(onRequest);
  await listen(server, opts.port, host, opts.what, opts.flag);
  return { server, guard };
}
