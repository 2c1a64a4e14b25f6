/**
 * The Linux capabilities the node agent needs, and why. The agent keeps
 * uid 0 (tracefs, /sys/fs/cgroup and /proc files it reads are root-owned)
 * but needs nothing beyond this set: test/security/least-privilege.root.kafka.e2e.test.ts
 * runs it under `capsh` with exactly these, and without each one in turn.
 */
export const NODE_CAPABILITY_REASONS = {
  /** bpf(): create maps, load programs, read and write maps (without it every load is EPERM). */
  cap_bpf: 'bpf(): create maps, load programs, read and write maps',
  /**
   * Tracing programs (tracepoint, raw_tp, tp_btf): perf_event_open for
   * tracepoints, kernel memory reads and bpf_rdonly_cast, which the verifier
   * only allows with it (without it every load is EPERM).
   *
   * Measured not needed: CAP_SYS_RESOURCE (BPF memory is charged to the
   * memory cgroup since 5.11, not RLIMIT_MEMLOCK), CAP_SYS_ADMIN (only to
   * mount tracefs or bpffs), CAP_DAC_* (uid 0 owns the files read).
   */
  cap_perfmon: 'tracing programs: perf_event_open on tracepoints, kernel memory reads',
  /**
   * The dns family's cgroup_skb programs: attaching a program to a cgroup
   * (BPF_LINK_CREATE on the cgroup v2 root) is refused with EPERM without it
   * (measured on 6.18: the load passes with CAP_BPF alone, the attach does not).
   */
  cap_net_admin: 'the dns family: attaching its cgroup_skb programs to the cgroup v2 root',
} as const;

/** Capability names (as capsh and /proc spell them), in the order they are documented. */
export const NODE_CAPABILITIES = Object.keys(NODE_CAPABILITY_REASONS) as ReadonlyArray<
  keyof typeof NODE_CAPABILITY_REASONS
>;

/** Bit numbers of capabilities (linux/capability.h) the node agent may be granted. */
export const CAPABILITY_BITS: Readonly<Record<string, number>> = {
  cap_dac_override: 1,
  cap_dac_read_search: 2,
  cap_net_admin: 12,
  cap_ipc_lock: 14,
  cap_sys_ptrace: 19,
  cap_sys_admin: 21,
  cap_sys_resource: 24,
  cap_syslog: 34,
  cap_perfmon: 38,
  cap_bpf: 39,
};
