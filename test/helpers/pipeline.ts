/**
 * The two halves of the pipeline as the feature suites run them: a feature
 * stage in a consumer group of its own, on a scratch data directory, and a
 * node agent with a unique node name publishing to the real broker.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../../src/common/logger.js';
import { FeatureStage } from '../../src/features/feature-stage.js';
import type { FeatureStageConfigInput } from '../../src/features/config.js';
import type { ProbeName } from '../../src/wire/layout.js';
import {
  DEFAULT_AGENT_OPTIONS,
  NodeAgent,
  type NodeAgentOptions,
} from '../../src/ingest/node-agent.js';
import { tableFromIPC } from 'apache-arrow';
import { Topics } from '../../src/common/kafka.js';
import { anomalySchema, type Anomaly } from '../../src/features/anomaly.js';
import { BROKERS, subscribe } from './kafka.js';

/**
 * A feature stage with 1 s windows, 1 s lateness and 1 s idle close unless
 * `config` says otherwise; not started (register listeners, then `start()`).
 */
export function testStage(
  name: string,
  log: Logger,
  config: Partial<FeatureStageConfigInput> = {},
): FeatureStage {
  return new FeatureStage(
    {
      brokers: BROKERS,
      group_id: `tracefeed-features-test-${name}-${randomUUID()}`,
      window_seconds: 1,
      allowed_lateness_seconds: 1,
      idle_close_seconds: 1,
      data_dir: mkdtempSync(join(tmpdir(), `tf-${name}-`)),
      http_port: 0,
      ...config,
    },
    log,
  );
}

/** A started node agent loading only `families`, framing with a 50 ms linger. */
export function testAgent(
  node: string,
  families: readonly ProbeName[],
  log: Logger,
  probes: NodeAgentOptions['probes'] = {},
): NodeAgent {
  const agent = new NodeAgent({
    ...DEFAULT_AGENT_OPTIONS,
    nodeName: node,
    brokers: BROKERS,
    lingerMs: 50,
    log,
    families,
    probes,
  });
  agent.start();
  return agent;
}

/** Feature rows (as JSON) and anomalies of one node, collected from their topics. */
export interface NodeOutputs {
  rows: Array<Record<string, unknown>>;
  anomalies: Anomaly[];
  stop: () => Promise<void>;
}

export async function collectNodeOutputs(node: string): Promise<NodeOutputs> {
  const rows: Array<Record<string, unknown>> = [];
  const anomalies: Anomaly[] = [];
  const stopRows = await subscribe(Topics.features, (m) => {
    if (m.key?.toString() !== node || !m.value) return;
    for (const r of tableFromIPC(m.value).toArray())
      rows.push(r.toJSON() as Record<string, unknown>);
  });
  const stopAnomalies = await subscribe(Topics.anomalies, (m) => {
    const a = anomalySchema.parse(JSON.parse(m.value!.toString()));
    if (a.node === node) anomalies.push(a);
  });
  return {
    rows,
    anomalies,
    stop: async () => {
      await stopRows();
      await stopAnomalies();
    },
  };
}
