/** `tracefeed events tail`: subscribe to the events topic and print decoded events. */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../common/logger.js';
import { Topics, kafkaClient } from '../common/kafka.js';
import { decodeFrameEvents, type TracefeedEvent } from '../ingest/index.js';
import { jsonLine, table, type OutputFormat } from './output.js';

export interface TailOptions {
  brokers: string[];
  format: OutputFormat;
  probe?: string;
  node?: string;
  /** Only events whose type starts with this. */
  type?: string;
  fromBeginning: boolean;
  limit?: number;
  timeoutSeconds?: number;
  log: Logger;
}

function detail(e: TracefeedEvent): string {
  const a = e.attributes;
  if (e.type === 'process.exec') return String(a['process.executable.path']);
  if (e.type === 'process.exit') {
    return `exit ${a['process.exit.code']}${a['process.exit.signal'] ? ` signal ${a['process.exit.signal']}` : ''}`;
  }
  if (e.type.startsWith('tcp.')) {
    const peer = `${a['network.local.address']}:${a['network.local.port']} -> ${a['network.peer.address']}:${a['network.peer.port']}`;
    return e.type === 'tcp.close'
      ? `${peer} sent ${a['tcp.bytes_sent']} recv ${a['tcp.bytes_received']}`
      : peer;
  }
  if (e.type === 'file.open') {
    const note =
      a['file.path.verified'] === false
        ? ' (caller string, unverified)'
        : a['file.path.partial']
          ? ' (partial)'
          : '';
    return `${a['file.path']}${note} -> ${a['file.open.result']}`;
  }
  if (e.type === 'syscall.slow')
    return `nr ${a['syscall.nr']} ${(Number(a['syscall.duration_ns']) / 1e6).toFixed(1)} ms`;
  if (e.type === 'syscall.summary')
    return `nr ${a['syscall.nr']} x${a['syscall.count']} p99 ${a['syscall.p99_ns']} ns`;
  if (e.type === 'sched.runq_summary')
    return `x${a['sched.runq.count']} p99 ${a['sched.runq.p99_ns']} ns`;
  return '';
}

function row(e: TracefeedEvent): string[] {
  const a = e.attributes;
  return [
    e.time,
    e.node,
    e.type,
    String(a['process.pid'] ?? ''),
    String(a['process.executable.name'] ?? ''),
    String(a['cgroup.path'] ?? a['cgroup.id'] ?? ''),
    detail(e),
  ];
}

export async function runTail(o: TailOptions): Promise<number> {
  const kafka = kafkaClient({
    role: 'agent',
    clientId: 'tracefeed-tail',
    brokers: o.brokers,
    log: o.log,
  });
  const consumer = kafka.consumer({ groupId: `tracefeed-tail-${randomUUID()}` });
  let printed = 0;
  let decodeErrors = 0;
  let finish: () => void = () => {};
  const finished = new Promise<void>((r) => (finish = r));
  await consumer.connect();
  await consumer.subscribe({ topic: Topics.events, fromBeginning: o.fromBeginning });
  await consumer.run({
    eachMessage: async ({ message }) => {
      if (!message.value) return;
      let events: TracefeedEvent[];
      try {
        events = decodeFrameEvents(message.value);
      } catch (err) {
        decodeErrors++;
        process.stderr.write(
          `skipped undecodable record at offset ${message.offset}: ${(err as Error).message}\n`,
        );
        return;
      }
      const keep = events.filter(
        (e) =>
          e.type !== 'cgroup.info' &&
          (!o.probe || e.probe === o.probe) &&
          (!o.node || e.node === o.node) &&
          (!o.type || e.type.startsWith(o.type)),
      );
      const room = o.limit === undefined ? keep.length : Math.max(0, o.limit - printed);
      const out = keep.slice(0, room);
      if (out.length > 0) {
        if (o.format === 'table') {
          process.stdout.write(
            `${table(['time', 'node', 'type', 'pid', 'comm', 'workload', 'detail'], out.map(row))}\n`,
          );
        } else if (o.format === 'json') {
          process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
        } else {
          process.stdout.write(out.map(jsonLine).join('\n') + '\n');
        }
      }
      printed += out.length;
      if (o.limit !== undefined && printed >= o.limit) finish();
    },
  });
  const stop = (): void => finish();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  if (o.timeoutSeconds !== undefined) setTimeout(stop, o.timeoutSeconds * 1000).unref();
  await finished;
  await consumer.disconnect();
  if (decodeErrors > 0) process.stderr.write(`${decodeErrors} records could not be decoded\n`);
  return 0;
}
