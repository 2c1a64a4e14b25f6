// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * DNS probe: queries and responses on the wire, UDP and TCP port 53, seen by two
 * cgroup_skb programs attached to the cgroup v2 root (so every workload's
 * sockets pass through them). A query leaving a socket (egress, destination
 * port 53) is parsed (id, first question's name and type) and stored with the
 * sending task; the response arriving at the same socket (ingress, source
 * port 53, same id and server) is matched to it and one struct tf_dns_event
 * is emitted with the latency. Traffic of a resolver serving this host
 * (queries in, responses out) is left alone. docs/dns.md.
 *
 * Those two run only while the family is on (enabled, or a focus): off, they
 * are detached and cost nothing per packet. What stays attached is the
 * lookup counter: cgroup/connect4/6 and cgroup/sendmsg4/6 programs that count,
 * per cgroup, the lookups workloads start (a connect to port 53, or a datagram
 * to port 53 from an unconnected socket) into tf_dns_lookups, flushed as
 * TF_OP_DNS_LOOKUPS summaries. They run once per connect or unconnected send,
 * not per packet, and give the feedback loop the signal on which it turns the
 * per-packet programs on for one workload.
 *
 * The programs never drop a packet or refuse a connect: they return 1 (allow) on every path.
 * Live control: control.h (cgroup/pid/comm filters, sampling and focus are
 * decided at the query, where the task is known; min_duration at the response).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define TF_THIS_PROBE TF_PROBE_DNS
#include "control.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

_Static_assert(sizeof(struct tf_dns_event) == 240, "tf_dns_event is 240 bytes");

#define TF_ETH_P_IP 0x0800
#define TF_ETH_P_IPV6 0x86DD
#define TF_IPPROTO_UDP 17
#define TF_IPPROTO_TCP 6
#define TF_AF_INET 2
#define TF_AF_INET6 10
#define TF_DNS_PORT 53
#define TF_DNS_HDR_LEN 12
/* Name bytes parsed in one load: the name's wire form is one byte longer than the dotted form. */
#define TF_DNS_WIRE_LEN (TF_DNS_NAME_LEN + 1)
/* Labels skipped one load each past the bound, to reach the question's type. */
#define TF_DNS_SKIP_LABELS 16

/*
 * Queries in flight (struct tf_dns_query in events.h). LRU: a query that is
 * never answered stays until user space collects it as timed out (it scans
 * for entries older than the family's timeout) or newer queries push it out.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tf_dns_key);
	__type(value, struct tf_dns_query);
} tf_dns_pending SEC(".maps");

/* TF_DNS_* counters (per CPU; read by user space). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TF_DNS_COUNTS_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} tf_dns_counts SEC(".maps");

/* cgroup v2 id -> name lookups started (connects and unconnected sends to port 53). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} tf_dns_lookups SEC(".maps");

/* Scratch for the query being built: too big for the 512-byte stack with the parse buffer. */
struct tf_dns_scratch {
	struct tf_dns_query q;
	__u8 wire[256]; /* name in wire form, then QTYPE; TF_DNS_WIRE_LEN + 2 bytes used */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tf_dns_scratch);
} tf_dns_scratch SEC(".maps");

/* What the IP and UDP headers say about a packet. */
struct tf_pkt {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u8 proto;    /* TF_IPPROTO_UDP or TF_IPPROTO_TCP */
	__u8 pad;
	__u32 dns_off; /* offset of the DNS header from the network header */
	__u32 dns_len; /* bytes from the DNS header to the end of the packet */
};

static __always_inline int tf_parse_udp_slow(struct __sk_buff *skb, struct tf_pkt *p);

/*
 * Where the DNS message starts: after the 8-byte UDP header, or after the TCP
 * header and the 2-byte length prefix of DNS over TCP (RFC 7766). A TCP
 * segment counts only when it carries the whole message (its length prefix
 * says so: queries always fit) or, for a response, its start; a segment
 * without payload, or the middle of a long response, is skipped (-1).
 */
