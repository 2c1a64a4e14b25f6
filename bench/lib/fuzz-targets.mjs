// SPDX-License-Identifier: Apache-2.0
//
// Property-based fuzz targets (fast-check) shared by the short run in the
// tests (test/fuzz/*.test.ts, against src/) and the long run in the bench
// (bench/fuzz.mjs, against dist/). The modules under test are passed in, so
// that one definition serves both. Plain ESM: no TypeScript runner.

import fc from 'fast-check';

/** Longest a single case may take before it counts as a hang, ms. */
export const CASE_TIME_LIMIT_MS = 1000;

/**
 * Runs `fn`; returns undefined when it returned or threw `allowed`,
 * otherwise a description of what escaped (the property then fails).
 */
function escapes(fn, allowed, check) {
  const t0 = performance.now();
  try {
    fn();
  } catch (err) {
    if (!(err instanceof allowed))
      return `threw ${err?.constructor?.name ?? typeof err}: ${err?.message ?? String(err)}`;
    const bad = check?.(err);
    if (bad) return bad;
  }
  const ms = performance.now() - t0;
  if (ms > CASE_TIME_LIMIT_MS) return `took ${ms.toFixed(0)} ms`;
  return undefined;
}

/** A property whose predicate returns a description of the failure, thrown so the report shows it. */
function property(...args) {
  const predicate = args.pop();
  return fc.property(...args, (...values) => {
    const bad = predicate(...values);
    if (bad !== undefined) throw new Error(bad);
  });
}

