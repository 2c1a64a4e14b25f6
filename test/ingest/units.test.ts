import { describe, expect, it } from 'vitest';
import { parseCgroupPath, cgroup2Root } from '../../src/ingest/cgroup-resolver.js';
import { histogramQuantile } from '../../src/wire/histogram.js';
import { applyPatch, defaultSettings, probePatchSchema } from '../../src/wire/probe-settings.js';
import { formatAddress } from '../../src/wire/event-decoder.js';

describe('cgroup paths', () => {
  it('finds container ids for docker, containerd and kubepods layouts', () => {
    const id = 'a'.repeat(64);
    expect(parseCgroupPath(`/system.slice/docker-${id}.scope`).containerId).toBe(id);
    expect(parseCgroupPath(`/docker/${id}`).containerId).toBe(id);
    const k = parseCgroupPath(
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12345678_1234_1234_1234_123456789abc.slice/cri-containerd-${id}.scope`,
    );
    expect(k.containerId).toBe(id);
    expect(k.podUid).toBe('12345678-1234-1234-1234-123456789abc');
    expect(parseCgroupPath('/user.slice/session-1.scope').containerId).toBeUndefined();
  });

  it('finds the cgroup v2 mount on unified and hybrid hosts', () => {
    expect(cgroup2Root('cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n')).toBe('/sys/fs/cgroup');
    expect(
      cgroup2Root(
        'cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n',
      ),
    ).toBe('/sys/fs/cgroup/unified');
    expect(cgroup2Root('proc /proc proc rw 0 0\n')).toBeUndefined();
  });
});

describe('log2 histogram quantiles', () => {
  it('interpolates inside the bucket holding the quantile', () => {
    const h = new Array<number>(32).fill(0);
    h[10] = 100; // [1024, 2048)
    expect(histogramQuantile(h, 0.5)).toBe(1536);
    h[20] = 100; // [1048576, 2097152)
    expect(histogramQuantile(h, 0.99)).toBeGreaterThanOrEqual(2 ** 20);
    expect(histogramQuantile(h, 0.25)).toBeLessThan(2048);
    expect(histogramQuantile(new Array<number>(32).fill(0), 0.5)).toBe(0);
  });
});

describe('probe settings', () => {
  it('applies a patch and keeps what it does not name', () => {
    const base = applyPatch(defaultSettings(true), {
      filters: { port: { allow: [80] } },
      sample_n: 4,
    });
    const next = applyPatch(base, { min_duration_ms: 5 });
    expect(next.sample_n).toBe(4);
    expect(next.filters.port.allow).toEqual([80]);
    expect(next.min_duration_ms).toBe(5);
    expect(applyPatch(next, { clear_filters: true }).filters.port.allow).toEqual([]);
  });

  it('rejects bad input with the path of the problem', () => {
    const cases: Array<[unknown, string]> = [
      [{ sample_n: 0 }, 'sample_n'],
      [{ filters: { comm: { allow: ['a-name-longer-than-15'] } } }, 'filters.comm.allow.0'],
      [{ filters: { path_prefix: { allow: ['relative/path'] } } }, 'filters.path_prefix.allow.0'],
      [{ filters: { port: { deny: [70000] } } }, 'filters.port.deny.0'],
      [{ bogus: true }, ''],
    ];
    for (const [patch, path] of cases) {
      const r = probePatchSchema.safeParse(patch);
      expect(r.success, JSON.stringify(patch)).toBe(false);
      if (!r.success) expect(r.error.issues[0]?.path.join('.')).toBe(path);
    }
  });
});

describe('addresses', () => {
  it('formats IPv4 and compressed IPv6', () => {
    const b = new Uint8Array(16);
    b.set([127, 0, 0, 1]);
    expect(formatAddress(b, 0, 2)).toBe('127.0.0.1');
    const v6 = new Uint8Array(16);
    v6[15] = 1;
    expect(formatAddress(v6, 0, 10)).toBe('::1');
    const v6b = new Uint8Array([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x2a]);
    expect(formatAddress(v6b, 0, 10)).toBe('2001:db8::2a');
  });
});

describe('kernel release check', () => {
  it('accepts 6.2 and later, refuses older kernels naming the version and the reason', async () => {
    const { checkKernelRelease } = await import('../../src/ingest/preflight.js');
    for (const ok of ['6.2.0', '6.18.44', '6.10.0-rc1', '7.0.1-arch1']) checkKernelRelease(ok);
    expect(() => checkKernelRelease('6.1.0-27-amd64')).toThrow(
      /kernel 6\.1\.0-27-amd64 is older than 6\.2.*bpf_rdonly_cast/,
    );
    expect(() => checkKernelRelease('5.15.0')).toThrow(/older than 6\.2/);
    expect(() => checkKernelRelease('garbage')).toThrow(/cannot read the kernel version/);
  });
});
