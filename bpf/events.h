/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one header shared by the kernel programs and every user-space decoder.
 *
 * Rules (see docs/frame-format.md):
 *  - fixed-width types only, little-endian on the wire (host order on x86_64
 *    and arm64);
 *  - every record starts with struct tf_event_header and its size is a
 *    multiple of 8;
 *  - padding is explicit and zeroed before submit; no __attribute__((packed));
 *  - op codes are append-only: a layout change is a new op, never an edit.
 */
#ifndef TRACEFEED_EVENTS_H
#define TRACEFEED_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define TF_COMM_LEN 16
#define TF_FILENAME_LEN 256
#define TF_PATH_LEN 256
#define TF_PATH_PREFIX_LEN 64 /* bytes of a path-prefix filter key */
#define TF_PATH_COMPONENTS 64 /* file.open: root-most components a resolved path keeps */
#define TF_PATH_WALK_MAX 256  /* file.open: dentries and mount crossings walked to reach the root */
#define TF_DNS_NAME_LEN 128   /* bytes of a DNS query name, dotted, not NUL-terminated when full */
#define TF_HIST_SLOTS 32      /* log2 buckets: slot i counts [2^i, 2^(i+1)) ns; slot 0 also 0 ns; the last is open-ended */

/* Op codes: append-only. */
enum tf_op {
	TF_OP_EXEC = 1,
	TF_OP_EXIT = 2,
	TF_OP_TCP_CONNECT = 3,      /* active open reached ESTABLISHED */
	TF_OP_TCP_ACCEPT = 4,       /* passive open reached ESTABLISHED */
	TF_OP_TCP_CLOSE = 5,        /* an established connection closed */
	TF_OP_TCP_CONNECT_FAIL = 6, /* SYN_SENT went to CLOSE */
	TF_OP_TCP_RETRANSMIT = 7,   /* tcp/tcp_retransmit_skb */
	TF_OP_TCP_RESET_SENT = 8,   /* tcp/tcp_send_reset */
	TF_OP_TCP_RESET_RECV = 9,   /* tcp/tcp_receive_reset */
	TF_OP_SYSCALL_SUMMARY = 10, /* per (cgroup, syscall) histogram, flushed by user space */
	TF_OP_SYSCALL_SLOW = 11,    /* one syscall slower than the threshold */
	TF_OP_FILE_OPEN = 12,       /* open/openat/openat2 with its result */
	TF_OP_RUNQ_SUMMARY = 13,    /* per-cgroup run-queue latency histogram, flushed by user space */
	TF_OP_SYSCALL_ERRNO = 14,   /* per (cgroup, syscall, errno) error count, flushed by user space */
	TF_OP_CGROUP_INFO = 15,     /* user space: the path of a cgroup id seen in the frame */
	TF_OP_CGROUP_STATS = 16,    /* user space: a cgroup's pressure, cpu.stat and memory.events over an interval */
	TF_OP_PROBE_STATS = 17,     /* user space: one probe's emitted and lost events and sampling over an interval */
	TF_OP_DNS_RESPONSE = 18,    /* a DNS response matched to the query this host sent (struct tf_dns_event) */
	TF_OP_DNS_TIMEOUT = 19,     /* user space: a query with no response after the family's timeout (struct tf_dns_event) */
	TF_OP_DNS_LOOKUPS = 20,     /* per-cgroup name lookups started, flushed by user space (struct tf_dns_lookups) */
};

/* Probe ids index the per-probe counter maps. Append-only. */
enum tf_probe {
	TF_PROBE_PROCESS = 0,
	TF_PROBE_TCP = 1,
	TF_PROBE_SYSCALLS = 2,
	TF_PROBE_FILE = 3,
	TF_PROBE_SCHED = 4,
	TF_PROBE_CGROUP = 5, /* user space only: cgroup v2 files read by the node agent (no program) */
	TF_PROBE_DNS = 6,
	TF_PROBE_MAX = 8,
};

/* Reasons a probe did not emit an event. Index into tf_drops. */
enum tf_drop_reason {
	TF_DROP_RINGBUF_FULL = 0, /* bpf_ringbuf_reserve failed */
	TF_DROP_FILTERED = 1,     /* rejected by an in-kernel filter */
	TF_DROP_SAMPLED = 2,      /* sampled out */
	TF_DROP_MAP_FULL = 3,     /* an aggregation map had no room for a new key */
	TF_DROP_REASON_MAX = 4,
};

