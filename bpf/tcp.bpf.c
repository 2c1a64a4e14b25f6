// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * TCP connection probe: connect, accept, close (with byte counts and
 * lifetime), failed connects, retransmits and resets, one struct
 * tf_tcp_event each. Built on tracepoints only (sock/inet_sock_set_state and
 * the tcp/ family), so it loads wherever tracepoints do. Live control: control.h.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#define TF_THIS_PROBE TF_PROBE_TCP
#include "control.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

_Static_assert(sizeof(struct tf_tcp_event) == 120, "tf_tcp_event is 120 bytes");

/* Socket-layer constants are #defines in the uapi headers, absent from vmlinux.h. */
#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* What we know about a socket between its handshake and its close. */
struct tf_sk_info {
	__u64 start_ns;     /* SYN_SENT / SYN_RECV time */
	__u64 cgroup_id;    /* current's cgroup when the socket's own is unknown */
	__u32 pid;          /* 0 until a syscall shows who owns the socket */
	__u8 established;   /* reached ESTABLISHED: its close is a TF_OP_TCP_CLOSE */
	__u8 active;        /* opened by connect(): its SYN counts in bytes_acked */
	__u8 fin_sent;      /* went through FIN_WAIT1/LAST_ACK: a FIN was queued */
	__u8 pad;
	char comm[TF_COMM_LEN];
};

/* LRU: a socket whose close we never see must not pin an entry forever. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* struct sock * */
	__type(value, struct tf_sk_info);
} tf_tcp_socks SEC(".maps");

/*
 * True for the transitions only a syscall makes: connect() enters SYN_SENT,
 * close()/shutdown() enter FIN_WAIT1 or LAST_ACK. There current is the process
 * acting on the socket; everywhere else (softirq receive, timers) current is
 * whatever task was interrupted. (Per-CPU preempt_count would tell directly,
 * but __preempt_count is not in kallsyms without CONFIG_KALLSYMS_ALL.)
 */
static __always_inline bool tf_state_in_task(int newstate)
{
	return newstate == TCP_SYN_SENT || newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK;
}

/* The socket's cgroup v2 id, fixed when the socket was created (or cloned on accept). */
static __always_inline __u64 tf_sk_cgroup(const void *skaddr, const struct tf_sk_info *info)
{
	const struct sock *sk = skaddr;
	__u64 id = 0;

	if (sk)
		id = BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
	if (!id && info)
		id = info->cgroup_id;
	return id;
}

/* Remember the acting process (task context only). */
static __always_inline void tf_learn_owner(struct tf_sk_info *info)
{
	info->pid = bpf_get_current_pid_tgid() >> 32;
	info->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(info->comm, sizeof(info->comm));
}

/* pid/comm of the event: the remembered owner, else pid 0 and an empty comm. */
static __always_inline bool tf_fill_owner(struct tf_tcp_event *ev, const struct tf_sk_info *info)
{
	if (!info || !info->pid)
		return false; /* the event was zeroed */
	ev->pid = info->pid;
	__builtin_memcpy(ev->comm, info->comm, sizeof(ev->comm));
	return true;
}

/*
 * Address arrays of the tracepoint record. Read through the helper: a CO-RE
 * relocated offset makes a direct ctx load a "modified ctx ptr" to the verifier.
 */
#define TF_COPY_ADDRS(ev, ctx)								\
	do {										\
		if ((ev)->family == AF_INET6) {						\
			bpf_core_read((ev)->saddr, 16, &(ctx)->saddr_v6);		\
			bpf_core_read((ev)->daddr, 16, &(ctx)->daddr_v6);		\
		} else {								\
			bpf_core_read((ev)->saddr, 4, &(ctx)->saddr);			\
			bpf_core_read((ev)->daddr, 4, &(ctx)->daddr);			\
		}									\
	} while (0)

/* Filters, sampling, then one ring record. `ev` is fully built and zero-padded. */
static __always_inline void tf_tcp_emit(const struct tf_probe_config *c, struct tf_tcp_event *ev,
					__u8 op, bool comm_known)
{
	struct tf_tcp_event *e;
	__u32 weight;

	if (tf_filter_task(c, ev->cgroup_id, ev->pid, comm_known ? ev->comm : NULL) ||
	    tf_filter_ports(c, ev->sport, ev->dport) ||
	    (op == TF_OP_TCP_CLOSE && ev->duration_ns < c->min_duration_ns)) {
		tf_count_drop(TF_DROP_FILTERED);
		return;
	}
	if (tf_sampled_out(c, &weight)) {
		tf_count_drop(TF_DROP_SAMPLED);
		return;
	}
	e = tf_reserve(sizeof(*e));
	if (!e)
		return;
	/* Copy the whole zeroed stack image: no ring byte is left stale. */
	__builtin_memcpy(e, ev, sizeof(*e));
	tf_hdr_fill(&e->hdr, op, sizeof(*e), c, weight);
	tf_submit(e);
}

