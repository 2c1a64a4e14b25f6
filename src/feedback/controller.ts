/**
 * The feedback controller: consumes `tracefeed.anomalies.v1` (kafkajs
 * consumer group), turns anomalies into requests with the thresholds' rules,
 * runs them through the policy engine and delivers them; watches each node's
 * reported events/s against its budget and loosens the noisiest non-floor
 * probe; expires approvals that waited too long. Start it in-process:
 * `await new FeedbackController({...}).start()`.
 */
import { type Consumer } from 'kafkajs';
import type { Redis } from 'ioredis';
import { kafkaClient, Topics } from '../common/kafka.js';
import type { Logger } from '../common/logger.js';
import { anomalySchema } from '../features/anomaly.js';
import { AuditTrail } from './audit.js';
import { budgetCheck } from './budget.js';
import type { JobSigner } from './job-signing.js';
import { connectRedis } from './redis.js';
import { formatIssues } from './request.js';
import { requestsFromAnomaly } from './rules.js';
import { FeedbackService, type SubmitResult } from './service.js';
import { DEFAULT_THRESHOLDS, ThresholdsWatcher, type Thresholds } from './thresholds.js';

export interface FeedbackControllerOptions {
  brokers: string[];
  /** Redis URL. */
  redisUrl: string;
  /** Thresholds file, hot-reloaded. Default: none (`thresholds` or the built-in defaults). */
  thresholdsPath?: string;
  /** Fixed thresholds when no file is given. Default: the built-in defaults (no rules). */
  thresholds?: Thresholds;
  log: Logger;
  /** Audit trail. Default: stateDir()/audit/feedback.jsonl and `tracefeed.feedback.v1`. */
  audit?: AuditTrail;
  /** Consumer group. Default `tracefeed-feedback`. */
  groupId?: string;
  /** Anomalies topic. Default `tracefeed.anomalies.v1`. */
  topic?: string;
  /** How often node reports are checked against budgets, ms; 0 turns the watcher off. Default 2000. */
  budgetIntervalMs?: number;
  /** How often approvals past their timeout are expired, ms. Default 30000. */
  approvalSweepMs?: number;
  /** Signs the jobs it queues. Default: the installation key (`<state dir>/feedback-signing.key`). */
  signer?: JobSigner;
}

export interface ControllerStats {
  anomalies: number;
  /** Records on the anomalies topic that are not valid anomalies (skipped, logged). */
  invalidAnomalies: number;
  requests: number;
  duplicates: number;
  outcomes: Record<string, number>;
  budgetChecks: number;
  budgetLoosenings: number;
}

export class FeedbackController {
  private redis: Redis | undefined;
  private consumer: Consumer | undefined;
  private watcher: ThresholdsWatcher | undefined;
  private timers: NodeJS.Timeout[] = [];
  private budgetRunning = false;
  service: FeedbackService | undefined;
  private audit: AuditTrail | undefined;
  private ownAudit = false;
  /** Resolves once the consumer has joined its group (anomalies published after are seen). */
  ready: Promise<void>;
  private markReady!: () => void;
  private joined = false;
  readonly counters: ControllerStats = {
    anomalies: 0,
    invalidAnomalies: 0,
    requests: 0,
    duplicates: 0,
    outcomes: {},
    budgetChecks: 0,
    budgetLoosenings: 0,
  };

  constructor(private readonly opts: FeedbackControllerOptions) {
    this.ready = new Promise((r) => (this.markReady = r));
  }

  get thresholds(): Thresholds {
    return this.watcher?.current ?? this.opts.thresholds ?? DEFAULT_THRESHOLDS;
  }

