/**
 * Token budgets for tool results. A result is estimated at one token per four
 * characters of its JSON (close enough for English and JSON for budgeting; no
 * tokenizer download). A result over its budget is cut: its largest list keeps
 * the items that fit, the rest waits behind an opaque cursor (`read_more`
 * returns the next page, under the same kind of budget); a result whose
 * fixed part alone is over budget is cut as text, with a cursor for the rest.
 *
 * Cursors live in a bounded store (entries, bytes, age); an expired or unknown
 * cursor is a clear error, never a silent empty page.
 */
import { randomBytes } from 'node:crypto';

/** Characters per token of the estimate. */
export const CHARS_PER_TOKEN = 4;
/** Default budget of one tool result, tokens. */
export const DEFAULT_RESULT_TOKENS = 2000;
/** Largest budget a caller may ask for one result, tokens. */
export const MAX_RESULT_TOKENS = 32_000;
/** Smallest budget a caller may ask for one result, tokens. */
export const MIN_RESULT_TOKENS = 200;

export function estimateTokens(text: string): number {
  return Math.ceil(text.length / CHARS_PER_TOKEN);
}

const json = (v: unknown): string =>
  JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));

/** What waits behind a cursor: the rest of one list, or the rest of one text. */
export type CursorEntry =
  | { kind: 'items'; tool: string; path: string; items: unknown[]; total: number; bytes: number }
  | { kind: 'text'; tool: string; text: string; bytes: number };

export class CursorError extends Error {}

/**
 * The cursors of one server (or one MCP session): at most `maxEntries`, at
 * most `maxBytes` of held JSON, each for `ttlMs`; the least recently used go
 * first. A cursor string is `<entry id>.<offset>`, base64url: opaque to callers.
 */
export class CursorStore {
  private readonly entries = new Map<string, { e: CursorEntry; at: number }>();
  private bytes = 0;
  /** Cursors issued and cursors evicted (bound or age), for status. */
  readonly stats = { issued: 0, evicted: 0, expired_reads: 0 };

  constructor(
    private readonly opts: {
      maxEntries?: number;
      maxBytes?: number;
      ttlMs?: number;
      now?: () => number;
    } = {},
  ) {}

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  put(e: CursorEntry): string {
    const id = randomBytes(12).toString('base64url');
    this.entries.set(id, { e, at: this.now() });
    this.bytes += e.bytes;
    this.stats.issued++;
    this.evict();
    return id;
  }

  private evict(): void {
    const maxEntries = this.opts.maxEntries ?? 256;
    const maxBytes = this.opts.maxBytes ?? 32 * 1024 * 1024;
    const ttl = this.opts.ttlMs ?? 30 * 60_000;
    const now = this.now();
    for (const [id, v] of this.entries) {
      const over = this.entries.size > maxEntries || this.bytes > maxBytes;
      if (!over && now - v.at <= ttl) break;
      this.entries.delete(id);
      this.bytes -= v.e.bytes;
      this.stats.evicted++;
    }
  }

  /** The entry and offset of a cursor string; a CursorError names what is wrong. */
  resolve(cursor: string): { id: string; entry: CursorEntry; offset: number } {
    let id: string;
    let offset: number;
    try {
      const raw = Buffer.from(cursor, 'base64url').toString('utf8');
      const m = /^([A-Za-z0-9_-]{16})\.(\d{1,9})$/.exec(raw);
      if (!m) throw new Error('malformed');
      id = m[1]!;
      offset = Number(m[2]);
    } catch {
      throw new CursorError('the cursor is malformed: pass the cursor string of a result as it is');
    }
    this.evict();
    const v = this.entries.get(id);
    if (!v) {
      this.stats.expired_reads++;
      throw new CursorError(
        'the cursor expired or is unknown (cursors are kept 30 minutes, the most recent 256): call the tool again',
      );
    }
    // Most recently used last.
    this.entries.delete(id);
    v.at = this.now();
    this.entries.set(id, v);
    return { id, entry: v.e, offset };
  }

