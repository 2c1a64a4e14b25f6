/**
 * A recorded run for the agent evaluation: a scenario session on this host
 * (real node agent, feature stage, feedback loop, bystander workloads) with
 * incidents injected one at a time, then a phase where the tcp family is
 * sampled by an operator. It keeps everything the agent reads (feature rows,
 * anomalies, the audit trail, the probe state, the thresholds) and the raw
 * event frames of the node, from which the ground truth is computed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Consumer } from 'kafkajs';
import { kafkaClient, Topics } from '../common/kafka.js';
import type { Logger } from '../common/logger.js';
import { decodeFrame } from '../wire/frame.js';
import type { Anomaly } from '../features/anomaly.js';
import type { AuditRecord } from '../feedback/audit.js';
import { ScenarioSession, type IncidentResult } from '../scenario/session.js';
import type { IncidentName } from '../scenario/incidents.js';
import type { ProbeView } from '../agent/sources.js';
import { agentProbeSource } from '../agent/sources.js';

export type Row = Record<string, string | number | null>;

/** Something the run did on purpose, with its time: the incident log. */
export interface LoggedAction {
  kind: 'incident' | 'operator_sampling';
  at: string;
  until: string;
  detail: Record<string, unknown>;
}

export interface Recording {
  node: string;
  started_at: number;
  ended_at: number;
  window_seconds: number;
  rows: Row[];
  anomalies: Anomaly[];
  incidents: IncidentResult[];
  log: LoggedAction[];
  audit: AuditRecord[];
  probes: ProbeView[];
  /** The thresholds the session's controller ran with (YAML). */
  thresholds_yaml: string;
  /** The node's event frames from tracefeed.events.v1, base64. */
  frames: string[];
  bystanders: Array<{ name: string; workload: string }>;
  /** Frames of the topic that were not this node's, and frames that did not decode. */
  frames_other_nodes: number;
  frames_undecodable: number;
}

export interface RecordOptions {
  brokers: string[];
  redisUrl: string;
  log: Logger;
  incidents: IncidentName[];
  /** Feature window, s. Default 2. */
  window_seconds?: number;
  /** Normal behaviour before each incident, s. Default 8. */
  warmup_seconds?: number;
  /** TTL of the loop's changes, s. Default 6. */
  ttl_seconds?: number;
  /** The operator-sampled phase at the end: tcp at 1 in this many, for this long. Default 4, 6 s. */
  sample_n?: number;
  sampled_seconds?: number;
  progress?: (line: string) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Keeps the raw frames of one node from the events topic. */
class FrameRecorder {
  frames: Buffer[] = [];
  other = 0;
  undecodable = 0;
  private consumer: Consumer | undefined;

  constructor(private readonly node: string) {}

  async start(brokers: string[], log: Logger): Promise<void> {
    const kafka = kafkaClient({ role: 'agent', clientId: 'tracefeed-eval-recorder', brokers, log });
    this.consumer = kafka.consumer({
      groupId: `tracefeed-eval-${randomUUID()}`,
      maxWaitTimeInMs: 200,
    });
    let joined!: () => void;
    const ready = new Promise<void>((r) => (joined = r));
    this.consumer.on(this.consumer.events.GROUP_JOIN, () => joined());
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: Topics.events, fromBeginning: false });
    await this.consumer.run({
      eachMessage: async ({ message }) => {
        if (!message.value) return;
        try {
          if (decodeFrame(message.value).node === this.node) this.frames.push(message.value);
          else this.other++;
        } catch {
          this.undecodable++;
        }
      },
    });
    await ready;
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
  }
}

export async function recordRun(o: RecordOptions): Promise<Recording> {
  const session = new ScenarioSession({
    brokers: o.brokers,
    redisUrl: o.redisUrl,
    log: o.log,
    window_seconds: o.window_seconds ?? 2,
    ttl_seconds: o.ttl_seconds ?? 6,
    warmup_seconds: o.warmup_seconds ?? 8,
    lifetime_seconds: 300,
    mode: 'adaptive',
  });
  const recorder = new FrameRecorder(session.node);
  await recorder.start(o.brokers, o.log);
  const log: LoggedAction[] = [];
  try {
    await session.start();
    o.progress?.(`recording on node ${session.node}`);
    const started = Date.now();
    const incidents: IncidentResult[] = [];
    for (const name of o.incidents) {
      o.progress?.(`incident ${name} ...`);
      const r = await session.runIncident(name);
      incidents.push(r);
      log.push({
        kind: 'incident',
        at: r.injected_at,
        until: r.cleared_at,
        detail: { incident: name, victim: r.victim, detected: r.detected },
      });
      o.progress?.(
        `incident ${name}: detected ${r.detected ? `(${r.anomaly?.metric})` : 'no'}, ${r.changes.length} change(s)`,
      );
    }
    // An operator samples tcp for a while: the data of that phase is estimated, not exact.
    const sampleN = o.sample_n ?? 4;
    const before = session.agent.probes().find((p) => p.probe === 'tcp')?.settings.sample_n ?? 1;
    const at = new Date().toISOString();
    session.agent.setProbe('tcp', { sample_n: sampleN });
    await sleep((o.sampled_seconds ?? 6) * 1000);
    // Let the last windows close before the recording ends; the probe state is the end's.
    await sleep((session.windowSeconds + 2) * 1000);
    const probes = await agentProbeSource(session.agent, session.node).probes();
    const ended = Date.now();
    log.push({
      kind: 'operator_sampling',
      at,
      until: new Date(ended).toISOString(),
      detail: { probe: 'tcp', sample_n: sampleN, previous_sample_n: before },
    });
    const thresholds_yaml = readFileSync(join(session.dir, 'thresholds.yaml'), 'utf8');
    const audit = session.auditRecords();
    const rows = [...session.windows.values()].flat();
    return {
      node: session.node,
      started_at: started,
      ended_at: ended,
      window_seconds: session.windowSeconds,
      rows,
      anomalies: [...session.anomalies],
      incidents,
      log,
      audit,
      probes,
      thresholds_yaml,
      frames: recorder.frames.map((f) => f.toString('base64')),
      bystanders: session.bystanders.map((b) => ({ name: b.name, workload: b.cgroup.path })),
      frames_other_nodes: recorder.other,
      frames_undecodable: recorder.undecodable,
    };
  } finally {
    await session.stop();
    await recorder.stop();
  }
}
