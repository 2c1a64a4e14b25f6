#!/usr/bin/env node
/**
 * Generates the TypeScript and Python mirrors of bpf/events.h, the way bpf2go
 * does for Go: struct layouts and enums from the BTF that the compiler wrote
 * into bpf/.output/layout.bpf.o, constants from the header's TF_* macros.
 *
 *   node scripts/gen-layouts.mjs           write src/wire/layout.generated.ts
 *                                          and clients/python/tracefeed_layout.py
 *
 * The Python file also carries the op tables (event type, struct and source of
 * each op) and the source names, read from the family registry
 * (src/families/registry.ts, bundled with esbuild), so a new family's ops reach
 * the Python decoder without an edit there.
 *   node scripts/gen-layouts.mjs --check   exit 1 when either is out of date
 *   --out DIR                              outputs under DIR instead of the repository
 *
 * `npm run gen:layouts` builds the objects first. The check runs in `npm test`
 * (test/ingest/layout-generated.test.ts), so an edit of events.h without a
 * regeneration cannot land.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const header = join(repo, 'bpf/events.h');
const object = process.env.TRACEFEED_LAYOUT_OBJECT ?? join(repo, 'bpf/.output/layout.bpf.o');
// --out DIR: read and write the outputs under DIR instead of the repository (tests).
const outIndex = process.argv.indexOf('--out');
const outRoot = outIndex > 0 ? process.argv[outIndex + 1] : repo;
const outputs = {
  ts: join(outRoot, 'src/wire/layout.generated.ts'),
  py: join(outRoot, 'clients/python/tracefeed_layout.py'),
};

function fail(message) {
  console.error(`gen-layouts: ${message}`);
  process.exit(2);
}

function run(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    fail(`${cmd} ${args.join(' ')} failed: ${err.stderr || err.message}`);
  }
}

// --- BTF: structs and enums ---------------------------------------------------------------

function readBtf() {
  const types = JSON.parse(
    run('bpftool', ['-j', 'btf', 'dump', 'file', object, 'format', 'raw']),
  ).types;
  const byId = new Map(types.map((t) => [t.id, t]));
  const resolve = (id) => {
    let t = byId.get(id);
    while (t && ['TYPEDEF', 'CONST', 'VOLATILE'].includes(t.kind)) t = byId.get(t.type_id);
    return t;
  };
  const sizeOf = (id) => {
    const t = resolve(id);
    if (!t) return 0;
    if (t.kind === 'ARRAY') return t.nr_elems * sizeOf(t.type_id);
    if (t.kind === 'PTR') return 8;
    return t.size ?? 0;
  };
  /** Field kind and element count: arrays take their element's kind. */
  const kindOf = (id) => {
    const t = resolve(id);
    if (!t) fail(`BTF type ${id} is missing`);
    if (t.kind === 'ARRAY') {
      const inner = kindOf(t.type_id);
      return { kind: inner.kind, count: t.nr_elems * inner.count };
    }
    if (t.kind === 'STRUCT' || t.kind === 'UNION') return { kind: 'u8', count: t.size };
    if (t.kind === 'ENUM') return { kind: t.size === 4 ? 'u32' : `u${t.size * 8}`, count: 1 };
    if (t.kind === 'INT') {
      if (t.name === 'char') return { kind: 'char', count: 1 };
      const signed = t.encoding === 'SIGNED';
      return { kind: `${signed ? 's' : 'u'}${t.size * 8}`, count: 1 };
    }
    fail(`BTF type ${t.kind} ${t.name ?? ''} is not allowed in a record layout`);
  };
  const structs = {};
  const enums = {};
  for (const t of types) {
    if (t.kind === 'STRUCT' && t.name?.startsWith('tf_') && t.name !== 'tf_all_layouts') {
      structs[t.name] = {
        size: t.size,
        fields: t.members.map((m) => {
          if (m.bits_offset % 8 !== 0) fail(`${t.name}.${m.name} is a bit field`);
          return {
            name: m.name,
            offset: m.bits_offset / 8,
            size: sizeOf(m.type_id),
            ...kindOf(m.type_id),
          };
        }),
      };
    } else if (t.kind === 'ENUM' && t.name?.startsWith('tf_')) {
      enums[t.name] = Object.fromEntries(t.values.map((v) => [v.name, v.val]));
    }
  }
  if (!structs.tf_event_header) fail(`${object} has no struct tf_event_header in its BTF`);
  for (const e of ['tf_op', 'tf_probe', 'tf_drop_reason'])
    if (!enums[e]) fail(`${object} has no enum ${e} in its BTF (bpf/layout.bpf.c must use it)`);
  return { structs, enums };
}

