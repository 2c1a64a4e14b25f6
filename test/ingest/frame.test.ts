import { describe, expect, it } from 'vitest';
import { DecodeError } from '../../src/common/errors.js';
import { decodeFrame, decodeFrameEvents, encodeFrame, layout } from '../../src/ingest/index.js';

const { EXEC_LAYOUT, EXIT_LAYOUT, Op, fieldOffset } = layout;
const X = (name: string): number => fieldOffset(EXEC_LAYOUT, name);
const Y = (name: string): number => fieldOffset(EXIT_LAYOUT, name);

function execRecord(pid: number, comm: string, filename: string, ktime: bigint): Buffer {
  const b = Buffer.alloc(EXEC_LAYOUT.size);
  b.writeUInt8(Op.EXEC, 0);
  b.writeUInt32LE(EXEC_LAYOUT.size, 4);
  b.writeBigUInt64LE(ktime, 8);
  b.writeUInt32LE(1, 20); // sample weight
  b.writeUInt32LE(pid, X('pid'));
  b.writeUInt32LE(1, X('ppid'));
  b.writeUInt32LE(0, X('uid'));
  b.writeBigUInt64LE(4242n, X('cgroup_id'));
  b.write(comm, X('comm'), 'utf8');
  b.write(filename, X('filename'), 'utf8');
  return b;
}

function exitRecord(pid: number, code: number, ktime: bigint): Buffer {
  const b = Buffer.alloc(EXIT_LAYOUT.size);
  b.writeUInt8(Op.EXIT, 0);
  b.writeUInt32LE(EXIT_LAYOUT.size, 4);
  b.writeBigUInt64LE(ktime, 8);
  b.writeUInt32LE(3, 16); // generation
  b.writeUInt32LE(1, 20);
  b.writeUInt32LE(pid, Y('pid'));
  b.writeInt32LE(code, Y('exit_code'));
  b.writeBigUInt64LE(1_500_000n, Y('lifetime_ns'));
  b.write('worker', Y('comm'), 'utf8');
  return b;
}

const boot = 1_700_000_000_000_000_000n;

describe('event frame v1', () => {
  it('round-trips records, node, sequence and event time', () => {
    const chunk = Buffer.concat([
      execRecord(77, 'worker', '/usr/bin/worker', 5n),
      exitRecord(77, 3, 9n),
    ]);
    const value = encodeFrame({
      node: 'node-a',
      bootTimeNs: boot,
      sequence: 12n,
      chunks: [chunk],
      eventCount: 2,
    });
    expect(value.byteLength % 8).toBe(0);
    const frame = decodeFrame(value);
    expect(frame.node).toBe('node-a');
    expect(frame.sequence).toBe(12n);
    expect(frame.eventCount).toBe(2);
    const [exec, exit] = decodeFrameEvents(value);
    expect(exec?.type).toBe('process.exec');
    expect(exec?.attributes['process.pid']).toBe(77);
    expect(exec?.attributes['process.executable.path']).toBe('/usr/bin/worker');
    expect(exec?.attributes['process.executable.name']).toBe('worker');
    expect(exec?.time_unix_nano).toBe((boot + 5n).toString());
    expect(exit?.type).toBe('process.exit');
    expect(exit?.attributes['process.exit.code']).toBe(3);
    expect(exit?.attributes['process.lifetime_ns']).toBe(1_500_000);
    expect(exit?.generation).toBe(3);
    expect(exit?.sample_weight).toBe(1);
  });

  const good = encodeFrame({
    node: 'n',
    bootTimeNs: boot,
    sequence: 0n,
    chunks: [execRecord(1, 'a', '/a', 1n)],
    eventCount: 1,
  });

  const cases: Array<[string, () => Uint8Array, string]> = [
    [
      'garbage bytes',
      () => Buffer.from('hello, this is not a frame at all, not even close'),
      'bad-magic',
    ],
    ['a short buffer', () => Buffer.alloc(10), 'truncated'],
    ['a cut frame', () => good.subarray(0, good.byteLength - 8), 'truncated'],
    [
      'an unknown version',
      () => {
        const b = Buffer.from(good);
        b.writeUInt16LE(9, 4);
        return b;
      },
      'unsupported-version',
    ],
    [
      'a wrong event count',
      () => {
        const b = Buffer.from(good);
        b.writeUInt32LE(2, 8);
        return b;
      },
      'count-mismatch',
    ],
    [
      'an absurd event count',
      () => {
        const b = Buffer.from(good);
        b.writeUInt32LE(0xffffffff, 8);
        return b;
      },
      'count-mismatch',
    ],
    [
      'a record size that breaks alignment',
      () => {
        const b = Buffer.from(good);
        b.writeUInt32LE(13, 48 + 4); // first record's size field
        return b;
      },
      'bad-record-size',
    ],
    [
      'a known op with the wrong size',
      () => {
        const b = Buffer.from(good);
        b.writeUInt8(Op.EXIT, 48);
        return b;
      },
      'bad-record-size',
    ],
  ];
  for (const [what, make, reason] of cases) {
    it(`rejects ${what} with reason ${reason}`, () => {
      let caught: unknown;
      try {
        decodeFrame(make());
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(DecodeError);
      expect((caught as DecodeError).reason).toBe(reason);
    });
  }

  it('keeps records of unknown ops, sized by their header', () => {
    const unknown = Buffer.alloc(32);
    unknown.writeUInt8(200, 0);
    unknown.writeUInt32LE(32, 4);
    const value = encodeFrame({
      node: 'n',
      bootTimeNs: boot,
      sequence: 1n,
      chunks: [unknown, exitRecord(5, 0, 2n)],
      eventCount: 2,
    });
    const events = decodeFrameEvents(value);
    expect(events.map((e) => e.type)).toEqual(['unknown.200', 'process.exit']);
  });

  it('refuses an empty or oversized node name', () => {
    expect(() =>
      encodeFrame({ node: '', bootTimeNs: boot, sequence: 0n, chunks: [], eventCount: 0 }),
    ).toThrow(/node name/);
    expect(() =>
      encodeFrame({
        node: 'x'.repeat(300),
        bootTimeNs: boot,
        sequence: 0n,
        chunks: [],
        eventCount: 0,
      }),
    ).toThrow(/node name/);
  });
});
