import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/common/errors.js';
import { deriveRequestId, parseFeedbackRequest } from '../../src/feedback/request.js';

const valid = {
  id: 'fb-1234',
  target: { nodes: ['node-a'] },
  probe: 'tcp',
  action: 'tighten',
  params: { filters: { cgroup: { allow: ['/system.slice/x.service'] } } },
  ttl_seconds: 120,
  reason: 'retransmits',
  origin: 'rule',
  evidence: { anomaly_id: 'a@1' },
  created_at: '2025-01-01T00:00:00.000Z',
};

function errorOf(input: unknown): ConfigError {
  try {
    parseFeedbackRequest(input);
  } catch (err) {
    return err as ConfigError;
  }
  throw new Error('parsed');
}

describe('feedback request schema', () => {
  it('accepts a complete request and fills defaults', () => {
    const r = parseFeedbackRequest(valid);
    expect(r.schema_version).toBe(1);
    expect(r.params.filters?.cgroup?.allow).toEqual(['/system.slice/x.service']);
    expect(parseFeedbackRequest({ ...valid, params: undefined }).params).toEqual({});
    expect(parseFeedbackRequest({ ...valid, target: { all: true } }).target).toEqual({ all: true });
  });

  it('names the offending path for an unknown probe, action, origin and stray keys', () => {
    expect(errorOf({ ...valid, probe: 'kprobe' }).message).toMatch(/probe:/);
    expect(errorOf({ ...valid, probe: 'kprobe' }).path).toBe('probe');
    expect(errorOf({ ...valid, action: 'explode' }).path).toBe('action');
    expect(errorOf({ ...valid, origin: 'llm' }).path).toBe('origin');
    expect(errorOf({ ...valid, extra: 1 }).message).toMatch(/extra/);
    expect(errorOf({ ...valid, params: { sample_n: 0 } }).path).toBe('params.sample_n');
    expect(errorOf({ ...valid, params: { enabled: false } }).message).toMatch(/enabled/);
    expect(
      errorOf({ ...valid, params: { filters: { comm: { allow: ['x'.repeat(20)] } } } }).path,
    ).toBe('params.filters.comm.allow.0');
  });

  it('rejects ids that cannot be job ids and node names that cannot be queue names', () => {
    expect(errorOf({ ...valid, id: 'a:b' }).path).toBe('id');
    expect(errorOf({ ...valid, id: '12345' }).path).toBe('id');
    expect(errorOf({ ...valid, target: { nodes: ['a:b'] } }).path).toBe('target.nodes.0');
    expect(errorOf({ ...valid, target: { nodes: [] } }).path).toMatch(/^target/);
    expect(errorOf({ ...valid, target: { all: false } }).path).toMatch(/^target/);
  });

  it('rejects params on disable, bad ttl and bad timestamps', () => {
    expect(errorOf({ ...valid, action: 'disable', params: { sample_n: 2 } }).path).toBe('params');
    expect(errorOf({ ...valid, ttl_seconds: -1 }).path).toBe('ttl_seconds');
    expect(errorOf({ ...valid, created_at: 'yesterday' }).path).toBe('created_at');
  });

  it('derives stable ids that differ per part', () => {
    const a = deriveRequestId('rule', 'r', 'series', 'w1');
    expect(a).toBe(deriveRequestId('rule', 'r', 'series', 'w1'));
    expect(a).not.toBe(deriveRequestId('rule', 'r', 'series', 'w2'));
    expect(a).toMatch(/^fb-[0-9a-f]{24}$/);
    expect(() => parseFeedbackRequest({ ...valid, id: a })).not.toThrow();
  });
});