/* Bits of tf_event_header.flags. */
#define TF_FLAG_TRUNCATED 0x01 /* a string field was cut at its bound */
#define TF_FLAG_FOCUS 0x02     /* collected under a per-cgroup focus (struct tf_focus) */
/*
 * file.open: path is the caller's string read from user memory, not the
 * file the kernel opened (a failed open has no file). It may be relative,
 * hold //, /./, .. or symlinks, and another thread of the caller may have
 * rewritten it after the kernel read it. Path filters judged this string.
 */
#define TF_FLAG_PATH_UNVERIFIED 0x04
/*
 * file.open: the walk from the opened file up to its mount namespace root
 * did not get there (more than TF_PATH_WALK_MAX dentries and mounts, a
 * mount attached to no namespace, a disconnected dentry). path holds the
 * components found, without the leading '/'. Path filters cannot judge it:
 * such a record passes them.
 */
#define TF_FLAG_PATH_PARTIAL 0x08

/*
 * The event frame (docs/frame-format.md): one Kafka record value carrying
 * many records from one node. struct tf_frame_header, then node_len bytes of
 * UTF-8 node name zero-padded to header_len, then records_len bytes of
 * records. Built by the node agent's frame sink, never by the kernel.
 */
#define TF_FRAME_MAGIC 0x56454654 /* "TFEV" little-endian */
#define TF_FRAME_VERSION 1
#define TF_NODE_NAME_MAX 255

struct tf_frame_header {
	__u32 magic;        /* TF_FRAME_MAGIC */
	__u16 version;      /* TF_FRAME_VERSION */
	__u16 header_len;   /* bytes before the first record, multiple of 8 */
	__u32 event_count;  /* records in the frame */
	__u32 records_len;  /* bytes of records after the header */
	__u64 boot_time_ns; /* wall-clock ns (Unix epoch) at ktime 0 on the node */
	__u64 sequence;     /* per-agent frame sequence number */
	__u16 node_len;     /* bytes of the node name */
	__u16 flags;        /* zero */
	__u32 reserved;     /* zero */
};

/* Common header, first in every record (24 bytes). */
struct tf_event_header {
	__u8 op;             /* enum tf_op */
	__u8 flags;          /* TF_FLAG_* */
	__u16 pad;           /* zero */
	__u32 size;          /* whole record, header included */
	__u64 ktime_ns;      /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 generation;    /* filter generation the event passed */
	__u32 sample_weight; /* events this record stands for (1-in-N sampling) */
};

/* TF_OP_EXEC: a successful execve (sched/sched_process_exec). 320 bytes. */
struct tf_exec_event {
	struct tf_event_header hdr;
	__u32 pid;        /* tgid */
	__u32 ppid;       /* real parent's tgid */
	__u32 uid;
	__u32 pad;        /* zero */
	__u64 cgroup_id;  /* cgroup v2 id (bpf_get_current_cgroup_id) */
	char comm[TF_COMM_LEN];
	char filename[TF_FILENAME_LEN];
};

/* TF_OP_EXIT: a thread-group leader exited (sched/sched_process_exit). 72 bytes. */
struct tf_exit_event {
	struct tf_event_header hdr;
	__u32 pid;
	__u32 ppid;
	__s32 exit_code;  /* status >> 8 & 0xff, as a shell shows it */
	__u32 exit_signal; /* status & 0x7f, 0 if none */
	__u64 cgroup_id;
	__u64 lifetime_ns; /* exit ktime minus task start_time */
	char comm[TF_COMM_LEN];
};

/* TF_OP_TCP_*: one layout for every tcp op. 120 bytes. */
struct tf_tcp_event {
	struct tf_event_header hdr;
	__u32 pid;          /* 0 when the kernel acted outside the process (softirq) */
	__u16 family;       /* AF_INET (2) or AF_INET6 (10) */
	__u16 sport;        /* local port, host byte order */
	__u16 dport;        /* remote port, host byte order */
	__u8 oldstate;      /* TCP_* state before (set_state ops), else the socket's state */
	__u8 newstate;
	__u32 pad;
	__u64 cgroup_id;    /* the socket's cgroup v2 id (its creator's) */
	__u64 duration_ns;  /* close: since the connection opened; connect/accept: handshake time */
	__u64 bytes_sent;   /* payload bytes: tcp_sock.bytes_acked minus SYN/FIN */
	__u64 bytes_received; /* payload bytes: tcp_sock.bytes_received minus FIN */
	__u8 saddr[16];     /* local address; IPv4 in the first 4 bytes */
	__u8 daddr[16];     /* remote address */
	char comm[TF_COMM_LEN]; /* empty when pid is 0 */
};

