import { describe, expect, it } from 'vitest';
import {
  AnswerBudget,
  CursorError,
  CursorStore,
  estimateTokens,
  fitToBudget,
  readPage,
} from '../../src/agent/budget.js';
import { completenessOf } from '../../src/agent/completeness.js';
import { log2Histogram } from '../../src/agent/mcp/tools.js';

const groups = Array.from({ length: 40 }, (_, i) => ({
  workload: `/w-${String(i).padStart(2, '0')}`,
  value: 1000 - i,
  series: [`n|/w-${i}|process|exec_count`],
}));

describe('token budgets', () => {
  it('leaves a result that fits as it is', () => {
    const store = new CursorStore();
    const r = fitToBudget('t', { tool: 't', data: { groups: groups.slice(0, 2) } }, 2000, store);
    expect(r.truncation).toBeUndefined();
    expect(JSON.parse(r.text)).toEqual({ tool: 't', data: { groups: groups.slice(0, 2) } });
    expect(r.tokens).toBe(estimateTokens(r.text));
    expect(store.size).toBe(0);
  });

  it('cuts the largest list to fit, and the cursor pages through exactly the rest', () => {
    const store = new CursorStore();
    const result = { tool: 't', completeness: { complete: true }, data: { total: 40, groups } };
    const r = fitToBudget('t', result, 300, store);
    expect(r.tokens).toBeLessThanOrEqual(300);
    const cut = JSON.parse(r.text);
    expect(cut.completeness).toEqual({ complete: true });
    expect(cut.truncation).toMatchObject({ truncated: true, path: 'data.groups', total: 40 });
    expect(cut.data.groups).toEqual(groups.slice(0, cut.truncation.returned));
    const got = [...cut.data.groups];
    let cursor: string | undefined = cut.truncation.cursor;
    let pages = 0;
    while (cursor) {
      const p = readPage(cursor, 300, store);
      expect(p.tokens).toBeLessThanOrEqual(300);
      const page = JSON.parse(p.text);
      expect(page.page.from).toBe(got.length);
      got.push(...page.items);
      cursor = page.truncation?.cursor;
      if (!cursor) expect(page.complete).toBeDefined();
      pages++;
    }
    expect(pages).toBeGreaterThan(1);
    expect(got).toEqual(groups);
  });

  it('a page whose one item is over the budget cuts that item and goes on with the list', () => {
    const store = new CursorStore();
    const items = [
      { name: 'big', series: Array.from({ length: 200 }, (_, i) => `series-${i}`) },
      { name: 'small' },
    ];
    const r = fitToBudget('t', { data: { items } }, 300, store);
    const first = JSON.parse(r.text);
    const p = readPage(first.truncation.cursor, 300, store);
    expect(p.tokens).toBeLessThanOrEqual(300);
    const page = JSON.parse(p.text);
    expect(page.page).toMatchObject({ from: 0, to: 1, total: 2 });
    expect(page.item.name).toBe('big');
    expect(page.truncation).toMatchObject({ path: 'item.series', total: 200 });
    // The item's own rest, then the list's next page.
    const series = [...page.item.series];
    let c: string | undefined = page.truncation.cursor;
    while (c) {
      const q = JSON.parse(readPage(c, 300, store).text);
      series.push(...q.items);
      c = q.truncation?.cursor;
    }
    expect(series).toEqual(items[0]!.series);
    const next = JSON.parse(readPage(page.next_page_cursor, 300, store).text);
    expect(next.items).toEqual([{ name: 'small' }]);
    expect(next.complete).toBeDefined();
  });

  it('reading a cursor twice returns the same page', () => {
    const store = new CursorStore();
    const r = fitToBudget('t', { data: { groups } }, 300, store);
    const c = JSON.parse(r.text).truncation.cursor;
    expect(readPage(c, 300, store).text).toBe(readPage(c, 300, store).text);
  });

  it('cuts the text when the fixed part alone is over budget', () => {
    const store = new CursorStore();
    const big = { data: { note: 'x'.repeat(5000) } };
    const r = fitToBudget('t', big, 400, store);
    expect(r.tokens).toBeLessThanOrEqual(400);
    expect(r.truncation).toMatchObject({ path: 'text', total: JSON.stringify(big).length });
    let text = JSON.parse(r.text).text_head as string;
    let cursor: string | undefined = r.truncation!.cursor;
    while (cursor) {
      const page = JSON.parse(readPage(cursor, 400, store).text);
      text += page.text_piece;
      cursor = page.truncation?.cursor;
    }
    expect(JSON.parse(text)).toEqual(big);
  });

  it('refuses malformed, unknown and expired cursors with a clear error', () => {
    let now = 0;
    const store = new CursorStore({ ttlMs: 1000, maxEntries: 2, now: () => now });
    expect(() => readPage('not a cursor', 300, store)).toThrow(CursorError);
    expect(() => readPage('not a cursor', 300, store)).toThrow(/malformed/);
    const c = JSON.parse(fitToBudget('t', { data: { groups } }, 300, store).text).truncation.cursor;
    now = 2000;
    expect(() => readPage(c, 300, store)).toThrow(/expired or is unknown/);
    // Bounded: the least recently used cursor goes first.
    const c1 = JSON.parse(fitToBudget('t', { data: { groups } }, 300, store).text).truncation
      .cursor;
    fitToBudget('t', { data: { groups } }, 300, store);
    fitToBudget('t', { data: { groups } }, 300, store);
    expect(store.size).toBe(2);
    expect(() => readPage(c1, 300, store)).toThrow(/expired or is unknown/);
  });

  it('an answer budget gives each result what is left, at least 200 tokens', () => {
    const b = new AnswerBudget(1000);
    expect(b.next(600)).toBe(600);
    b.spend(600);
    expect(b.next(600)).toBe(400);
    b.spend(400);
    expect(b.next(600)).toBe(200);
    expect(b.left).toBe(0);
  });
});

