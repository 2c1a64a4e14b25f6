/**
 * Live control of a running probe through the CLI and the agent's local API:
 * sampling and filters change, the event rate follows, the programs are the
 * same (no reload) and the generation advances; records carry both.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { authHeaders } from '../../src/common/http-auth.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { repoRoot } from '../../src/common/paths.js';
import {
  DEFAULT_AGENT_OPTIONS,
  NodeAgent,
  startControlApi,
  type ProbeStats,
} from '../../src/ingest/index.js';
import { BROKERS, startCollector } from '../helpers/kafka.js';
import { makeCgroup, type TestCgroup } from '../helpers/cgroup.js';

const run = promisify(execFile);
const cli = `${repoRoot}/bin/tracefeed.js`;

describe('probes set on a running agent', () => {
  const node = `ctl-${randomBytes(3).toString('hex')}`;
  const port = 20000 + Math.floor(Math.random() * 20000);
  let agent: NodeAgent;
  let api: Server;
  let cg: TestCgroup;
  let churn: Promise<unknown>;
  let collector: Awaited<ReturnType<typeof startCollector>>;
  const stopFile = join(mkdtempSync(join(tmpdir(), 'tf-ctl-')), 'stop');

  const tf = async (...args: string[]) => {
    try {
      const r = await run(process.execPath, [cli, ...args, '--api-port', String(port)], {
        env: { ...process.env, TRACEFEED_LOG_LEVEL: 'silent' },
      });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };
  const probe = async (name: string): Promise<ProbeStats> => {
    const r = await tf('probes', 'list', '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as ProbeStats[]).find((p) => p.probe === name)!;
  };
  /** Events the process probe delivers per second, measured over `ms`. */
  const rate = async (ms = 2500): Promise<number> => {
    const a = (await probe('process')).events;
    await new Promise((r) => setTimeout(r, ms));
    return ((await probe('process')).events - a) / (ms / 1000);
  };

  beforeAll(async () => {
    collector = await startCollector();
    agent = new NodeAgent({
      ...DEFAULT_AGENT_OPTIONS,
      nodeName: node,
      brokers: BROKERS,
      lingerMs: 50,
      log: createLogger('test', 'silent'),
      families: ['process', 'tcp'],
    });
    agent.start();
    api = await startControlApi(agent, port, createLogger('test', 'silent'));
    cg = makeCgroup('tf-ctl');
    // Steady process churn for the whole test, paced so the rate does not depend on load.
    churn = cg.run(
      `end=$(( $(date +%s) + 60 )); while [ ! -e ${stopFile} ] && [ $(date +%s) -lt $end ]; do /bin/true; sleep 0.005; done`,
    );
  }, 60_000);

  afterAll(async () => {
    writeFileSync(stopFile, '');
    api?.close();
    await agent?.stop(2000);
    await collector?.stop();
    await churn;
    cg?.remove();
  });

  it('sampling and filters take effect without a reload, and the rate follows', async () => {
    const start = await probe('process');
    expect(start.enabled && start.attached).toBe(true);
    const ids = start.programIds;
    expect(ids.every((id) => id > 0)).toBe(true);
    const full = await rate();
    expect(full).toBeGreaterThan(40);

    const set = await tf('probes', 'set', 'process', '--sample', '20', '-o', 'json');
    expect(set.code, set.stderr).toBe(0);
    const sampled = JSON.parse(set.stdout)[0] as ProbeStats;
    expect(sampled.settings.sample_n).toBe(20);
    expect(sampled.generation).toBeGreaterThan(start.generation);
    const low = await rate();
    expect(low).toBeLessThan(full / 4);
    const rec = await collector.waitFor(
      (e) => e.node === node && e.probe === 'process' && e.generation === sampled.generation,
      10_000,
    );
    expect(rec.sample_weight).toBe(20);
    const afterSample = await probe('process');
    expect(afterSample.drops.sampled_out).toBeGreaterThan(0);

    // Only a comm nobody runs: everything is filtered and counted as such.
    const filt = await tf(
      'probes',
      'set',
      'process',
      '--sample',
      '1',
      '--comm',
      'no-such-comm',
      '-o',
      'json',
    );
    expect(filt.code, filt.stderr).toBe(0);
    const filtered0 = (await probe('process')).drops.filtered;
    expect(await rate()).toBeLessThan(full / 10);
    expect((await probe('process')).drops.filtered ?? 0).toBeGreaterThan(filtered0 ?? 0);

    // Only this workload's cgroup: its events flow at full rate again.
    const focus = await tf(
      'probes',
      'set',
      'process',
      '--clear-filters',
      '--cgroup',
      cg.path,
      '-o',
      'json',
    );
    expect(focus.code, focus.stderr).toBe(0);
    const focused = JSON.parse(focus.stdout)[0] as ProbeStats;
    expect(focused.settings.filters.cgroup.allow).toEqual([cg.path]);
    expect(await rate()).toBeGreaterThan(full / 2);
    const mine = await collector.waitFor(
      (e) => e.node === node && e.generation === focused.generation && e.type === 'process.exec',
      10_000,
    );
    expect(mine.attributes['cgroup.path']).toBe(cg.path);
    expect(mine.sample_weight).toBe(1);

    const end = await probe('process');
    expect(end.programIds).toEqual(ids);
    expect(end.generation).toBe(focused.generation);
    expect(end.generation).toBeGreaterThanOrEqual(start.generation + 3);

    const metrics = await (
      await fetch(`http://127.0.0.1:${port}/metrics`, { headers: authHeaders() })
    ).text();
    expect(metrics).toMatch(/tracefeed_events_total\{probe="process"\} \d+/);
    expect(metrics).toMatch(
      /tracefeed_events_dropped_total\{probe="process",reason="sampled_out"\} [1-9]/,
    );
    expect(metrics).toMatch(/tracefeed_probe_generation\{probe="process"\} \d+/);
  }, 90_000);

  it('focuses a cgroup through the CLI: collected with its own settings while the baseline is off', async () => {
    const set = await tf(
      'probes',
      'set',
      'tcp',
      '--disable',
      '--focus',
      `${cg.path}:sample_n=3,slow_ms=5`,
      '-o',
      'json',
    );
    expect(set.code, set.stderr).toBe(0);
    const st = JSON.parse(set.stdout)[0] as ProbeStats;
    expect(st.enabled).toBe(false);
    expect(st.attached).toBe(true);
    expect(st.focus_count).toBe(1);
    expect(st.focus[cg.path]).toEqual({
      sample_n: 3,
      slow_ms: 5,
      min_duration_ms: 0,
      cgroup_id: String(cg.id),
      effective_sample_n: 3,
    });
    const table = await tf('probes', 'list', '-o', 'table');
    expect(table.stdout).toContain(`${cg.path}(1/3,slow=5ms)`);

    // Refused connects from the focused cgroup: its records, weight 3, flagged focused.
    const js = `const net=require('net');let n=60;const one=()=>{const c=net.connect(1,'127.0.0.1');c.on('error',()=>{if(--n>0)one()})};one();`;
    await cg.run(`exec ${process.execPath} -e "${js}"`);
    const rec = await collector.waitFor(
      (e) => e.node === node && e.type === 'tcp.connect_fail' && e.generation === st.generation,
      10_000,
    );
    expect(rec.focused).toBe(true);
    expect(rec.sample_weight).toBe(3);
    expect(rec.attributes['cgroup.id']).toBe(String(cg.id));
    // Nothing from any other cgroup while the baseline is off (probe.stats records, which
    // the node writes about the probe, carry no cgroup).
    await new Promise((r) => setTimeout(r, 500));
    const others = collector
      .events()
      .filter(
        (e) =>
          e.node === node &&
          e.type.startsWith('tcp.') &&
          e.generation === st.generation &&
          e.attributes['cgroup.id'] !== String(cg.id),
      );
    expect(others).toEqual([]);

    const off = await tf('probes', 'set', 'tcp', '--unfocus', cg.path, '-o', 'json');
    expect(off.code, off.stderr).toBe(0);
    const after = JSON.parse(off.stdout)[0] as ProbeStats;
    expect(after.focus).toEqual({});
    expect(after.focus_count).toBe(0);
    expect(after.attached).toBe(false);
    await tf('probes', 'set', 'tcp', '--enable');
  }, 60_000);

  it('refuses bad focuses with a message naming what is wrong', async () => {
    const rel = await tf('probes', 'set', 'tcp', '--focus', 'relative/path');
    expect(rel.code).toBe(1);
    expect(rel.stderr).toMatch(
      /a focus key is a cgroup path starting with "\/" or a decimal cgroup id/,
    );
    const field = await tf('probes', 'set', 'tcp', '--focus', `${cg.path}:speed=3`);
    expect(field.code).toBe(1);
    expect(field.stderr).toMatch(/"speed=3" is not one of sample_n=<n>/);
    const missing = await tf('probes', 'set', 'tcp', '--focus', '/no/such/cgroup');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/cgroup \/no\/such\/cgroup does not exist/);
    // More focuses than the kernel map holds: refused, naming the limit.
    const focus = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [String(i + 1), {}]));
    const res = await fetch(`http://127.0.0.1:${port}/v1/probes/tcp`, {
      method: 'PATCH',
      headers: { ...authHeaders(), 'content-type': 'application/json' },
      body: JSON.stringify({ focus }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(
      /at most 256 focused cgroups per probe \(TF_FOCUS_MAX\)/,
    );
    expect((await probe('tcp')).focus_count).toBe(0);
  }, 30_000);

  it('refuses bad settings with a message naming what is wrong', async () => {
    const zero = await tf('probes', 'set', 'process', '--sample', '0');
    expect(zero.code).toBe(1);
    expect(zero.stderr).toMatch(/--sample must be a positive number/);
    const long = await tf('probes', 'set', 'process', '--comm', 'a-name-longer-than-fifteen');
    expect(long.code).toBe(1);
    expect(long.stderr).toMatch(/filters\.comm\.allow\.0: a comm is at most 15 bytes/);
    const unknown = await tf('probes', 'set', 'nope', '--enable');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown probe "nope"/);
    const cgroup = await tf('probes', 'set', 'process', '--cgroup', '/no/such/cgroup');
    expect(cgroup.code).toBe(1);
    expect(cgroup.stderr).toMatch(/cgroup \/no\/such\/cgroup does not exist/);
    const none = await run(process.execPath, [cli, 'probes', 'list', '--api-port', '1']).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((none as { code: number }).code).toBe(1);
    expect((none as { stderr: string }).stderr).toMatch(
      /no tracefeed agent answers on 127\.0\.0\.1:1/,
    );
  }, 60_000);
});
