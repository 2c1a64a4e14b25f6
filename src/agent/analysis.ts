/**
 * Automatic analysis: a consumer group on `tracefeed.anomalies.v1` groups
 * anomalies into incidents (per series; a gap longer than
 * `incidentGapSeconds` starts a new one) and writes one analysis per
 * incident to `tracefeed.analyses.v1` (JSON, `analysisSchema`, key = series
 * id): what changed, where, the likely cause and the evidence. Without a
 * model the analysis is the deterministic explanation; with one, the model
 * writes it from the same explanation (given as tool data) and may call more
 * tools. It is written again when an incident escalates to critical.
 * Optionally it proposes feedback, which the policy engine decides.
 *
 * Start it in-process: `await new AnalysisWorker({ agent, brokers, log }).start()`.
 */
import { type Consumer, type Producer } from 'kafkajs';
import { z } from 'zod';
import { cloudEventHeaders, nodeSource } from '../common/cloudevents.js';
import { ensureTopics, kafkaClient, Topics } from '../common/kafka.js';
import type { Logger } from '../common/logger.js';
import type { Anomaly } from '../features/anomaly.js';
import { anomalyRef } from './anomaly-store.js';
import type { TracefeedAgent } from './agent.js';
import { explainAnomaly, type Explanation } from './explain.js';
import { proposeFeedback } from './tools.js';

export const ANALYSES_TOPIC = Topics.analyses;
export const ANALYSIS_SCHEMA_VERSION = 1;

const usageSchema = z.strictObject({
  prompt_tokens: z.number().int().min(0),
  completion_tokens: z.number().int().min(0),
  total_tokens: z.number().int().min(0),
});

export const analysisSchema = z.strictObject({
  schema_version: z.literal(ANALYSIS_SCHEMA_VERSION),
  /** `<series_id>@<first window_start>`: stable for the incident. */
  incident_id: z.string().min(1),
  /** 1 for the first analysis of an incident, 2.. when it is written again (escalation). */
  revision: z.number().int().min(1),
  series_id: z.string().min(1),
  /** The anomaly that triggered this analysis, and its ref (`an-...`). */
  anomaly_id: z.string().min(1),
  anomaly_ref: z.string().min(1),
  /** Every anomaly of the incident so far. */
  anomaly_ids: z.array(z.string()).max(1000),
  node: z.string(),
  workload: z.string(),
  probe: z.string(),
  metric: z.string(),
  severity: z.enum(['warning', 'critical']),
  window_start: z.iso.datetime(),
  window_end: z.iso.datetime(),
  mode: z.enum(['llm', 'deterministic']),
  model: z.string().nullable(),
  what_changed: z.string(),
  where: z.string(),
  likely_cause: z.string(),
  /** The model's full text (llm mode), else null. */
  narrative: z.string().nullable(),
  /** Why the model was not used when one is configured (it failed), else null. */
  model_error: z.string().nullable(),
  evidence: z.array(
    z.strictObject({
      kind: z.string(),
      series: z.string().optional(),
      metric: z.string().optional(),
      window_start: z.string().optional(),
      window_end: z.string().optional(),
      value: z.number().optional(),
      baseline: z.number().optional(),
      note: z.string(),
    }),
  ),
  proposals: z.array(
    z.strictObject({
      request_id: z.string(),
      probe: z.string(),
      action: z.string(),
      verdict: z.string(),
      reason: z.string(),
    }),
  ),
  usage: usageSchema,
  cost_usd: z.number().min(0),
  created_at: z.iso.datetime(),
});
export type Analysis = z.infer<typeof analysisSchema>;

export interface AnalysisWorkerOptions {
  agent: TracefeedAgent;
  brokers: string[];
  log: Logger;
  /** Consumer group. Default `tracefeed-agent-analysis`. */
  groupId?: string;
  /** Default `tracefeed.anomalies.v1`. */
  inputTopic?: string;
  /** Default `tracefeed.analyses.v1` (created when missing). */
  outputTopic?: string;
  /** Anomalies of a series within this long of the incident's last one belong to it. Default 300 s. */
  incidentGapSeconds?: number;
  /** Use the agent's model when it has one. Default true. */
  useModel?: boolean;
  /** Propose feedback per incident through the policy engine. Default false. */
  proposeFeedback?: boolean;
  /** Incidents remembered (oldest dropped). Default 10000. */
  maxIncidents?: number;
  /** Read the anomalies topic from the beginning when the group has no offset. Default false. */
  fromBeginning?: boolean;
}

interface Incident {
  id: string;
  lastEndMs: number;
  anomalyIds: string[];
  analyzedSeverity: 'warning' | 'critical' | undefined;
  revision: number;
}

export interface AnalysisWorkerStats {
  anomalies: number;
  invalid: number;
  incidents: number;
  /** Anomalies folded into an incident already analysed. */
  folded: number;
  published: number;
  llm: number;
  deterministic: number;
  modelErrors: number;
  errors: number;
}

