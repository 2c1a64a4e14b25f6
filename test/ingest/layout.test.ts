/**
 * bpf/events.h and the TypeScript decoders agree on every size and offset:
 * checked against the BTF the compiler wrote into the objects.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bpfObjectPath } from '../../src/common/paths.js';
import { compareLayout, readBtfStructs } from '../../src/ingest/btf-layout.js';
import {
  CHECKED_LAYOUTS,
  EXEC_LAYOUT,
  PROBE_NAMES,
  type RecordLayout,
} from '../../src/ingest/layout.js';

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