/*
 * Payload bytes from the RFC 4898 counters, which advance with sequence
 * numbers: bytes_acked also counts an active open's SYN and our acked FIN,
 * bytes_received the peer's FIN. Take those sequence slots back out.
 */
static __always_inline void tf_payload_bytes(struct tf_tcp_event *ev, const struct tcp_sock *tp,
					     const struct tf_sk_info *info)
{
	__u64 acked = BPF_CORE_READ(tp, bytes_acked);
	__u64 rcvd = BPF_CORE_READ(tp, bytes_received);
	__u64 flags = BPF_CORE_READ((const struct sock *)tp, __sk_common.skc_flags);

	if (info->active && acked)
		acked--;
	/* write_seq counts the queued FIN: all of it acked means the FIN was. */
	if (info->fin_sent && acked &&
	    BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq))
		acked--;
	/* SOCK_DONE is set by tcp_fin() only, when the peer's FIN is consumed. */
	if (((flags >> SOCK_DONE) & 1) && rcvd)
		rcvd--;
	ev->bytes_sent = acked;
	ev->bytes_received = rcvd;
}

SEC("tracepoint/sock/inet_sock_set_state")
int handle_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct tf_probe_config *c;
	struct tf_tcp_event ev = {};
	struct tf_sk_info *info;
	int oldstate, newstate;
	__u64 sk, now;
	bool known;
	__u8 op;

	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	c = tf_config_get();
	if (!c || !c->enabled)
		return 0;

	sk = (__u64)ctx->skaddr;
	oldstate = ctx->oldstate;
	newstate = ctx->newstate;
	now = bpf_ktime_get_ns();

	if (newstate == TCP_SYN_SENT || newstate == TCP_SYN_RECV) {
		struct tf_sk_info n = {};

		n.start_ns = now;
		n.active = newstate == TCP_SYN_SENT;
		/* connect() runs in the caller; a passive child is born in softirq. */
		if (tf_state_in_task(newstate))
			tf_learn_owner(&n);
		bpf_map_update_elem(&tf_tcp_socks, &sk, &n, BPF_ANY);
		return 0;
	}

	info = bpf_map_lookup_elem(&tf_tcp_socks, &sk);
	/* An accepted socket's owner shows itself when it calls close()/shutdown(). */
	if (info && !info->pid && tf_state_in_task(newstate))
		tf_learn_owner(info);
	/* Both states are entered by tcp_close_state(), which then sends a FIN. */
	if (info && (newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK))
		info->fin_sent = 1;

	if (newstate == TCP_ESTABLISHED) {
		if (oldstate == TCP_SYN_SENT)
			op = TF_OP_TCP_CONNECT;
		else if (oldstate == TCP_SYN_RECV)
			op = TF_OP_TCP_ACCEPT;
		else
			return 0;
		if (info) {
			info->established = 1;
			ev.duration_ns = now - info->start_ns;
		} else {
			/* Attached mid-handshake: track from here so the close is reported. */
			struct tf_sk_info n = { .start_ns = now, .established = 1 };

			bpf_map_update_elem(&tf_tcp_socks, &sk, &n, BPF_ANY);
		}
	} else if (newstate == TCP_CLOSE) {
		if (oldstate == TCP_SYN_SENT) {
			op = TF_OP_TCP_CONNECT_FAIL;
			if (info)
				ev.duration_ns = now - info->start_ns;
		} else if (info && info->established) {
			op = TF_OP_TCP_CLOSE;
			ev.duration_ns = now - info->start_ns;
			tf_payload_bytes(&ev, (const struct tcp_sock *)sk, info);
		} else {
			/* A handshake that never completed on the passive side: nothing to say. */
			if (info)
				bpf_map_delete_elem(&tf_tcp_socks, &sk);
			return 0;
		}
	} else {
		return 0;
	}

	ev.family = ctx->family;
	ev.sport = ctx->sport;
	ev.dport = ctx->dport;
	ev.oldstate = oldstate;
	ev.newstate = newstate;
	TF_COPY_ADDRS(&ev, ctx);
	ev.cgroup_id = tf_sk_cgroup(ctx->skaddr, info);
	known = tf_fill_owner(&ev, info);

	/* The entry served its last event; the socket pointer may be reused. */
	if (newstate == TCP_CLOSE && info)
		bpf_map_delete_elem(&tf_tcp_socks, &sk);

	tf_tcp_emit(c, &ev, op, known);
	return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int handle_retransmit(struct trace_event_raw_tcp_retransmit_skb *ctx)
{
	struct tf_probe_config *c = tf_config_get();
	struct tf_tcp_event ev = {};
	struct tf_sk_info *info;
	__u64 sk;
	bool known;

	if (!c || !c->enabled)
		return 0;

	sk = (__u64)ctx->skaddr;
	info = bpf_map_lookup_elem(&tf_tcp_socks, &sk);

	ev.family = ctx->family;
	ev.sport = ctx->sport;
	ev.dport = ctx->dport;
	ev.oldstate = ctx->state;
	ev.newstate = ctx->state;
	TF_COPY_ADDRS(&ev, ctx);
	ev.cgroup_id = tf_sk_cgroup(ctx->skaddr, info);
	known = tf_fill_owner(&ev, info);
	tf_tcp_emit(c, &ev, TF_OP_TCP_RETRANSMIT, known);
	return 0;
}