// --- macros -------------------------------------------------------------------------------

function readDefines(enums) {
  const known = Object.assign({}, ...Object.values(enums));
  const raw = run('clang', ['-dM', '-E', '-x', 'c', header]);
  const pending = new Map();
  for (const line of raw.split('\n')) {
    const m = /^#define (TF_[A-Z0-9_]+) (.+)$/.exec(line);
    if (m) pending.set(m[1], m[2].trim());
  }
  const defines = {};
  // Integer expressions over literals, other TF_ macros and enum constants.
  for (let pass = 0; pass < 8 && pending.size > 0; pass++) {
    for (const [name, expr] of pending) {
      const substituted = expr.replace(/\bTF_[A-Z0-9_]+\b/g, (id) =>
        id in defines ? String(defines[id]) : id in known ? String(known[id]) : id,
      );
      if (/TF_/.test(substituted)) continue;
      if (!/^[0-9a-fA-FxXuUlL\s()*+\-<>|&~]+$/.test(substituted))
        fail(`macro ${name} (${expr}) is not an integer expression`);
      defines[name] = Function(
        `"use strict"; return (${substituted.replace(/([0-9])[uUlL]+\b/g, '$1')});`,
      )();
      pending.delete(name);
    }
  }
  if (pending.size > 0) fail(`cannot evaluate macros: ${[...pending.keys()].join(', ')}`);
  return Object.fromEntries(Object.entries(defines).sort(([a], [b]) => a.localeCompare(b)));
}

// --- output -------------------------------------------------------------------------------

const sorted = (o) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));

/** A struct table, one line per field: `open`/`close` are the language's object brackets. */
function structTable(structs, indent) {
  const out = ['{'];
  for (const [name, s] of Object.entries(sorted(structs))) {
    out.push(
      `${indent}"${name}": {`,
      `${indent}${indent}"size": ${s.size},`,
      `${indent}${indent}"fields": [`,
    );
    for (const f of s.fields) out.push(`${indent}${indent}${indent}${JSON.stringify(f)},`);
    out.push(`${indent}${indent}],`, `${indent}},`);
  }
  out.push('}');
  return out.join('\n');
}

function tsOutput({ structs, enums, defines }) {
  const lines = [
    '/**',
    ` * Generated by scripts/gen-layouts.mjs from the BTF of bpf/.output/layout.bpf.o and the`,
    ` * TF_* macros of bpf/events.h. Do not edit: change events.h and run \`npm run gen:layouts\`.`,
    ' */',
    '/* eslint-disable */',
    '',
    '/** The TF_* macros of bpf/events.h. */',
    `export const TF_DEFINES = ${JSON.stringify(defines, null, 2)} as const;`,
    '',
    '/** The tf_* enums of bpf/events.h. */',
    `export const TF_ENUMS = ${JSON.stringify(sorted(enums), null, 2)} as const;`,
    '',
    '/** The tf_* structs of bpf/events.h: size and fields (offset and size in bytes; count: elements). */',
    `export const TF_STRUCTS = ${structTable(structs, '  ')} as const;`,
    '',
    'export type TfStructName = keyof typeof TF_STRUCTS;',
    '',
  ];
  return lines.join('\n');
}

/**
 * The registry's op tables, from src/families/registry.ts as it is on disk (bundled,
 * packages left to node_modules): what each op is called, its struct and its source.
 */
