/** Real programs for tests: a uniquely named executable that exits with a chosen code. */
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export interface UniqueProgram {
  name: string;
  path: string;
  /** Runs it with `sh -c "exit <code>"` semantics; resolves with its pid and exit code. */
  run: (exitCode: number) => Promise<{ pid: number; code: number }>;
}

/** Copies /bin/sh to a temp dir under a unique name (comm is the first 15 bytes of it). */
export function uniqueProgram(prefix = 'tf'): UniqueProgram {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'tracefeed-'));
  const path = join(dir, name);
  copyFileSync('/bin/sh', path);
  chmodSync(path, 0o755);
  return {
    name,
    path,
    run: (exitCode) =>
      new Promise((resolve, reject) => {
        const child = spawn(path, ['-c', `exit ${exitCode}`], { stdio: 'ignore' });
        child.on('error', reject);
        child.on('exit', (code) => resolve({ pid: child.pid ?? -1, code: code ?? -1 }));
      }),
  };
}

/** Spawns `/bin/true` `count` times, `parallel` at a time: process churn. */
export async function churn(count: number, parallel = 8, program = '/bin/true'): Promise<void> {
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < count) {
      started++;
      await new Promise<void>((resolve) => {
        const c = spawn(program, [], { stdio: 'ignore' });
        c.on('exit', () => resolve());
        c.on('error', () => resolve());
      });
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}
