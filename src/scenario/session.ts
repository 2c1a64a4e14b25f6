/**
 * A scenario session: the real node pipeline on this host (node agent,
 * feature stage, feedback controller and this node's worker, as `tracefeed up`
 * wires them) with short windows and TTLs and a node name of its own, three
 * bystander workloads that keep working, and incidents injected one at a
 * time into a fresh victim workload. It records what a user would look at:
 * anomalies, the audit trail, feature rows per window, and bytes to Kafka.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import type { Logger } from '../common/logger.js';
import { repoRoot } from '../common/paths.js';
import { ensureTopics } from '../common/kafka.js';
import { DEFAULT_AGENT_OPTIONS, NodeAgent } from '../ingest/index.js';
import { PROBE_NAMES } from '../families/registry.js';
import type { ProbePatch } from '../wire/probe-settings.js';
import type { ProbeName } from '../wire/layout.js';
import { FeatureStage, type Anomaly } from '../features/index.js';
import {
  AuditTrail,
  FeedbackController,
  NodeFeedbackWorker,
  readAudit,
  type AuditRecord,
} from '../feedback/index.js';
import { ScenarioCgroup } from './cgroup.js';
import { LossyLink } from './netns.js';
import { INCIDENTS, type IncidentContext, type IncidentName } from './incidents.js';
import { batchScript, cronScript, serviceScript, type Workload } from './workloads.js';

export type Row = Record<string, string | number | null>;

export interface SessionOptions {
  brokers: string[];
  redisUrl: string;
  log: Logger;
  /** Feature window, seconds. Default 2. */
  window_seconds?: number;
  /** TTL of every rule's change, seconds. Default 10. */
  ttl_seconds?: number;
  /** Normal behaviour of a new victim before its incident, seconds. Default 10. */
  warmup_seconds?: number;
  /** Windows the incident may take to be detected before it counts as missed. Default 6. */
  detect_windows?: number;
  /** Thresholds the session's rules come from (TTLs and cooldowns are shortened). Default config/thresholds.yaml. */
  thresholds_path?: string;
  /** `adaptive`: the default probe set and the feedback loop; `full`: every family on at full rate, no feedback. */
  mode?: 'adaptive' | 'full';
  /** Longest life of any workload process, seconds. Default 600. */
  lifetime_seconds?: number;
}

export interface ChangeRecord {
  request_id: string;
  probe: string;
  action: string;
  rule_reason: string;
  params: Record<string, unknown>;
  /** Settings of the probe after the change (request, filters, focus). */
  applied_settings?: Record<string, unknown>;
  generation?: number;
  applied_at: string;
  reverted_at?: string;
  revert_reason?: string;
  ttl_seconds?: number;
}

export interface BystanderCheck {
  workload: string;
  name: string;
  /** Sources the bystander had rows of in every steady window before the incident. */
  sources: string[];
  /** Windows closed during the TTL, and those missing a row of one of `sources`. */
  windows: number;
  missing: Array<{ window_start: string; source: string }>;
}

export interface IncidentResult {
  incident: IncidentName;
  title: string;
  victim: string;
  victim_cgroup_id: string;
  injected_at: string;
  cleared_at: string;
  detected: boolean;
  /** The first anomaly naming the victim's workload. */
  anomaly?: Pick<
    Anomaly,
    | 'id'
    | 'metric'
    | 'probe'
    | 'severity'
    | 'window_start'
    | 'detected_at'
    | 'observed'
    | 'baseline'
  >;
  /** Other workloads an anomaly named during the incident (misattribution shows here). */
  anomalies_elsewhere: string[];
  windows_to_detection: number | null;
  changes: ChangeRecord[];
  /** From the anomaly to the first change in the kernel, ms. */
  apply_ms: number | null;
  /** From the change to its revert minus its TTL, ms (the revert's lateness). */
  revert_late_ms: number | null;
  bystanders: BystanderCheck[];
  /** Every bystander kept its rows through every TTL; null when nothing was changed. */
  bystanders_kept: boolean | null;
  /** Kernel view of a change, filled by `onApplied` callers (tests). */
  notes: string[];
}

export interface BytesSample {
  t_ms: number;
  bytes: number;
}

export interface TimelineAction {
  t_ms: number;
  kind: 'applied' | 'reverted' | 'anomaly';
  label: string;
}