static __always_inline int tf_dns_offset(struct __sk_buff *skb, struct tf_pkt *p, __u32 l4)
{
	__u8 doff;
	__u16 msg_len;

	if (p->proto == TF_IPPROTO_UDP) {
		p->dns_off = l4 + 8;
		p->dns_len = skb->len > p->dns_off ? skb->len - p->dns_off : 0;
		return 0;
	}
	if (bpf_skb_load_bytes(skb, l4 + 12, &doff, 1))
		return -1;
	p->dns_off = l4 + (doff >> 4) * 4 + 2;
	if (skb->len < p->dns_off + TF_DNS_HDR_LEN)
		return -1; /* no payload (handshake, ACK) or too little to be a DNS start */
	p->dns_len = skb->len - p->dns_off;
	if (bpf_skb_load_bytes(skb, p->dns_off - 2, &msg_len, 2))
		return -1;
	msg_len = bpf_ntohs(msg_len);
	if (msg_len < p->dns_len)
		return -1; /* not a message start (or several messages): not parsed */
	if (msg_len > p->dns_len && p->dport == TF_DNS_PORT)
		return -1; /* a query split over segments: not parsed */
	return 0;
}

/*
 * Fast path of tf_parse_udp: the headers read in place (direct packet access,
 * plain loads), ports first so that a packet that is not to or from port 53
 * costs a few loads. Returns 1 when the headers are not in the linear part
 * (then the helper path reads them).
 */
