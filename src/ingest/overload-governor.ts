/**
 * Overload degrades by sampling, never by silent loss. Once a second the
 * governor looks for pressure: a ring that reported new ringbuf_full drops
 * (raised by as many steps as its overflow ratio (kept + lost) / kept asks),
 * frames buffered past a fraction of the sink's bound (Kafka slow or away), or
 * frames the sink dropped. Under pressure it raises the overload factor (x
 * `stepFactor`, up to `maxFactor`) of the families concerned: a ring's own
 * family when that ring overflowed, otherwise the noisiest non-floor family
 * by events/s. Kept records carry the weight, so weighted counts stay
 * unbiased. Once the pressure has been gone for `calmSeconds`, each raised
 * family steps back down one step per `calmSeconds` until its factor is 1.
 * Floors (`process` by default) are never sampled by the node.
 */
import { z } from 'zod';
import type { Logger } from '../common/logger.js';

export const overloadOptionsSchema = z
  .object({
    stepFactor: z
      .number()
      .int()
      .min(2)
      .max(64)
      .default(4)
      .describe('Factor of one overload step (up and down).'),
    maxFactor: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(1024)
      .describe('Largest overload factor the node applies to a family.'),
    bufferedFraction: z
      .number()
      .gt(0)
      .max(1)
      .default(0.5)
      .describe(
        'Frames buffered for Kafka past this fraction of bufferMaxBytes count as pressure.',
      ),
    calmSeconds: z
      .number()
      .int()
      .min(1)
      .max(3600)
      .default(5)
      .describe('Seconds without pressure before one step down.'),
    floors: z
      .array(z.string())
      .default(['process'])
      .describe('Families the node never samples under overload.'),
  })
  .strict();

/** Overload governor options. Defaults: stepFactor 4, maxFactor 1024, bufferedFraction 0.5, calmSeconds 5, floors ["process"]. */
export type OverloadOptions = z.infer<typeof overloadOptionsSchema>;

/** What the governor reads about one family each tick. */
export interface OverloadProbeView {
  name: string;
  enabled: boolean;
  /** Kernel ringbuf_full drops since load. */
  ringbufFull: number;
  /** Records the kernel wrote to the ring since load. */
  emitted: number;
  eventsPerSecond: number;
  overloadN: number;
  setOverloadFactor: (n: number) => void;
}

/** What the governor reads about the frame sink each tick. */
export interface OverloadSinkView {
  bufferedBytes: number;
  bufferMaxBytes: number;
  /** Events the sink dropped since start. */
  eventsDropped: number;
}

export type OverloadDirection = 'up' | 'down';

export class OverloadGovernor {
  private readonly opts: OverloadOptions;
  private readonly lastRingbufFull = new Map<string, number>();
  private readonly lastEmitted = new Map<string, number>();
  /** Ring overflow ratio of the last second per family: (kept + lost) / kept. */
  private readonly overflow = new Map<string, number>();
  private lastSinkDropped = 0;
  private calmTicks = 0;
  /** Steps taken, by `${probe}\u0000${direction}`. */
  private readonly changes = new Map<string, number>();

  constructor(
    opts: Partial<OverloadOptions>,
    private readonly log: Logger,
  ) {
    this.opts = overloadOptionsSchema.parse(opts);
  }

  /** Steps taken since start, by probe and direction. */
  changesByProbe(): Array<{ probe: string; direction: OverloadDirection; count: number }> {
    return [...this.changes].map(([k, count]) => {
      const [probe, direction] = k.split('\u0000') as [string, OverloadDirection];
      return { probe, direction, count };
    });
  }

  /** One look at the pressure; call once a second. */
  tick(probes: readonly OverloadProbeView[], sink: OverloadSinkView): void {
    const floors = new Set(this.opts.floors);
    const ringPressure: OverloadProbeView[] = [];
    for (const p of probes) {
      const before = this.lastRingbufFull.get(p.name);
      const emittedBefore = this.lastEmitted.get(p.name) ?? p.emitted;
      this.lastRingbufFull.set(p.name, p.ringbufFull);
      this.lastEmitted.set(p.name, p.emitted);
      if (before !== undefined && p.ringbufFull > before) {
        ringPressure.push(p);
        const kept = Math.max(1, p.emitted - emittedBefore);
        this.overflow.set(p.name, (kept + p.ringbufFull - before) / kept);
      }
    }
    const sinkDroppedNow = sink.eventsDropped > this.lastSinkDropped;
    this.lastSinkDropped = sink.eventsDropped;
    const sinkPressure =
      sinkDroppedNow || sink.bufferedBytes > this.opts.bufferedFraction * sink.bufferMaxBytes;

    if (ringPressure.length === 0 && !sinkPressure) {
      this.calmTicks++;
      if (this.calmTicks >= this.opts.calmSeconds) {
        for (const p of probes)
          if (p.overloadN > 1)
            this.step(p, Math.max(1, Math.floor(p.overloadN / this.opts.stepFactor)), 'down', {});
        this.calmTicks = 0;
      }
      return;
    }
    this.calmTicks = 0;
    const raise = new Set<OverloadProbeView>();
    for (const p of ringPressure) if (!floors.has(p.name)) raise.add(p);
    if (raise.size === 0) {
      // The sink (or a floor's ring) is behind: the noisiest family that can still step up.
      const noisiest = probes
        .filter((p) => p.enabled && !floors.has(p.name) && p.overloadN < this.opts.maxFactor)
        .sort((a, b) => b.eventsPerSecond - a.eventsPerSecond)[0];
      if (noisiest && noisiest.eventsPerSecond > 0) raise.add(noisiest);
    }
    for (const p of raise) {
      // A ring that lost most of a second's records is raised by as many steps as that takes at once.
      const ratio = ringPressure.includes(p) ? (this.overflow.get(p.name) ?? 1) : 1;
      const steps = Math.max(1, Math.ceil(Math.log(ratio) / Math.log(this.opts.stepFactor)));
      const next = Math.min(this.opts.maxFactor, p.overloadN * this.opts.stepFactor ** steps);
      if (next === p.overloadN) continue;
      this.step(p, next, 'up', {
        ringbufFull: ringPressure.includes(p),
        bufferedBytes: sink.bufferedBytes,
        sinkDropped: sinkDroppedNow,
      });
    }
  }

  private step(
    p: OverloadProbeView,
    next: number,
    direction: OverloadDirection,
    why: Record<string, unknown>,
  ): void {
    const from = p.overloadN;
    try {
      p.setOverloadFactor(next);
    } catch (err) {
      this.log.warn(
        { probe: p.name, from, to: next, err: (err as Error).message },
        'overload step failed',
      );
      return;
    }
    const key = `${p.name}\u0000${direction}`;
    this.changes.set(key, (this.changes.get(key) ?? 0) + 1);
    this.log.warn(
      { probe: p.name, from, to: next, direction, eventsPerSecond: p.eventsPerSecond, ...why },
      direction === 'up'
        ? 'overload: sampling raised by the node'
        : 'overload: pressure gone, sampling lowered',
    );
  }
}
