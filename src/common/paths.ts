import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

/** The repository (package) root: this file is at src/common or dist/common. */
export const repoRoot: string = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where tracefeed keeps state: TRACEFEED_HOME or <repo>/.tracefeed. */
export function stateDir(): string {
  return process.env.TRACEFEED_HOME ?? join(repoRoot, '.tracefeed');
}

export function bpfObjectPath(family: string): string {
  return join(repoRoot, 'bpf', '.output', `${family}.bpf.o`);
}
