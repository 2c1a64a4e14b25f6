/** The governor's decisions, tick by tick: who is raised, by how much, and when it comes back. */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import {
  OverloadGovernor,
  type OverloadProbeView,
  type OverloadSinkView,
} from '../../src/ingest/overload-governor.js';

function family(
  name: string,
  eventsPerSecond: number,
): OverloadProbeView & { ringbufFull: number } {
  const p = {
    name,
    enabled: true,
    ringbufFull: 0,
    emitted: 0,
    eventsPerSecond,
    overloadN: 1,
    setOverloadFactor: (n: number) => {
      p.overloadN = n;
    },
  };
  return p;
}

const calm: OverloadSinkView = { bufferedBytes: 0, bufferMaxBytes: 1000, eventsDropped: 0 };

describe('overload governor', () => {
  it('raises the noisiest non-floor family while the sink is behind, never the floor', () => {
    const g = new OverloadGovernor({ calmSeconds: 2 }, createLogger('test', 'silent'));
    const process = family('process', 50_000);
    const tcp = family('tcp', 20_000);
    const file = family('file', 1_000);
    const all = [process, tcp, file];
    g.tick(all, calm);
    g.tick(all, { ...calm, bufferedBytes: 600 }); // past half the bound
    expect([process.overloadN, tcp.overloadN, file.overloadN]).toEqual([1, 4, 1]);
    g.tick(all, { ...calm, bufferedBytes: 600, eventsDropped: 10 });
    expect(tcp.overloadN).toBe(16);
    // Calm: one step down per calmSeconds.
    g.tick(all, { ...calm, eventsDropped: 10 });
    expect(tcp.overloadN).toBe(16);
    g.tick(all, { ...calm, eventsDropped: 10 });
    expect(tcp.overloadN).toBe(4);
    g.tick(all, { ...calm, eventsDropped: 10 });
    g.tick(all, { ...calm, eventsDropped: 10 });
    expect(tcp.overloadN).toBe(1);
    expect(g.changesByProbe()).toEqual([
      { probe: 'tcp', direction: 'up', count: 2 },
      { probe: 'tcp', direction: 'down', count: 2 },
    ]);
  });

  it('raises an overflowing ring by as many steps as its loss asks, up to the bound', () => {
    const g = new OverloadGovernor({ maxFactor: 256 }, createLogger('test', 'silent'));
    const file = family('file', 100_000);
    g.tick([file], calm);
    // 1,000 kept and 99,000 lost in a second: x100 needed, x4^4 = 256 taken at once.
    file.emitted += 1000;
    file.ringbufFull += 99_000;
    g.tick([file], calm);
    expect(file.overloadN).toBe(256);
    file.ringbufFull += 10;
    file.emitted += 1000;
    g.tick([file], calm);
    expect(file.overloadN).toBe(256); // bounded
  });

  it('never samples a floor, even when its own ring overflows', () => {
    const g = new OverloadGovernor({}, createLogger('test', 'silent'));
    const process = family('process', 1_000_000);
    g.tick([process], calm);
    process.ringbufFull += 5000;
    g.tick([process], calm);
    expect(process.overloadN).toBe(1);
  });
});
