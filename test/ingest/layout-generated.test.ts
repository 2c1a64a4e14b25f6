/**
 * The TypeScript and Python mirrors of bpf/events.h are generated from the
 * compiled objects' BTF (scripts/gen-layouts.mjs); the checked-in output must
 * be what the generator makes of today's header.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/common/paths.js';

const script = join(repoRoot, 'scripts/gen-layouts.mjs');

function gen(...args: string[]): { code: number; output: string } {
  try {
    const out = execFileSync(process.execPath, [script, ...args], {
      encoding: 'utf8',
      stdio: 'pipe',
    });
    return { code: 0, output: out };
  } catch (err) {
    const e = err as { status: number; stderr: string };
    return { code: e.status, output: e.stderr };
  }
}

describe('generated layouts', () => {
  it('are current with bpf/events.h and the compiled BTF', () => {
    const r = gen('--check');
    expect(r.output).toContain('current');
    expect(r.code).toBe(0);
  });

  it('the check fails, naming the file, when the output drifts from the header', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-layout-'));
    try {
      expect(gen('--out', dir).code).toBe(0);
      expect(gen('--check', '--out', dir).code).toBe(0);
      const ts = join(dir, 'src/wire/layout.generated.ts');
      writeFileSync(ts, readFileSync(ts, 'utf8').replace('"TF_COMM_LEN": 16', '"TF_COMM_LEN": 17'));
      const r = gen('--check', '--out', dir);
      expect(r.code).toBe(1);
      expect(r.output).toContain('src/wire/layout.generated.ts');
      expect(r.output).toContain('npm run gen:layouts');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
