/**
 * bpf/events.h and the TypeScript decoders agree on every size and offset:
 * checked against the BTF the compiler wrote into the objects.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bpfObjectPath, repoRoot } from '../../src/common/paths.js';
import { compareLayout, readBtfStructs } from '../../src/ingest/btf-layout.js';
import { EXEC_LAYOUT, Flag, type RecordLayout } from '../../src/wire/layout.js';
import { CHECKED_LAYOUTS, PROBE_NAMES } from '../../src/families/registry.js';
import { TF_DEFINES } from '../../src/wire/layout.generated.js';

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
    for (const family of PROBE_NAMES) {
      const path = bpfObjectPath(family);
      if (!existsSync(path)) continue;
      const structs = readBtfStructs(path);
      for (const [name, s] of structs) {
        const reference = btf.get(name);
        if (reference) expect(s, `${name} in ${family}.bpf.o`).toEqual(reference);
      }
    }
  });

  it('every TF_FLAG_* of events.h is named in TypeScript and Python', () => {
    const flagsInHeader = Object.entries(TF_DEFINES).filter(([k]) => k.startsWith('TF_FLAG_'));
    expect(flagsInHeader.length).toBeGreaterThanOrEqual(4);
    expect(Object.fromEntries(flagsInHeader)).toEqual(
      Object.fromEntries(Object.entries(Flag).map(([k, v]) => [`TF_FLAG_${k}`, v])),
    );
    const py = JSON.parse(
      execFileSync(
        'python3',
        [
          '-c',
          'import json, sys; sys.path.insert(0, sys.argv[1]); import tracefeed_frame as t; ' +
            'print(json.dumps({k: v for k, v in vars(t).items() if k.startswith("FLAG_")}))',
          join(repoRoot, 'clients/python'),
        ],
        { encoding: 'utf8' },
      ),
    ) as Record<string, number>;
    expect(py).toEqual(Object.fromEntries(flagsInHeader.map(([k, v]) => [k.slice(3), v])));
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