function section(text: string, name: string): string | undefined {
  const re = new RegExp(
    `${name}:\\s*([\\s\\S]*?)(?=\\n\\s*\\**\\s*(?:What changed|Where|Likely cause|Evidence)\\s*\\**:|$)`,
    'i',
  );
  const m = text.match(re);
  const v = m?.[1]?.trim();
  return v ? v : undefined;
}

export class AnalysisWorker {
  private consumer: Consumer | undefined;
  private producer: Producer | undefined;
  private readonly incidents = new Map<string, Incident>();
  readonly stats: AnalysisWorkerStats = {
    anomalies: 0,
    invalid: 0,
    incidents: 0,
    folded: 0,
    published: 0,
    llm: 0,
    deterministic: 0,
    modelErrors: 0,
    errors: 0,
  };
  /** Resolves once the consumer has joined its group. */
  ready: Promise<void>;
  private markReady!: () => void;
  private readonly listeners: Array<(a: Analysis) => void> = [];

  constructor(private readonly opts: AnalysisWorkerOptions) {
    this.ready = new Promise((r) => (this.markReady = r));
  }

  get outputTopic(): string {
    return this.opts.outputTopic ?? ANALYSES_TOPIC;
  }

  /** Called with each analysis after it is published. */
  onAnalysis(l: (a: Analysis) => void): void {
    this.listeners.push(l);
  }

