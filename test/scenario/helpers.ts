/**
 * One end-to-end test per incident class: a scenario session on the real
 * kernel, Kafka and Redis; the incident injected into a fresh victim while
 * the bystanders work. A user would check exactly this: the anomaly names the
 * victim, the loop raised detail for the victim in the kernel, nobody else
 * lost their rows during the TTL, and the change went away after the TTL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { layout } from '../../src/ingest/index.js';
import type { ProbeName } from '../../src/wire/layout.js';
import {
  ScenarioSession,
  type ChangeRecord,
  type IncidentName,
  type IncidentResult,
  type ScenarioCgroup,
} from '../../src/scenario/index.js';
import { BROKERS } from '../helpers/kafka.js';
import { redisUrlFrom } from '../../src/feedback/redis.js';

const REDIS = redisUrlFrom(undefined);
export const WINDOW_S = 2;
export const TTL_S = 10;

interface KernelView {
  generation: number;
  /** The probe's programs are attached (baseline on, or a focus in force). */
  attached: boolean;
  focus_count: number;
  mask: number;
  /** The victim's entry in the per-cgroup focus map, or none. */
  victim: 'focus' | 'none';
}

function kernelView(session: ScenarioSession, probe: ProbeName, cgroupId: bigint): KernelView {
  const obj = session.agent.object(probe);
  const v = obj.mapLookup('tf_config', Buffer.alloc(4))!;
  const o = (n: string): number => layout.fieldOffset(layout.PROBE_CONFIG_LAYOUT, n);
  const key = Buffer.alloc(8);
  key.writeBigUInt64LE(cgroupId);
  const programs = obj.programs();
  return {
    generation: v.readUInt32LE(o('generation')),
    attached: programs.length > 0 && programs.every((p) => p.attached),
    focus_count: v.readUInt32LE(o('focus_count')),
    mask: v.readUInt32LE(o('filter_mask')),
    victim: obj.mapLookup('tf_focus', key) !== null ? 'focus' : 'none',
  };
}

export function incidentSuite(name: IncidentName, describeWhat: string): void {
  describe(`${name}: ${describeWhat}`, () => {
    const log = createLogger('test', 'silent');
    let session: ScenarioSession;

    beforeAll(async () => {
      session = await new ScenarioSession({
        brokers: BROKERS,
        redisUrl: REDIS,
        log,
        window_seconds: WINDOW_S,
        ttl_seconds: TTL_S,
        warmup_seconds: 10,
        detect_windows: 6,
        lifetime_seconds: 120,
      }).start();
    }, 30_000);

    afterAll(async () => {
      await session?.stop();
    }, 30_000);

    it('is caught on the victim, detail raised for it in the kernel, bystanders keep their rows, reverted after the TTL', async () => {
      let during: { change: ChangeRecord; view: KernelView } | undefined;
      let victimCg: ScenarioCgroup | undefined;
      session.onApplied = (victim, change) => {
        victimCg = victim;
        during = { change, view: kernelView(session, change.probe as ProbeName, victim.id) };
      };
      const r: IncidentResult = await session.runIncident(name);
      const why = JSON.stringify(
        { anomaly: r.anomaly, elsewhere: r.anomalies_elsewhere, changes: r.changes },
        null,
        1,
      );

      // Detected on the right workload, within the detection budget.
      expect(r.detected, `no anomaly named ${r.victim}: ${why}`).toBe(true);
      expect(r.windows_to_detection).toBeLessThanOrEqual(6);

      // The loop answered for the victim, in the kernel: the probe's config moved to the
      // change's generation, the probe collects, and the victim has its own focus entry
      // while no cgroup filter narrows anyone else.
      expect(r.changes.length, `no change applied for ${r.victim}: ${why}`).toBeGreaterThan(0);
      expect(during).toBeDefined();
      const { change, view } = during!;
      // At least the change's generation: a second request of the same incident (another of
      // its metrics) may have applied by the time this one is reported.
      expect(view.generation).toBeGreaterThanOrEqual(change.generation!);
      expect(view.attached).toBe(true);
      expect(view.focus_count).toBeGreaterThan(0);
      expect(view.victim, `the change does not name the victim: ${why}`).toBe('focus');
      expect(view.mask & layout.FilterBit.ALLOW_CGROUP).toBe(0);
      expect(r.apply_ms!).toBeLessThan(5000);

      // Every change reverted after its TTL, within a window and a second of it.
      for (const c of r.changes)
        expect(c.reverted_at, `${c.request_id} not reverted`).toBeDefined();
      expect(r.revert_late_ms!).toBeGreaterThanOrEqual(-500);
      expect(r.revert_late_ms!).toBeLessThan(WINDOW_S * 1000 + 1000);
      const after = kernelView(session, change.probe as ProbeName, victimCg!.id);
      expect(after.generation).toBeGreaterThan(change.generation!);
      expect(after.victim).toBe('none');

      // Nobody else was blinded: every bystander kept, in every window of the TTL, each
      // source it had in the steady state (and at least one bystander had some to keep).
      const judged = r.bystanders.filter((b) => b.sources.length > 0 && b.windows > 0);
      expect(judged.length, JSON.stringify(r.bystanders)).toBeGreaterThan(0);
      expect(r.bystanders_kept, JSON.stringify(r.bystanders, null, 1)).toBe(true);
    }, 90_000);
  });
}