/** Outcome of decoding, comparable between two runs: events as JSON, or the error. */
function outcome(fn) {
  try {
    return JSON.stringify(fn(), (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
  } catch (err) {
    return `${err.constructor.name}:${err.reason}:${err.offset}:${err.message}`;
  }
}

/**
 * @param {object} m modules under test: { encodeFrame, decodeFrame,
 *   decodeFrameEvents, DecodeError, layout, RECORD_SIZE_BY_OP, parseThresholds,
 *   parseFeedbackRequest, ConfigError, stringifyYaml, parseYaml,
 *   thresholdsYaml (text of config/thresholds.yaml) }
 * @returns {Record<string, fc.IPropertyWithHooks<unknown>>} properties whose
 *   predicate returns undefined, or a string saying what went wrong
 */
export function fuzzTargets(m) {
  const { layout } = m;
  const ops = [...m.RECORD_SIZE_BY_OP.entries()];

  /** One record of a known op with its exact size, header filled, body arbitrary. */
  const knownRecord = fc
    .tuple(fc.constantFrom(...ops), fc.uint8Array({ minLength: 0, maxLength: 600 }), fc.nat())
    .map(([[op, size], body, gen]) => {
      const b = Buffer.alloc(size);
      b.set(body.subarray(0, size));
      b.writeUInt8(op, 0);
      b.writeUInt32LE(size, 4);
      b.writeUInt32LE(gen >>> 0, 16);
      if (op === layout.Op.CGROUP_INFO) b.writeUInt16LE(b.readUInt16LE(32) % (size - 39), 32);
      return b;
    });
  /** A record of any op with any size that is a multiple of 8. */
  const anyRecord = fc
    .tuple(
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 3, max: 80 }),
      fc.uint8Array({ maxLength: 640 }),
    )
    .map(([op, words, body]) => {
      const b = Buffer.alloc(words * 8);
      b.set(body.subarray(0, b.length));
      b.writeUInt8(op, 0);
      b.writeUInt32LE(b.length, 4);
      return b;
    });
  const node = fc.string({ minLength: 1, maxLength: 40 }).filter((s) => {
    const n = Buffer.byteLength(s);
    return n >= 1 && n <= 255;
  });
  const validFrame = fc
    .tuple(
      node,
      fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      fc.array(knownRecord, { maxLength: 12 }),
    )
    .map(([n, seq, recs]) => ({
      records: recs.length,
      bytes: m.encodeFrame({
        node: n,
        bootTimeNs: 1n,
        sequence: seq,
        chunks: recs,
        eventCount: recs.length,
      }),
    }));
  const looseFrame = fc
    .tuple(
      node,
      fc.array(fc.oneof(knownRecord, anyRecord), { maxLength: 12 }),
      fc.integer({ min: -2, max: 2 }),
    )
    .map(([n, recs, countSkew]) =>
      m.encodeFrame({
        node: n,
        bootTimeNs: 1n,
        sequence: 1n,
        chunks: recs,
        eventCount: Math.max(0, recs.length + countSkew),
      }),
    );
  /** Byte-level mutations of a frame: overwrite, truncate, extend, splice. */
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('set'), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('set32'), at: fc.nat(), value: fc.nat() }),
    fc.record({ kind: fc.constant('truncate'), at: fc.nat() }),
    fc.record({
      kind: fc.constant('extend'),
      extra: fc.uint8Array({ minLength: 1, maxLength: 64 }),
    }),
  );
  const mutate = (bytes, muts) => {
    let b = Buffer.from(bytes);
    for (const mu of muts) {
      if (b.length === 0) break;
      if (mu.kind === 'set') b[mu.at % b.length] = mu.value;
      else if (mu.kind === 'set32' && b.length >= 4)
        b.writeUInt32LE(mu.value >>> 0, mu.at % (b.length - 3));
      else if (mu.kind === 'truncate') b = b.subarray(0, mu.at % b.length);
      else if (mu.kind === 'extend') b = Buffer.concat([b, mu.extra]);
    }
    return b;
  };
  const mutatedFrame = fc
    .tuple(
      fc.oneof(
        validFrame.map((f) => f.bytes),
        looseFrame,
      ),
      fc.array(mutation, { minLength: 1, maxLength: 4 }),
    )
    .map(([b, muts]) => mutate(b, muts));

  /** Decoding inside a larger buffer with random bytes around gives the same outcome (no reads outside the view). */
  const decodeProperty = (bytes, pad) => {
    const bad = escapes(
      () => m.decodeFrameEvents(bytes),
      m.DecodeError,
      (err) =>
        typeof err.reason === 'string' && Number.isInteger(err.offset)
          ? undefined
          : 'DecodeError without reason/offset',
    );
    if (bad) return bad;
    const bad2 = escapes(() => m.decodeFrame(bytes, { knownOpsOnly: true }), m.DecodeError);
    if (bad2) return bad2;
    const host = new Uint8Array(pad.length * 2 + bytes.length);
    host.set(pad, 0);
    host.set(bytes, pad.length);
    host.set(pad, pad.length + bytes.length);
    const view = host.subarray(pad.length, pad.length + bytes.length);
    if (outcome(() => m.decodeFrameEvents(bytes)) !== outcome(() => m.decodeFrameEvents(view)))
      return 'decoding differs when the frame sits inside a larger buffer';
    return undefined;
  };
  const pad = fc.uint8Array({ minLength: 1, maxLength: 32 });

  // The shipped thresholds file, parsed: the seed of the mutated documents.
  const thresholdsSource = m.parseYaml(m.thresholdsYaml);
  m.parseThresholds(m.thresholdsYaml, 'fuzz');
  const requestValid = {
    id: 'fb-1234',
    target: { nodes: ['node-a'] },
    probe: 'tcp',
    action: 'tighten',
    params: { filters: { cgroup: { allow: ['/system.slice/x.service'] } }, sample_n: 4 },
    ttl_seconds: 120,
    reason: 'retransmits',
    origin: 'rule',
    evidence: { anomaly_id: 'a@1' },
    created_at: '2025-01-01T00:00:00.000Z',
  };
  /** Replaces the value at a random path of a JSON-like object with an arbitrary one. */
  const mutatedObject = (base) =>
    fc
      .tuple(fc.array(fc.nat(), { minLength: 1, maxLength: 5 }), fc.jsonValue({ maxDepth: 3 }))
      .map(([path, value]) => {
        const root = structuredClone(base);
        let cur = root;
        for (let i = 0; i < path.length; i++) {
          if (cur === null || typeof cur !== 'object') break;
          const keys = Object.keys(cur);
          if (keys.length === 0) break;
          const k = keys[path[i] % keys.length];
          if (i === path.length - 1 || cur[k] === null || typeof cur[k] !== 'object') {
            cur[k] = value;
            break;
          }
          cur = cur[k];
        }
        return root;
      });
  const configErrorNamesPath = (prefix) => (err) => {
    if (typeof err.path !== 'string') return 'ConfigError without a path';
    if (!err.message.startsWith(prefix))
      return `message does not start with "${prefix}": ${err.message}`;
    if (err.path !== '' && !err.message.includes(err.path))
      return `message does not name path ${err.path}: ${err.message}`;
    return undefined;
  };

  return {
    'frame: arbitrary bytes': property(fc.uint8Array({ maxLength: 2048 }), pad, decodeProperty),
    'frame: mutated valid frames': property(mutatedFrame, pad, decodeProperty),
    'frame: valid frames decode whole': property(validFrame, ({ bytes, records }) => {
      try {
        const n = m.decodeFrameEvents(bytes).length;
        return n === records ? undefined : `decoded ${n} of ${records} records`;
      } catch (err) {
        return `valid frame refused: ${err.message}`;
      }
    }),
    'thresholds: arbitrary YAML text': property(fc.string({ maxLength: 400 }), (text) =>
      escapes(() => m.parseThresholds(text, 'fuzz'), m.ConfigError, configErrorNamesPath('fuzz: ')),
    ),
    'thresholds: mutated valid documents': property(mutatedObject(thresholdsSource), (doc) =>
      escapes(
        () => m.parseThresholds(m.stringifyYaml(doc), 'fuzz'),
        m.ConfigError,
        configErrorNamesPath('fuzz: '),
      ),
    ),
    'feedback request: arbitrary values': property(fc.anything({ maxDepth: 3 }), (v) =>
      escapes(
        () => m.parseFeedbackRequest(v),
        m.ConfigError,
        configErrorNamesPath('invalid feedback request: '),
      ),
    ),
    'feedback request: mutated valid requests': property(mutatedObject(requestValid), (v) =>
      escapes(
        () => m.parseFeedbackRequest(v),
        m.ConfigError,
        configErrorNamesPath('invalid feedback request: '),
      ),
    ),
  };
}

