/**
 * Every local API refuses callers without the installation's token, text/plain
 * bodies, foreign origins and rebinding Host names, tried from outside against
 * the real servers (node control API with loaded probes, feature stage on
 * Kafka, agent API reading both over HTTP). The CLI authenticates by itself,
 * and a local unprivileged user (`nobody`) can neither read the token nor
 * change a probe.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AnomalyStore,
  TracefeedAgent,
  httpFeatureSource,
  httpProbeSource,
  startAgentApi,
} from '../../src/agent/index.js';
import { loadOrCreateToken, serveApi } from '../../src/common/http-auth.js';
import { createLogger } from '../../src/common/logger.js';
import { repoRoot } from '../../src/common/paths.js';
import { FeatureStage } from '../../src/features/index.js';
import {
  DEFAULT_AGENT_OPTIONS,
  NodeAgent,
  startControlApi,
  type ProbeStats,
} from '../../src/ingest/index.js';
import { BROKERS, linkInfraSecrets } from '../helpers/kafka.js';

const run = promisify(execFile);
const cli = `${repoRoot}/bin/tracefeed.js`;
const log = createLogger('test', 'silent');

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A raw HTTP request: fetch() would not let the test set Host. */
function http(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method, path, headers: { host: `127.0.0.1:${port}`, ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('authenticated local APIs', () => {
  const home = mkdtempSync(join(tmpdir(), 'tf-auth-'));
  const savedHome = process.env.TRACEFEED_HOME;
  const node = `auth-${randomBytes(3).toString('hex')}`;
  const port = () => 20000 + Math.floor(Math.random() * 20000);
  const nodePort = port();
  const featuresPort = port();
  let agent: NodeAgent;
  let nodeApi: Server;
  let stage: FeatureStage;
  let agentApi: Server;
  let agentPort: number;
  let token: string;
  const env = () => ({ ...process.env, TRACEFEED_HOME: home, TRACEFEED_LOG_LEVEL: 'silent' });

  beforeAll(async () => {
    // A fresh installation: its token is created on first use, in this state directory.
    chmodSync(home, 0o755);
    // Its clients still authenticate to the test infrastructure's Kafka and Redis.
    linkInfraSecrets(home);
    process.env.TRACEFEED_HOME = home;
    agent = new NodeAgent({
      ...DEFAULT_AGENT_OPTIONS,
      nodeName: node,
      brokers: BROKERS,
      lingerMs: 50,
      log,
      families: ['process'],
    });
    agent.start();
    nodeApi = await startControlApi(agent, nodePort, log);
    stage = new FeatureStage(
      {
        brokers: BROKERS,
        group_id: `tracefeed-features-test-auth-${randomBytes(4).toString('hex')}`,
        window_seconds: 1,
        data_dir: join(home, 'features'),
        http_port: featuresPort,
      },
      log,
    );
    await stage.start();
    const ai = new TracefeedAgent({
      deps: {
        features: httpFeatureSource(`http://127.0.0.1:${featuresPort}`),
        anomalies: new AnomalyStore(),
        probes: [httpProbeSource(`http://127.0.0.1:${nodePort}`)],
      },
      log,
      env: {},
    });
    agentApi = await startAgentApi(ai, 0, { log });
    agentPort = (agentApi.address() as { port: number }).port;
    token = readFileSync(join(home, 'api-token'), 'utf8').trim();
  }, 90_000);

  afterAll(async () => {
    agentApi?.close();
    nodeApi?.close();
    await stage?.stop();
    await agent?.stop(2000);
    if (savedHome === undefined) delete process.env.TRACEFEED_HOME;
    else process.env.TRACEFEED_HOME = savedHome;
    rmSync(home, { recursive: true, force: true });
  });

  it('creates one root-only token for the installation', () => {
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(join(home, 'api-token')).mode & 0o777).toBe(0o600);
  });

  const apis = () => [
    { name: 'node', port: nodePort, read: '/v1/probes', write: ['PATCH', '/v1/probes/process'] },
    { name: 'features', port: featuresPort, read: '/v1/features', write: undefined },
    { name: 'agent', port: agentPort, read: '/v1/status', write: ['POST', '/v1/ask'] },
  ];

  it('refuses a request without a token or with a wrong one on every API, metrics included', async () => {
    for (const api of apis()) {
      for (const path of [api.read, '/metrics', '/v1/status']) {
        const none = await http(api.port, 'GET', path);
        expect(none.status, `${api.name} ${path}`).toBe(401);
        expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
        expect(JSON.parse(none.body)).toMatchObject({ error: 'missing bearer token' });
        const wrong = await http(api.port, 'GET', path, {
          authorization: `Bearer ${'0'.repeat(64)}`,
        });
        expect(wrong.status, `${api.name} ${path}`).toBe(401);
        expect(wrong.headers['www-authenticate']).toMatch(/error="invalid_token"/);
        const good = await http(api.port, 'GET', path, { authorization: `Bearer ${token}` });
        expect(good.status, `${api.name} ${path}: ${good.body}`).toBe(200);
      }
      // /healthz stays open and says nothing else.
      const health = await http(api.port, 'GET', '/healthz');
      expect(health.status).toBe(200);
      expect(JSON.parse(health.body)).toEqual({ ok: true });
    }
    // A refused PATCH changed nothing.
    const before = agent.probes().find((p) => p.probe === 'process')!;
    const patch = await http(
      nodePort,
      'PATCH',
      '/v1/probes/process',
      { 'content-type': 'application/json' },
      JSON.stringify({ enabled: false }),
    );
    expect(patch.status).toBe(401);
    const after = agent.probes().find((p) => p.probe === 'process')!;
    expect(after.enabled).toBe(true);
    expect(after.generation).toBe(before.generation);
  });

  it('refuses text/plain bodies (415), foreign origins and rebinding Host names (403)', async () => {
    const auth = { authorization: `Bearer ${token}` };
    for (const api of apis().filter((a) => a.write)) {
      const [method, path] = api.write!;
      // What a cross-site <form enctype="text/plain"> or fetch(no-cors) sends.
      const form = await http(
        api.port,
        method!,
        path!,
        { ...auth, 'content-type': 'text/plain;charset=UTF-8' },
        JSON.stringify({ question: 'x', enabled: false }),
      );
      expect(form.status, api.name).toBe(415);
      expect(JSON.parse(form.body).error).toMatch(/must be application\/json, got text\/plain/);
    }
    for (const api of apis()) {
      const origin = await http(api.port, 'GET', api.read, {
        ...auth,
        origin: 'http://evil.example',
      });
      expect(origin.status, api.name).toBe(403);
      expect(JSON.parse(origin.body).error).toMatch(/cross-origin requests are refused/);
      const rebinding = await http(api.port, 'GET', api.read, {
        ...auth,
        host: `evil.example:${api.port}`,
      });
      expect(rebinding.status, api.name).toBe(403);
      expect(JSON.parse(rebinding.body).error).toMatch(/does not name this API/);
      // The API's own origin is fine.
      const same = await http(api.port, 'GET', api.read, {
        ...auth,
        origin: `http://127.0.0.1:${api.port}`,
      });
      expect(same.status, api.name).toBe(200);
    }
    expect(agent.probes().find((p) => p.probe === 'process')!.enabled).toBe(true);
    // The agent reached the node and the feature stage with the token: it lists the probes.
    const ask = await http(
      agentPort,
      'POST',
      '/v1/ask',
      { ...auth, 'content-type': 'application/json' },
      JSON.stringify({ question: 'what probes are active and why?' }),
    );
    expect(ask.status, ask.body).toBe(200);
    const answer = (JSON.parse(ask.body) as { answer: string }).answer;
    expect(answer).toMatch(/process/);
    expect(answer).not.toMatch(/Unavailable|No probe state/);
  });

  it('the CLI authenticates without being told; TRACEFEED_TOKEN overrides the file', async () => {
    const list = await run(
      process.execPath,
      [cli, 'probes', 'list', '-o', 'json', '--api-port', String(nodePort)],
      { env: env() },
    );
    expect((JSON.parse(list.stdout) as ProbeStats[]).map((p) => p.probe)).toContain('process');
    const set = await run(
      process.execPath,
      [
        cli,
        'probes',
        'set',
        'process',
        '--sample',
        '3',
        '-o',
        'json',
        '--api-port',
        String(nodePort),
      ],
      { env: env() },
    );
    expect((JSON.parse(set.stdout) as ProbeStats[])[0]!.settings.sample_n).toBe(3);
    const ask = await run(
      process.execPath,
      [
        cli,
        'ask',
        'what probes are active and why?',
        '--no-feedback',
        '--no-model',
        '--anomalies-minutes',
        '0',
        '--agent-url',
        `http://127.0.0.1:${nodePort}`,
        '--features-url',
        `http://127.0.0.1:${featuresPort}`,
        '-o',
        'json',
      ],
      { env: env() },
    );
    const answer = (JSON.parse(ask.stdout) as { answer: string }).answer;
    expect(answer).toMatch(/process/);
    expect(answer).not.toMatch(/Unavailable|No probe state/);
    const wrong = await run(
      process.execPath,
      [cli, 'probes', 'list', '--api-port', String(nodePort)],
      { env: { ...env(), TRACEFEED_TOKEN: 'a'.repeat(64) } },
    ).catch((e: { code: number; stderr: string }) => e);
    expect((wrong as { code: number }).code).toBe(1);
    expect((wrong as { stderr: string }).stderr).toMatch(/invalid bearer token/);
  }, 60_000);

  it('a local unprivileged user cannot read the token nor change a probe', async () => {
    const before = agent.probes().find((p) => p.probe === 'process')!;
    const asNobody = (args: string[], extraEnv: Record<string, string> = {}) =>
      run(
        'setpriv',
        ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, ...args],
        { env: { ...env(), ...extraEnv }, cwd: '/' },
      ).catch((e: { code: number; stdout: string; stderr: string }) => e);
    // Straight at the file and the API.
    const attempt = `
      const fs = require('node:fs');
      let read = 'read';
      try { fs.readFileSync(${JSON.stringify(join(home, 'api-token'))}); } catch (e) { read = e.code; }
      fetch('http://127.0.0.1:${nodePort}/v1/probes/process', {
        method: 'PATCH', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ enabled: false }),
      }).then((r) => console.log(JSON.stringify({ read, status: r.status, uid: process.getuid() })));`;
    const direct = (await asNobody(['-e', attempt])) as { stdout: string };
    expect(JSON.parse(direct.stdout)).toEqual({ read: 'EACCES', status: 401, uid: 65534 });
    // Through the CLI: a clear error naming the file.
    const viaCli = (await asNobody([
      cli,
      'probes',
      'set',
      'process',
      '--disable',
      '--api-port',
      String(nodePort),
    ])) as {
      code: number;
      stderr: string;
    };
    expect(viaCli.code).toBe(1);
    expect(viaCli.stderr).toContain(`cannot read the API token ${join(home, 'api-token')}`);
    const after = agent.probes().find((p) => p.probe === 'process')!;
    expect(after.enabled).toBe(true);
    expect(after.generation).toBe(before.generation);
  }, 60_000);

  it('refuses a token file others can read, and a non-loopback plaintext binding', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-auth-file-'));
    try {
      const file = join(dir, 'api-token');
      expect(loadOrCreateToken(file)).toMatch(/^[0-9a-f]{64}$/);
      chmodSync(file, 0o644);
      expect(() => loadOrCreateToken(file)).toThrow(
        new RegExp(`the API token ${file} is readable by other users \\(mode 644\\)`),
      );
      writeFileSync(join(dir, 'short'), 'abc\n', { mode: 0o600 });
      expect(() => loadOrCreateToken(join(dir, 'short'))).toThrow(/does not hold a token/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await expect(
      serveApi({ what: 'agent API', flag: '--port', port: 0, host: '0.0.0.0' }, () => {}),
    ).rejects.toThrow(/refusing to serve the agent API on 0\.0\.0\.0 over plain HTTP/);
    const cliServe = await run(
      process.execPath,
      [cli, 'agent', 'serve', '--host', '0.0.0.0', '--port', String(port()), '--no-feedback'],
      { env: env(), timeout: 20_000 },
    ).catch((e: { code: number; stderr: string }) => e);
    expect((cliServe as { code: number }).code).toBe(1);
    expect((cliServe as { stderr: string }).stderr).toMatch(
      /refusing to serve the agent API on 0\.0\.0\.0 over plain HTTP[\s\S]*--allow-plaintext/,
    );
  }, 60_000);
});

describe('an API beyond loopback', () => {
  it('serves HTTPS on 0.0.0.0 when TLS is configured, and still wants the token', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-auth-tls-'));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-keyout',
      key,
      '-out',
      cert,
    ]);
    const token = randomBytes(32).toString('hex');
    const { server } = await serveApi(
      {
        what: 'test API',
        flag: '--port',
        port: 0,
        host: '0.0.0.0',
        security: { token, tls_cert_path: cert, tls_key_path: key },
      },
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"secret":true}');
      },
    );
    try {
      const port = (server.address() as { port: number }).port;
      const get = (headers: Record<string, string>) =>
        new Promise<number>((resolve, reject) => {
          const req = httpsRequest(
            { host: '127.0.0.1', port, path: '/v1/x', headers, rejectUnauthorized: false },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          );
          req.on('error', reject);
          req.end();
        });
      expect(await get({})).toBe(401);
      expect(await get({ authorization: `Bearer ${token}` })).toBe(200);
      expect(await get({ authorization: `Bearer ${token}`, origin: 'http://127.0.0.1' })).toBe(403);
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