  static cursor(id: string, offset: number): string {
    return Buffer.from(`${id}.${offset}`, 'utf8').toString('base64url');
  }

  get size(): number {
    return this.entries.size;
  }
}

/** How a result was cut to fit its budget (absent when it fit). */
export interface Truncation {
  truncated: true;
  /** The list that was cut (dotted path in the result), or `text`. */
  path: string;
  returned: number;
  total: number;
  /** Pass to read_more for the rest. */
  cursor: string;
  /** Estimated tokens of the whole result, uncut. */
  full_tokens: number;
}

export interface Budgeted {
  /** The JSON text sent. */
  text: string;
  tokens: number;
  budget_tokens: number;
  truncation?: Truncation;
}

type Json = Record<string, unknown>;

/** Every array inside `v` (objects only, depth <= 3) with its dotted path. */
function arrays(
  v: unknown,
  path: string[] = [],
  depth = 0,
): Array<{ path: string[]; a: unknown[] }> {
  if (v === null || typeof v !== 'object' || depth > 3) return [];
  if (Array.isArray(v)) return [{ path, a: v }];
  const out: Array<{ path: string[]; a: unknown[] }> = [];
  for (const [k, x] of Object.entries(v as Json)) out.push(...arrays(x, [...path, k], depth + 1));
  return out;
}

function setAt(root: unknown, path: string[], value: unknown): unknown {
  if (path.length === 0) return value;
  const copy = { ...(root as Json) };
  copy[path[0]!] = setAt(copy[path[0]!], path.slice(1), value);
  return copy;
}

/** The longest prefix of `items` whose JSON fits `chars` (items measured one by one). */
function fitting(items: unknown[], chars: number): number {
  let used = 2;
  let k = 0;
  for (const it of items) {
    const n = json(it).length + (k > 0 ? 1 : 0);
    if (used + n > chars) break;
    used += n;
    k++;
  }
  return k;
}

/**
 * Fits `result` into `budgetTokens`. The largest list (under `under`) is cut
 * first, and a cursor holds the rest; when the fixed part alone is over the
 * budget, the JSON text is cut, with a cursor for the rest of the text.
 */
export function fitToBudget(
  tool: string,
  result: Json,
  budgetTokens: number,
  store: CursorStore,
  /** Where the lists to cut are: `['data']` (default) or `[]` (anywhere). */
  under: string[] = ['data'],
): Budgeted {
  const full = json(result);
  const fullTokens = estimateTokens(full);
  if (fullTokens <= budgetTokens)
    return { text: full, tokens: fullTokens, budget_tokens: budgetTokens };
  const budgetChars = budgetTokens * CHARS_PER_TOKEN;
  // The truncation note itself takes room: reserve it.
  const reserve = 400;
  let root: unknown = result;
  for (const k of under) root = (root as Json | undefined)?.[k];
  const lists = arrays(root, under)
    .filter((x) => x.a.length > 1)
    .map((x) => ({ ...x, size: json(x.a).length }))
    .sort((a, b) => b.size - a.size);
  const main = lists[0];
  if (main) {
    const without = json(setAt(result, main.path, []));
    const room = budgetChars - without.length - reserve;
    const k = room > 0 ? fitting(main.a, room) : 0;
    if (k > 0 || room > 0) {
      const rest = main.a.slice(k);
      const id = store.put({
        kind: 'items',
        tool,
        path: main.path.join('.'),
        items: rest,
        total: main.a.length,
        bytes: json(rest).length,
      });
      const truncation: Truncation = {
        truncated: true,
        path: main.path.join('.'),
        returned: k,
        total: main.a.length,
        cursor: CursorStore.cursor(id, 0),
        full_tokens: fullTokens,
      };
      const cut = { ...(setAt(result, main.path, main.a.slice(0, k)) as Json), truncation };
      const text = json(cut);
      if (estimateTokens(text) <= budgetTokens)
        return { text, tokens: estimateTokens(text), budget_tokens: budgetTokens, truncation };
    }
  }
  // The fixed part alone is over budget: cut the JSON text.
  const head = full.slice(0, Math.max(0, budgetChars - reserve));
  const id = store.put({ kind: 'text', tool, text: full, bytes: full.length });
  const truncation: Truncation = {
    truncated: true,
    path: 'text',
    returned: head.length,
    total: full.length,
    cursor: CursorStore.cursor(id, head.length),
    full_tokens: fullTokens,
  };
  const text = json({ tool, truncation, text_head: head });
  return { text, tokens: estimateTokens(text), budget_tokens: budgetTokens, truncation };
}