export interface SessionSummary {
  node: string;
  mode: 'adaptive' | 'full';
  started_at: string;
  seconds: number;
  bytes_sent: number;
  bytes_per_second: number;
  samples: BytesSample[];
  spans: Array<{ incident: IncidentName; start_ms: number; end_ms: number }>;
  actions: TimelineAction[];
}

/** A row's source: `source` where rows carry one, else its probe. */
export const rowSource = (r: Row): string => String(r.source ?? r.probe);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(timeoutMs: number, f: () => T | undefined | false): Promise<T | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) return undefined;
    await sleep(100);
  }
}

/** Settings of every family at full rate: everything streamed, nothing sampled. */
export const FULL_RATE: Partial<Record<ProbeName, ProbePatch>> = {
  process: { enabled: true, sample_n: 1 },
  tcp: { enabled: true, sample_n: 1, min_duration_ms: 0 },
  syscalls: { enabled: true, sample_n: 1, slow_ms: 0.001 },
  file: { enabled: true, sample_n: 1, min_duration_ms: 0 },
  sched: { enabled: true, sample_n: 1 },
};

/** The session's thresholds: the given file's rules with the session's TTL and a 1 s cooldown. */
export function scenarioThresholds(path: string, ttlSeconds: number): string {
  const t = parseYaml(readFileSync(path, 'utf8')) as Record<string, unknown>;
  t.cooldown_seconds = 1;
  t.default_ttl_seconds = ttlSeconds;
  const rules = (t.rules ?? []) as Array<Record<string, unknown>>;
  for (const r of rules) r.ttl_seconds = ttlSeconds;
  const probes = (t.probes ?? {}) as Record<string, Record<string, unknown>>;
  for (const p of Object.values(probes)) delete p.cooldown_seconds;
  return toYaml(t);
}

export class ScenarioSession {
  readonly node = `scn-${randomBytes(3).toString('hex')}`;
  readonly windowSeconds: number;
  readonly ttlSeconds: number;
  readonly mode: 'adaptive' | 'full';
  readonly dir: string;
  agent!: NodeAgent;
  stage!: FeatureStage;
  audit: AuditTrail | undefined;
  worker: NodeFeedbackWorker | undefined;
  controller: FeedbackController | undefined;
  readonly anomalies: Anomaly[] = [];
  /** This node's feature rows by window start. */
  readonly windows = new Map<string, Row[]>();
  readonly bystanders: Workload[] = [];
  private readonly startedAt = Date.now();
  private readonly samples: BytesSample[] = [];
  private readonly spans: SessionSummary['spans'] = [];
  private readonly actions: TimelineAction[] = [];
  private sampler: NodeJS.Timeout | undefined;
  private readonly cleanups: Array<() => void> = [];
  private readonly lifetimeMs: number;

  constructor(private readonly o: SessionOptions) {
    this.windowSeconds = o.window_seconds ?? 2;
    this.ttlSeconds = o.ttl_seconds ?? 10;
    this.mode = o.mode ?? 'adaptive';
    this.lifetimeMs = (o.lifetime_seconds ?? 600) * 1000;
    this.dir = mkdtempSync(join('/var/tmp', 'tf-scenario-'));
  }

