/**
 * Local infrastructure: a single-node Apache Kafka (KRaft) and Redis, started
 * and reused by the scripts in infra/. This module runs them.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { TracefeedError } from '../common/errors.js';
import { repoRoot } from '../common/paths.js';

export type InfraAction = 'up' | 'down' | 'status';

export interface InfraResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs infra/<script>.sh with `args`, inheriting stderr for progress when `inherit` is set. */
export function runInfraScript(script: string, args: string[] = [], inherit = false): InfraResult {
  const r = spawnSync('bash', [join(repoRoot, 'infra', `${script}.sh`), ...args], {
    encoding: 'utf8',
    stdio: inherit ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'],
  });
  return { status: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Starts (or reuses) Kafka and Redis; throws with the script's message on failure. */
export function infraUp(inherit = true): void {
  const r = runInfraScript('up', [], inherit);
  if (r.status !== 0) {
    throw new TracefeedError(
      `infrastructure did not start (exit ${r.status})${r.stderr ? `: ${r.stderr.trim()}` : ''}`,
      {
        hint: 'see the messages above; `tracefeed infra status` shows what runs',
      },
    );
  }
}
