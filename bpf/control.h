/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * Kernel side of live control, included by every <family>.bpf.c after
 * defining TF_THIS_PROBE (an enum tf_probe value):
 *
 *   #define TF_THIS_PROBE TF_PROBE_TCP
 *   #include "control.h"
 *
 * Each probe object gets its own ring buffer `rb`, config entry `tf_config`,
 * filter sets and per-CPU counters. User space changes behaviour by writing
 * these maps: nothing here needs a reload.
 */
#ifndef TRACEFEED_CONTROL_H
#define TRACEFEED_CONTROL_H

#include "events.h"

#ifndef TF_THIS_PROBE
#error "define TF_THIS_PROBE before including control.h"
#endif

/* Wake the reader only once this many bytes wait; it polls with a timeout anyway. */
const volatile __u64 wakeup_bytes = 262144;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024); /* resized from user space before load */
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tf_probe_config);
} tf_config SEC(".maps");

/* Per-cgroup focus: cgroup v2 id -> the settings that cgroup is collected with. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TF_FOCUS_MAX);
	__type(key, __u64);
	__type(value, struct tf_focus);
} tf_focus SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TF_DROPS_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} tf_drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TF_EMITTED_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} tf_emitted SEC(".maps");

/* Filter sets: value TF_SET_ALLOW and/or TF_SET_DENY. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TF_SET_ID_MAX);
	__type(key, __u64);
	__type(value, __u8);
} tf_set_cgroup SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TF_SET_ID_MAX);
	__type(key, __u32);
	__type(value, __u8);
} tf_set_pid SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TF_SET_ID_MAX);
	__type(key, __u32); /* port in host order, widened */
	__type(value, __u8);
} tf_set_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TF_SET_STR_MAX);
	__type(key, char[TF_COMM_LEN]);
	__type(value, __u8);
} tf_set_comm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, TF_SET_STR_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tf_path_key);
	__type(value, __u8);
} tf_set_path SEC(".maps");

static __always_inline void tf_count(void *map, __u32 key)
{
	__u64 *val = bpf_map_lookup_elem(map, &key);

	/* Per-CPU slot: a plain increment is race-free on this CPU. */
	if (val)
		*val += 1;
}

static __always_inline void tf_count_drop(enum tf_drop_reason reason)
{
	tf_count(&tf_drops, TF_THIS_PROBE * TF_DROP_REASON_MAX + reason);
}

#ifndef EEXIST
#define EEXIST 17
#endif

/*
 * Adds 1 to the u64 counter at `key` of a hash map, making the entry when it
 * is new (a racing CPU may make it first: then its entry is used). A full map
 * is counted as TF_DROP_MAP_FULL.
 */
static __always_inline void tf_count_key(void *map, const void *key)
{
	__u64 one = 1, *n = bpf_map_lookup_elem(map, key);
	long err;

	if (n) {
		__sync_fetch_and_add(n, 1);
		return;
	}
	err = bpf_map_update_elem(map, key, &one, BPF_NOEXIST);
	if (!err)
		return;
	if (err != -EEXIST) {
		tf_count_drop(TF_DROP_MAP_FULL);
		return;
	}
	n = bpf_map_lookup_elem(map, key);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/* The live config; NULL only if the map is broken (then emit nothing). */
static __always_inline struct tf_probe_config *tf_config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&tf_config, &zero);
}

/* A program does work iff the baseline is on or some cgroup is focused. */
static __always_inline bool tf_active(const struct tf_probe_config *c)
{
	return c && (c->enabled || c->focus_count);
}

/*
 * The node's cgroup scope (tf_probe_config.scope_cgroup_id, scope_level): a
 * node that owns one subtree of the host collects only the tasks and sockets
 * in it, so several nodes can share one kernel (each loads its own objects and
 * checks its own config). Out of scope is not this node's business: not a
 * drop, not counted. Without a scope (0) the test is one load and a branch.
 */

/* 1 when the current task lies outside the scope. */
static __always_inline int tf_scope_rejects_current(const struct tf_probe_config *c)
{
	return c->scope_cgroup_id &&
	       bpf_get_current_ancestor_cgroup_id(c->scope_level) != c->scope_cgroup_id;
}