/* TF_OP_SYSCALL_SUMMARY: built by user space from the syscalls maps. 328 bytes. */
struct tf_syscall_summary {
	struct tf_event_header hdr;
	__u64 cgroup_id;
	__u32 syscall_nr;
	__u32 pad;
	__u64 interval_ns;  /* length of the flush interval */
	__u64 count;
	__u64 error_count;  /* returns in [-4095, -1] */
	__u64 total_ns;
	__u64 hist[TF_HIST_SLOTS];
};

/* TF_OP_SYSCALL_ERRNO: built by user space. 56 bytes. */
struct tf_syscall_errno {
	struct tf_event_header hdr;
	__u64 cgroup_id;
	__u32 syscall_nr;
	__u32 err;          /* positive errno */
	__u64 count;
	__u64 interval_ns;
};

/* TF_OP_SYSCALL_SLOW. 80 bytes. */
struct tf_syscall_slow {
	struct tf_event_header hdr;
	__u32 pid;
	__u32 tid;
	__u64 cgroup_id;
	__u32 syscall_nr;
	__u32 pad;
	__s64 ret;
	__u64 duration_ns;
	char comm[TF_COMM_LEN];
};

/*
 * TF_OP_FILE_OPEN. 320 bytes. For a successful open, path is the file the
 * kernel opened, read from the new fd's struct file: absolute from the root
 * of the opener's mount namespace (not its chroot), symlinks resolved, no
 * //, /./ or .. (TF_FLAG_TRUNCATED: cut at TF_PATH_LEN - 1 bytes or after
 * TF_PATH_COMPONENTS components, the leading part kept; TF_FLAG_PATH_PARTIAL:
 * not rooted). For a failed open (ret < 0), the caller's string, flagged
 * TF_FLAG_PATH_UNVERIFIED.
 */
struct tf_file_open {
	struct tf_event_header hdr;
	__u32 pid;
	__s32 flags;        /* open(2) flags */
	__s32 ret;          /* fd, or -errno */
	__u32 pad;
	__u64 cgroup_id;
	char comm[TF_COMM_LEN];
	char path[TF_PATH_LEN];
};

/* TF_OP_RUNQ_SUMMARY: built by user space from the sched map. 312 bytes. */
struct tf_runq_summary {
	struct tf_event_header hdr;
	__u64 cgroup_id;
	__u64 interval_ns;
	__u64 count;
	__u64 total_ns;
	__u64 hist[TF_HIST_SLOTS];
};

/*
 * TF_OP_CGROUP_INFO: built by the node agent, once per frame for each cgroup
 * id the frame's records carry, so consumers anywhere can name workloads.
 * Variable size: 40 bytes, then path_len bytes of UTF-8 path (relative to the
 * cgroup v2 root), zero-padded to a multiple of 8.
 */
struct tf_cgroup_info {
	struct tf_event_header hdr;
	__u64 cgroup_id;
	__u16 path_len;
	__u8 pad[6];
};

/*
 * TF_OP_CGROUP_STATS: built by the node agent every summary interval for each
 * cgroup that was active in it, from the cgroup v2 files. Every counter is the
 * increase over interval_ns (the files hold totals since the cgroup was made).
 * 144 bytes.
 */
struct tf_cgroup_stats {
	struct tf_event_header hdr;
	__u64 cgroup_id;
	__u64 interval_ns;
	__u64 cpu_usage_us;        /* cpu.stat usage_usec */
	__u64 cpu_throttled_us;    /* cpu.stat throttled_usec */
	__u64 cpu_nr_throttled;    /* cpu.stat nr_throttled */
	__u64 cpu_some_us;         /* cpu.pressure some total */
	__u64 cpu_full_us;         /* cpu.pressure full total */
	__u64 io_some_us;          /* io.pressure some total */
	__u64 io_full_us;          /* io.pressure full total */
	__u64 memory_some_us;      /* memory.pressure some total */
	__u64 memory_full_us;      /* memory.pressure full total */
	__u64 memory_high;         /* memory.events high */
	__u64 memory_max;          /* memory.events max */
	__u64 memory_oom;          /* memory.events oom */
	__u64 memory_oom_kill;     /* memory.events oom_kill */
};

/*
 * TF_OP_PROBE_STATS: built by the node agent every summary interval for each
 * loaded probe, so consumers know how complete the probe's records are.
 * Counters are increases over interval_ns. 104 bytes.
 */
