// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * TCP connection probe: connect, accept, close (with byte counts and
 * lifetime), failed connects, retransmits and resets, one struct
 * tf_tcp_event each. Built on BTF tracepoints (tp_btf: sock/inet_sock_set_state
 * and the tcp/ family): each program gets the kernel's own arguments and reads
 * the socket with plain loads, where a classic tracepoint first builds a trace
 * record on every state change and the program then copies fields out of it
 * with helper calls. Live control: control.h.
 *
 * Cost is what shaped this file (each run is one of about ten state changes
 * per connection): no helper where a load will do (measured in place,
 * bpf_get_current_comm cost about 100 ns a call, bpf_probe_read_kernel of a
 * pointer about 40), no lock or allocation per socket, and the transitions
 * that need no work return before touching any map or the clock.
 * docs/tcp-probe.md has the measurements.
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

/*
 * The socket table, tf_tcp_socks: a set-associative table in a preallocated
 * array, keyed by the socket's address like the LRU hash it replaces. A
 * socket hashes to one set of TF_SK_WAYS ways; a way is claimed at the SYN
 * with a compare-and-swap of its key and freed at the close. Finding,
 * claiming and freeing are loads, stores and one atomic within one set: no
 * lock, no allocation. Closed sockets' memory is reused by the slab, so the
 * few sets a busy host churns through stay in cache.
 *
 * Measured on 6.18 with everything else equal (docs/tcp-probe.md), the
 * alternatives cost more per connection (two sockets): an LRU hash, update
 * at the SYN and delete at the close, about 1.1 us; socket-local storage
 * (BPF_MAP_TYPE_SK_STORAGE) about 1.9 us, since it allocates on every
 * socket's first SYN (and frees when the socket is destroyed, outside the
 * program).
 *
 * 16384 sets of 8 ways: 131072 sockets in 6 MiB, twice the LRU's entries
 * in about the same memory. A socket whose close is never seen (the probe
 * was detached meanwhile) keeps its way until a socket at the same address
 * reuses it or eviction takes it. When all ways of a set are taken, a new
 * socket takes the way with the oldest start: that socket's close then goes
 * unreported, as an LRU eviction would have it, and a reader racing that
 * eviction may read the new socket's fields. Both need more than eight
 * tracked sockets in one set.
 */
#define TF_SK_SETS_LOG2 14
#define TF_SK_WAYS 8

struct tf_sk_set {
	__u64 key[TF_SK_WAYS]; /* socket key per way (tf_sk_ref), 0 when free: one cache line */
	struct tf_sk_info info[TF_SK_WAYS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << TF_SK_SETS_LOG2);
	__type(key, __u32);
	__type(value, struct tf_sk_set);
} tf_tcp_socks SEC(".maps");

/* A socket's place in the table: its key and its set (NULL only if the map is broken). */
struct tf_sk_ref {
	__u64 key;
	struct tf_sk_set *set;
};

static __always_inline struct tf_sk_ref tf_sk_ref(const struct sock *sk)
{
	struct tf_sk_ref r;
	__u32 idx;

	/*
	 * The key is the socket's address relative to this map, fixed while
	 * the object is loaded and never 0 (the free mark). The verifier refuses
	 * any other arithmetic on a socket pointer but lets a program with
	 * CAP_PERFMON (which tracing programs need anyway) subtract two
	 * pointers: no helper call to copy the pointer's value out.
	 */
	r.key = (__u64)sk - (__u64)(void *)&tf_tcp_socks;
	/* Fibonacci hashing of the key above its low 6 bits (sockets are cache-line aligned). */
	idx = ((r.key >> 6) * 0x9E3779B97F4A7C15ULL) >> (64 - TF_SK_SETS_LOG2);
	r.set = bpf_map_lookup_elem(&tf_tcp_socks, &idx);
	return r;
}

/* The socket's info, or NULL when it is not tracked. */
static __always_inline struct tf_sk_info *tf_sk_find(struct tf_sk_ref r)
{
	int i;

	if (!r.set || !r.key)
		return NULL;
#pragma unroll
	for (i = 0; i < TF_SK_WAYS; i++)
		if (r.set->key[i] == r.key)
			return &r.set->info[i];
	return NULL;
}

