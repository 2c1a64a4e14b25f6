// SPDX-License-Identifier: Apache-2.0
//
// Shared plumbing of the probe benches (bench/probe-*.mjs, bench/ring-drain.mjs):
// building the bench helpers, kernel BPF run-time stats, CPU pinning, the
// syscall-loop child, medians and table output. Plain ESM: no TypeScript runner.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const benchBuild = join(repoRoot, 'bench', '.build');
export const benchBpf = join(repoRoot, 'bench', 'bpf', '.output');

export const args = new Set(process.argv.slice(2));
export const JSON_OUT = args.has('--json');
export const QUICK = args.has('--quick');

/** `--name=value` from argv as a string, else the default. */
export function argStr(name, dflt) {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : dflt;
}

/** `--name=value` from argv as a number, else the default. */
export function argNum(name, dflt) {
  const a = argStr(name);
  return a === undefined ? dflt : Number(a);
}

/** Progress lines go to stderr so stdout stays a table (or JSON). */
export function log(...parts) {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${parts.join(' ')}\n`);
}

function newer(src, out) {
  return !existsSync(out) || statSync(src).mtimeMs > statSync(out).mtimeMs;
}

/** Builds what the benches need: product objects, bench objects, C helpers, dist/ when missing. */
export function ensureBuilt() {
  const run = (cmd, argv) =>
    execFileSync(cmd, argv, { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'] });
  run('make', ['-s', '-C', 'bpf']);
  run('make', ['-s', '-C', 'bench/bpf']);
  mkdirSync(benchBuild, { recursive: true });
  for (const name of ['syscall_loop', 'tcp_churn']) {
    const src = join(repoRoot, 'bench', 'c', `${name}.c`);
    const out = join(benchBuild, name);
    if (newer(src, out)) run('gcc', ['-O2', '-Wall', '-o', out, src]);
  }
  if (!existsSync(join(repoRoot, 'native', 'build', 'tracefeed.node')))
    run('node', ['native/build.mjs']);
  // Always: tsc is incremental enough, and a stale dist/ would measure old code.
  run('npx', ['tsc', '-p', 'tsconfig.build.json']);
  writeFileSync(join(benchBuild, '.gitignore'), '*\n');
}

// ---- kernel BPF stats -------------------------------------------------------

let statsWas = null;

/** Turns on kernel.bpf_stats_enabled (run_time_ns / run_cnt) until restoreBpfStats(). */
export function enableBpfStats() {
  const p = '/proc/sys/kernel/bpf_stats_enabled';
  statsWas ??= readFileSync(p, 'utf8').trim();
  writeFileSync(p, '1');
  process.once('exit', restoreBpfStats);
}

export function restoreBpfStats() {
  if (statsWas !== null) {
    try {
      writeFileSync('/proc/sys/kernel/bpf_stats_enabled', statsWas);
    } catch {
      /* best effort */
    }
    statsWas = null;
  }
}

/** id -> { runTimeNs, runCnt } for every loaded program (bpftool prog show -j). */
export function bpfProgStats() {
  const out = execFileSync('bpftool', ['prog', 'show', '-j'], { maxBuffer: 64 << 20 }).toString();
  const m = new Map();
  for (const p of JSON.parse(out))
    m.set(p.id, { name: p.name, runTimeNs: p.run_time_ns ?? 0, runCnt: p.run_cnt ?? 0 });
  return m;
}

/** Sum of run time and run count over `ids` between two bpfProgStats() snapshots. */
export function bpfDelta(before, after, ids) {
  let runTimeNs = 0;
  let runCnt = 0;
  for (const id of ids) {
    const a = after.get(id);
    const b = before.get(id) ?? { runTimeNs: 0, runCnt: 0 };
    if (!a) continue;
    runTimeNs += a.runTimeNs - b.runTimeNs;
    runCnt += a.runCnt - b.runCnt;
  }
  return { runTimeNs, runCnt };
}

// ---- CPUs and processes -----------------------------------------------------

export function cpuCount() {
  return Number(execFileSync('nproc').toString().trim());
}

/** Pins every thread of `pid` to `cpus` (taskset list syntax). */
export function pin(pid, cpus) {
  execFileSync('taskset', ['-a', '-cp', String(cpus), String(pid)], { stdio: 'ignore' });
}

/** utime + stime of a process from /proc/<pid>/stat, in seconds. */
export function procCpuSeconds(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // fields after ')' start at field 3 (state): utime is field 14, stime 15.
  const ticks = Number(f[11]) + Number(f[12]);
  return ticks / 100; // USER_HZ
}

/** Line-driven child process: send(line) resolves with the next stdout line. */
export class LineChild {
  constructor(cmd, argv, opts = {}) {
    this.proc = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'inherit'], ...opts });
    this.lines = [];
    this.waiters = [];
    this.exited = new Promise((res) => this.proc.once('exit', (code, sig) => res({ code, sig })));
    this.proc.once('exit', () => {
      for (const w of this.waiters.splice(0)) w.reject(new Error(`${cmd} exited`));
    });
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      const w = this.waiters.shift();
      if (w) w.resolve(line);
      else this.lines.push(line);
    });
  }
  get pid() {
    return this.proc.pid;
  }
  next() {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
  send(line) {
    this.proc.stdin.write(`${line}\n`);
    return this.next();
  }
  async close(line = 'quit') {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.stdin.write(`${line}\n`);
      this.proc.stdin.end();
    }
    return this.exited;
  }
}

/** The getppid loop (bench/c/syscall_loop.c), optionally pinned to one CPU. */
export async function startSyscallLoop(cpu) {
  const c = new LineChild(join(benchBuild, 'syscall_loop'), cpu === undefined ? [] : [String(cpu)]);
  const ready = await c.next();
  const m = /^ready (\d+)$/.exec(ready);
  if (!m) throw new Error(`syscall_loop: unexpected "${ready}"`);
  return {
    pid: Number(m[1]),
    /** n getppid calls flat out; returns elapsed ns. */
    async run(n) {
      const r = await c.send(`run ${n}`);
      return Number(r.split(' ')[2]);
    },
    /** n open(path) + close() flat out; returns elapsed ns. */
    async open(n, path) {
      const r = await c.send(`open ${n} ${path}`);
      return Number(r.split(' ')[2]);
    },
    /** n calls at `rate` calls/s; returns elapsed ns. */
    async pace(n, rate) {
      const r = await c.send(`pace ${n} ${Math.round(rate)}`);
      return Number(r.split(' ')[2]);
    },
    close: () => c.close(),
  };
}

export const sleep = (ms) => delay(ms);

/**
 * struct tf_probe_config for key 0 of an object's tf_config: enabled, generation 1,
 * keep all, no filters. Sized by the map itself; the three fields are the struct's
 * leading u32s (enabled, generation, sample_n), checked by test/ingest/layout.test.ts.
 */
export function enabledConfig(obj) {
  const map = obj.maps().find((m) => m.name === 'tf_config');
  if (!map) throw new Error('object has no tf_config map');
  const b = Buffer.alloc(map.valueSize);
  b.writeUInt32LE(1, 0);
  b.writeUInt32LE(1, 4);
  b.writeUInt32LE(1, 8);
  return b;
}

export function u32(n) {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

// ---- figures ----------------------------------------------------------------

export function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function fmt(x, digits = 1) {
  if (typeof x === 'string') return x;
  if (x === null || x === undefined || Number.isNaN(x)) return '-';
  if (typeof x === 'boolean') return x ? 'yes' : 'no';
  return x.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** A plain-text table: { title, head: string[], rows: (string|number)[][], notes?: string[] }. */
export function renderTable(t) {
  const cells = [
    t.head,
    ...t.rows.map((r) => r.map((c) => (typeof c === 'string' ? c : fmt(c, t.digits ?? 1)))),
  ];
  const w = t.head.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r) =>
    r.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join('  ');
  const out = [`## ${t.title}`, line(t.head), w.map((n) => '-'.repeat(n)).join('  ')];
  for (const r of cells.slice(1)) out.push(line(r));
  for (const n of t.notes ?? []) out.push(`  ${n}`);
  return out.join('\n');
}

/** Prints a bench result: tables, or the whole result as JSON with --json. */
export function report(result) {
  if (JSON_OUT) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(`${result.tables.map(renderTable).join('\n\n')}\n`);
}

export function machine() {
  const cpu =
    readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown';
  return {
    date: new Date().toISOString(),
    kernel: execFileSync('uname', ['-r']).toString().trim(),
    cpus: cpuCount(),
    cpuModel: cpu,
    node: process.version,
  };
}