async function readRegistry() {
  const out = await build({
    entryPoints: [join(repo, 'src/families/registry.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    write: false,
    logLevel: 'error',
  });
  // Under node_modules so that the bundle's package imports resolve.
  const dir = mkdtempSync(join(repo, 'node_modules', '.gen-layouts-'));
  try {
    const file = join(dir, 'registry.mjs');
    writeFileSync(file, out.outputFiles[0].text);
    const r = await import(pathToFileURL(file).href);
    const structOf = new Map(
      [...r.FAMILY_OPS.map((o) => o.layout), ...r.CHECKED_LAYOUTS]
        .filter((l) => l.op > 0)
        .map((l) => [l.op, l.struct]),
    );
    const ops = [...r.OP_TYPE.keys()].sort((a, b) => a - b);
    for (const op of ops) if (!structOf.has(op)) fail(`op ${op} has no struct in the registry`);
    return {
      opType: Object.fromEntries(ops.map((op) => [op, r.OP_TYPE.get(op)])),
      structOfOp: Object.fromEntries(ops.map((op) => [op, structOf.get(op)])),
      probeOfOp: Object.fromEntries([...r.PROBE_OF_OP].sort((a, b) => a[0] - b[0])),
      sourceNames: [...r.SOURCE_NAMES],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A Python dict literal keyed by op number. */
function pyOpTable(table) {
  const rows = Object.entries(table).map(([op, v]) => `    ${op}: ${JSON.stringify(v)},`);
  return ['{', ...rows, '}'].join('\n');
}

function pyOutput({ structs, enums, defines, registry }) {
  const py = (v) => JSON.stringify(v, null, 4);
  return [
    '"""Generated by scripts/gen-layouts.mjs from the BTF of bpf/.output/layout.bpf.o and the',
    'TF_* macros of bpf/events.h. Do not edit: change events.h and run `npm run gen:layouts`.',
    '',
    'TF_STRUCTS[name] = {"size": bytes, "fields": [{"name", "offset", "size", "kind", "count"}]}',
    '"""',
    '',
    `TF_DEFINES = ${py(defines)}`,
    '',
    `TF_ENUMS = ${py(sorted(enums))}`,
    '',
    `TF_STRUCTS = ${structTable(structs, '    ')}`,
    '',
    '# From the family registry (src/families/registry.ts): by op number, the event type,',
    '# the struct of events.h, and the source (a family; frame ops have none).',
    `OP_TYPE = ${pyOpTable(registry.opType)}`,
    '',
    `STRUCT_OF_OP = ${pyOpTable(registry.structOfOp)}`,
    '',
    `PROBE_OF_OP = ${pyOpTable(registry.probeOfOp)}`,
    '',
    '# enum tf_probe order: one source per family',
    `SOURCE_NAMES = ${JSON.stringify(registry.sourceNames)}`,
    '',
  ].join('\n');
}

const btf = readBtf();
const model = { ...btf, defines: readDefines(btf.enums) };
const check = process.argv.includes('--check');
const tsWanted = tsOutput(model);
// The registry reads the TypeScript layouts: written first when generating.
if (!check && outRoot === repo) writeFileSync(outputs.ts, tsWanted);
const wanted = { ts: tsWanted, py: pyOutput({ ...model, registry: await readRegistry() }) };

if (check) {
  const stale = Object.entries(outputs).filter(([k, path]) => {
    let current = '';
    try {
      current = readFileSync(path, 'utf8');
    } catch {
      /* missing counts as stale */
    }
    return current !== wanted[k];
  });
  if (stale.length > 0) {
    console.error(
      `gen-layouts: out of date with bpf/events.h: ${stale.map(([, p]) => relative(outRoot, p)).join(', ')}; run \`npm run gen:layouts\` and commit the result`,
    );
    process.exit(1);
  }
  console.log('gen-layouts: generated layouts are current');
} else {
  for (const [k, path] of Object.entries(outputs)) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, wanted[k]);
  }
  console.log(
    `gen-layouts: wrote ${Object.values(outputs)
      .map((p) => relative(outRoot, p))
      .join(', ')}`,
  );
}