/* Sockets whose close goes unreported, by TF_SK_* slot (per CPU; read by user space). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TF_SK_LOST_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} tf_sk_lost SEC(".maps");

/*
 * The socket's info, claiming a way for it when it has none: a free way,
 * else the one with the oldest start. A newly claimed way is zeroed. NULL
 * only when racing claims won every way this one tried.
 */
static __always_inline struct tf_sk_info *tf_sk_claim(struct tf_sk_ref r)
{
	struct tf_sk_info *info = tf_sk_find(r);
	__u64 oldest = ~0ULL, old;
	int i, way = -1;

	if (info || !r.set || !r.key)
		return info;
#pragma unroll
	for (i = 0; i < TF_SK_WAYS; i++)
		if (way < 0 && r.set->key[i] == 0 &&
		    __sync_val_compare_and_swap(&r.set->key[i], 0, r.key) == 0)
			way = i;
	if (way < 0) {
		way = 0;
#pragma unroll
		for (i = 0; i < TF_SK_WAYS; i++) {
			if (r.set->info[i].start_ns < oldest) {
				oldest = r.set->info[i].start_ns;
				way = i;
			}
		}
		way &= TF_SK_WAYS - 1;
		old = r.set->key[way];
		if (!old || __sync_val_compare_and_swap(&r.set->key[way], old, r.key) != old) {
			tf_count(&tf_sk_lost, TF_SK_CLAIM_LOST);
			return NULL;
		}
		/* The evicted socket's close will go unreported: count it. */
		tf_count(&tf_sk_lost, TF_SK_EVICTED);
	}
	info = &r.set->info[way & (TF_SK_WAYS - 1)];
	__builtin_memset(info, 0, sizeof(*info));
	return info;
}

/* The socket's last event is built: free its way (unless another socket took it). */
static __always_inline void tf_sk_release(struct tf_sk_ref r)
{
	int i;

	if (!r.set || !r.key)
		return;
#pragma unroll
	for (i = 0; i < TF_SK_WAYS; i++)
		if (r.set->key[i] == r.key)
			__sync_val_compare_and_swap(&r.set->key[i], r.key, 0);
}

/*
 * Listeners' owners, keyed by (network namespace, local port). listen()
 * runs in the owner's process, while a passive child is born in softirq
 * where current is whatever task was interrupted: the child takes its
 * listener's owner from here. Written at TCP_LISTEN, deleted at the
 * listener's close (by the listener it names). LRU: a listener whose close
 * went unseen (probe detached) ages out. A listener that entered TCP_LISTEN
 * while the probe was detached is not here: its children's owner shows
 * itself at their close, as before.
 */
struct tf_listen_key {
	__u32 netns;  /* network namespace inode */
	__u16 port;   /* local port, host byte order */
	__u16 pad;
};

struct tf_listen_owner {
	__u64 sk_key;    /* the listener (tf_sk_ref key): only it deletes the entry */
	__u64 cgroup_id;
	__u32 pid;
	__u32 pad;
	char comm[TF_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct tf_listen_key);
	__type(value, struct tf_listen_owner);
} tf_tcp_listeners SEC(".maps");

static __always_inline struct tf_listen_key tf_listen_key(const struct sock *sk)
{
	struct tf_listen_key k = {};

	k.netns = sk->__sk_common.skc_net.net->ns.inum;
	k.port = sk->__sk_common.skc_num; /* set by bind(); inet_sport only after listen */
	return k;
}

/* Read-only view of a kernel object as another BTF type; the verifier inlines it (no call). */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

#define TF_INET(sk) ((const struct inet_sock *)bpf_rdonly_cast((sk), \
				bpf_core_type_id_kernel(struct inet_sock)))
#define TF_TCP_SK(sk) ((const struct tcp_sock *)bpf_rdonly_cast((sk), \
				bpf_core_type_id_kernel(struct tcp_sock)))

