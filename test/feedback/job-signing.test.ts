/**
 * Job signatures and the signing key files: what verifies, what does not,
 * and how the key pair is kept under the state directory.
 */
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canonicalJson, loadOrCreateSigner, loadVerifier } from '../../src/feedback/job-signing.js';
import { feedbackJobSchema } from '../../src/feedback/job.js';
import { request, testSigner } from './helpers.js';

function job(node = 'node-a'): Record<string, unknown> {
  return {
    kind: 'apply',
    node,
    request: request({ target: { nodes: [node] } }),
    patch: { sample_n: 4, filters: { pid: { allow: [7] } } },
    ttl_seconds: 60,
    outcome: 'accept',
    reason: 'test',
  };
}

describe('feedback job signatures', () => {
  it('a signed job verifies, and parses as a job', () => {
    const signer = testSigner();
    const signed = signer.sign(job());
    expect(signer.verifier().check(signed)).toBeUndefined();
    // What Redis hands back: a JSON round trip, keys in another order.
    const reordered = JSON.parse(canonicalJson(signed)) as unknown;
    expect(signer.verifier().check(reordered)).toBeUndefined();
    expect(feedbackJobSchema.safeParse(signed).success).toBe(true);
  });

  it('refuses unsigned, altered, and foreign-key jobs, naming why', () => {
    const signer = testSigner();
    const v = signer.verifier();
    const signed = signer.sign(job());
    expect(v.check(job())).toMatch(/carries no signature/);
    expect(v.check('text')).toMatch(/not an object/);
    expect(v.check({ ...signed, signature: 'AAAA' })).toMatch(/not a base64 Ed25519/);
    for (const altered of [
      { ...signed, patch: { sample_n: 1000 } },
      { ...signed, ttl_seconds: 3600 },
      { ...signed, node: 'node-b' },
      { ...signed, kind: 'revert' },
      { ...signed, request: { ...(signed.request as object), probe: 'process' } },
      {
        ...signed,
        request: { ...(signed.request as object), created_at: '2020-01-01T00:00:00.000Z' },
      },
      { ...signed, extra: true },
    ])
      expect(v.check(altered)).toMatch(/does not verify/);
    expect(testSigner().verifier().check(signed)).toMatch(/does not verify/);
  });

  it('canonical JSON sorts keys at every level and leaves undefined out', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { f: 2, e: 3 }], c: undefined } })).toBe(
      '{"a":{"d":[1,{"e":3,"f":2}]},"b":1}',
    );
  });
});

describe('feedback signing key files', () => {
  it('creates the key pair once: private 0600, public 0644, the same key on every load', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-sign-'));
    const file = join(dir, 'home', 'feedback-signing.key');
    const a = loadOrCreateSigner(file);
    const b = loadOrCreateSigner(file);
    expect(b.publicKeyPem).toBe(a.publicKeyPem);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const pub = join(dir, 'home', 'feedback-signing.pub');
    expect(statSync(pub).mode & 0o777).toBe(0o644);
    expect(readFileSync(pub, 'utf8')).toBe(a.publicKeyPem);
    // The node's verifier, from the public key file, accepts what the controller signs.
    expect(loadVerifier(pub).check(a.sign(job()))).toBeUndefined();
  });

  it('refuses a private key other users can read, and a public key other users can write', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-sign-'));
    const file = join(dir, 'feedback-signing.key');
    loadOrCreateSigner(file);
    chmodSync(file, 0o644);
    expect(() => loadOrCreateSigner(file)).toThrow(
      /the feedback signing key .* is readable by other users \(mode 644\)/,
    );
    chmodSync(file, 0o600);
    const pub = join(dir, 'feedback-signing.pub');
    chmodSync(pub, 0o666);
    expect(() => loadVerifier(pub)).toThrow(/writable by other users \(mode 666\)/);
    expect(() => loadVerifier(join(dir, 'absent.pub'))).toThrow(
      /cannot read the feedback verify key/,
    );
  });

  it('refuses a public key file that does not match the private key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-sign-'));
    const file = join(dir, 'feedback-signing.key');
    loadOrCreateSigner(file);
    writeFileSync(join(dir, 'feedback-signing.pub'), testSigner().publicKeyPem);
    expect(() => loadOrCreateSigner(file)).toThrow(/does not hold the public key of/);
  });
});
