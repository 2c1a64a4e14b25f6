import Table from 'cli-table3';

export type OutputFormat = 'table' | 'json' | 'jsonl';

/** `-o` value, or a table on a terminal and JSON lines when piped. */
export function resolveFormat(value: string | undefined): OutputFormat {
  if (value === undefined) return process.stdout.isTTY ? 'table' : 'jsonl';
  if (value === 'table' || value === 'json' || value === 'jsonl') return value;
  throw new Error(`-o must be table, json or jsonl, got "${value}"`);
}

export function jsonLine(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

export function table(head: string[], rows: Array<Array<string | number>>): string {
  const t = new Table({ head, style: { head: [], border: [] } });
  for (const r of rows) t.push(r.map(String));
  return t.toString();
}

/** A single status line on stderr, redrawn in place; only when stderr is a terminal. */
export class StatusLine {
  private readonly enabled = process.stderr.isTTY === true;
  update(text: string): void {
    if (!this.enabled) return;
    const width = process.stderr.columns ?? 120;
    process.stderr.write(`\r\x1b[K${text.slice(0, width - 1)}`);
  }
  clear(): void {
    if (this.enabled) process.stderr.write('\r\x1b[K');
  }
}
