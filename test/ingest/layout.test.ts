/**
 * bpf/events.h and the TypeScript decoders agree on every size and offset:
 * checked against the BTF the compiler wrote into the objects.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bpfObjectPath, repoRoot } from '../../src/common/paths.js';
import { compareLayout, readBtfStructs } from '../../src/ingest/btf-layout.js';
import {
  CHECKED_LAYOUTS,
  EXEC_LAYOUT,
  Flag,
  PATH_COMPONENTS,
  PATH_LEN,
  PATH_PREFIX_LEN,
  PATH_WALK_MAX,
  type RecordLayout,
} from '../../src/ingest/layout.js';

/** `#define NAME value` lines of a header whose value is a plain number. */
function defines(file: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of readFileSync(file, 'utf8').matchAll(/^#define (\w+) (0x[0-9a-fA-F]+|\d+)\b/gm))
    out.set(m[1]!, Number(m[2]));
  return out;
}

const layoutObject = bpfObjectPath('layout');

describe('events.h layout vs TypeScript', () => {
  it('has the objects built', () => {
    expect(existsSync(layoutObject), `${layoutObject} missing: run make -C bpf`).toBe(true);
  });

  const btf = existsSync(layoutObject) ? readBtfStructs(layoutObject) : new Map();
  for (const layout of CHECKED_LAYOUTS) {
    it(`struct ${layout.struct} matches`, () => {
      expect(compareLayout(layout, btf.get(layout.struct))).toEqual([]);
    });
  }

  it('the probe objects lay the structs out the same way', () => {
    for (const family of ['process', 'tcp', 'syscalls', 'file', 'sched']) {
      const path = bpfObjectPath(family);
      if (!existsSync(path)) continue;
      const structs = readBtfStructs(path);
      for (const [name, s] of structs) {
        const reference = btf.get(name);
        if (reference) expect(s, `${name} in ${family}.bpf.o`).toEqual(reference);
      }
    }
  });

  it('header flags and path bounds match events.h, in TypeScript and Python', () => {
    const h = defines(join(repoRoot, 'bpf/events.h'));
    const flagsInHeader = [...h].filter(([k]) => k.startsWith('TF_FLAG_'));
    expect(Object.fromEntries(flagsInHeader)).toEqual(
      Object.fromEntries(Object.entries(Flag).map(([k, v]) => [`TF_FLAG_${k}`, v])),
    );
    expect(h.get('TF_PATH_LEN')).toBe(PATH_LEN);
    expect(h.get('TF_PATH_PREFIX_LEN')).toBe(PATH_PREFIX_LEN);
    expect(h.get('TF_PATH_COMPONENTS')).toBe(PATH_COMPONENTS);
    expect(h.get('TF_PATH_WALK_MAX')).toBe(PATH_WALK_MAX);
    const py = readFileSync(join(repoRoot, 'clients/python/tracefeed_frame.py'), 'utf8');
    for (const [name, value] of flagsInHeader) {
      const m = new RegExp(`^${name.slice(3)} = (0x[0-9a-fA-F]+)`, 'm').exec(py);
      expect(m, `${name.slice(3)} in tracefeed_frame.py`).not.toBeNull();
      expect(Number(m![1])).toBe(value);
    }
  });

  it('reports a drift: a moved field and a changed size fail the comparison', () => {
    const drifted: RecordLayout = {
      ...EXEC_LAYOUT,
      size: EXEC_LAYOUT.size + 8,
      fields: EXEC_LAYOUT.fields.map((f) =>
        f.name === 'uid' ? { ...f, offset: f.offset + 4 } : f,
      ),
    };
    const problems = compareLayout(drifted, btf.get('tf_exec_event'));
    expect(problems).toContain('tf_exec_event: size 328 in TypeScript, 320 in BTF');
    expect(problems).toContain('tf_exec_event.uid: offset 36 in TypeScript, 32 in BTF');
  });
});
