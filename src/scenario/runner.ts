/**
 * A scenario run: the chosen incidents through one adaptive session, then
 * (optionally) the same load and incidents through a session with every
 * family on at full rate, for the bytes-to-Kafka comparison.
 */
import { INCIDENT_NAMES, type IncidentName } from './incidents.js';
import {
  ScenarioSession,
  type IncidentResult,
  type SessionOptions,
  type SessionSummary,
} from './session.js';

export interface ScenarioRunOptions extends Omit<SessionOptions, 'mode'> {
  /** Also run the full-rate pass and report the bytes ratio. Default true. */
  compare_full?: boolean;
  /** Progress lines (one per step). */
  progress?: (line: string) => void;
}

export interface ScenarioReport {
  incidents: IncidentResult[];
  adaptive: SessionSummary;
  full?: SessionSummary;
  /** Adaptive bytes/s over full-rate bytes/s (lower is better). */
  bytes_ratio?: number;
  window_seconds: number;
  ttl_seconds: number;
}

export function resolveIncidents(name: string): IncidentName[] {
  if (name === 'all') return [...INCIDENT_NAMES];
  if (!(INCIDENT_NAMES as readonly string[]).includes(name))
    throw new Error(`unknown scenario "${name}"; scenarios: ${INCIDENT_NAMES.join(', ')}, all`);
  return [name as IncidentName];
}

async function pass(
  names: IncidentName[],
  o: ScenarioRunOptions,
  mode: 'adaptive' | 'full',
): Promise<{ results: IncidentResult[]; summary: SessionSummary }> {
  const session = await new ScenarioSession({ ...o, mode }).start();
  const results: IncidentResult[] = [];
  // Interrupted: remove the workloads, cgroups and namespaces before leaving.
  const stop = (): void => void session.stop().finally(() => process.exit(130));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    o.progress?.(`${mode}: node ${session.node}, bystanders running`);
    for (const n of names) {
      o.progress?.(`${mode}: ${n} ...`);
      const r = await session.runIncident(n);
      results.push(r);
      if (mode === 'adaptive')
        o.progress?.(
          `${mode}: ${n}: detected ${r.detected ? `in ${r.windows_to_detection} windows (${r.anomaly?.metric})` : 'no'}` +
            `, changes ${r.changes.length}, bystanders kept ${r.bystanders_kept ?? 'n/a'}`,
        );
    }
    return { results, summary: session.summary() };
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await session.stop();
  }
}

export async function runScenario(
  names: IncidentName[],
  o: ScenarioRunOptions,
): Promise<ScenarioReport> {
  const adaptive = await pass(names, o, 'adaptive');
  const report: ScenarioReport = {
    incidents: adaptive.results,
    adaptive: adaptive.summary,
    window_seconds: o.window_seconds ?? 2,
    ttl_seconds: o.ttl_seconds ?? 10,
  };
  if (o.compare_full ?? true) {
    const full = await pass(names, o, 'full');
    report.full = full.summary;
    if (full.summary.bytes_per_second > 0)
      report.bytes_ratio = adaptive.summary.bytes_per_second / full.summary.bytes_per_second;
  }
  return report;
}
