/** Browser sessions (one-time login codes, cookies) and the log format choice. */
import { describe, expect, it } from 'vitest';
import { BrowserSessions, cookieValue, SESSION_COOKIE } from '../../src/common/http-auth.js';
import { resolveLogFormat } from '../../src/common/logger.js';
import { filtersInForce } from '../../src/console/server.js';
import { defaultSettings } from '../../src/wire/probe-settings.js';

describe('browser sessions', () => {
  it('redeems a login code once, and only before it expires', () => {
    const s = new BrowserSessions(1000, 5000);
    const code = s.issueCode(0);
    expect(code).toMatch(/^[0-9a-f]{64}$/);
    const session = s.redeem(code, 10)!;
    expect(session).toMatch(/^[0-9a-f]{64}$/);
    expect(s.redeem(code, 20)).toBeUndefined();
    const late = s.issueCode(0);
    expect(s.redeem(late, 1000)).toBeUndefined();
    expect(s.redeem('not-a-code', 0)).toBeUndefined();
  });

  it('accepts its live sessions only, from the cookie header', () => {
    const s = new BrowserSessions(1000, 5000);
    const session = s.redeem(s.issueCode(0), 0)!;
    const header = `a=1; ${SESSION_COOKIE}=${session}; b=2`;
    expect(cookieValue(header, SESSION_COOKIE)).toBe(session);
    expect(s.valid(header, 100)).toBe(true);
    expect(s.valid(header, 5000)).toBe(false);
    expect(s.valid(`${SESSION_COOKIE}=${'0'.repeat(64)}`, 100)).toBe(false);
    expect(s.valid(undefined, 100)).toBe(false);
    const cookie = s.cookie(session, false);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Strict');
    expect(cookie).not.toContain('Secure');
    expect(s.cookie(session, true)).toContain('; Secure');
  });
});

describe('log format', () => {
  it('is pretty on a terminal, JSON when piped, as the flag or the environment say', () => {
    expect(resolveLogFormat(['node', 'tracefeed', 'up'], {}, true)).toBe('pretty');
    expect(resolveLogFormat(['node', 'tracefeed', 'up'], {}, false)).toBe('json');
    expect(resolveLogFormat(['node', 'tracefeed', 'up', '--log-format', 'json'], {}, true)).toBe(
      'json',
    );
    expect(resolveLogFormat(['node', 'tracefeed', '--log-format=pretty', 'up'], {}, false)).toBe(
      'pretty',
    );
    expect(resolveLogFormat(['node', 'x'], { TRACEFEED_LOG_FORMAT: 'json' }, true)).toBe('json');
    // After "--" the arguments belong to someone else.
    expect(resolveLogFormat(['node', 'x', '--', '--log-format', 'json'], {}, true)).toBe('pretty');
  });
});

describe('filters in force', () => {
  it('names non-empty filters and focuses only', () => {
    const settings = defaultSettings(true);
    expect(filtersInForce({ settings, focus: {} })).toEqual([]);
    settings.filters.port.deny = [22];
    settings.min_duration_ms = 5;
    expect(
      filtersInForce({
        settings,
        focus: {
          '/app': {
            sample_n: 1,
            slow_ms: 0,
            min_duration_ms: 0,
            cgroup_id: '77',
            effective_sample_n: 1,
          },
        },
      }),
    ).toEqual(['port deny 22', 'min duration 5 ms', 'focus /app (cgroup 77): 1 in 1']);
  });
});