  async start(): Promise<this> {
    const { brokers, log } = this.opts;
    await ensureTopics(brokers, log, undefined, [this.outputTopic]);
    const kafka = kafkaClient({
      role: 'agent',
      clientId: 'tracefeed-agent-analysis',
      brokers,
      log,
    });
    this.producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
    });
    await this.producer.connect();
    this.consumer = kafka.consumer({
      groupId: this.opts.groupId ?? 'tracefeed-agent-analysis',
      maxWaitTimeInMs: 100,
      sessionTimeout: 60_000,
      heartbeatInterval: 3000,
      // Anomalies are written in transactions: only committed ones (docs/exactly-once.md).
      readUncommitted: false,
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, () => this.markReady());
    await this.consumer.connect();
    await this.consumer.subscribe({
      topic: this.opts.inputTopic ?? Topics.anomalies,
      fromBeginning: this.opts.fromBeginning ?? false,
    });
    await this.consumer.run({
      eachMessage: async ({ message, heartbeat }) => {
        // A model call can take longer than a session: keep the membership alive meanwhile.
        const beat = setInterval(() => void heartbeat().catch(() => undefined), 3000);
        try {
          await this.handle(message.value);
        } finally {
          clearInterval(beat);
        }
      },
    });
    log.info(
      { mode: this.willUseModel() ? 'llm' : 'deterministic', output: this.outputTopic },
      'analysis worker started',
    );
    return this;
  }

  private willUseModel(): boolean {
    return (this.opts.useModel ?? true) && this.opts.agent.mode === 'llm';
  }

  /**
   * One record of the anomalies topic: store it, fold it into its incident,
   * and analyse and publish when the incident is new or escalated. Returns
   * the analysis written, if any. Failures are logged and counted, never thrown
   * (a bad record must not stop the consumer).
   */
  async handle(value: Buffer | null): Promise<Analysis | undefined> {
    this.stats.anomalies++;
    const a = this.opts.agent.deps.anomalies.addRecord(value);
    if (!a) {
      this.stats.invalid++;
      this.opts.log.warn('invalid anomaly record; skipped');
      return undefined;
    }
    const startMs = Date.parse(a.window_start);
    const gapMs = (this.opts.incidentGapSeconds ?? 300) * 1000;
    let inc = this.incidents.get(a.series_id);
    if (!inc || startMs - inc.lastEndMs > gapMs) {
      inc = {
        id: `${a.series_id}@${a.window_start}`,
        lastEndMs: Date.parse(a.window_end),
        anomalyIds: [],
        analyzedSeverity: undefined,
        revision: 0,
      };
      this.incidents.delete(a.series_id);
      this.incidents.set(a.series_id, inc);
      this.stats.incidents++;
      while (this.incidents.size > (this.opts.maxIncidents ?? 10_000))
        this.incidents.delete(this.incidents.keys().next().value as string);
    }
    if (!inc.anomalyIds.includes(a.id) && inc.anomalyIds.length < 1000) inc.anomalyIds.push(a.id);
    inc.lastEndMs = Math.max(inc.lastEndMs, Date.parse(a.window_end));
    const escalated = inc.analyzedSeverity === 'warning' && a.severity === 'critical';
    if (inc.analyzedSeverity !== undefined && !escalated) {
      this.stats.folded++;
      return undefined;
    }
    try {
      inc.revision++;
      inc.analyzedSeverity = a.severity;
      const analysis = await this.analyze(a, inc);
      await this.publish(analysis);
      return analysis;
    } catch (err) {
      this.stats.errors++;
      this.opts.log.error({ err, anomaly: a.id }, 'analysis failed');
      return undefined;
    }
  }

  /** Analyses one anomaly (no publishing). */
  async analyze(
    a: Anomaly,
    inc?: { id: string; anomalyIds: string[]; revision: number },
  ): Promise<Analysis> {
    const agent = this.opts.agent;
    const e: Explanation = await explainAnomaly(a, agent.deps);
    const base = {
      schema_version: ANALYSIS_SCHEMA_VERSION,
      incident_id: inc?.id ?? `${a.series_id}@${a.window_start}`,
      revision: inc?.revision ?? 1,
      series_id: a.series_id,
      anomaly_id: a.id,
      anomaly_ref: anomalyRef(a.id),
      anomaly_ids: inc?.anomalyIds ?? [a.id],
      node: a.node,
      workload: a.workload,
      probe: a.probe,
      metric: a.metric,
      severity: a.severity,
      window_start: a.window_start,
      window_end: a.window_end,
      evidence: e.evidence,
      created_at: new Date().toISOString(),
    };
    let modelError: string | null = null;
    if (this.willUseModel()) {
      try {
        const r = await agent.analyzeWithModel(a, this.opts.proposeFeedback ?? false);
        this.stats.llm++;
        agent.metrics.analyses.inc({ mode: 'llm' });
        const analysis = analysisSchema.parse({
          ...base,
          mode: 'llm',
          model: agent.endpoint?.model ?? null,
          what_changed: section(r.text, 'What changed') ?? e.what_changed,
          where: section(r.text, 'Where') ?? e.where,
          likely_cause: section(r.text, 'Likely cause') ?? e.likely_cause,
          narrative: r.text,
          model_error: null,
          proposals: r.proposals.map((p) => ({
            request_id: p.request_id,
            probe: p.request.probe,
            action: p.request.action,
            verdict: p.verdict,
            reason: p.reason,
          })),
          usage: r.usage,
          cost_usd: r.cost_usd,
        });
        this.opts.log.info(
          { incident: analysis.incident_id, mode: 'llm', usage: r.usage, cost_usd: r.cost_usd },
          'incident analysed',
        );
        return analysis;
      } catch (err) {
        this.stats.modelErrors++;
        modelError = (err as Error).message;
        this.opts.log.warn(
          { err: modelError, anomaly: a.id },
          'model analysis failed; writing the deterministic one',
        );
      }
    }
    const proposals: Analysis['proposals'] = [];
    if (this.opts.proposeFeedback && agent.deps.gateway) {
      const floors = (await agent.deps.gateway.policy?.().catch(() => undefined))?.floors ?? [
        'process',
      ];
      if (!floors.includes(a.probe)) {
        const r = await agent.runTool(
          {
            id: `analysis_${anomalyRef(a.id)}`,
            name: proposeFeedback.name,
            args: {
              probe: a.probe,
              action: 'tighten',
              node: a.node,
              ...(a.workload.startsWith('/') ? { workload: a.workload } : {}),
              anomaly: anomalyRef(a.id),
              ...(a.probe === 'syscalls' ? { slow_ms: 10 } : {}),
              reason: `${a.metric} anomaly (${a.severity}, score ${Math.round(a.score * 10) / 10}): collect every ${a.probe} event of this workload for a while`,
            },
          },
          0,
        );
        const p = r.result?.proposal;
        if (p)
          proposals.push({
            request_id: p.request_id,
            probe: p.request.probe,
            action: p.request.action,
            verdict: p.verdict,
            reason: p.reason,
          });
      }
    }
    this.stats.deterministic++;
    agent.metrics.analyses.inc({ mode: 'deterministic' });
    return analysisSchema.parse({
      ...base,
      mode: 'deterministic',
      model: null,
      what_changed: e.what_changed,
      where: e.where,
      likely_cause: e.likely_cause,
      narrative: null,
      model_error: modelError,
      proposals,
      usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
      cost_usd: 0,
    });
  }

  private async publish(a: Analysis): Promise<void> {
    if (!this.producer) throw new Error('the analysis worker is not started');
    await this.producer.send({
      topic: this.outputTopic,
      acks: -1,
      messages: [
        {
          key: a.series_id,
          value: JSON.stringify(a),
          headers: cloudEventHeaders({
            kind: 'analyses',
            id: `${a.incident_id}#${a.revision}`,
            source: nodeSource(a.node),
            time: a.created_at,
          }),
        },
      ],
    });
    this.stats.published++;
    for (const l of this.listeners) l(a);
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
    await this.producer?.disconnect();
    this.consumer = undefined;
    this.producer = undefined;
  }
}
