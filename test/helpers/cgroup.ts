/** A real cgroup v2 directory for a test workload, and a way to run programs inside it. */
import { spawn } from 'node:child_process';
import { mkdirSync, rmdirSync, statSync, readFileSync } from 'node:fs';
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
    remove: () => {
      for (let i = 0; i < 50; i++) {
        try {
          const procs = readFileSync(join(abs, 'cgroup.procs'), 'utf8').trim();
          if (procs === '') {
            rmdirSync(abs);
            return;
          }
        } catch {
          return;
        }
        const until = Date.now() + 100;
        while (Date.now() < until) {
          /* wait for the last process to leave */
        }
      }
    },
  };
}