struct tf_probe_stats {
	struct tf_event_header hdr;
	__u32 probe;               /* enum tf_probe */
	__u32 sample_n;            /* baseline 1-in-N in force at the end (overload included) */
	__u32 overload_n;          /* factor the node applied itself under overload; 1 when none */
	__u32 focus_count;         /* per-cgroup focuses in force at the end */
	__u64 interval_ns;
	__u64 emitted;             /* records the kernel wrote to the ring */
	__u64 drops[4];            /* by enum tf_drop_reason (TF_DROP_REASON_MAX) */
	__u64 sink_dropped;        /* records of this probe the node dropped after the ring (buffer full, stop) */
	__u64 pad;
};

/*
 * TF_OP_DNS_RESPONSE: a DNS response (UDP or TCP, port 53) received by a socket of
 * this host, matched to the query the same socket sent (bpf/dns.bpf.c). The
 * task is the one that sent the query. TF_FLAG_TRUNCATED: the name was longer
 * than TF_DNS_NAME_LEN. 240 bytes.
 */
struct tf_dns_event {
	struct tf_event_header hdr;
	__u32 pid;          /* tgid that sent the query */
	__u16 family;       /* AF_INET (2) or AF_INET6 (10) */
	__u16 sport;        /* client (local) port, host byte order */
	__u16 dport;        /* server port, host byte order */
	__u16 id;           /* DNS transaction id */
	__u16 qtype;        /* first question's QTYPE (1 A, 28 AAAA, ...); 0 when the name ran past the parse bound */
	__u16 dns_flags;    /* the response's header flags (QR, opcode, AA, TC, RD, RA, rcode) */
	__u16 ancount;      /* answer records in the response */
	__u8 rcode;         /* dns_flags & 0xf: 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED, ... */
	__u8 name_len;      /* bytes of name used */
	__u8 transport;     /* IPPROTO_UDP (17) or IPPROTO_TCP (6) */
	__u8 pad[3];        /* zero */
	__u64 cgroup_id;    /* the socket's cgroup v2 id (bpf_skb_cgroup_id) */
	__u64 latency_ns;   /* query left the host -> response arrived */
	__u8 saddr[16];     /* client address; IPv4 in the first 4 bytes */
	__u8 daddr[16];     /* server address */
	char comm[TF_COMM_LEN];
	char name[TF_DNS_NAME_LEN]; /* the question's name, dotted, no trailing dot */
};

/*
 * TF_OP_DNS_LOOKUPS: built by user space every summary interval from the dns
 * probe's tf_dns_lookups map (cgroup v2 id -> count). A lookup is a connect()
 * to port 53 (UDP or TCP) or a datagram sent to port 53 from an unconnected
 * socket, counted in the sending task's cgroup by the probe's cgroup/connect
 * and cgroup/sendmsg programs. They stay attached while the per-packet
 * programs are off, so every workload's lookup rate is known at the cost of
 * one program run per connect, not per packet. 48 bytes.
 */
struct tf_dns_lookups {
	struct tf_event_header hdr;
	__u64 cgroup_id;
	__u64 interval_ns;
	__u64 count;
};

/*
 * The dns probe's queries in flight (map tf_dns_pending): written by the
 * kernel at the query, deleted at its response, or by user space once it is
 * older than the timeout (then a TF_OP_DNS_TIMEOUT record: rcode 0,
 * latency_ns the query's age, dns_flags 0).
 */
struct tf_dns_key {
	__u64 sock_cookie;  /* bpf_get_socket_cookie: the socket (unique across namespaces) */
	__u8 server[16];    /* server address */
	__u16 server_port;  /* host order */
	__u16 id;           /* DNS transaction id */
	__u32 pad;
};

struct tf_dns_query {
	__u64 start_ns;     /* ktime the query left */
	__u64 cgroup_id;
	__u32 pid;
	__u32 weight;       /* sample weight decided at the query */
	__u32 generation;
	__u16 qtype;
	__u16 family;
	__u16 sport;        /* client port */
	__u8 name_len;
	__u8 hdr_flags;     /* TF_FLAG_* for the record (truncated, focus) */
	__u8 transport;     /* IPPROTO_UDP or IPPROTO_TCP */
	__u8 pad[3];
	__u8 saddr[16];     /* client address */
	char comm[TF_COMM_LEN];
	char name[TF_DNS_NAME_LEN];
};

/* Kernel aggregation map values (read and deleted by user space each interval). */
struct tf_syscall_key {
	__u64 cgroup_id;
	__u32 syscall_nr;
	__u32 pad;
};

struct tf_hist_value {
	__u64 count;
	__u64 error_count;  /* syscalls only */
	__u64 total_ns;
	__u64 hist[TF_HIST_SLOTS];
};