  async start(): Promise<this> {
    const log = this.opts.log;
    if (this.opts.thresholdsPath) {
      this.watcher = new ThresholdsWatcher(this.opts.thresholdsPath, {
        log,
        onChange: () => void this.publishThresholdsStatus(),
        onError: () => void this.publishThresholdsStatus(),
      }).start();
    }
    this.audit = this.opts.audit;
    if (!this.audit) {
      this.audit = new AuditTrail({ brokers: this.opts.brokers, log });
      this.ownAudit = true;
    }
    this.redis = connectRedis(this.opts.redisUrl);
    this.redis.on('error', (err) => log.debug({ err: err.message }, 'feedback redis error'));
    this.service = new FeedbackService({
      redis: this.redis,
      redisUrl: this.opts.redisUrl,
      audit: this.audit,
      thresholds: () => this.thresholds,
      actor: 'controller',
      log,
      ...(this.opts.signer ? { signer: this.opts.signer } : {}),
    });
    await this.publishThresholdsStatus();

    const kafka = kafkaClient({
      role: 'controller',
      clientId: 'tracefeed-feedback-controller',
      brokers: this.opts.brokers,
      log,
    });
    this.consumer = kafka.consumer({
      groupId: this.opts.groupId ?? 'tracefeed-feedback',
      maxWaitTimeInMs: 100,
      sessionTimeout: 30_000,
      heartbeatInterval: 3000,
      // Anomalies are written in transactions: only committed ones (docs/exactly-once.md).
      readUncommitted: false,
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, () => {
      this.joined = true;
      this.markReady();
    });
    await this.consumer.connect();
    await this.consumer.subscribe({
      topic: this.opts.topic ?? Topics.anomalies,
      fromBeginning: false,
    });
    await this.consumer.run({
      eachMessage: async ({ message }) => {
        await this.handleAnomaly(message.value);
      },
    });
    const every = this.opts.budgetIntervalMs ?? 2000;
    if (every > 0) this.timers.push(setInterval(() => void this.checkBudgets(), every));
    this.timers.push(
      setInterval(() => {
        this.service
          ?.expirePending()
          .catch((err: unknown) =>
            log.warn({ err: (err as Error).message }, 'approval sweep failed'),
          );
      }, this.opts.approvalSweepMs ?? 30_000),
    );
    log.info(
      { thresholds: this.opts.thresholdsPath ?? '(built-in)' },
      'feedback controller started',
    );
    return this;
  }

  private async publishThresholdsStatus(): Promise<void> {
    const st = this.watcher?.status();
    await this.service?.store
      .putThresholdsStatus({
        path: st?.path ?? null,
        loaded_at: st?.loadedAt ?? new Date().toISOString(),
        reloads: st?.reloads ?? 0,
        last_error: st?.lastError ?? null,
        thresholds: this.thresholds,
      })
      .catch(() => undefined);
  }

  /** One record of the anomalies topic: parse, match rules, submit. */
  async handleAnomaly(value: Buffer | null): Promise<SubmitResult[]> {
    this.counters.anomalies++;
    let json: unknown;
    try {
      json = JSON.parse(value?.toString('utf8') ?? '');
    } catch {
      this.counters.invalidAnomalies++;
      this.opts.log.warn('anomaly record is not JSON; skipped');
      return [];
    }
    const parsed = anomalySchema.safeParse(json);
    if (!parsed.success) {
      this.counters.invalidAnomalies++;
      this.opts.log.warn({ err: formatIssues(parsed.error) }, 'invalid anomaly record; skipped');
      return [];
    }
    const out: SubmitResult[] = [];
    for (const req of requestsFromAnomaly(parsed.data, this.thresholds))
      out.push(await this.submit(req));
    return out;
  }

  private async submit(req: unknown): Promise<SubmitResult> {
    const r = await this.service!.submit(req);
    this.counters.requests++;
    if (r.duplicate) this.counters.duplicates++;
    else
      for (const d of r.decisions)
        this.counters.outcomes[d.outcome] = (this.counters.outcomes[d.outcome] ?? 0) + 1;
    return r;
  }

  /** Checks every live node against its budget; loosens one probe per node over it. */
  async checkBudgets(now = Date.now()): Promise<SubmitResult[]> {
    if (this.budgetRunning || !this.service) return [];
    this.budgetRunning = true;
    const out: SubmitResult[] = [];
    try {
      const t = this.thresholds;
      const epoch = Math.floor(now / Math.max(1000, t.budget_cooldown_seconds * 1000));
      for (const node of await this.service.store.nodes()) {
        const report = await this.service.store.report(node);
        if (!report) continue;
        this.counters.budgetChecks++;
        const v = budgetCheck(report, t, now, epoch);
        if (v.request) {
          const r = await this.submit(v.request);
          if (
            !r.duplicate &&
            r.decisions.some((d) => d.outcome === 'accept' || d.outcome === 'clamp')
          )
            this.counters.budgetLoosenings++;
          out.push(r);
        } else if (v.over) this.opts.log.warn({ node }, v.reason ?? 'over budget');
      }
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'budget check failed');
    } finally {
      this.budgetRunning = false;
    }
    return out;
  }

  /** Healthy once its consumer joined its group and Redis answers. */
  health(): { ok: boolean; role: 'controller'; joined: boolean; redis: string; reason?: string } {
    const redis = this.redis?.status ?? 'none';
    const reasons = [
      ...(this.joined ? [] : ['not (yet) a member of its consumer group']),
      ...(redis === 'ready' ? [] : [`Redis ${redis}`]),
    ];
    return {
      ok: reasons.length === 0,
      role: 'controller',
      joined: this.joined,
      redis,
      ...(reasons.length ? { reason: reasons.join('; ') } : {}),
    };
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.watcher?.stop();
    await this.consumer?.disconnect();
    await this.service?.close();
    if (this.ownAudit) await this.audit?.close();
    else await this.audit?.flush();
    this.redis?.disconnect();
  }
}
