/**
 * One CloudEvents table: the TypeScript producers build their headers with
 * cloudEventHeaders(), and the native frame sink's literals (native/src/cloudevents.h)
 * are the table's. No producer writes a `ce_*` header or an `io.tracefeed.*` type by hand.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CE_HEADERS,
  CE_SPEC_VERSION,
  CLOUD_EVENTS,
  cloudEventHeaders,
  nodeSource,
} from '../../src/common/cloudevents.js';
import { Topics } from '../../src/common/kafka.js';
import { repoRoot } from '../../src/common/paths.js';

/** `constexpr const char kName[] = "value";` of a C++ header. */
function cppConstants(path: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /constexpr\s+const\s+char\s+(k\w+)\[\]\s*=\s*"([^"]*)"\s*;/g;
  for (const m of readFileSync(path, 'utf8').matchAll(re)) out.set(m[1]!, m[2]!);
  return out;
}

function* files(dir: string, ext: RegExp): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* files(p, ext);
    else if (ext.test(e.name)) yield p;
  }
}

describe('CloudEvents headers', () => {
  it('the native frame sink uses the TypeScript table', () => {
    const c = cppConstants(join(repoRoot, 'native', 'src', 'cloudevents.h'));
    expect(c.get('kSpecVersion')).toBe(CE_SPEC_VERSION);
    expect(c.get('kHeaderSpecVersion')).toBe(CE_HEADERS.specversion);
    expect(c.get('kHeaderId')).toBe(CE_HEADERS.id);
    expect(c.get('kHeaderSource')).toBe(CE_HEADERS.source);
    expect(c.get('kHeaderType')).toBe(CE_HEADERS.type);
    expect(c.get('kHeaderTime')).toBe(CE_HEADERS.time);
    expect(c.get('kHeaderContentType')).toBe(CE_HEADERS.contentType);
    expect(c.get('kEventsType')).toBe(CLOUD_EVENTS.events.type);
    expect(c.get('kEventsContentType')).toBe(CLOUD_EVENTS.events.contentType);
    expect(`${c.get('kNodeSourcePrefix')}n1`).toBe(nodeSource('n1'));
  });

  it('no producer writes the headers by hand', () => {
    const offenders: string[] = [];
    const literal = /["'`](?:ce_(?:specversion|id|source|type|time)|io\.tracefeed\.\w+\.v\d)["'`]/;
    for (const f of files(join(repoRoot, 'src'), /\.ts$/)) {
      if (f.endsWith(join('common', 'cloudevents.ts')) || f.includes(join('console', 'web')))
        continue;
      readFileSync(f, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (literal.test(line) || /\bce_\w+:/.test(line))
            offenders.push(`${relative(repoRoot, f)}:${i + 1}`);
        });
    }
    for (const f of files(join(repoRoot, 'native', 'src'), /\.(cc|h)$/)) {
      if (f.endsWith('cloudevents.h')) continue;
      readFileSync(f, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (/"(?:ce_\w+|content-type|io\.tracefeed\.[\w.]+)"/.test(line))
            offenders.push(`${relative(repoRoot, f)}:${i + 1}`);
        });
    }
    expect(offenders).toEqual([]);
  });

  it('builds the headers of each kind from the table, ce_time only when given', () => {
    expect(cloudEventHeaders({ kind: 'anomalies', id: 'a1', source: nodeSource('n1') })).toEqual({
      ce_specversion: '1.0',
      ce_id: 'a1',
      ce_source: '/node/n1',
      ce_type: 'io.tracefeed.anomalies.v1',
      'content-type': 'application/json',
    });
    const h = cloudEventHeaders({
      kind: 'features',
      id: 'n1@t',
      source: nodeSource('n1'),
      time: '2026-01-01T00:00:00.000Z',
    });
    expect(h.ce_time).toBe('2026-01-01T00:00:00.000Z');
    expect(h['content-type']).toBe('application/vnd.apache.arrow.stream');
    for (const [kind, e] of Object.entries(CLOUD_EVENTS)) {
      expect(Object.values(Topics)).toContain(e.topic);
      expect(e.type).toBe(`io.${e.topic}`);
      expect(kind in Topics).toBe(true);
    }
  });
});