describe('completeness of feature rows', () => {
  const row = (over: Record<string, number | string>) => ({
    window_start: '2026-01-01T00:00:00.000Z',
    window_end: '2026-01-01T00:00:01.000Z',
    node: 'n1',
    workload: '/a',
    probe: 'tcp',
    sample_weight_max: 1,
    probe_sample_n: 1,
    probe_overload_n: 1,
    probe_ringbuf_full: 0,
    probe_sink_dropped: 0,
    probe_map_full: 0,
    probe_sampled_out: 0,
    probe_filtered: 0,
    coverage_ratio: 1,
    ...over,
  });

  it('counts node-level drops once per (node, probe, window), not once per row', () => {
    const c = completenessOf([
      row({ workload: '/a', probe_ringbuf_full: 50, coverage_ratio: 0.8 }),
      row({ workload: '/b', probe_ringbuf_full: 50, coverage_ratio: 0.8 }),
      row({
        workload: '/a',
        window_start: '2026-01-01T00:00:01.000Z',
        window_end: '2026-01-01T00:00:02.000Z',
      }),
    ]);
    expect(c).toMatchObject({
      feature_rows: 3,
      windows: 2,
      complete: false,
      lossy: true,
      sampled: false,
      coverage_min: 0.8,
    });
    expect(c.drops.ringbuf_full).toBe(50);
    expect(c.incomplete).toEqual([
      expect.objectContaining({ node: 'n1', probe: 'tcp', windows: 2, lossy_windows: 1 }),
    ]);
    expect(c.summary).toMatch(/events were LOST .* ring buffer full 50/);
  });

  it('says sampled when a row carries a sample weight over 1', () => {
    const c = completenessOf([row({ probe: 'process', sample_weight_max: 8 })]);
    expect(c).toMatchObject({ complete: false, sampled: true, lossy: false, sample_weight_max: 8 });
    expect(c.summary).toMatch(/SAMPLED .*up to 1 in 8/);
  });

  it('says complete when nothing was lost or sampled, and says when nothing was read', () => {
    expect(completenessOf([row({})])).toMatchObject({ complete: true, incomplete: [] });
    expect(completenessOf([])).toMatchObject({
      complete: false,
      feature_rows: 0,
      summary: 'no feature windows were read',
    });
  });
});

describe('log2 histogram', () => {
  it('buckets positive values by power of two and counts them all', () => {
    const h = log2Histogram([1, 2, 3, 4, 1000, 0]);
    expect(h).toEqual([
      { from: 1, to: 2, count: 1 },
      { from: 2, to: 4, count: 2 },
      { from: 4, to: 8, count: 1 },
      { from: 512, to: 1024, count: 1 },
    ]);
  });
});