/* The states whose entry needs work; every other transition returns at once. */
#define TF_WORK_STATES ((1u << TCP_SYN_SENT) | (1u << TCP_SYN_RECV) | (1u << TCP_ESTABLISHED) | \
			(1u << TCP_FIN_WAIT1) | (1u << TCP_LAST_ACK) | (1u << TCP_CLOSE) | \
			(1u << TCP_LISTEN))

/* The socket's cgroup v2 id, fixed when the socket was created (or cloned on accept). */
static __always_inline __u64 tf_sk_cgroup(const struct sock *sk, const struct tf_sk_info *info)
{
	struct cgroup *cg = sk->sk_cgrp_data.cgroup;
	__u64 id = 0;

	if (cg)
		id = cg->kn->id;
	if (!id && info)
		id = info->cgroup_id;
	return id;
}

/*
 * Remember the acting process (task context only). Plain loads from current
 * instead of the cgroup-id and comm helpers: the same values (the kernel keeps
 * comm NUL-terminated and zero-padded; a rename racing this copy can leave
 * bytes of the old name after the NUL, where the helper would have zeroed them).
 */
static __always_inline void tf_learn_owner(struct tf_sk_info *info)
{
	struct task_struct *t = bpf_get_current_task_btf();
	__u64 *comm = (__u64 *)info->comm;

	info->pid = t->tgid;
	info->cgroup_id = t->cgroups->dfl_cgrp->kn->id;
	comm[0] = *(const __u64 *)&t->comm[0];
	comm[1] = *(const __u64 *)&t->comm[8];
}

/* A passive child's owner: its listener's, when the listener was seen entering TCP_LISTEN. */
static __always_inline void tf_learn_listener_owner(struct tf_sk_info *info, const struct sock *sk)
{
	struct tf_listen_key k = tf_listen_key(sk);
	struct tf_listen_owner *o = bpf_map_lookup_elem(&tf_tcp_listeners, &k);

	if (!o)
		return;
	info->pid = o->pid;
	info->cgroup_id = o->cgroup_id;
	__builtin_memcpy(info->comm, o->comm, sizeof(info->comm));
}

/* listen() runs in the owner: remember it for the children (no record). */
static __always_inline void tf_listen_start(const struct sock *sk, __u64 sk_key)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct tf_listen_key k = tf_listen_key(sk);
	struct tf_listen_owner o = {};

	o.sk_key = sk_key;
	o.pid = t->tgid;
	o.cgroup_id = t->cgroups->dfl_cgrp->kn->id;
	bpf_get_current_comm(o.comm, sizeof(o.comm));
	bpf_map_update_elem(&tf_tcp_listeners, &k, &o, BPF_ANY);
}