static __always_inline int tf_parse_udp_direct(struct __sk_buff *skb, struct tf_pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct udphdr *udp;
	__u32 l4;

	if (skb->protocol == bpf_htons(TF_ETH_P_IP)) {
		struct iphdr *ip = data;

		if ((void *)(ip + 1) > end)
			return 1;
		if ((ip->protocol != TF_IPPROTO_UDP && ip->protocol != TF_IPPROTO_TCP) ||
		    (ip->frag_off & bpf_htons(0x1fff)))
			return -1;
		p->proto = ip->protocol;
		l4 = ip->ihl * 4;
		if (l4 < 20)
			return -1;
		udp = data + l4; /* TCP has its ports at the same place */
		if ((void *)(udp + 1) > end)
			return 1;
		p->sport = bpf_ntohs(udp->source);
		p->dport = bpf_ntohs(udp->dest);
		if (p->sport != TF_DNS_PORT && p->dport != TF_DNS_PORT)
			return -1;
		__builtin_memset(p->saddr, 0, 32);
		__builtin_memcpy(p->saddr, &ip->saddr, 4);
		__builtin_memcpy(p->daddr, &ip->daddr, 4);
		p->family = TF_AF_INET;
	} else if (skb->protocol == bpf_htons(TF_ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;

		if ((void *)(ip6 + 1) > end)
			return 1;
		if (ip6->nexthdr != TF_IPPROTO_UDP && ip6->nexthdr != TF_IPPROTO_TCP)
			return -1;
		p->proto = ip6->nexthdr;
		l4 = 40;
		udp = data + l4;
		if ((void *)(udp + 1) > end)
			return 1;
		p->sport = bpf_ntohs(udp->source);
		p->dport = bpf_ntohs(udp->dest);
		if (p->sport != TF_DNS_PORT && p->dport != TF_DNS_PORT)
			return -1;
		__builtin_memcpy(p->saddr, &ip6->saddr, 16);
		__builtin_memcpy(p->daddr, &ip6->daddr, 16);
		p->family = TF_AF_INET6;
	} else {
		return -1;
	}
	return tf_dns_offset(skb, p, l4);
}

/* Parses IPv4/IPv6 + UDP or TCP. Returns 0 for a segment to or from port 53. */
static __always_inline int tf_parse_udp(struct __sk_buff *skb, struct tf_pkt *p)
{
	int r = tf_parse_udp_direct(skb, p);

	if (r <= 0)
		return r;
	return tf_parse_udp_slow(skb, p);
}

/* Helper path: headers outside the linear part of the packet. */
static __always_inline int tf_parse_udp_slow(struct __sk_buff *skb, struct tf_pkt *p)
{
	__u16 ports[2];
	__u32 l4;

	__builtin_memset(p, 0, sizeof(*p));
	if (skb->protocol == bpf_htons(TF_ETH_P_IP)) {
		__u8 vihl, proto;

		if (bpf_skb_load_bytes(skb, 0, &vihl, 1) || bpf_skb_load_bytes(skb, 9, &proto, 1))
			return -1;
		if (proto != TF_IPPROTO_UDP && proto != TF_IPPROTO_TCP)
			return -1;
		p->proto = proto;
		/* Fragments other than the first carry no UDP header. */
		{
			__u16 frag;

			if (bpf_skb_load_bytes(skb, 6, &frag, 2) || (bpf_ntohs(frag) & 0x1fff))
				return -1;
		}
		l4 = (vihl & 0x0f) * 4;
		if (l4 < 20)
			return -1;
		if (bpf_skb_load_bytes(skb, 12, p->saddr, 4) || bpf_skb_load_bytes(skb, 16, p->daddr, 4))
			return -1;
		p->family = TF_AF_INET;
	} else if (skb->protocol == bpf_htons(TF_ETH_P_IPV6)) {
		__u8 nexthdr;

		/* UDP or TCP right after the fixed header; extension headers are not followed. */
		if (bpf_skb_load_bytes(skb, 6, &nexthdr, 1) ||
		    (nexthdr != TF_IPPROTO_UDP && nexthdr != TF_IPPROTO_TCP))
			return -1;
		p->proto = nexthdr;
		if (bpf_skb_load_bytes(skb, 8, p->saddr, 16) ||
		    bpf_skb_load_bytes(skb, 24, p->daddr, 16))
			return -1;
		l4 = 40;
		p->family = TF_AF_INET6;
	} else {
		return -1;
	}
	if (bpf_skb_load_bytes(skb, l4, ports, 4))
		return -1;
	p->sport = bpf_ntohs(ports[0]);
	p->dport = bpf_ntohs(ports[1]);
	if (p->sport != TF_DNS_PORT && p->dport != TF_DNS_PORT)
		return -1;
	return tf_dns_offset(skb, p, l4);
}

static __always_inline void tf_dns_count(__u32 slot)
{
	tf_count(&tf_dns_counts, slot);
}

/* State of the name walk, one byte per bpf_loop step. */
struct tf_name_walk {
	struct tf_dns_scratch *s;
	__u32 avail; /* valid bytes in s->wire */
	__u32 next;  /* index of the next label's length byte */
	__u32 end;   /* index of the name's terminating zero */
	__u32 stop;  /* 0: ran to the bound; 1: ended at the zero; 2: packet ended or a pointer */
};

/*
 * One byte of the name in wire form: label lengths become dots, wire byte i
 * lands at name[i - 1]. A bpf_loop callback: the verifier checks it once,
 * where an unrolled or bounded loop would fork a state per label layout.
 */
static long tf_name_step(__u32 i, void *ctx)
{
	struct tf_name_walk *w = ctx;
	struct tf_dns_scratch *s = w->s;
	__u32 idx;
	__u8 c;

	if (i >= TF_DNS_WIRE_LEN || i >= w->avail) {
		w->stop = 2;
		return 1;
	}
	idx = i;
	asm volatile("" : "+r"(idx)); /* keep the mask: the verifier does not carry the check above */
	c = s->wire[idx & 0xff];
	if (i == w->next) {
		if (c == 0) {
			w->end = i;
			w->stop = 1;
			return 1;
		}
		if (c & 0xc0) { /* compression pointer: not in a question we parse */
			w->stop = 2;
			return 1;
		}
		w->next = i + 1 + c;
		if (i > 0)
			s->q.name[(i - 1) & (TF_DNS_NAME_LEN - 1)] = '.';
	} else {
		s->q.name[(i - 1) & (TF_DNS_NAME_LEN - 1)] = c;
	}
	return 0;
}

/*
 * The first question's name (dotted) and type, from its wire form in
 * s->wire (`avail` bytes valid), reading past it only when the name is
 * longer than the bound.
 */
static __always_inline void tf_dns_name(struct __sk_buff *skb, struct tf_dns_scratch *s,
					__u32 qname_off, __u32 avail)
{
	struct tf_dns_query *q = &s->q;
	struct tf_name_walk w = { .s = s, .avail = avail };
	__u32 i, next, end;

	bpf_loop(TF_DNS_WIRE_LEN, tf_name_step, &w, 0);
	if (w.stop == 1) {
		end = w.end;
		if (end > TF_DNS_WIRE_LEN)
			return;
		q->name_len = end > 0 ? end - 1 : 0;
		if (end + 2 < avail)
			q->qtype = (__u16)s->wire[end + 1] << 8 | s->wire[end + 2];
		return;
	}
	/* Past the bound: keep what fits, then hop over the remaining labels to the type. */
	q->name_len = avail > 1 ? (avail - 1 < TF_DNS_NAME_LEN ? avail - 1 : TF_DNS_NAME_LEN) : 0;
	q->hdr_flags |= TF_FLAG_TRUNCATED;
	if (w.stop != 0)
		return; /* the packet ended or had a pointer: no type */
	next = w.next;
	for (i = 0; i < TF_DNS_SKIP_LABELS; i++) {
		__u8 c;
		__u8 t[2];

		if (next > 255)
			return;
		if (bpf_skb_load_bytes(skb, qname_off + next, &c, 1))
			return;
		if (c == 0) {
			if (!bpf_skb_load_bytes(skb, qname_off + next + 1, t, 2))
				q->qtype = (__u16)t[0] << 8 | t[1];
			return;
		}
		if (c & 0xc0)
			return;
		next += 1 + c;
	}
}

/* A query leaving a socket: store it until its response. */
static __always_inline void tf_dns_query(struct __sk_buff *skb, const struct tf_pkt *p,
					 struct tf_probe_config *c)
{
	struct tf_dns_scratch *s;
	struct tf_dns_key key = {};
	struct tf_eff e;
	__u8 hdr[4];
	__u64 cgroup_id = bpf_skb_cgroup_id(skb);
	__u32 zero = 0, avail, len, weight;

	if (p->dns_len < TF_DNS_HDR_LEN + 5 || bpf_skb_load_bytes(skb, p->dns_off, hdr, 4)) {
		tf_dns_count(TF_DNS_MALFORMED);
		return;
	}
	if (hdr[2] & 0x80) /* QR set: a response going out (a local resolver's), not a query */
		return;
	if (tf_effective(c, cgroup_id, &e))
		return;
	s = bpf_map_lookup_elem(&tf_dns_scratch, &zero);
	if (!s)
		return;
	__builtin_memset(&s->q, 0, sizeof(s->q));
	bpf_get_current_comm(s->q.comm, sizeof(s->q.comm));
	s->q.pid = bpf_get_current_pid_tgid() >> 32;
	if (tf_filter_task(c, cgroup_id, s->q.pid, s->q.comm)) {
		tf_count_drop(TF_DROP_FILTERED);
		return;
	}
	if (tf_sampled_out(e.sample_n, &weight)) {
		tf_count_drop(TF_DROP_SAMPLED);
		return;
	}
	avail = p->dns_len - TF_DNS_HDR_LEN;
	if (avail > TF_DNS_WIRE_LEN + 2)
		avail = TF_DNS_WIRE_LEN + 2;
	len = avail - 1;
	asm volatile("" : "+r"(len)); /* keep the mask: the verifier needs 1 <= len <= sizeof(wire) */
	len = (len & 0xff) + 1;
	if (bpf_skb_load_bytes(skb, p->dns_off + TF_DNS_HDR_LEN, s->wire, len))
		return;
	s->q.hdr_flags = e.flags;
	tf_dns_name(skb, s, p->dns_off + TF_DNS_HDR_LEN, avail);
	s->q.cgroup_id = cgroup_id;
	s->q.family = p->family;
	s->q.transport = p->proto;
	s->q.sport = p->sport;
	__builtin_memcpy(s->q.saddr, p->saddr, 16);
	s->q.weight = weight;
	s->q.generation = c->generation;

	key.sock_cookie = bpf_get_socket_cookie(skb);
	__builtin_memcpy(key.server, p->daddr, 16);
	key.server_port = p->dport;
	key.id = (__u16)hdr[0] << 8 | hdr[1];
	s->q.start_ns = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&tf_dns_pending, &key, &s->q, BPF_NOEXIST)) {
		/* A retry with the same id: time it from the retry. */
		tf_dns_count(TF_DNS_REPLACED);
		bpf_map_update_elem(&tf_dns_pending, &key, &s->q, BPF_ANY);
	}
	tf_dns_count(TF_DNS_QUERIES);
}

