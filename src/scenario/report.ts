/**
 * The scenario's written results: a markdown table (docs/adaptive.md), the
 * raw report as JSON next to it, and a PNG timeline (bytes/s, incident spans,
 * feedback actions) drawn by scripts/adaptive-timeline.py with matplotlib
 * from the project's Python environment (scripts/python-env.sh, or the
 * interpreter in TRACEFEED_PYTHON as scripts/test.sh sets it).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../common/paths.js';
import type { ScenarioReport } from './runner.js';
import type { IncidentResult } from './session.js';

const ms = (v: number | null): string => (v === null ? '—' : `${(v / 1000).toFixed(1)} s`);

function changeText(r: IncidentResult): string {
  if (r.changes.length === 0) return 'none';
  return r.changes
    .map((c) => {
      const p = JSON.stringify(c.params).replace(/\|/g, '\\|');
      return `${c.action} ${c.probe} ${p}`;
    })
    .join('<br>');
}

function bystanderText(r: IncidentResult): string {
  if (r.bystanders_kept === null) return 'n/a (no change)';
  if (r.bystanders_kept)
    return `yes (${r.bystanders.map((b) => `${b.name}: ${b.sources.join('+')}`).join(', ')})`;
  const lost = r.bystanders
    .filter((b) => b.missing.length > 0)
    .map(
      (b) =>
        `${b.name} lost ${[...new Set(b.missing.map((m) => m.source))].join('+')} in ${new Set(b.missing.map((m) => m.window_start)).size}/${b.windows} windows`,
    );
  return `**no**: ${lost.join('; ')}`;
}

export function markdownReport(rep: ScenarioReport, command: string): string {
  const lines: string[] = [];
  lines.push('# Adaptive ingestion: scenario results', '');
  lines.push(
    `Produced by \`${command}\` on ${rep.adaptive.started_at} (node ${rep.adaptive.node}): ` +
      `${rep.window_seconds} s windows, ${rep.ttl_seconds} s TTL. Bystanders: a loopback service ` +
      'with clients (10 connections/s), a batch job (256 KiB written, read and hashed 5 times/s), ' +
      'a cron-like exec source (a process every 300 ms). Each incident runs in a fresh victim ' +
      'cgroup after a warm-up of normal behaviour. Windows to detection counts from the window ' +
      'the fault began in (1 = the anomaly is in that window); anomaly → change is from the ' +
      "anomaly's detection to the change in the kernel; revert after TTL is how late the first " +
      "change's revert came after its TTL.",
    '',
  );
  lines.push(
    '| incident | detected on the victim | windows to detection | anomaly | what the loop changed | anomaly → change | revert after TTL | bystanders kept their rows |',
    '|---|---|---|---|---|---|---|---|',
  );
  for (const r of rep.incidents) {
    const elsewhere = r.anomalies_elsewhere.length
      ? ` (elsewhere: ${r.anomalies_elsewhere.slice(0, 3).join(', ')})`
      : '';
    lines.push(
      `| ${r.title} | ${r.detected ? 'yes' : '**no**'}${elsewhere} | ${r.windows_to_detection ?? '—'} | ` +
        `${r.anomaly ? `${r.anomaly.metric} (${r.anomaly.severity}, ${r.anomaly.observed} vs ${r.anomaly.baseline.toFixed(1)})` : '—'} | ` +
        `${changeText(r)} | ${ms(r.apply_ms)} | ${r.revert_late_ms === null ? (r.changes.length ? '**not reverted**' : '—') : `+${ms(r.revert_late_ms)}`} | ${bystanderText(r)} |`,
    );
  }
  lines.push('');
  const a = rep.adaptive;
  lines.push('## Bytes to Kafka', '');
  lines.push('| pass | seconds | bytes sent | bytes/s |', '|---|---|---|---|');
  lines.push(
    `| adaptive (default set + feedback) | ${a.seconds.toFixed(0)} | ${a.bytes_sent} | ${a.bytes_per_second.toFixed(0)} |`,
  );
  if (rep.full)
    lines.push(
      `| every family on at full rate | ${rep.full.seconds.toFixed(0)} | ${rep.full.bytes_sent} | ${rep.full.bytes_per_second.toFixed(0)} |`,
    );
  lines.push('');
  lines.push(
    "Bytes are what the node agent produced to Kafka (its publisher's `bytesSent`) over each " +
      'pass, bystanders and incidents included. The agent traces the whole host, so other ' +
      'processes running on it count in both passes. The full-rate pass runs the same ' +
      'bystanders and incidents (each held for the detection budget) with every family loaded ' +
      'and enabled at sample_n 1, tcp and file with no minimum duration, and syscalls streaming ' +
      'every call slower than 1 µs; it has no feedback loop. A change of the adaptive ' +
      'pass raises detail on the victim only; every other workload keeps its baseline (the ' +
      'bystanders column checks their rows).',
    '',
  );
  if (rep.bytes_ratio !== undefined)
    lines.push(
      `Adaptive sends ${(rep.bytes_ratio * 100).toFixed(1)} % of the full-rate bytes per second ` +
        `(${(1 / rep.bytes_ratio).toFixed(1)}x fewer).`,
      '',
    );
  lines.push('![timeline](adaptive-timeline.png)', '');
  return lines.join('\n');
}

/** Writes `<dir>/adaptive.md`, `<dir>/adaptive.json` and `<dir>/adaptive-timeline.png`; returns their paths. */
export function writeReport(
  rep: ScenarioReport,
  dir = join(repoRoot, 'docs'),
  command = 'npm run bench:adaptive',
): { markdown: string; json: string; png?: string; pngError?: string } {
  const markdown = join(dir, 'adaptive.md');
  const json = join(dir, 'adaptive.json');
  const png = join(dir, 'adaptive-timeline.png');
  writeFileSync(markdown, markdownReport(rep, command));
  writeFileSync(json, `${JSON.stringify(rep, null, 2)}\n`);
  try {
    const python =
      process.env.TRACEFEED_PYTHON ??
      execFileSync('bash', [join(repoRoot, 'scripts', 'python-env.sh')], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      }).trim();
    execFileSync(python, [join(repoRoot, 'scripts', 'adaptive-timeline.py'), json, png], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    return { markdown, json, png };
  } catch (err) {
    return { markdown, json, pngError: (err as Error).message };
  }
}