  async start(): Promise<this> {
    const log = this.o.log;
    try {
      await ensureTopics(this.o.brokers, log);
      this.stage = new FeatureStage(
        {
          brokers: this.o.brokers,
          group_id: `tracefeed-features-scenario-${randomUUID()}`,
          window_seconds: this.windowSeconds,
          allowed_lateness_seconds: 0,
          idle_close_seconds: 1,
          data_dir: join(this.dir, 'features'),
          http_port: 0,
          anomaly: { warmup_windows: 3 },
        },
        log,
      );
      this.stage.onWindow((w) => {
        const mine = w.rows.filter((r) => r.node === this.node);
        if (mine.length > 0) {
          const key = String(mine[0]!.window_start);
          this.windows.set(key, [...(this.windows.get(key) ?? []), ...mine]);
        }
        for (const a of w.anomalies) {
          if (a.node !== this.node) continue;
          this.anomalies.push(a);
          // The timeline marks anomalies on the scenario's own workloads only.
          if (a.workload.startsWith('/tf-scn-'))
            this.actions.push({
              t_ms: Date.parse(a.detected_at) - this.startedAt,
              kind: 'anomaly',
              label: `${a.metric} on ${a.workload}`,
            });
        }
      });
      await this.stage.start();
      const full = this.mode === 'full';
      this.agent = new NodeAgent({
        ...DEFAULT_AGENT_OPTIONS,
        nodeName: this.node,
        brokers: this.o.brokers,
        lingerMs: 100,
        // Summaries and the cgroup signals twice a window, as with the default 10 s windows.
        summaryIntervalMs: Math.min(
          DEFAULT_AGENT_OPTIONS.summaryIntervalMs,
          (this.windowSeconds * 1000) / 2,
        ),
        log,
        ...(full ? { families: PROBE_NAMES, probes: FULL_RATE } : {}),
      });
      this.agent.start();
      if (!full) {
        const thresholds = join(this.dir, 'thresholds.yaml');
        writeFileSync(
          thresholds,
          scenarioThresholds(
            this.o.thresholds_path ?? join(repoRoot, 'config', 'thresholds.yaml'),
            this.ttlSeconds,
          ),
        );
        this.audit = new AuditTrail({
          brokers: this.o.brokers,
          log,
          path: join(this.dir, 'audit.jsonl'),
        });
        this.worker = await new NodeFeedbackWorker(this.agent, {
          node: this.node,
          redisUrl: this.o.redisUrl,
          audit: this.audit,
          log,
        }).start();
        this.controller = await new FeedbackController({
          brokers: this.o.brokers,
          redisUrl: this.o.redisUrl,
          thresholdsPath: thresholds,
          audit: this.audit,
          log,
          groupId: `tracefeed-feedback-scenario-${randomUUID()}`,
        }).start();
        await this.controller.ready;
      }
      this.startBystanders();
      this.sampler = setInterval(() => this.sample(), 500);
      this.sample();
    } catch (err) {
      await this.stop();
      throw err;
    }
    return this;
  }

  private sample(): void {
    this.samples.push({
      t_ms: Date.now() - this.startedAt,
      bytes: this.agent.stats().publisher.bytesSent,
    });
  }

  private startBystanders(): void {
    const port = 20_000 + (randomBytes(2).readUInt16LE(0) % 20_000);
    const defs: Array<[string, string]> = [
      ['service', serviceScript(port, this.lifetimeMs)],
      ['batch', batchScript(this.dir, this.lifetimeMs)],
      ['cron', cronScript(this.lifetimeMs)],
    ];
    for (const [name, script] of defs) {
      const cgroup = new ScenarioCgroup(`tf-scn-${name}`);
      this.cleanups.push(() => cgroup.remove());
      cgroup.node(script);
      this.bystanders.push({ name, cgroup });
    }
  }

  /** The audit records of this node's requests (submitted ones joined by request id). */
  auditRecords(): AuditRecord[] {
    if (!this.audit) return [];
    const all = readAudit(this.audit.path);
    const mine = new Set(all.filter((r) => r.node === this.node).map((r) => r.request_id));
    return all.filter((r) => mine.has(r.request_id));
  }

  /** Changes made for a workload: each applied request whose submitted request names it. */
  changesFor(workload: string): ChangeRecord[] {
    const recs = this.auditRecords();
    const out: ChangeRecord[] = [];
    for (const sub of recs.filter((r) => r.state === 'submitted')) {
      const req = (sub.data?.request ?? {}) as Record<string, unknown>;
      if (req.workload !== workload) continue;
      const applied = recs.find((r) => r.request_id === sub.request_id && r.state === 'applied');
      if (!applied) continue;
      const a = (applied.data?.applied ?? {}) as Record<string, unknown>;
      const reverted = recs.find((r) => r.request_id === sub.request_id && r.state === 'reverted');
      out.push({
        request_id: sub.request_id,
        probe: String(req.probe),
        action: String(req.action),
        rule_reason: sub.reason ?? '',
        params: (req.params ?? {}) as Record<string, unknown>,
        ...(a.applied ? { applied_settings: a.applied as Record<string, unknown> } : {}),
        ...(typeof a.generation === 'number' ? { generation: a.generation } : {}),
        ...(typeof a.ttl_seconds === 'number' ? { ttl_seconds: a.ttl_seconds } : {}),
        applied_at: typeof a.applied_at === 'string' ? a.applied_at : applied.at,
        ...(reverted ? { reverted_at: reverted.at, revert_reason: reverted.reason ?? '' } : {}),
      });
    }
    return out.sort((x, y) => Date.parse(x.applied_at) - Date.parse(y.applied_at));
  }

  /** Hook for callers that check the kernel while a change is in force (tests). */
  onApplied: ((victim: ScenarioCgroup, change: ChangeRecord) => void | Promise<void>) | undefined;