/* A response arriving at a socket: match its query, emit the record. */
static __always_inline void tf_dns_response(struct __sk_buff *skb, const struct tf_pkt *p,
					    struct tf_probe_config *c)
{
	struct tf_dns_key key = {};
	struct tf_dns_query *q;
	struct tf_dns_event *ev;
	__u8 hdr[8];
	__u64 now, latency;

	if (p->dns_len < TF_DNS_HDR_LEN || bpf_skb_load_bytes(skb, p->dns_off, hdr, 8)) {
		tf_dns_count(TF_DNS_MALFORMED);
		return;
	}
	if (!(hdr[2] & 0x80)) /* a query coming in (to a local resolver) */
		return;
	key.sock_cookie = bpf_get_socket_cookie(skb);
	__builtin_memcpy(key.server, p->saddr, 16);
	key.server_port = p->sport;
	key.id = (__u16)hdr[0] << 8 | hdr[1];
	q = bpf_map_lookup_elem(&tf_dns_pending, &key);
	if (!q) {
		/* Over TCP a retransmitted or later segment can look like a response start: not counted. */
		if (p->proto == TF_IPPROTO_UDP)
			tf_dns_count(TF_DNS_UNMATCHED);
		return;
	}
	now = bpf_ktime_get_ns();
	latency = now > q->start_ns ? now - q->start_ns : 0;
	if (latency < c->min_duration_ns && !(q->hdr_flags & TF_FLAG_FOCUS)) {
		tf_count_drop(TF_DROP_FILTERED);
		goto out;
	}
	ev = tf_reserve(sizeof(*ev));
	if (!ev)
		goto out;
	tf_hdr_fill_at(&ev->hdr, TF_OP_DNS_RESPONSE, sizeof(*ev), c, q->weight, q->hdr_flags, now);
	ev->hdr.generation = q->generation;
	ev->pid = q->pid;
	ev->family = p->family;
	ev->sport = p->dport;
	ev->dport = p->sport;
	ev->id = key.id;
	ev->qtype = q->qtype;
	ev->dns_flags = (__u16)hdr[2] << 8 | hdr[3];
	ev->ancount = (__u16)hdr[6] << 8 | hdr[7];
	ev->rcode = hdr[3] & 0x0f;
	ev->name_len = q->name_len;
	ev->transport = p->proto;
	ev->pad[0] = ev->pad[1] = ev->pad[2] = 0;
	ev->cgroup_id = q->cgroup_id;
	ev->latency_ns = latency;
	__builtin_memcpy(ev->saddr, p->daddr, 16);
	__builtin_memcpy(ev->daddr, p->saddr, 16);
	__builtin_memcpy(ev->comm, q->comm, TF_COMM_LEN);
	__builtin_memcpy(ev->name, q->name, TF_DNS_NAME_LEN);
	tf_submit(ev);
out:
	bpf_map_delete_elem(&tf_dns_pending, &key);
}

