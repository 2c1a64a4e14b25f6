/** The preflight's capability check, on /proc/self/status text. */
import { describe, expect, it } from 'vitest';
import { CAPABILITY_BITS, NODE_CAPABILITIES } from '../../src/ingest/capabilities.js';
import { checkCapabilities } from '../../src/ingest/preflight.js';

const status = (caps: readonly string[]) => {
  const mask = caps.reduce((m, c) => m | (1n << BigInt(CAPABILITY_BITS[c]!)), 0n);
  return `Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t${mask.toString(16).padStart(16, '0')}\n`;
};

describe('capability check', () => {
  it('passes with the documented set and refuses without any one, naming it', () => {
    expect(() => checkCapabilities(status(NODE_CAPABILITIES))).not.toThrow();
    for (const missing of NODE_CAPABILITIES)
      expect(() =>
        checkCapabilities(status(NODE_CAPABILITIES.filter((c) => c !== missing))),
      ).toThrow(`the node agent needs ${missing} (`);
  });
});