#ifdef BPF_CORE_READ
/* 1 when cgroup `cg` (a task's or a socket's; NULL: unknown) lies outside the scope. */
static __always_inline int tf_scope_rejects_cgrp(const struct tf_probe_config *c,
						 const struct cgroup *cg)
{
	struct cgroup *anc = NULL;
	__u32 level = c->scope_level;

	if (!c->scope_cgroup_id)
		return 0;
	if (!cg || (__u32)BPF_CORE_READ(cg, level) < level)
		return 1;
	/* ancestors[i] is the ancestor at depth i, the cgroup itself at its own level. */
	if (bpf_core_read(&anc, sizeof(anc), &cg->ancestors[level]) || !anc)
		return 1;
	return BPF_CORE_READ(anc, kn, id) != c->scope_cgroup_id;
}
#endif

/* The settings one event is collected with: its cgroup's focus, else the baseline. */
struct tf_eff {
	__u32 sample_n;
	__u8 flags; /* TF_FLAG_FOCUS when under a focus, else 0 */
	__u8 pad[3];
	__u64 min_duration_ns;
	__u64 slow_ns;
};

/*
 * Whether events of this cgroup are collected, and with which settings.
 * Returns 1 when they are not: the baseline is off and the cgroup has no
 * focus. That is by design, not a drop, and is not counted. The focus
 * lookup happens only while some focus exists (focus_count > 0), so the
 * common path costs two loads of the config.
 */
static __always_inline int tf_effective(const struct tf_probe_config *c, __u64 cgroup_id,
					struct tf_eff *e)
{
	if (c->focus_count) {
		struct tf_focus *f = bpf_map_lookup_elem(&tf_focus, &cgroup_id);

		if (f) {
			e->sample_n = f->sample_n;
			e->flags = TF_FLAG_FOCUS;
			e->min_duration_ns = f->min_duration_ns;
			e->slow_ns = f->slow_ns;
			return 0;
		}
	}
	if (!c->enabled)
		return 1;
	e->sample_n = c->sample_n;
	e->flags = 0;
	e->min_duration_ns = c->min_duration_ns;
	e->slow_ns = c->slow_ns;
	return 0;
}

/* Membership test against one set: 1 rejects, 0 passes. */
static __always_inline int tf_set_rejects(void *set, const void *key, __u32 mask,
					  __u32 allow_bit, __u32 deny_bit)
{
	__u8 *v;

	if (!(mask & (allow_bit | deny_bit)))
		return 0;
	v = bpf_map_lookup_elem(set, key);
	if ((mask & allow_bit) && !(v && (*v & TF_SET_ALLOW)))
		return 1;
	if ((mask & deny_bit) && v && (*v & TF_SET_DENY))
		return 1;
	return 0;
}

/* Task-level filters (cgroup, pid, comm). Returns 1 when the event is filtered. */
static __always_inline int tf_filter_task(const struct tf_probe_config *c, __u64 cgroup_id,
					  __u32 pid, const char *comm)
{
	__u32 m = c->filter_mask;

	if (tf_set_rejects(&tf_set_cgroup, &cgroup_id, m, TF_FILTER_ALLOW_CGROUP,
			   TF_FILTER_DENY_CGROUP))
		return 1;
	if (tf_set_rejects(&tf_set_pid, &pid, m, TF_FILTER_ALLOW_PID, TF_FILTER_DENY_PID))
		return 1;
	if (comm && tf_set_rejects(&tf_set_comm, comm, m, TF_FILTER_ALLOW_COMM,
				   TF_FILTER_DENY_COMM))
		return 1;
	return 0;
}

/*
 * Task filters for the current task, with its cgroup id already read. Reads
 * comm only when a comm set is active. Counts the drop; returns 1 when filtered.
 */
static __always_inline int tf_filter_current(const struct tf_probe_config *c, __u64 cgroup_id)
{
	char comm[TF_COMM_LEN];
	const char *commp = NULL;

	if (c->filter_mask & (TF_FILTER_ALLOW_COMM | TF_FILTER_DENY_COMM)) {
		bpf_get_current_comm(comm, sizeof(comm));
		commp = comm;
	}
	if (tf_filter_task(c, cgroup_id, bpf_get_current_pid_tgid() >> 32, commp)) {
		tf_count_drop(TF_DROP_FILTERED);
		return 1;
	}
	return 0;
}

/* Port filter: either port in the allow set admits; either in the deny set rejects. */
static __always_inline int tf_filter_ports(const struct tf_probe_config *c, __u16 a, __u16 b)
{
	__u32 m = c->filter_mask;
	__u32 ka = a, kb = b;
	__u8 *va, *vb;

	if (!(m & (TF_FILTER_ALLOW_PORT | TF_FILTER_DENY_PORT)))
		return 0;
	va = bpf_map_lookup_elem(&tf_set_port, &ka);
	vb = bpf_map_lookup_elem(&tf_set_port, &kb);
	if ((m & TF_FILTER_ALLOW_PORT) && !((va && (*va & TF_SET_ALLOW)) ||
					    (vb && (*vb & TF_SET_ALLOW))))
		return 1;
	if ((m & TF_FILTER_DENY_PORT) && ((va && (*va & TF_SET_DENY)) ||
					  (vb && (*vb & TF_SET_DENY))))
		return 1;
	return 0;
}