/** Frames for the Python decoder: arbitrary, valid and mutated, as one arbitrary. */
export function pythonFrameCases(m) {
  return fc.oneof(
    fc.uint8Array({ maxLength: 1024 }),
    fc
      .tuple(
        fc.string({ minLength: 1, maxLength: 20 }),
        fc.array(fc.uint8Array({ minLength: 0, maxLength: 400 }), { maxLength: 6 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        fc.nat(),
      )
      .map(([node, bodies, flips, cut]) => {
        const recs = bodies.map((body, i) => {
          const op = i % 2 === 0 ? m.layout.Op.EXEC : m.layout.Op.EXIT;
          const size = m.RECORD_SIZE_BY_OP.get(op);
          const b = Buffer.alloc(size);
          b.set(body.subarray(0, size));
          b.writeUInt8(op, 0);
          b.writeUInt32LE(size, 4);
          return b;
        });
        let f = m.encodeFrame({
          node,
          bootTimeNs: 1n,
          sequence: 1n,
          chunks: recs,
          eventCount: recs.length,
        });
        for (const [at, v] of flips) f[at % f.length] = v;
        if (cut % 3 === 0) f = f.subarray(0, cut % (f.length + 1));
        return new Uint8Array(f);
      }),
  );
}

/**
 * Feeds frames to clients/python/tracefeed_frame.py through a driver reading
 * length-prefixed cases on stdin; resolves with its JSON summary.
 */
export function pythonDriverInput(cases) {
  const parts = [];
  for (const c of cases) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(c.length, 0);
    parts.push(len, Buffer.from(c));
  }
  return Buffer.concat(parts);
}