/* The listener closes: forget its owner unless another listener took the port since. */
static __always_inline void tf_listen_stop(const struct sock *sk, __u64 sk_key)
{
	struct tf_listen_key k = tf_listen_key(sk);
	struct tf_listen_owner *o = bpf_map_lookup_elem(&tf_tcp_listeners, &k);

	if (o && o->sk_key == sk_key)
		bpf_map_delete_elem(&tf_tcp_listeners, &k);
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

static __always_inline void tf_copy_in6(__u8 *dst, const struct in6_addr *a)
{
	__u32 *d = (__u32 *)dst;

	d[0] = a->in6_u.u6_addr32[0];
	d[1] = a->in6_u.u6_addr32[1];
	d[2] = a->in6_u.u6_addr32[2];
	d[3] = a->in6_u.u6_addr32[3];
}

/*
 * Family, ports and addresses of a full socket, as the sock/ and tcp/
 * tracepoints record them: ports from inet_sport/inet_dport (skc_num is
 * already 0 once a closing socket has released its port), the IPv4 source
 * from inet_saddr, IPv6 from the socket's v6 pair.
 */
static __always_inline void tf_fill_addrs(struct tf_tcp_event *ev, const struct sock *sk)
{
	const struct inet_sock *inet = TF_INET(sk);

	ev->family = sk->__sk_common.skc_family;
	ev->sport = bpf_ntohs(inet->inet_sport);
	ev->dport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (ev->family == AF_INET6) {
		tf_copy_in6(ev->saddr, &sk->__sk_common.skc_v6_rcv_saddr);
		tf_copy_in6(ev->daddr, &sk->__sk_common.skc_v6_daddr);
	} else {
		*(__u32 *)ev->saddr = inet->inet_saddr;
		*(__u32 *)ev->daddr = sk->__sk_common.skc_daddr;
	}
}

/*
 * Filters, sampling, then one ring record. `ev` is fully built and
 * zero-padded. `now`: the event's time when the caller has read it, else 0.
 */
static __always_inline void tf_tcp_emit(const struct tf_probe_config *c, struct tf_tcp_event *ev,
					__u8 op, bool comm_known, __u64 now)
{
	struct tf_tcp_event *e;
	struct tf_eff eff;
	__u32 weight;

	/* The socket owner's focus, else the baseline; neither: not collected (no drop). */
	if (tf_effective(c, ev->cgroup_id, &eff))
		return;
	if (tf_filter_task(c, ev->cgroup_id, ev->pid, comm_known ? ev->comm : NULL) ||
	    tf_filter_ports(c, ev->sport, ev->dport) ||
	    (op == TF_OP_TCP_CLOSE && ev->duration_ns < eff.min_duration_ns)) {
		tf_count_drop(TF_DROP_FILTERED);
		return;
	}
	if (tf_sampled_out(eff.sample_n, &weight)) {
		tf_count_drop(TF_DROP_SAMPLED);
		return;
	}
	e = tf_reserve(sizeof(*e));
	if (!e)
		return;
	/* Copy the whole zeroed stack image: no ring byte is left stale. */
	__builtin_memcpy(e, ev, sizeof(*e));
	tf_hdr_fill_at(&e->hdr, op, sizeof(*e), c, weight, eff.flags,
		       now ? now : bpf_ktime_get_ns());
	tf_submit(e);
}

/*
 * Payload bytes from the RFC 4898 counters, which advance with sequence
 * numbers: bytes_acked also counts an active open's SYN and our acked FIN,
 * bytes_received the peer's FIN. Take those sequence slots back out.
 */
static __always_inline void tf_payload_bytes(struct tf_tcp_event *ev, const struct sock *sk,
					     const struct tf_sk_info *info)
{
	const struct tcp_sock *tp = TF_TCP_SK(sk);
	__u64 acked = tp->bytes_acked;
	__u64 rcvd = tp->bytes_received;
	__u64 flags = sk->__sk_common.skc_flags;

	if (info->active && acked)
		acked--;
	/* write_seq counts the queued FIN: all of it acked means the FIN was. */
	if (info->fin_sent && acked && tp->snd_una == tp->write_seq)
		acked--;
	/* SOCK_DONE is set by tcp_fin() only, when the peer's FIN is consumed. */
	if (((flags >> SOCK_DONE) & 1) && rcvd)
		rcvd--;
	ev->bytes_sent = acked;
	ev->bytes_received = rcvd;
}

/*
 * About ten state changes per connection (SYN_SENT, ESTABLISHED, FIN_WAIT1,
 * FIN_WAIT2, CLOSE on the client; SYN_RECV, ESTABLISHED, CLOSE_WAIT, LAST_ACK,
 * CLOSE on the server's child). Only the entries in TF_WORK_STATES do work;
 * the rest return before reading the config, the clock or the table.
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	struct tf_probe_config *c;
	struct tf_tcp_event ev = {};
	struct tf_sk_info *info;
	struct tf_sk_ref ref;
	__u64 now;
	bool known;
	__u8 op;

	if ((__u32)newstate >= 32 || !((1u << newstate) & TF_WORK_STATES))
		return 0;
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	c = tf_config_get();
	if (!tf_active(c) || tf_scope_rejects_cgrp(c, sk->sk_cgrp_data.cgroup))
		return 0;
	ref = tf_sk_ref(sk);

	if (newstate == TCP_LISTEN) {
		tf_listen_start(sk, ref.key);
		return 0;
	}

	/*
	 * close()/shutdown() enter FIN_WAIT1 or LAST_ACK in the process acting
	 * on the socket (tcp_close_state(), which then sends a FIN): mark the
	 * FIN and learn an accepted socket's owner. Elsewhere (softirq receive,
	 * timers) current is whatever task was interrupted. (Per-CPU
	 * preempt_count would tell directly, but __preempt_count is not in
	 * kallsyms without CONFIG_KALLSYMS_ALL.)
	 */
	if (newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK) {
		info = tf_sk_find(ref);
		if (info) {
			if (!info->pid)
				tf_learn_owner(info);
			info->fin_sent = 1;
		}
		return 0;
	}

	now = bpf_ktime_get_ns();

	if (newstate == TCP_SYN_SENT || newstate == TCP_SYN_RECV) {
		info = tf_sk_claim(ref);
		if (!info)
			return 0;
		/* A fresh way is zeroed; an old one (a close we missed) is rewritten. */
		info->start_ns = now;
		info->established = 0;
		info->fin_sent = 0;
		if (newstate == TCP_SYN_SENT) {
			/* connect() runs in the caller. */
			info->active = 1;
			tf_learn_owner(info);
		} else {
			/* A passive child is born in softirq: its owner is its listener's. */
			info->active = 0;
			info->pid = 0;
			info->cgroup_id = 0;
			tf_learn_listener_owner(info, sk);
		}
		return 0;
	}

	if (newstate == TCP_ESTABLISHED) {
		if (oldstate == TCP_SYN_SENT)
			op = TF_OP_TCP_CONNECT;
		else if (oldstate == TCP_SYN_RECV)
			op = TF_OP_TCP_ACCEPT;
		else
			return 0;
		/* Claimed here only when attached mid-handshake: track from now so the close is reported. */
		info = tf_sk_claim(ref);
		if (info) {
			if (info->start_ns)
				ev.duration_ns = now - info->start_ns;
			else
				info->start_ns = now;
			info->established = 1;
		}
	} else {
		/* TCP_CLOSE */
		info = tf_sk_find(ref);
		if (oldstate == TCP_SYN_SENT) {
			op = TF_OP_TCP_CONNECT_FAIL;
			if (info)
				ev.duration_ns = now - info->start_ns;
		} else if (info && info->established) {
			op = TF_OP_TCP_CLOSE;
			ev.duration_ns = now - info->start_ns;
			tf_payload_bytes(&ev, sk, info);
		} else {
			/* A handshake that never completed on the passive side, a listener: nothing to say. */
			if (oldstate == TCP_LISTEN)
				tf_listen_stop(sk, ref.key);
			if (info)
				tf_sk_release(ref);
			return 0;
		}
	}

	ev.oldstate = oldstate;
	ev.newstate = newstate;
	tf_fill_addrs(&ev, sk);
	ev.cgroup_id = tf_sk_cgroup(sk, info);
	known = tf_fill_owner(&ev, info);
	/* The way served its last event: free it once its fields are copied. */
	if (newstate == TCP_CLOSE && info)
		tf_sk_release(ref);
	tf_tcp_emit(c, &ev, op, known, now);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(handle_retransmit, const struct sock *sk, const struct sk_buff *skb)
{
	struct tf_probe_config *c = tf_config_get();
	struct tf_tcp_event ev = {};
	struct tf_sk_info *info;
	bool known;

	if (!tf_active(c) || !sk || tf_scope_rejects_cgrp(c, sk->sk_cgrp_data.cgroup))
		return 0;

	info = tf_sk_find(tf_sk_ref(sk));
	tf_fill_addrs(&ev, sk);
	ev.oldstate = sk->__sk_common.skc_state;
	ev.newstate = ev.oldstate;
	ev.cgroup_id = tf_sk_cgroup(sk, info);
	known = tf_fill_owner(&ev, info);
	tf_tcp_emit(c, &ev, TF_OP_TCP_RETRANSMIT, known, 0);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(handle_receive_reset, struct sock *sk)
{
	struct tf_probe_config *c = tf_config_get();
	struct tf_tcp_event ev = {};
	struct tf_sk_info *info;
	bool known;

	if (!tf_active(c) || !sk || tf_scope_rejects_cgrp(c, sk->sk_cgrp_data.cgroup))
		return 0;

	info = tf_sk_find(tf_sk_ref(sk));
	tf_fill_addrs(&ev, sk);
	/* The reset is seen before tcp_done(): this is the state it hit. */
	ev.oldstate = sk->__sk_common.skc_state;
	ev.newstate = ev.oldstate;
	ev.cgroup_id = tf_sk_cgroup(sk, info);
	known = tf_fill_owner(&ev, info);
	tf_tcp_emit(c, &ev, TF_OP_TCP_RESET_RECV, known, 0);
	return 0;
}

/*
 * The 4-tuple of the segment a reset answers, reversed so saddr is the local
 * end: what tcp/tcp_send_reset records when there is no full socket. The
 * network header starts with the IP version; the TCP header is at skb->data.
 */
static __always_inline void tf_reset_tuple_from_skb(struct tf_tcp_event *ev,
						    const struct sk_buff *skb)
{
	const unsigned char *head = skb->head;
	const unsigned char *data = skb->data;
	__u16 nh = skb->network_header;
	__u8 ip[40] = {};      /* an IPv6 header, or an IPv4 header and what follows */
	__be16 ports[2] = {};  /* tcphdr source, dest */

	bpf_probe_read_kernel(ip, sizeof(ip), head + nh);
	bpf_probe_read_kernel(ports, sizeof(ports), data);
	ev->sport = bpf_ntohs(ports[1]);
	ev->dport = bpf_ntohs(ports[0]);
	if ((ip[0] >> 4) == 6) {
		ev->family = AF_INET6;
		__builtin_memcpy(ev->saddr, &ip[24], 16); /* ipv6hdr.daddr */
		__builtin_memcpy(ev->daddr, &ip[8], 16);  /* ipv6hdr.saddr */
	} else {
		ev->family = AF_INET;
		__builtin_memcpy(ev->saddr, &ip[16], 4);  /* iphdr.daddr */
		__builtin_memcpy(ev->daddr, &ip[12], 4);  /* iphdr.saddr */
	}
}

/*
 * sk is NULL (no socket: a segment to a closed port), a time-wait or request
 * sock (not a full socket: no cgroup data, not in the table), or a full
 * socket. The fields follow what the tcp/tcp_send_reset record holds (6.10+):
 * a full socket's own tuple, else the reversed tuple of the segment, else
 * nothing. A full socket's owner is known only while it is in the table: an
 * abortive close (unread data, SO_LINGER 0) sends its reset after the
 * socket's CLOSE freed the way, so that reset has pid 0, as before.
 */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(handle_send_reset, const struct sock *sk, const struct sk_buff *skb)
{
	struct tf_probe_config *c = tf_config_get();
	struct tf_tcp_event ev = {};
	struct tf_sk_info *info;
	bool known = false;
	__u8 state = 0;

	if (!tf_active(c))
		return 0;

	if (sk)
		state = sk->__sk_common.skc_state;
	if (sk && state != TCP_TIME_WAIT && state != TCP_NEW_SYN_RECV) {
		const struct inet_sock *inet = TF_INET(sk);

		if (tf_scope_rejects_cgrp(c, sk->sk_cgrp_data.cgroup))
			return 0;
		info = tf_sk_find(tf_sk_ref(sk));
		tf_fill_addrs(&ev, sk);
		/* Not the v4 family: the record says AF_INET for anything but AF_INET6. */
		if (ev.family != AF_INET6)
			ev.family = AF_INET;
		else
			/* The record takes the IPv6 source from inet6_sk(sk)->saddr. */
			tf_copy_in6(ev.saddr, &inet->pinet6->saddr);
		ev.cgroup_id = tf_sk_cgroup(sk, info);
		known = tf_fill_owner(&ev, info);
	} else if (c->scope_cgroup_id) {
		return 0; /* no full socket: no cgroup to place it in a scope */
	} else if (skb) {
		tf_reset_tuple_from_skb(&ev, skb);
	}
	ev.oldstate = state;
	ev.newstate = state;
	tf_tcp_emit(c, &ev, TF_OP_TCP_RESET_SENT, known, 0);
	return 0;
}
