/** The Python decoder and the TypeScript decoder read the same frame the same way. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/common/paths.js';
import { decodeFrameEvents, encodeFrame, layout } from '../../src/ingest/index.js';
import { OP_TYPE, RECORD_LAYOUTS } from '../../src/families/registry.js';

function record(op: number, size: number, fill: (b: Buffer) => void): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt8(op, 0);
  b.writeUInt32LE(size, 4);
  b.writeBigUInt64LE(123_456_789n, 8);
  fill(b);
  return b;
}

describe('python frame decoder', () => {
  it('decodes a TypeScript-encoded frame to the same events', () => {
    const exec = record(layout.Op.EXEC, layout.EXEC_LAYOUT.size, (b) => {
      const o = (n: string): number => layout.fieldOffset(layout.EXEC_LAYOUT, n);
      b.writeUInt32LE(12, 16);
      b.writeUInt32LE(100, 20);
      b.writeUInt32LE(4321, o('pid'));
      b.writeUInt32LE(1, o('ppid'));
      b.writeUInt32LE(1000, o('uid'));
      b.writeBigUInt64LE(99n, o('cgroup_id'));
      b.write('naïve-proc', o('comm'), 'utf8');
      b.write('/opt/bin/naïve-proc', o('filename'), 'utf8');
      b.writeUInt8(layout.Flag.TRUNCATED, 1);
    });
    const exit = record(layout.Op.EXIT, layout.EXIT_LAYOUT.size, (b) => {
      const o = (n: string): number => layout.fieldOffset(layout.EXIT_LAYOUT, n);
      b.writeUInt32LE(4321, o('pid'));
      b.writeInt32LE(-1, o('exit_code'));
      b.writeUInt32LE(9, o('exit_signal'));
      b.writeBigUInt64LE(5_000_000_000n, o('lifetime_ns'));
      b.write('naïve-proc', o('comm'), 'utf8');
    });
    const cgStats = record(layout.Op.CGROUP_STATS, layout.CGROUP_STATS_LAYOUT.size, (b) => {
      const L = layout.CGROUP_STATS_LAYOUT;
      L.fields
        .filter((f) => f.name !== 'hdr')
        .forEach((f, i) => b.writeBigUInt64LE(BigInt(1000 + i), f.offset));
      b.writeUInt32LE(1, 20);
    });
    const probeStats = record(layout.Op.PROBE_STATS, layout.PROBE_STATS_LAYOUT.size, (b) => {
      const o = (n: string): number => layout.fieldOffset(layout.PROBE_STATS_LAYOUT, n);
      b.writeUInt32LE(layout.Probe.FILE, o('probe'));
      b.writeUInt32LE(16, o('sample_n'));
      b.writeUInt32LE(4, o('overload_n'));
      b.writeUInt32LE(2, o('focus_count'));
      b.writeBigUInt64LE(5_000_000_000n, o('interval_ns'));
      b.writeBigUInt64LE(777n, o('emitted'));
      for (let r = 0; r < layout.DROP_REASON_MAX; r++)
        b.writeBigUInt64LE(BigInt(10 + r), o('drops') + r * 8);
      b.writeBigUInt64LE(3n, o('sink_dropped'));
    });
    const fileOpen = (flags: number, ret: number, path: string): Buffer =>
      record(layout.Op.FILE_OPEN, layout.FILE_OPEN_LAYOUT.size, (b) => {
        const o = (n: string): number => layout.fieldOffset(layout.FILE_OPEN_LAYOUT, n);
        b.writeUInt8(flags, 1);
        b.writeUInt32LE(4321, o('pid'));
        b.writeInt32LE(0o100101, o('flags'));
        b.writeInt32LE(ret, o('ret'));
        b.writeBigUInt64LE(99n, o('cgroup_id'));
        b.write('naïve-proc', o('comm'), 'utf8');
        b.write(path, o('path'), 'utf8');
      });
    const opened = fileOpen(0, 3, '/tmp/tfX/naïve.txt');
    const failed = fileOpen(layout.Flag.PATH_UNVERIFIED, -2, 'rel/../x');
    const partial = fileOpen(layout.Flag.PATH_PARTIAL | layout.Flag.TRUNCATED, 5, 'a/b');
    const frame = encodeFrame({
      node: 'nœud-1',
      bootTimeNs: 1_764_000_000_123_456_789n,
      sequence: 7n,
      chunks: [exec, exit, cgStats, probeStats, opened, failed, partial],
      eventCount: 7,
    });
    const dir = mkdtempSync(join(tmpdir(), 'tf-py-'));
    writeFileSync(join(dir, 'frame.bin'), frame);
    const out = execFileSync(
      'python3',
      [join(repoRoot, 'clients/python/tracefeed_frame.py'), join(dir, 'frame.bin')],
      {
        encoding: 'utf8',
      },
    );
    const py = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    expect(py).toEqual(JSON.parse(JSON.stringify(decodeFrameEvents(frame))));
    expect((py[0] as { truncated: boolean }).truncated).toBe(true);
    expect(py[2]).toMatchObject({
      type: 'cgroup.stats',
      probe: 'cgroup',
      attributes: {
        'cgroup.id': '1000',
        'cgroup.cpu_usage_us': 1002,
        'cgroup.memory_oom_kill': 1014,
      },
    });
    expect(py[3]).toMatchObject({
      type: 'probe.stats',
      probe: 'file',
      attributes: {
        'probe.sample_n': 16,
        'probe.overload_n': 4,
        'probe.drops.sampled_out': 12,
        'probe.sink_dropped': 3,
      },
    });
    expect(py.slice(4)).toMatchObject([
      {
        type: 'file.open',
        probe: 'file',
        truncated: false,
        attributes: {
          'file.path': '/tmp/tfX/naïve.txt',
          'file.open.result': 3,
          'file.open.flags': 0o100101,
          'file.path.verified': true,
          'file.path.partial': false,
        },
      },
      {
        attributes: {
          'file.path': 'rel/../x',
          'file.open.result': -2,
          'file.path.verified': false,
          'file.path.partial': false,
        },
      },
      {
        truncated: true,
        attributes: { 'file.path': 'a/b', 'file.path.verified': true, 'file.path.partial': true },
      },
    ]);
  });

  it('decodes every op the way the TypeScript decoder does', () => {
    // One record of every fixed-size layout, each field filled from its kind,
    // plus a cgroup.info naming the cgroup that the records carry.
    let seed = 1;
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    const chunks: Buffer[] = [];
    for (const l of RECORD_LAYOUTS) {
      const b = record(l.op, l.size, () => undefined);
      for (const f of l.fields) {
        if (f.name === 'hdr' || f.name.startsWith('pad')) continue;
        const width = f.size / f.count;
        for (let i = 0; i < f.count; i++) {
          const at = f.offset + i * width;
          if (f.kind === 'char') {
            b.write(`${f.name}-${next() % 1000}`.slice(0, f.size - 1), f.offset, 'latin1');
            break;
          } else if (f.name === 'family') b.writeUInt16LE(l.op % 2 === 0 ? 10 : 2, at);
          else if (f.name === 'cgroup_id') b.writeBigUInt64LE(4242n, at);
          else if (width === 8) b.writeBigUInt64LE(BigInt(next()), at);
          else if (width === 4) b.writeUInt32LE(next() % 2 ** 31, at);
          else if (width === 2) b.writeUInt16LE(next() % 2 ** 16, at);
          else b.writeUInt8(next() % 13, at);
        }
      }
      chunks.push(b);
    }
    const path = Buffer.from('/system.slice/docker-' + 'ab'.repeat(32) + '.scope');
    const info = record(
      layout.Op.CGROUP_INFO,
      layout.CGROUP_INFO_LAYOUT.size + Math.ceil(path.length / 8) * 8,
      (b) => {
        b.writeBigUInt64LE(4242n, layout.fieldOffset(layout.CGROUP_INFO_LAYOUT, 'cgroup_id'));
        b.writeUInt16LE(path.length, layout.fieldOffset(layout.CGROUP_INFO_LAYOUT, 'path_len'));
        path.copy(b, layout.CGROUP_INFO_LAYOUT.size);
      },
    );
    chunks.push(info);
    const frame = encodeFrame({
      node: 'node-every-op',
      bootTimeNs: 1_764_000_000_000_000_000n,
      sequence: 1n,
      chunks,
      eventCount: chunks.length,
    });
    const dir = mkdtempSync(join(tmpdir(), 'tf-py-'));
    writeFileSync(join(dir, 'frame.bin'), frame);
    const out = execFileSync(
      'python3',
      [join(repoRoot, 'clients/python/tracefeed_frame.py'), join(dir, 'frame.bin')],
      { encoding: 'utf8' },
    );
    const py = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; attributes: Record<string, unknown> });
    const ts = JSON.parse(JSON.stringify(decodeFrameEvents(frame))) as typeof py;
    expect(py.map((e) => e.type)).toEqual(ts.map((e) => e.type));
    expect(new Set(py.map((e) => e.type)).size).toBe(OP_TYPE.size);
    expect(py.some((e) => String(e.type).startsWith('unknown'))).toBe(false);
    expect(py).toEqual(ts);
    expect(py[0]?.attributes['container.id']).toBe('ab'.repeat(32));
  });

  it('rejects garbage with a named reason', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-py-'));
    writeFileSync(join(dir, 'bad.bin'), Buffer.from('definitely not a tracefeed frame, no sir'));
    let stderr = '';
    try {
      execFileSync(
        'python3',
        [join(repoRoot, 'clients/python/tracefeed_frame.py'), join(dir, 'bad.bin')],
        { encoding: 'utf8', stdio: 'pipe' },
      );
    } catch (err) {
      stderr = String((err as { stderr?: string }).stderr);
    }
    expect(stderr).toMatch(/bad frame magic/);
  });
});
