/** Builders shared by the feedback suites. */
import { randomBytes } from 'node:crypto';
import { defaultSettings, type ProbeSettings } from '../../src/ingest/probe-settings.js';
import type { NodeReport } from '../../src/feedback/node-report.js';
import type { FeedbackRequest } from '../../src/feedback/request.js';
import type { ProbeName } from '../../src/ingest/layout.js';

export function request(over: Partial<FeedbackRequest> = {}): FeedbackRequest {
  return {
    schema_version: 1,
    id: `fb-test-${randomBytes(6).toString('hex')}`,
    target: { nodes: ['node-a'] },
    probe: 'tcp',
    action: 'tighten',
    params: {},
    reason: 'test',
    origin: 'rule',
    created_at: new Date().toISOString(),
    ...over,
  };
}

export function report(
  node: string,
  probes: Array<{ probe: ProbeName; eps: number; settings?: Partial<ProbeSettings> }>,
): NodeReport {
  return {
    node,
    at: new Date().toISOString(),
    probes: probes.map((p) => ({
      probe: p.probe,
      enabled: p.settings?.enabled ?? true,
      attached: true,
      generation: 1,
      settings: { ...defaultSettings(true), ...p.settings },
      events_per_second: p.eps,
    })),
    events_per_second: probes.reduce((s, p) => s + p.eps, 0),
    bytes_per_second: 0,
  };
}
