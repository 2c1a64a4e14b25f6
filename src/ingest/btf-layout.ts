/**
 * Reads struct layouts from a BPF object's BTF (through `bpftool -j btf dump`)
 * and compares them with the TypeScript mirrors in layout.ts.
 */
import { execFileSync } from 'node:child_process';
import type { RecordLayout } from '../wire/layout.js';

interface BtfMember {
  name: string;
  type_id: number;
  bits_offset: number;
}
interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: BtfMember[];
}

export interface BtfStruct {
  name: string;
  size: number;
  members: Array<{ name: string; offset: number; size: number }>;
}

export function readBtfStructs(objectPath: string): Map<string, BtfStruct> {
  const out = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', objectPath, 'format', 'raw'], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const types = (JSON.parse(out) as { types: BtfType[] }).types;
  const byId = new Map(types.map((t) => [t.id, t]));
  const sizeOf = (id: number): number => {
    const t = byId.get(id);
    if (!t) return 0;
    switch (t.kind) {
      case 'INT':
      case 'STRUCT':
      case 'UNION':
      case 'ENUM':
        return t.size ?? 0;
      case 'ARRAY':
        return (t.nr_elems ?? 0) * sizeOf(t.type_id ?? 0);
      case 'TYPEDEF':
      case 'CONST':
      case 'VOLATILE':
        return sizeOf(t.type_id ?? 0);
      case 'PTR':
        return 8;
      default:
        return 0;
    }
  };
  const structs = new Map<string, BtfStruct>();
  for (const t of types) {
    if (t.kind !== 'STRUCT' || !t.name?.startsWith('tf_')) continue;
    structs.set(t.name, {
      name: t.name,
      size: t.size ?? 0,
      members: (t.members ?? []).map((m) => ({
        name: m.name,
        offset: m.bits_offset / 8,
        size: sizeOf(m.type_id),
      })),
    });
  }
  return structs;
}

/** Differences between a TypeScript layout and the compiled struct; empty when they agree. */
export function compareLayout(ts: RecordLayout, btf: BtfStruct | undefined): string[] {
  if (!btf) return [`struct ${ts.struct} is not in the object's BTF`];
  const problems: string[] = [];
  if (btf.size !== ts.size)
    problems.push(`${ts.struct}: size ${ts.size} in TypeScript, ${btf.size} in BTF`);
  for (const m of btf.members) {
    const f = ts.fields.find((x) => x.name === m.name);
    if (!f) {
      problems.push(`${ts.struct}.${m.name}: in BTF (offset ${m.offset}) but not in TypeScript`);
      continue;
    }
    if (f.offset !== m.offset)
      problems.push(`${ts.struct}.${m.name}: offset ${f.offset} in TypeScript, ${m.offset} in BTF`);
    if (f.size !== m.size)
      problems.push(`${ts.struct}.${m.name}: size ${f.size} in TypeScript, ${m.size} in BTF`);
  }
  for (const f of ts.fields) {
    if (!btf.members.some((m) => m.name === f.name))
      problems.push(`${ts.struct}.${f.name}: in TypeScript but not in BTF`);
  }
  return problems;
}
