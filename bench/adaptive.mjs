// The scenario suite as a benchmark: every incident class through the
// adaptive pipeline, then the same load and incidents with every family on at
// full rate; writes docs/adaptive.md, docs/adaptive.json and
// docs/adaptive-timeline.png and prints the table.
// usage: npm run bench:adaptive [-- <incident>|all]   (root; Kafka and Redis up; builds dist/ first)
import { createLogger } from '../dist/common/logger.js';
import { preflight } from '../dist/ingest/index.js';
import {
  markdownReport,
  resolveIncidents,
  runScenario,
  writeReport,
} from '../dist/scenario/index.js';

const name = process.argv[2] ?? 'all';
const log = createLogger('bench', 'error');
preflight(log);
const report = await runScenario(resolveIncidents(name), {
  brokers: (process.env.TRACEFEED_KAFKA_BROKERS ?? '127.0.0.1:9092').split(','),
  redisUrl: process.env.TRACEFEED_REDIS_URL ?? 'redis://127.0.0.1:6379',
  log,
  window_seconds: 2,
  ttl_seconds: 10,
  warmup_seconds: 10,
  compare_full: true,
  progress: (l) => process.stderr.write(`bench:adaptive: ${l}\n`),
});
const command = `npm run bench:adaptive${name === 'all' ? '' : ` -- ${name}`}`;
const out = writeReport(report, undefined, command);
process.stdout.write(`${markdownReport(report, command)}\n`);
process.stderr.write(
  `bench:adaptive: wrote ${out.markdown}, ${out.json}` +
    (out.png ? `, ${out.png}\n` : `; no PNG: ${out.pngError}\n`),
);