  /**
   * Injects one incident into a fresh victim: normal behaviour for the warm-up,
   * then the fault until the loop has answered (or detection timed out), then
   * waits for every change made for the victim to revert.
   */
  async runIncident(name: IncidentName): Promise<IncidentResult> {
    const cls = INCIDENTS[name];
    const win = this.windowSeconds * 1000;
    const victim = new ScenarioCgroup(`tf-scn-victim-${name}`, cls.limits ?? {});
    let link: LossyLink | undefined;
    let stopFault: (() => void) | undefined;
    // Removed by stop() too, should the session end while the incident runs.
    const cleanup = (): void => {
      stopFault?.();
      victim.remove();
      link?.destroy();
    };
    this.cleanups.push(cleanup);
    const notes: string[] = [];
    try {
      const ctx: IncidentContext = {
        victim,
        port: 20_000 + (randomBytes(2).readUInt16LE(0) % 20_000),
        dir: this.dir,
        lifetimeMs: Math.min(this.lifetimeMs, 180_000),
      };
      if (cls.needsLink) {
        link = new LossyLink().create();
        ctx.link = link;
        ctx.linkPort = 20_000 + (randomBytes(2).readUInt16LE(0) % 20_000);
        await link.startSink(ctx.linkPort, ctx.lifetimeMs);
      }
      cls.normal(ctx);
      await sleep((this.o.warmup_seconds ?? 10) * 1000);
      const injectedAt = Date.now();
      victim.applyLimits();
      stopFault = cls.inject(ctx);
      const detectMs = (this.o.detect_windows ?? 6) * win;
      // Detected as this incident: an anomaly on the victim in one of the class's signals
      // (a crash-looping allocator also raises exit_count, which explains nothing).
      const findAnomaly = (): Anomaly | undefined =>
        this.anomalies.find(
          (a) =>
            a.workload === victim.path &&
            cls.signals.includes(a.metric) &&
            Date.parse(a.detected_at) >= injectedAt,
        );
      // Everything on: the same fault for as long as an adaptive run holds it at most.
      if (this.mode === 'full') await sleep(detectMs);
      const anomaly = this.mode === 'full' ? findAnomaly() : await until(detectMs, findAnomaly);
      let changes: ChangeRecord[] = [];
      if (anomaly && this.mode === 'adaptive') {
        // The loop's answer: a change for the victim applied in the kernel.
        changes =
          (await until(Math.max(3 * win, 5000), () => {
            const c = this.changesFor(victim.path);
            return c.length > 0 ? c : undefined;
          })) ?? [];
        if (changes[0] && this.onApplied) await this.onApplied(victim, changes[0]);
        await sleep(win);
      }
      stopFault();
      stopFault = undefined;
      const clearedAt = Date.now();
      if (changes.length > 0) {
        // Every change made for the victim reverts after its TTL.
        await until(
          (this.ttlSeconds + 4) * this.windowSeconds * 1000 + this.ttlSeconds * 1000,
          () => {
            changes = this.changesFor(victim.path);
            return changes.every((c) => c.reverted_at) ? changes : undefined;
          },
        );
        // The last window of the TTL must be closed before the rows are judged.
        await sleep(win + 1500);
        changes = this.changesFor(victim.path);
      }
      for (const c of changes) {
        this.actions.push({
          t_ms: Date.parse(c.applied_at) - this.startedAt,
          kind: 'applied',
          label: `${c.action} ${c.probe}`,
        });
        if (c.reverted_at)
          this.actions.push({
            t_ms: Date.parse(c.reverted_at) - this.startedAt,
            kind: 'reverted',
            label: `revert ${c.probe}`,
          });
      }
      this.spans.push({
        incident: name,
        start_ms: injectedAt - this.startedAt,
        end_ms: clearedAt - this.startedAt,
      });
      const first = changes[0];
      const lastRevert = changes.reduce<number | null>(
        (m, c) => (c.reverted_at ? Math.max(m ?? 0, Date.parse(c.reverted_at)) : m),
        null,
      );
      const bystanders = first
        ? this.checkBystanders(injectedAt, Date.parse(first.applied_at), lastRevert ?? Date.now())
        : [];
      const windowStart = (t: number): number => Math.floor(t / win) * win;
      return {
        incident: name,
        title: cls.title,
        victim: victim.path,
        victim_cgroup_id: victim.id.toString(),
        injected_at: new Date(injectedAt).toISOString(),
        cleared_at: new Date(clearedAt).toISOString(),
        detected: anomaly !== undefined,
        ...(anomaly
          ? {
              anomaly: {
                id: anomaly.id,
                metric: anomaly.metric,
                probe: anomaly.probe,
                severity: anomaly.severity,
                window_start: anomaly.window_start,
                detected_at: anomaly.detected_at,
                observed: anomaly.observed,
                baseline: anomaly.baseline,
              },
            }
          : {}),
        anomalies_elsewhere: [
          ...new Set(
            this.anomalies
              .filter(
                (a) =>
                  a.workload !== victim.path &&
                  Date.parse(a.detected_at) >= injectedAt &&
                  Date.parse(a.detected_at) <= clearedAt,
              )
              .map((a) => `${a.metric}@${a.workload}`),
          ),
        ],
        windows_to_detection: anomaly
          ? Math.round((Date.parse(anomaly.window_start) - windowStart(injectedAt)) / win) + 1
          : null,
        changes,
        apply_ms:
          anomaly && first ? Date.parse(first.applied_at) - Date.parse(anomaly.detected_at) : null,
        revert_late_ms:
          first?.reverted_at !== undefined
            ? Date.parse(first.reverted_at) -
              Date.parse(first.applied_at) -
              (first.ttl_seconds ?? this.ttlSeconds) * 1000
            : null,
        bystanders,
        bystanders_kept: first ? bystanders.every((b) => b.missing.length === 0) : null,
        notes,
      };
    } finally {
      cleanup();
      this.cleanups.splice(this.cleanups.indexOf(cleanup), 1);
    }
  }

