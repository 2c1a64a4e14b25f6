/**
 * The node's own record of the feedback it applied and when each change must be
 * reverted: an append-only JSON-lines file under TRACEFEED_HOME, fsync'd before the
 * kernel changes. It does not depend on Redis: a node whose delayed revert jobs are
 * gone (Redis lost, a crash before they were queued) still reverts on time, and a node
 * restarted after a crash at any point puts back what is still in force and reverts it
 * when due.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { stateDir } from '../common/paths.js';
import type { ProbeName } from '../wire/layout.js';
import type { ProbePatch, ProbeSettings } from '../wire/probe-settings.js';

/** Written (and fsync'd) before the kernel change. */
export interface IntentEntry {
  t: 'intent';
  id: string;
  probe: ProbeName;
  patch: ProbePatch;
  /** The probe's settings before the change. */
  previous: ProbeSettings;
  /** When the change was made, ms. */
  at_ms: number;
  /** When it must be reverted, ms; null: no TTL (until an operator reverts it). */
  revert_at_ms: number | null;
}

/** Written after the kernel change, with what the kernel holds now. */
export interface AppliedEntry {
  t: 'applied';
  id: string;
  applied: ProbeSettings;
  generation: number;
}

/** Written after the change is undone (or found undone). */
export interface RevertedEntry {
  t: 'reverted';
  id: string;
  at_ms: number;
  cause: 'ttl' | 'operator' | 'restart' | 'failed';
}

export type JournalEntry = IntentEntry | AppliedEntry | RevertedEntry;

/** A change in force: its intent, and what was applied if that was recorded before a crash. */
export interface JournaledChange {
  intent: IntentEntry;
  applied?: AppliedEntry;
}

export function journalPath(node: string): string {
  return join(stateDir(), 'feedback', `journal-${encodeURIComponent(node)}.jsonl`);
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export class RevertJournal {
  private readonly changes = new Map<string, JournaledChange>();
  private readonly reverted = new Set<string>();
  /** Lines that did not parse (a write torn by a crash: only ever the last one). */
  torn = 0;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    if (existsSync(path)) this.load();
    this.compact();
  }

  private load(): void {
    for (const line of readFileSync(this.path, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      let e: JournalEntry;
      try {
        e = JSON.parse(line) as JournalEntry;
      } catch {
        this.torn++;
        continue;
      }
      this.take(e);
    }
  }

  private take(e: JournalEntry): void {
    if (e.t === 'intent') this.changes.set(e.id, { intent: e });
    else if (e.t === 'applied') {
      const c = this.changes.get(e.id);
      if (c) c.applied = e;
    } else if (e.t === 'reverted') {
      this.changes.delete(e.id);
      this.reverted.add(e.id);
    }
  }

  /** Rewrites the file with only what is in force (and the ids reverted), atomically. */
  private compact(): void {
    const lines: string[] = [];
    // The ids reverted are kept (a late job for one changes nothing), the last 10000.
    const ids = [...this.reverted];
    for (const id of ids.slice(0, Math.max(0, ids.length - 10_000))) this.reverted.delete(id);
    for (const id of this.reverted)
      lines.push(JSON.stringify({ t: 'reverted', id, at_ms: 0, cause: 'ttl' }));
    for (const c of this.changes.values()) {
      lines.push(JSON.stringify(c.intent));
      if (c.applied) lines.push(JSON.stringify(c.applied));
    }
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, lines.map((l) => `${l}\n`).join(''));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    fsyncDir(dirname(this.path));
  }

  /** Appends one entry and fsyncs it: when this returns, the entry survives a crash. */
  append(e: JournalEntry): void {
    const fd = openSync(this.path, 'a', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(e)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.take(e);
  }

  /** The changes in force (applied, or possibly applied, and not reverted). */
  inForce(): JournaledChange[] {
    return [...this.changes.values()];
  }

  get(id: string): JournaledChange | undefined {
    return this.changes.get(id);
  }

  isReverted(id: string): boolean {
    return this.reverted.has(id);
  }
}
