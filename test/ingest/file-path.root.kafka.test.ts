/**
 * The file probe reports the path the kernel opened, and path filters judge
 * that path: a node agent in this process loads the file family, filters are
 * set through its API (unnormalised on purpose), real processes in a test
 * cgroup open files, and the records are read back from Kafka.
 *
 *  - a thread rewriting the path buffer while another opens it cannot make a
 *    record name a file other than the one opened (readlink /proc/self/fd
 *    and the file's contents say which one it was);
 *  - a deny or allow prefix on <base>/tfX is not evaded by a relative path,
 *    //, /./, .., a symlink to a file or to a directory, or openat from a
 *    directory fd; a symlink open is reported as its target;
 *  - a relative prefix is refused with an error naming it.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { Topics } from '../../src/common/kafka.js';
import {
  DEFAULT_AGENT_OPTIONS,
  NodeAgent,
  decodeFrameEvents,
  type TracefeedEvent,
} from '../../src/ingest/index.js';
import { BROKERS, subscribe } from '../helpers/kafka.js';
import { makeCgroup, type TestCgroup } from '../helpers/cgroup.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/*
 * open_race <dir> <min> <max>: <dir>/x/f holds "A"; <dir>/y is a symlink to
 * <dir>/real-y, whose f holds "B". One thread flips one byte of a shared
 * buffer between "<dir>/x/f" and "<dir>/y/f" without pause (on another CPU
 * when there is one); the main thread opens the buffer at least <min> times,
 * and on until the race showed (both files opened, the buffer moved 50 times)
 * or <max> opens. Per open it prints "<content> <readlink /proc/self/fd/N>
 * <moved>", moved = 1 when by the time open() returned the buffer named the
 * other file (a probe reading the caller's buffer then reports the wrong one).
 */
const RACE_C = `
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static char buf[4096];
static volatile char *flip;
static volatile int stop;
static volatile int started;
static void pin(int cpu) {
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	sched_setaffinity(0, sizeof(s), &s);
}
static void *flipper(void *arg) {
	(void)arg;
	if (sysconf(_SC_NPROCESSORS_ONLN) > 1) pin(1);
	started = 1;
	while (!stop) { *flip = 'x'; *flip = 'y'; }
	return NULL;
}
int main(int argc, char **argv) {
	int min = atoi(argv[2]), max = atoi(argv[3]), a = 0, b = 0, moved = 0;
	pthread_t t;
	snprintf(buf, sizeof(buf), "%s/x/f", argv[1]);
	flip = buf + strlen(argv[1]) + 1;
	setvbuf(stdout, NULL, _IOFBF, 1 << 20);
	pin(0);
	pthread_create(&t, NULL, flipper, NULL);
	while (!started) sched_yield();
	for (int i = 0; i < max && (i < min || !a || !b || moved < 50); i++) {
		char link[64], real[4096], c = '?';
		int fd = open(buf, O_RDONLY);
		char now = *flip;
		if (fd < 0) { printf("fail - 0\\n"); continue; }
		if (read(fd, &c, 1) != 1) c = '?';
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		ssize_t len = readlink(link, real, sizeof(real) - 1);
		real[len < 0 ? 0 : len] = 0;
		a += c == 'A';
		b += c == 'B';
		moved += (c == 'A') != (now == 'x');
		printf("%c %s %d\\n", c, real, (c == 'A') != (now == 'x'));
		close(fd);
	}
	stop = 1;
	pthread_join(t, NULL);
	return 0;
}
`;

/*
 * Each spelling of <base>/tfX/secret.txt, opened from cwd <base>, with a
 * control file outside. Prints "<label> <fd or -errno>" per open.
 */
const SPELLINGS_PY = `
import os, sys
base = sys.argv[1]
os.chdir(base)
def try_open(label, p, dir_fd=None):
    try:
        fd = os.open(p, os.O_RDONLY, dir_fd=dir_fd)
        print(label, fd)
        os.close(fd)
    except OSError as e:
        print(label, -e.errno)
try_open("absolute", base + "/tfX/secret.txt")
try_open("relative", "tfX/secret.txt")
try_open("doubled", base + "//tfX//secret.txt")
try_open("dotted", base + "/./tfX/./secret.txt")
try_open("dotdot", base + "/other/../tfX/secret.txt")
try_open("symlink", base + "/link")
try_open("dirlink", base + "/dirlink/secret.txt")
try_open("dotdot-rel", "other/../tfX/secret.txt")
d = os.open(base + "/tfX", os.O_RDONLY | os.O_DIRECTORY)
try_open("openat", "secret.txt", dir_fd=d)
os.close(d)
try_open("control", base + "/other/plain.txt")
try_open("missing", "tfX/missing.txt")
`;