SEC("tracepoint/tcp/tcp_receive_reset")
int handle_receive_reset(struct trace_event_raw_tcp_event_sk *ctx)
{
	struct tf_probe_config *c = tf_config_get();
	struct tf_tcp_event ev = {};
	struct tf_sk_info *info;
	const struct sock *s;
	bool known;
	__u64 sk;

	if (!c || !c->enabled)
		return 0;

	sk = (__u64)ctx->skaddr;
	s = ctx->skaddr;
	info = bpf_map_lookup_elem(&tf_tcp_socks, &sk);

	ev.family = ctx->family;
	ev.sport = ctx->sport;
	ev.dport = ctx->dport;
	/* The reset is seen before tcp_done(): this is the state it hit. */
	ev.oldstate = BPF_CORE_READ(s, __sk_common.skc_state);
	ev.newstate = ev.oldstate;
	TF_COPY_ADDRS(&ev, ctx);
	ev.cgroup_id = tf_sk_cgroup(ctx->skaddr, info);
	known = tf_fill_owner(&ev, info);
	tf_tcp_emit(c, &ev, TF_OP_TCP_RESET_RECV, known);
	return 0;
}

/*
 * tcp_send_reset (6.10+) stores the flow as two sockaddr_in/_in6 images,
 * already reversed so saddr is the local end, even when there is no socket.
 */
struct tf_sockaddr_image {
	__u16 family;
	__be16 port;
	union {
		__u8 v4[4];       /* sockaddr_in.sin_addr */
		struct {
			__u32 flowinfo;
			__u8 v6[16]; /* sockaddr_in6.sin6_addr */
		};
	};
	__u32 scope_id;
};

static __always_inline void tf_parse_sockaddr(const __u8 *raw, __u8 *addr, __u16 *port,
					      __u16 *family)
{
	struct tf_sockaddr_image a = {};

	bpf_probe_read_kernel(&a, sizeof(a), raw);
	*family = a.family;
	*port = bpf_ntohs(a.port);
	if (a.family == AF_INET6)
		__builtin_memcpy(addr, a.v6, 16);
	else if (a.family == AF_INET)
		__builtin_memcpy(addr, a.v4, 4);
}

SEC("tracepoint/tcp/tcp_send_reset")
int handle_send_reset(struct trace_event_raw_tcp_send_reset *ctx)
{
	struct tf_probe_config *c = tf_config_get();
	struct tf_tcp_event ev = {};
	struct tf_sk_info *info = NULL;
	__u16 family = 0, dfamily = 0;
	bool known;
	__u64 sk;

	if (!c || !c->enabled)
		return 0;

	sk = (__u64)ctx->skaddr;
	/* Time-wait and request socks are not full sockets: no cgroup data to read. */
	if (ctx->state == TCP_TIME_WAIT || ctx->state == TCP_NEW_SYN_RECV)
		sk = 0;
	/* No socket (a SYN to a closed port): no owner and no socket cgroup. */
	if (sk)
		info = bpf_map_lookup_elem(&tf_tcp_socks, &sk);

	tf_parse_sockaddr(ctx->saddr, ev.saddr, &ev.sport, &family);
	tf_parse_sockaddr(ctx->daddr, ev.daddr, &ev.dport, &dfamily);
	ev.family = family;
	ev.oldstate = ctx->state;
	ev.newstate = ctx->state;
	if (sk) {
		ev.cgroup_id = tf_sk_cgroup(ctx->skaddr, info);
		known = tf_fill_owner(&ev, info);
	} else {
		known = false;
	}
	tf_tcp_emit(c, &ev, TF_OP_TCP_RESET_SENT, known);
	return 0;
}