/* Path-prefix filter over the first TF_PATH_PREFIX_LEN bytes of `path`. */
static __always_inline int tf_filter_path(const struct tf_probe_config *c, const char *path)
{
	struct tf_path_key key = {};
	__u32 m = c->filter_mask;
	__u8 *v;

	if (!(m & (TF_FILTER_ALLOW_PATH | TF_FILTER_DENY_PATH)))
		return 0;
	key.prefixlen = TF_PATH_PREFIX_LEN * 8;
	/* The trie matches the longest stored prefix of these bytes. */
	__builtin_memcpy(key.path, path, TF_PATH_PREFIX_LEN);
	v = bpf_map_lookup_elem(&tf_set_path, &key);
	if ((m & TF_FILTER_ALLOW_PATH) && !(v && (*v & TF_SET_ALLOW)))
		return 1;
	if ((m & TF_FILTER_DENY_PATH) && v && (*v & TF_SET_DENY))
		return 1;
	return 0;
}

/* 1-in-N sampling. Returns 1 when the event is sampled out; *weight gets N otherwise. */
static __always_inline int tf_sampled_out(__u32 n, __u32 *weight)
{
	if (n <= 1) {
		*weight = 1;
		return 0;
	}
	*weight = n;
	return bpf_get_prandom_u32() % n != 0;
}

/*
 * Fills the common header with a time the caller already read (the instant
 * the event describes). Padding is zeroed here, not left to the caller.
 */
static __always_inline void tf_hdr_fill_at(struct tf_event_header *h, __u8 op, __u32 size,
					   const struct tf_probe_config *c, __u32 weight,
					   __u8 flags, __u64 ktime_ns)
{
	h->op = op;
	h->flags = flags;
	h->pad = 0;
	h->size = size;
	h->ktime_ns = ktime_ns;
	h->generation = c->generation;
	h->sample_weight = weight;
}

/* Fills the common header, stamped now. */
static __always_inline void tf_hdr_fill(struct tf_event_header *h, __u8 op, __u32 size,
					const struct tf_probe_config *c, __u32 weight, __u8 flags)
{
	tf_hdr_fill_at(h, op, size, c, weight, flags, bpf_ktime_get_ns());
}

/*
 * Submit with batched wake-ups: no wake-up per record; one forced wake-up
 * each time the unread data crosses a multiple of wakeup_bytes. Not one per
 * record above the threshold: while the reader is away (busy, or letting a
 * batch gather) every record would pay for an irq_work. With producers on
 * several CPUs a crossing can be missed; the next multiple catches it, the
 * ring's poll is level-triggered and the reader polls with a timeout anyway.
 */
static __always_inline void tf_submit(void *event)
{
	__u64 size = ((struct tf_event_header *)event)->size;
	__u64 avail = bpf_ringbuf_query(&rb, BPF_RB_AVAIL_DATA);
	__u64 flags = BPF_RB_NO_WAKEUP;

	/* avail counts this reserved record (plus the ring's 8-byte record header). */
	if (wakeup_bytes && avail >= wakeup_bytes &&
	    (avail - size - 8) / wakeup_bytes != avail / wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(event, flags);
	tf_count(&tf_emitted, TF_THIS_PROBE);
}

/* Reserve or count a ringbuf_full drop. */
static __always_inline void *tf_reserve(__u32 size)
{
	void *e = bpf_ringbuf_reserve(&rb, size, 0);

	if (!e)
		tf_count_drop(TF_DROP_RINGBUF_FULL);
	return e;
}

/* log2 bucket for a duration in ns, clamped to the last slot. */
static __always_inline __u32 tf_log2_slot(__u64 v)
{
	__u32 slot = 0;

	/* Unrolled binary search: bounded for the verifier. */
	if (v >> 32) { v >>= 32; slot += 32; }
	if (v >> 16) { v >>= 16; slot += 16; }
	if (v >> 8) { v >>= 8; slot += 8; }
	if (v >> 4) { v >>= 4; slot += 4; }
	if (v >> 2) { v >>= 2; slot += 2; }
	if (v >> 1) { slot += 1; }
	return slot < TF_HIST_SLOTS ? slot : TF_HIST_SLOTS - 1;
}

#endif /* TRACEFEED_CONTROL_H */