/* The socket's cgroup lies outside the node's scope (control.h). */
static __always_inline int tf_dns_out_of_scope(struct __sk_buff *skb,
					       const struct tf_probe_config *c)
{
	return c->scope_cgroup_id &&
	       bpf_skb_ancestor_cgroup_id(skb, c->scope_level) != c->scope_cgroup_id;
}

SEC("cgroup_skb/egress")
int tf_dns_egress(struct __sk_buff *skb)
{
	struct tf_probe_config *c = tf_config_get();
	struct tf_pkt p;

	if (!tf_active(c) || tf_dns_out_of_scope(skb, c))
		return 1;
	if (tf_parse_udp(skb, &p) || p.dport != TF_DNS_PORT)
		return 1;
	tf_dns_query(skb, &p, c);
	return 1;
}

SEC("cgroup_skb/ingress")
int tf_dns_ingress(struct __sk_buff *skb)
{
	struct tf_probe_config *c = tf_config_get();
	struct tf_pkt p;

	if (!tf_active(c) || tf_dns_out_of_scope(skb, c))
		return 1;
	if (tf_parse_udp(skb, &p) || p.sport != TF_DNS_PORT)
		return 1;
	tf_dns_response(skb, &p, c);
	return 1;
}

/*
 * The lookup counter: a connect() or an unconnected sendmsg() to port 53,
 * counted in the calling task's cgroup (inside the node's scope). Runs in the
 * task's context, once per connect or unconnected datagram.
 */
static __always_inline int tf_dns_lookup(struct bpf_sock_addr *ctx)
{
	struct tf_probe_config *c;
	__u64 cgroup_id;

	if (ctx->user_port != bpf_htons(TF_DNS_PORT))
		return 1;
	c = tf_config_get();
	if (!c || tf_scope_rejects_current(c))
		return 1;
	cgroup_id = bpf_get_current_cgroup_id();
	tf_count_key(&tf_dns_lookups, &cgroup_id);
	return 1;
}

SEC("cgroup/connect4")
int tf_dns_connect4(struct bpf_sock_addr *ctx)
{
	return tf_dns_lookup(ctx);
}

SEC("cgroup/connect6")
int tf_dns_connect6(struct bpf_sock_addr *ctx)
{
	return tf_dns_lookup(ctx);
}

SEC("cgroup/sendmsg4")
int tf_dns_sendmsg4(struct bpf_sock_addr *ctx)
{
	return tf_dns_lookup(ctx);
}

SEC("cgroup/sendmsg6")
int tf_dns_sendmsg6(struct bpf_sock_addr *ctx)
{
	return tf_dns_lookup(ctx);
}
