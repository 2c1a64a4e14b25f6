/** `tracefeed events tail`: subscribe to the events topic and print decoded events. */
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import type { Logger } from '../common/logger.js';
import { Topics, kafkaLogCreator } from '../common/kafka.js';
import { decodeFrameEvents, type TracefeedEvent } from '../ingest/index.js';
import { jsonLine, table, type OutputFormat } from './output.js';

export interface TailOptions {
  brokers: string[];
  format: OutputFormat;
  probe?: string;
  node?: string;
  fromBeginning: boolean;
  limit?: number;
  timeoutSeconds?: number;
  log: Logger;
}

function row(e: TracefeedEvent): string[] {
  const a = e.attributes;
  const detail =
    e.type === 'process.exec'
      ? String(a['process.executable.path'])
      : e.type === 'process.exit'
        ? `exit ${a['process.exit.code']}${a['process.exit.signal'] ? ` signal ${a['process.exit.signal']}` : ''}`
        : '';
  return [
    e.time,
    e.node,
    e.type,
    String(a['process.pid'] ?? ''),
    String(a['process.executable.name'] ?? ''),
    detail,
  ];
}

export async function runTail(o: TailOptions): Promise<number> {
  const kafka = new Kafka({
    clientId: 'tracefeed-tail',
    brokers: o.brokers,
    logLevel: logLevel.WARN,
    logCreator: kafkaLogCreator(o.log),
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
        (e) => (!o.probe || e.probe === o.probe) && (!o.node || e.node === o.node),
      );
      const room = o.limit === undefined ? keep.length : Math.max(0, o.limit - printed);
      const out = keep.slice(0, room);
      if (out.length > 0) {
        if (o.format === 'table') {
          process.stdout.write(
            `${table(['time', 'node', 'type', 'pid', 'comm', 'detail'], out.map(row))}\n`,
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