/** The page of a cursor, under `budgetTokens`, with a cursor for what is still left. */
export function readPage(cursor: string, budgetTokens: number, store: CursorStore): Budgeted {
  const { id, entry, offset } = store.resolve(cursor);
  const budgetChars = budgetTokens * CHARS_PER_TOKEN;
  const reserve = 400;
  if (entry.kind === 'text') {
    const piece = entry.text.slice(offset, offset + Math.max(1, budgetChars - reserve));
    const next = offset + piece.length;
    const truncation: Truncation | undefined =
      next < entry.text.length
        ? {
            truncated: true,
            path: 'text',
            returned: next,
            total: entry.text.length,
            cursor: CursorStore.cursor(id, next),
            full_tokens: estimateTokens(entry.text),
          }
        : undefined;
    const text = json({
      tool: entry.tool,
      page: { path: 'text', from: offset, to: next, total: entry.text.length },
      text_piece: piece,
      ...(truncation ? { truncation } : { complete: 'this is the last piece' }),
    });
    return {
      text,
      tokens: estimateTokens(text),
      budget_tokens: budgetTokens,
      ...(truncation ? { truncation } : {}),
    };
  }
  if (offset > entry.items.length)
    throw new CursorError('the cursor points past the end of its list: call the tool again');
  const done = entry.total - entry.items.length;
  const left = entry.items.slice(offset);
  const k = fitting(left, budgetChars - reserve);
  if (k === 0 && left.length > 0) {
    // One item alone is over the budget: it is cut in turn; next_page_cursor goes on with the list.
    const more = offset + 1 < entry.items.length;
    return fitToBudget(
      entry.tool,
      {
        tool: entry.tool,
        page: { path: entry.path, from: done + offset, to: done + offset + 1, total: entry.total },
        ...(more
          ? { next_page_cursor: CursorStore.cursor(id, offset + 1) }
          : { complete: 'this is the last page' }),
        item: left[0],
      },
      budgetTokens,
      store,
      ['item'],
    );
  }
  const items = left.slice(0, k);
  const next = offset + k;
  const truncation: Truncation | undefined =
    next < entry.items.length
      ? {
          truncated: true,
          path: entry.path,
          returned: done + next,
          total: entry.total,
          cursor: CursorStore.cursor(id, next),
          full_tokens: estimateTokens(json(entry.items)),
        }
      : undefined;
  const text = json({
    tool: entry.tool,
    page: {
      path: entry.path,
      from: done + offset,
      to: done + next,
      total: entry.total,
    },
    items,
    ...(truncation ? { truncation } : { complete: 'this is the last page' }),
  });
  return {
    text,
    tokens: estimateTokens(text),
    budget_tokens: budgetTokens,
    ...(truncation ? { truncation } : {}),
  };
}

/**
 * A budget over several results (one answer): each result gets the smaller of
 * its own budget and what is left of the answer's.
 */
export class AnswerBudget {
  private used = 0;
  constructor(readonly totalTokens: number) {}
  /** Tokens the next result may use. */
  next(resultTokens: number): number {
    return Math.max(MIN_RESULT_TOKENS, Math.min(resultTokens, this.totalTokens - this.used));
  }
  spend(tokens: number): void {
    this.used += tokens;
  }
  get spent(): number {
    return this.used;
  }
  get left(): number {
    return Math.max(0, this.totalTokens - this.used);
  }
}