describe('file probe: the path the kernel opened, filtered in the kernel', () => {
  const node = `fpath-${randomBytes(3).toString('hex')}`;
  let agent: NodeAgent;
  let cg: TestCgroup;
  let race: string;
  let base: string;
  let tfX: string;
  let secret: string;
  let control: string;
  const frames: Buffer[] = [];
  let stopConsumer: () => Promise<void>;
  const events = (): TracefeedEvent[] =>
    frames
      .flatMap((f) => decodeFrameEvents(f))
      .filter((e) => e.node === node && e.type === 'file.open');
  const byPid = (pid: number): TracefeedEvent[] =>
    events()
      .filter((e) => e.attributes['process.pid'] === pid)
      .sort((a, b) => (BigInt(a.ktime_ns) < BigInt(b.ktime_ns) ? -1 : 1));

  /** Runs `script` in the test cgroup; returns its stdout lines and the shell's pid (it execs). */
  async function runInCgroup(script: string): Promise<{ pid: number; lines: string[] }> {
    const r = await cg.run(`echo $$; exec ${script}`);
    expect(r.code).toBe(0);
    const [pid, ...lines] = r.stdout.trim().split('\n');
    return { pid: Number(pid), lines };
  }

  /** Waits until the probe's records of `pid` stop growing (the frame linger is 50 ms). */
  async function settle(pid: number, least: number): Promise<TracefeedEvent[]> {
    const deadline = Date.now() + 15_000;
    let last = -1;
    while (Date.now() < deadline) {
      const n = byPid(pid).length;
      if (n >= least && n === last) break;
      last = n;
      await sleep(500);
    }
    return byPid(pid);
  }

  beforeAll(async () => {
    const dir = mkdtempSync('/tmp/tf-fpath-');
    writeFileSync(join(dir, 'race.c'), RACE_C);
    race = join(dir, 'open_race');
    execFileSync('gcc', ['-O2', '-pthread', '-o', race, join(dir, 'race.c')]);
    base = realpathSync(dir);
    tfX = join(base, 'tfX');
    mkdirSync(tfX);
    mkdirSync(join(base, 'other'));
    secret = join(tfX, 'secret.txt');
    control = join(base, 'other', 'plain.txt');
    writeFileSync(secret, 'S');
    writeFileSync(control, 'C');
    symlinkSync(secret, join(base, 'link'));
    symlinkSync(tfX, join(base, 'dirlink'));
    const r = join(base, 'race');
    mkdirSync(join(r, 'x'), { recursive: true });
    mkdirSync(join(r, 'real-y'));
    writeFileSync(join(r, 'x', 'f'), 'A');
    writeFileSync(join(r, 'real-y', 'f'), 'B');
    symlinkSync(join(r, 'real-y'), join(r, 'y'));

    cg = makeCgroup('tf-fpath');
    stopConsumer = await subscribe(Topics.events, (m) => {
      if (m.key?.toString() === node && m.value) frames.push(m.value);
    });
    agent = new NodeAgent({
      ...DEFAULT_AGENT_OPTIONS,
      nodeName: node,
      brokers: BROKERS,
      lingerMs: 50,
      log: createLogger('test', 'silent'),
      families: ['file'],
    });
    agent.start();
  }, 60_000);

  afterAll(async () => {
    await agent?.stop(2000);
    await stopConsumer?.();
    cg?.remove();
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it('refuses a relative prefix, naming it', () => {
    expect(() =>
      agent.setProbe('file', { filters: { path_prefix: { deny: ['tmp/tfX'] } } }),
    ).toThrow(
      'invalid settings for file: filters.path_prefix.deny.0: a path prefix is absolute: "tmp/tfX" is relative',
    );
  });

  it('a rewritten path buffer cannot change the reported path: every record is the file opened', async () => {
    const state = agent.setProbe('file', {
      enabled: true,
      clear_filters: true,
      // Unnormalised on purpose: the agent normalises before the kernel map.
      filters: { cgroup: { allow: [cg.path] }, path_prefix: { allow: [`${base}//race/./`] } },
    });
    expect(state.settings.filters.path_prefix.allow).toEqual([`${base}/race/`]);
    const run = await runInCgroup(`${race} ${join(base, 'race')} 3000 100000`);
    const opens = run.lines.map((l) => {
      const [content, real, moved] = l.split(' ');
      return { content, real, moved: moved === '1' };
    });
    const n = opens.length;
    expect(n).toBeGreaterThanOrEqual(3000);
    expect(opens.every((o) => o.content !== 'fail')).toBe(true);
    // The race is real: both files were opened, and the buffer often moved before open() returned.
    const a = opens.filter((o) => o.content === 'A').length;
    const b = opens.filter((o) => o.content === 'B').length;
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(0);
    expect(opens.filter((o) => o.moved).length).toBeGreaterThan(0);
    for (const o of opens)
      expect(o.real).toBe(join(base, 'race', o.content === 'A' ? 'x' : 'real-y', 'f'));

    const recs = await settle(run.pid, n);
    expect(recs).toHaveLength(n);
    recs.forEach((e, i) => {
      expect(e.attributes['file.path'], `open ${i}`).toBe(opens[i]!.real);
      expect(e.attributes['file.path.verified']).toBe(true);
      expect(e.attributes['file.open.result']).toBeGreaterThanOrEqual(3);
    });
  }, 60_000);

  /** Runs every spelling; returns label -> fd or -errno, and the records of that run. */
  async function spellings(): Promise<{ result: Map<string, number>; recs: TracefeedEvent[] }> {
    const dir = mkdtempSync('/tmp/tf-fpath-py-');
    writeFileSync(join(dir, 's.py'), SPELLINGS_PY);
    const run = await runInCgroup(`python3 ${join(dir, 's.py')} ${base}`);
    rmSync(dir, { recursive: true, force: true });
    const result = new Map(
      run.lines.map((l) => [l.split(' ')[0]!, Number(l.split(' ')[1])] as const),
    );
    for (const [label, fd] of result)
      if (label !== 'missing') expect(fd, label).toBeGreaterThanOrEqual(0);
    expect(result.get('missing')).toBe(-2);
    // The control open is reported in both tests' setups or neither: wait on the last open.
    const recs = await settle(run.pid, 1);
    return { result, recs };
  }

  const SECRET_SPELLINGS = [
    'absolute',
    'relative',
    'doubled',
    'dotted',
    'dotdot',
    'symlink',
    'dirlink',
    'dotdot-rel',
    'openat',
  ];

  it('a deny prefix is not evaded by relative paths, //, /./, .., symlinks or openat', async () => {
    agent.setProbe('file', {
      enabled: true,
      clear_filters: true,
      filters: { cgroup: { allow: [cg.path] }, path_prefix: { deny: [`${base}/./tfX//`] } },
    });
    const { result, recs } = await spellings();
    expect(result.size).toBe(SECRET_SPELLINGS.length + 2);
    const verified = recs.filter((e) => e.attributes['file.path.verified'] === true);
    // The control file outside the prefix is reported: the probe is live.
    expect(verified.map((e) => e.attributes['file.path'])).toContain(control);
    // Not one open of the secret, however spelt, is reported (under its name or any spelling).
    expect(recs.filter((e) => /secret|link/.test(String(e.attributes['file.path'])))).toEqual([]);
    // A failed open has no file: its record carries the caller's string, flagged unverified.
    const missing = recs.filter((e) => String(e.attributes['file.path']).includes('missing.txt'));
    expect(
      missing.map((e) => [e.attributes['file.path'], e.attributes['file.open.result']]),
    ).toEqual([['tfX/missing.txt', -2]]);
  }, 60_000);

  it('an allow prefix sees every spelling, reported as the resolved target', async () => {
    agent.setProbe('file', {
      enabled: true,
      clear_filters: true,
      filters: { cgroup: { allow: [cg.path] }, path_prefix: { allow: [`${base}/other/../tfX/`] } },
    });
    const { result, recs } = await spellings();
    const secretRecs = recs.filter((e) => e.attributes['file.path'] === secret);
    // One record per spelling, each the target itself (symlinks resolved), in open order.
    expect(secretRecs.map((e) => e.attributes['file.open.result'])).toEqual(
      SECRET_SPELLINGS.map((l) => result.get(l)),
    );
    expect(secretRecs.every((e) => e.attributes['file.path.verified'] === true)).toBe(true);
    expect(
      secretRecs.every((e) => !e.truncated && e.attributes['file.path.partial'] === false),
    ).toBe(true);
    // Nothing else passes: not the control, not the interpreter's own opens.
    expect(recs.filter((e) => e.attributes['file.path'] !== secret)).toEqual([]);
  }, 60_000);
});
