/**
 * Least privilege: the node agent (start, a probe setting change, real exec
 * and TCP events published to Kafka) runs under `capsh` with only the
 * capabilities documented in docs/security.md, and fails without any one of
 * them. The child keeps uid 0 (it reads root-owned tracefs and cgroup files)
 * but its bounding, permitted and effective sets hold nothing else.
 * Needs root, capsh (libcap2-bin), `make -C bpf`, `node native/build.mjs` and Kafka.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/common/paths.js';
import { NODE_CAPABILITIES } from '../../src/ingest/index.js';
import { BROKERS } from '../helpers/kafka.js';

const isRoot = process.getuid?.() === 0;
const capsh = ['/usr/sbin/capsh', '/sbin/capsh', '/usr/bin/capsh'].find((p) => existsSync(p));
const child = join(repoRoot, 'test', 'security', 'least-privilege-child.mjs');

/** Every capability name this kernel knows. */
function allCapabilities(): string[] {
  const last = Number(execFileSync('cat', ['/proc/sys/kernel/cap_last_cap'], { encoding: 'utf8' }));
  const mask = (1n << BigInt(last + 1)) - 1n;
  const decoded = execFileSync(capsh!, [`--decode=0x${mask.toString(16)}`], { encoding: 'utf8' });
  return decoded.trim().split('=')[1]!.split(',');
}

interface ChildReport {
  capEff: string;
  uid: number;
  ok: boolean;
  error?: string;
  generation?: number;
  framesSent?: number;
  families?: Record<string, string>;
  probes?: Array<{ probe: string; attached: boolean; enabled: boolean; events: number }>;
}

describe.skipIf(!isRoot || !capsh)('node agent under capsh', () => {
  const build = join(repoRoot, `.tmp-least-privilege-${randomBytes(3).toString('hex')}`);
  let all: string[] = [];

  /** Runs the agent with only `caps` (bounding set reduced, so nothing else survives exec). */
  const runWith = (caps: readonly string[], mode = 'agent'): ChildReport => {
    const drop = all.filter((c) => !caps.includes(c));
    const node = `lp-${randomBytes(3).toString('hex')}`;
    const r = spawnSync(
      capsh!,
      [
        `--drop=${drop.join(',')}`,
        '--',
        '-c',
        'exec "$0" "$@"',
        process.execPath,
        child,
        build,
        node,
        BROKERS.join(','),
        mode,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    const line = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as ChildReport;
    } catch {
      throw new Error(`child gave no report (status ${r.status}): ${r.stdout}\n${r.stderr}`);
    }
  };
  const mask = (caps: readonly string[]): bigint =>
    caps.reduce((m, c) => m | (1n << BigInt(all.indexOf(c))), 0n);

  beforeAll(() => {
    all = allCapabilities();
    // The child runs the compiled sources, as an installed node agent would.
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json', '--outDir', build], {
      cwd: repoRoot,
      stdio: 'inherit',
    });
  }, 120_000);

  afterAll(() => rmSync(build, { recursive: true, force: true }));

  it('runs with exactly the documented capabilities', () => {
    const r = runWith(NODE_CAPABILITIES);
    expect(r.error).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.uid).toBe(0);
    expect(BigInt(`0x${r.capEff}`)).toBe(mask(NODE_CAPABILITIES));
    const probes = new Map(r.probes!.map((p) => [p.probe, p]));
    // The setting change reached the kernel and every enabled probe is attached.
    expect(probes.get('tcp')).toMatchObject({ enabled: true, attached: true });
    for (const p of r.probes!) if (p.enabled) expect(p.attached, p.probe).toBe(true);
    expect(probes.get('process')!.events).toBeGreaterThan(0);
    expect(probes.get('tcp')!.events).toBeGreaterThan(0);
    expect(r.framesSent).toBeGreaterThan(0);
  }, 90_000);

  it.each(NODE_CAPABILITIES.map((c) => [c]))(
    'is refused without %s: by the kernel, and by the agent with an error naming it',
    (missing) => {
      const fewer = NODE_CAPABILITIES.filter((c) => c !== missing);
      const kernel = runWith(fewer, 'kernel');
      expect(kernel.ok, JSON.stringify(kernel.families)).toBe(false);
      const agent = runWith(fewer);
      expect(agent.ok).toBe(false);
      expect(agent.error).toContain(`the node agent needs ${missing}`);
    },
    90_000,
  );

  it('loads and attaches every probe family with the set (kernel view)', () => {
    const r = runWith(NODE_CAPABILITIES, 'kernel');
    expect(r.families).toEqual(Object.fromEntries(Object.keys(r.families!).map((f) => [f, 'ok'])));
    expect(Object.keys(r.families!).length).toBeGreaterThanOrEqual(5);
  }, 90_000);
});
