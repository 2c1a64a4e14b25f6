/** A real cgroup v2 directory for a test workload, and a way to run programs inside it. */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { cgroup2Root } from '../../src/ingest/cgroup-resolver.js';

export interface TestCgroup {
  /** Path relative to the cgroup v2 root, e.g. "/tf-test-1a2b". */
  path: string;
  abs: string;
  id: bigint;
  /** Runs `sh -c script` with the shell moved into the cgroup first; resolves with the exit code. */
  run: (script: string, env?: Record<string, string>) => Promise<{ code: number; stdout: string }>;
  remove: () => void;
}

function procsOf(abs: string): string[] | null {
  try {
    return readFileSync(join(abs, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
  } catch {
    return null; // gone already
  }
}

function waitMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Removes a test cgroup directory: waits up to 1 s for its processes to leave,
 * kills what is left (cgroup.kill, else SIGKILL by pid), waits up to 5 s more,
 * then removes it. A cgroup that cannot be removed is an error naming it and its
 * processes, so a test never leaves cgroups behind unnoticed.
 */
export function removeCgroupDir(abs: string): void {
  for (let i = 0; i < 60; i++) {
    const procs = procsOf(abs);
    if (procs === null) return;
    if (procs.length === 0) {
      rmdirSync(abs);
      return;
    }
    if (i === 10) {
      try {
        writeFileSync(join(abs, 'cgroup.kill'), '1');
      } catch {
        for (const pid of procs)
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            /* exited meanwhile */
          }
      }
    }
    waitMs(100);
  }
  throw new Error(`test cgroup ${abs} still holds processes ${procsOf(abs)?.join(', ')}`);
}

export function makeCgroup(prefix = 'tf-test'): TestCgroup {
  const root = cgroup2Root();
  if (!root) throw new Error('no cgroup v2 mount in /proc/mounts');
  const path = `/${prefix}-${randomBytes(4).toString('hex')}`;
  const abs = join(root, path);
  mkdirSync(abs);
  const id = BigInt(statSync(abs, { bigint: true }).ino);
  return {
    path,
    abs,
    id,
    run: (script, env = {}) =>
      new Promise((resolve, reject) => {
        const child = spawn('sh', ['-c', `echo $$ > ${abs}/cgroup.procs && ${script}`], {
          stdio: ['ignore', 'pipe', 'inherit'],
          env: { ...process.env, ...env },
        });
        let stdout = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.on('error', reject);
        child.on('exit', (code) => resolve({ code: code ?? -1, stdout }));
      }),
    remove: () => removeCgroupDir(abs),
  };
}

export interface CgroupLimits {
  /** CPU quota as a share of one CPU (0.1 = 10 ms every 100 ms). */
  cpuShareOfOne?: number;
  /** Memory limit, bytes (swap included: no swap to hide behind). */
  memoryMaxBytes?: number;
}

/**
 * A test cgroup with CPU and memory limits. Where the cgroup v2 tree has the
 * cpu and memory controllers the limits go there (cpu.max, memory.max,
 * memory.swap.max = 0); on a hybrid host they go in v1 cgroups of the same
 * name, which `run` joins too. The v2 cgroup is the one probes report.
 */
export function makeLimitedCgroup(prefix: string, limits: CgroupLimits): TestCgroup {
  const cg = makeCgroup(prefix);
  const v2 = readFileSync(join(cg.abs, 'cgroup.controllers'), 'utf8').split(/\s+/);
  const v1Dirs: string[] = [];
  const v1 = (controller: string): string => {
    const dir = join('/sys/fs/cgroup', controller, cg.path);
    mkdirSync(dir);
    v1Dirs.push(dir);
    return dir;
  };
  const period = 100_000;
  if (limits.cpuShareOfOne !== undefined) {
    const quota = Math.max(1000, Math.round(period * limits.cpuShareOfOne));
    if (v2.includes('cpu')) writeFileSync(join(cg.abs, 'cpu.max'), `${quota} ${period}`);
    else {
      const dir = v1('cpu');
      writeFileSync(join(dir, 'cpu.cfs_period_us'), String(period));
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quota));
    }
  }
  if (limits.memoryMaxBytes !== undefined) {
    if (v2.includes('memory')) {
      writeFileSync(join(cg.abs, 'memory.max'), String(limits.memoryMaxBytes));
      if (existsSync(join(cg.abs, 'memory.swap.max')))
        writeFileSync(join(cg.abs, 'memory.swap.max'), '0');
    } else {
      const dir = v1('memory');
      writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limits.memoryMaxBytes));
      if (existsSync(join(dir, 'memory.memsw.limit_in_bytes')))
        writeFileSync(join(dir, 'memory.memsw.limit_in_bytes'), String(limits.memoryMaxBytes));
    }
  }
  const joinAll = [cg.abs, ...v1Dirs].map((d) => `echo $$ > ${d}/cgroup.procs`).join(' && ');
  return {
    ...cg,
    run: (script, env = {}) =>
      new Promise((resolve, reject) => {
        const child = spawn('sh', ['-c', `${joinAll} && ${script}`], {
          stdio: ['ignore', 'pipe', 'inherit'],
          env: { ...process.env, ...env },
        });
        let stdout = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.on('error', reject);
        child.on('exit', (code) => resolve({ code: code ?? -1, stdout }));
      }),
    remove: () => {
      cg.remove();
      for (const d of v1Dirs) {
        try {
          rmdirSync(d);
        } catch {
          /* still has a process leaving: the v2 removal waited for it */
        }
      }
    },
  };
}