  /**
   * Did every bystander keep its rows while a change was in force? Its sources
   * are those it had in every one of the last steady windows before the
   * incident; every window that closed within [applied, reverted] must hold a
   * row of each.
   */
  checkBystanders(injectedAt: number, appliedAt: number, revertedAt: number): BystanderCheck[] {
    const win = this.windowSeconds * 1000;
    const starts = [...this.windows.keys()].map((k) => [k, Date.parse(k)] as const);
    const steady = starts
      .filter(([, t]) => t + win <= injectedAt)
      .sort((a, b) => a[1] - b[1])
      .slice(-3);
    const during = starts.filter(([, t]) => t >= appliedAt && t + win <= revertedAt);
    return this.bystanders.map((b) => {
      const has = (key: string, source: string): boolean =>
        (this.windows.get(key) ?? []).some(
          (r) => r.workload === b.cgroup.path && rowSource(r) === source,
        );
      const seen = new Set(
        (this.windows.get(steady[0]?.[0] ?? '') ?? [])
          .filter((r) => r.workload === b.cgroup.path)
          .map(rowSource),
      );
      const sources = [...seen].filter((s) => steady.every(([k]) => has(k, s))).sort();
      const missing: BystanderCheck['missing'] = [];
      for (const [k] of during)
        for (const s of sources) if (!has(k, s)) missing.push({ window_start: k, source: s });
      return { workload: b.cgroup.path, name: b.name, sources, windows: during.length, missing };
    });
  }

  /** Rows of a workload in windows starting within [from, to]. */
  rowsOf(workload: string, from: number, to: number): Row[] {
    const out: Row[] = [];
    for (const [k, rows] of this.windows) {
      const t = Date.parse(k);
      if (t >= from && t <= to) out.push(...rows.filter((r) => r.workload === workload));
    }
    return out;
  }

  summary(): SessionSummary {
    this.sample();
    const first = this.samples[0]!;
    const last = this.samples[this.samples.length - 1]!;
    const seconds = (last.t_ms - first.t_ms) / 1000;
    const bytes = last.bytes - first.bytes;
    return {
      node: this.node,
      mode: this.mode,
      started_at: new Date(this.startedAt).toISOString(),
      seconds,
      bytes_sent: bytes,
      bytes_per_second: seconds > 0 ? bytes / seconds : 0,
      samples: [...this.samples],
      spans: [...this.spans],
      actions: [...this.actions].sort((a, b) => a.t_ms - b.t_ms),
    };
  }

  async stop(): Promise<void> {
    if (this.sampler) clearInterval(this.sampler);
    for (const c of this.cleanups.splice(0).reverse()) {
      try {
        c();
      } catch (err) {
        this.o.log.warn({ err }, 'scenario cleanup failed');
      }
    }
    await this.controller?.stop().catch(() => undefined);
    await this.worker?.stop().catch(() => undefined);
    await this.audit?.close().catch(() => undefined);
    await this.agent?.stop(2000).catch(() => undefined);
    await this.stage?.stop().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
