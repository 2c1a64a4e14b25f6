// The agent evaluation: records a run on this host (scenario session: real
// workloads, injected incidents, the feedback loop, then an operator-sampled
// phase), asks every question of the deterministic mode and of each
// OpenAI-compatible endpoint given, grades the answers against ground truth
// computed from the recording, and writes docs/eval-agent.md and .json.
// usage: npm run eval:agent [-- --incidents crash-loop,refused-storm,cpu-hog]
//          [--base-url URL --model NAME [--price-prompt USD --price-completion USD]]
//          [--out docs/eval-agent] [--save-recording FILE]
// (root; Kafka and Redis up; builds dist/ first). OPENAI_BASE_URL / OPENAI_API_KEY /
// TRACEFEED_AGENT_MODEL select an endpoint too.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createLogger } from '../dist/common/logger.js';
import { preflight } from '../dist/ingest/index.js';
import { resolveIncidents } from '../dist/scenario/index.js';
import { evaluate, markdownReport, recordRun, writeEvalReport } from '../dist/eval/index.js';

const { values: a } = parseArgs({
  options: {
    incidents: { type: 'string', default: 'crash-loop,refused-storm,cpu-hog' },
    'base-url': { type: 'string' },
    model: { type: 'string' },
    'price-prompt': { type: 'string' },
    'price-completion': { type: 'string' },
    out: { type: 'string', default: 'docs/eval-agent' },
    'save-recording': { type: 'string' },
    // Grade a recording saved earlier by --save-recording instead of recording one.
    recording: { type: 'string' },
  },
});
const log = createLogger('eval', 'error');
if (!a.recording) preflight(log);
const incidents = a.incidents.split(',').flatMap((n) => resolveIncidents(n.trim()));
const say = (l) => process.stderr.write(`eval:agent: ${l}\n`);
const rec = a.recording
  ? JSON.parse(readFileSync(a.recording, 'utf8'))
  : await recordRun({
      brokers: (process.env.TRACEFEED_KAFKA_BROKERS ?? '127.0.0.1:9092').split(','),
      redisUrl: process.env.TRACEFEED_REDIS_URL ?? 'redis://127.0.0.1:6379',
      log,
      incidents,
      progress: say,
    });
if (a['save-recording']) writeFileSync(a['save-recording'], JSON.stringify(rec));
const baseUrl = a['base-url'] ?? process.env.OPENAI_BASE_URL;
const llm = baseUrl
  ? [
      {
        base_url: baseUrl,
        model: a.model ?? process.env.TRACEFEED_AGENT_MODEL ?? 'gpt-4o-mini',
        ...(process.env.OPENAI_API_KEY ? { api_key: process.env.OPENAI_API_KEY } : {}),
        price_per_1k_prompt_tokens_usd: Number(a['price-prompt'] ?? 0),
        price_per_1k_completion_tokens_usd: Number(a['price-completion'] ?? 0),
      },
    ]
  : [];
const report = await evaluate(rec, { log, llm, progress: say });
const command = `npm run eval:agent${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
writeEvalReport(report, a.out, command);
process.stdout.write(markdownReport(report, command));
say(`wrote ${a.out}.md and ${a.out}.json`);
const det = report.modes[0];
const claimedMisses = det.results.filter((r) => det.categories[r.category].claimed && !r.pass);
if (claimedMisses.length > 0) {
  say(`the deterministic mode missed ${claimedMisses.length} claimed question(s)`);
  process.exitCode = 1;
}