struct tf_errno_key {
	__u64 cgroup_id;
	__u32 syscall_nr;
	__u32 err;
};

/*
 * Live control: one entry (key 0) in each probe object's tf_config map.
 * User space rewrites it to change what the probe emits, without a reload.
 */
struct tf_probe_config {
	__u32 enabled;         /* 0: emit nothing (user space also detaches) */
	__u32 generation;      /* bumped by user space on every change; copied into records */
	__u32 sample_n;        /* keep 1 in N (0 and 1: keep all); kept records carry weight N */
	__u32 filter_mask;     /* TF_FILTER_*: which sets are active */
	__u64 min_duration_ns; /* records with a duration below this are filtered */
	__u64 slow_ns;         /* syscalls: stream syscalls slower than this; 0 = off */
	__u32 focus_count;     /* entries in tf_focus: 0 skips the per-cgroup lookup */
	__u32 scope_level;     /* depth of scope_cgroup_id below the cgroup v2 root (root: 0) */
	__u64 scope_cgroup_id; /* the node's cgroup scope: only that cgroup and its descendants
				* are collected; 0 = the whole host (no check at all) */
};

/*
 * A per-cgroup focus: value of the tf_focus map (key: cgroup v2 id). A cgroup
 * with a focus is collected with these settings whether or not the probe's
 * baseline (tf_probe_config.enabled) is on; every other cgroup keeps the
 * baseline. Focuses raise detail where it is needed without taking coverage
 * from anyone else.
 */
struct tf_focus {
	__u32 sample_n;        /* keep 1 in N for this cgroup (0 and 1: keep all) */
	__u32 pad;
	__u64 min_duration_ns; /* as tf_probe_config, for this cgroup */
	__u64 slow_ns;         /* as tf_probe_config, for this cgroup */
};

/* filter_mask bits: an allow set, when active, admits only its members;
 * a deny set, when active, rejects its members. */
#define TF_FILTER_ALLOW_CGROUP 0x0001
#define TF_FILTER_ALLOW_PID 0x0002
#define TF_FILTER_ALLOW_PORT 0x0004
#define TF_FILTER_ALLOW_COMM 0x0008
#define TF_FILTER_ALLOW_PATH 0x0010
#define TF_FILTER_DENY_CGROUP 0x0100
#define TF_FILTER_DENY_PID 0x0200
#define TF_FILTER_DENY_PORT 0x0400
#define TF_FILTER_DENY_COMM 0x0800
#define TF_FILTER_DENY_PATH 0x1000

/* Values in the filter set maps. */
#define TF_SET_ALLOW 0x1
#define TF_SET_DENY 0x2

/* Key of the path-prefix LPM trie: prefixlen in bits over path bytes. */
struct tf_path_key {
	__u32 prefixlen;
	char path[TF_PATH_PREFIX_LEN];
};

/* Counter layout of the tf_drops map: index = probe * TF_DROP_REASON_MAX + reason. */
#define TF_DROPS_ENTRIES (TF_PROBE_MAX * TF_DROP_REASON_MAX)

/* Counter layout of the tf_emitted map: index = probe. */
#define TF_EMITTED_ENTRIES TF_PROBE_MAX

/* Entries of a probe's tf_focus map: cgroups focused at once. */
#define TF_FOCUS_MAX 256

/*
 * Entries of the filter set maps, shared by a dimension's allow and deny
 * lists: tf_set_cgroup, tf_set_pid, tf_set_port hold TF_SET_ID_MAX keys,
 * tf_set_comm and tf_set_path TF_SET_STR_MAX.
 */
#define TF_SET_ID_MAX 1024
#define TF_SET_STR_MAX 256

/* Slots of the tcp probe's tf_sk_lost counters: sockets whose close goes unreported. */
#define TF_SK_EVICTED 0    /* a new socket took the way of the oldest one in a full set */
#define TF_SK_CLAIM_LOST 1 /* racing claims won every way this socket tried */
#define TF_SK_LOST_ENTRIES 2

/* Slots of the dns probe's tf_dns_counts counters. */
#define TF_DNS_QUERIES 0      /* queries stored to await their response */
#define TF_DNS_UNMATCHED 1    /* responses with no stored query (sent before attach, filtered, sampled out, evicted) */
#define TF_DNS_MALFORMED 2    /* port-53 packets too short or not DNS */
#define TF_DNS_REPLACED 3     /* a query's slot was taken by a retry with the same key before its response */
#define TF_DNS_COUNTS_ENTRIES 4

#endif /* TRACEFEED_EVENTS_H */
