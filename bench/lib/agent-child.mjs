// SPDX-License-Identifier: Apache-2.0
//
// A NodeAgent in its own process, for bench/probe-default-set.mjs: exactly
// `new NodeAgent({ ...DEFAULT_AGENT_OPTIONS, brokers, log })` (process + tcp
// enabled, the other families loaded but disabled), publishing to Kafka.
// Line protocol on stdin/stdout: prints "ready", then
//   "stats" -> one JSON line: cpuUsage (this process), agent stats, program ids
//   "stop"  -> stops the agent (flushes to Kafka), prints "stopped", exits.
// argv[2]: optional JSON of NodeAgentOptions.probes overrides.
// argv[3]: optional JSON of other NodeAgentOptions (nodeName, ringBytes, ...).

import { createInterface } from 'node:readline';
import { DEFAULT_AGENT_OPTIONS, NodeAgent } from '../../dist/ingest/index.js';
import { createLogger } from '../../dist/common/logger.js';
import { brokersFrom } from '../../dist/common/kafka.js';

const brokers = brokersFrom(process.env.TRACEFEED_BROKERS);
const probes = process.argv[2] ? JSON.parse(process.argv[2]) : {};
const extra = process.argv[3] ? JSON.parse(process.argv[3]) : {};
const agent = new NodeAgent({
  ...DEFAULT_AGENT_OPTIONS,
  ...extra,
  probes,
  brokers,
  log: createLogger('bench-agent', process.env.TRACEFEED_LOG_LEVEL ?? 'warn'),
});
agent.start();
process.stdout.write('ready\n');

createInterface({ input: process.stdin }).on('line', async (line) => {
  if (line === 'stats') {
    const s = agent.stats();
    process.stdout.write(
      `${JSON.stringify({
        cpu: process.cpuUsage(),
        events: s.probes.reduce((a, p) => a + p.events, 0),
        eventsByType: s.eventsByType,
        drops: Object.fromEntries(s.probes.map((p) => [p.probe, p.kernelDrops])),
        programIds: s.probes.flatMap((p) => p.programIds),
        enabled: s.probes.filter((p) => p.enabled).map((p) => p.probe),
        attached: s.probes.filter((p) => p.attached).map((p) => p.probe),
        publisher: s.publisher,
        probes: s.probes.map((p) => ({
          probe: p.probe,
          emitted: p.emitted,
          drops: p.kernelDrops,
          settings: p.settings,
          overload_n: p.overload_n,
        })),
        framesBuilt: s.framesBuilt,
      })}\n`,
    );
  } else if (line === 'stop') {
    await agent.stop(5000);
    process.stdout.write('stopped\n');
    process.exit(0);
  }
});
