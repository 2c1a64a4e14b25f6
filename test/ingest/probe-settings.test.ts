/** Filter limits of the settings schema: what the kernel's filter set maps can hold. */
import { describe, expect, it } from 'vitest';
import { SET_ID_MAX, SET_STR_MAX } from '../../src/wire/layout.js';
import {
  applyPatch,
  defaultSettings,
  normalizePathPrefix,
  probePatchSchema,
  probeSettingsSchema,
} from '../../src/wire/probe-settings.js';

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe('probe settings filter limits', () => {
  it('refuses allow and deny that together exceed the kernel map, naming the dimension and limit', () => {
    const r = probeSettingsSchema.safeParse({
      enabled: true,
      filters: { port: { allow: range(1, 600), deny: range(2000, 600) } },
    });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['filters', 'port']);
    expect(r.error?.issues[0]?.message).toBe(
      `filters.port: 1200 entries in allow and deny together, but the kernel map tf_set_port holds ${SET_ID_MAX}`,
    );
    expect(() =>
      applyPatch(defaultSettings(true), {
        filters: {
          path_prefix: {
            allow: range(0, 200).map((i) => `/a${i}`),
            deny: range(0, 57).map((i) => `/d${i}`),
          },
        },
      }),
    ).toThrow(
      `filters.path_prefix: 257 entries in allow and deny together, but the kernel map tf_set_path holds ${SET_STR_MAX}`,
    );
  });

  it('accepts lists that fit, counting a value in both lists once', () => {
    const s = applyPatch(defaultSettings(true), {
      filters: { comm: { allow: range(0, 256).map((i) => `c${i}`), deny: ['c0', 'c1'] } },
    });
    expect(s.filters.comm.allow).toHaveLength(256);
  });
});

describe('path prefix filters', () => {
  it('normalises prefixes before they reach the kernel map', () => {
    const s = applyPatch(defaultSettings(true), {
      filters: {
        path_prefix: {
          allow: ['/tmp//tfX/', '/tmp/./a/../tfY/.', '//srv'],
          deny: ['/tmp/tfX/../tfZ/'],
        },
      },
    });
    expect(s.filters.path_prefix.allow).toEqual(['/tmp/tfX/', '/tmp/tfY', '/srv']);
    expect(s.filters.path_prefix.deny).toEqual(['/tmp/tfZ/']);
    expect(normalizePathPrefix('/a/b/../../..//c/')).toBe('/c/');
  });

  it('refuses a relative prefix, naming it', () => {
    const r = probeSettingsSchema.safeParse({
      enabled: true,
      filters: { path_prefix: { deny: ['tmp/tfX'] } },
    });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['filters', 'path_prefix', 'deny', 0]);
    expect(r.error?.issues[0]?.message).toBe(
      'a path prefix is absolute: "tmp/tfX" is relative (opened paths are reported from the root)',
    );
    const p = probePatchSchema.safeParse({ filters: { path_prefix: { allow: ['./x'] } } });
    expect(p.error?.issues[0]?.message).toMatch(/"\.\/x" is relative/);
    expect(() => normalizePathPrefix('../etc')).toThrow(/"\.\.\/etc" is relative/);
  });

  it('measures the 64-byte bound after normalising', () => {
    const long = `/${'a'.repeat(62)}/`; // 64 bytes
    expect(
      applyPatch(defaultSettings(true), {
        filters: { path_prefix: { allow: [`${long}./`] } },
      }).filters.path_prefix.allow,
    ).toEqual([long]);
    expect(() =>
      applyPatch(defaultSettings(true), { filters: { path_prefix: { allow: [`${long}b`] } } }),
    ).toThrow(/at most 64 bytes once normalised/);
  });
});
