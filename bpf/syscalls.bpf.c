// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Syscall latency probe: exact per-(cgroup, syscall) log2 histograms and
 * per-(cgroup, syscall, errno) error counts aggregated in kernel maps that
 * user space reads and deletes each interval, plus a sampled stream of
 * TF_OP_SYSCALL_SLOW records for syscalls slower than c->slow_ns.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#define TF_THIS_PROBE TF_PROBE_SYSCALLS
#include "control.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

_Static_assert(sizeof(struct tf_syscall_slow) == 80, "tf_syscall_slow is 80 bytes");
_Static_assert(sizeof(struct tf_hist_value) == 280, "tf_hist_value is 280 bytes");

#define TF_AGG_ENTRIES 16384
#define MAX_ERRNO 4095

/* Per-thread entry state; lives and dies with the task, so exit_group() leaks nothing. */
struct syscall_start {
	__u64 ts;        /* 0: no entry seen (or already consumed) */
	__u64 cgroup_id; /* at entry: the key the syscall is counted under */
	__u32 nr;
	__u32 pad;
	struct tf_eff eff; /* at entry: the cgroup's focus or the baseline */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct syscall_start);
} syscall_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TF_AGG_ENTRIES);
	__type(key, struct tf_syscall_key);
	__type(value, struct tf_hist_value);
} syscall_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TF_AGG_ENTRIES);
	__type(key, struct tf_errno_key);
	__type(value, __u64);
} syscall_errno SEC(".maps");

/* Source for BPF_NOEXIST inserts: read-only, so no 280-byte stack memset per miss. */
static const struct tf_hist_value zero_hist;

static __always_inline struct tf_hist_value *stats_get(const struct tf_syscall_key *key)
{
	struct tf_hist_value *v;
	long err;

	v = bpf_map_lookup_elem(&syscall_stats, key);
	if (v)
		return v;
	err = bpf_map_update_elem(&syscall_stats, key, &zero_hist, BPF_NOEXIST);
	if (err && err != -EEXIST) {
		tf_count_drop(TF_DROP_MAP_FULL);
		return NULL;
	}
	/* -EEXIST: another CPU inserted it first; use theirs. */
	return bpf_map_lookup_elem(&syscall_stats, key);
}

static __always_inline void errno_count(__u64 cgroup_id, __u32 nr, __u32 err)
{
	struct tf_errno_key key = { .cgroup_id = cgroup_id, .syscall_nr = nr, .err = err };

	tf_count_key(&syscall_errno, &key);
}

static __always_inline void emit_slow(const struct tf_probe_config *c, const struct tf_eff *eff,
				      __u64 cgroup_id, __u32 nr, long ret, __u64 dur)
{
	struct tf_syscall_slow *e;
	__u64 id;
	__u32 weight;

	if (dur < eff->min_duration_ns) {
		tf_count_drop(TF_DROP_FILTERED);
		return;
	}
	if (tf_sampled_out(eff->sample_n, &weight)) {
		tf_count_drop(TF_DROP_SAMPLED);
		return;
	}
	e = tf_reserve(sizeof(*e));
	if (!e)
		return;
	tf_hdr_fill(&e->hdr, TF_OP_SYSCALL_SLOW, sizeof(*e), c, weight, eff->flags);
	id = bpf_get_current_pid_tgid();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->cgroup_id = cgroup_id;
	e->syscall_nr = nr;
	e->pad = 0;
	e->ret = ret;
	e->duration_ns = dur;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	tf_submit(e);
}

/* BTF raw tracepoints: ~35 ns/syscall cheaper each than tracepoint/raw_syscalls/ (no perf buffer). */
SEC("tp_btf/sys_enter")
int BPF_PROG(handle_sys_enter, struct pt_regs *regs, long id)
{
	struct tf_probe_config *c = tf_config_get();
	struct syscall_start *s;
	struct tf_eff eff;
	__u64 cgroup_id;

	if (!tf_active(c) || tf_scope_rejects_current(c))
		return 0;
	/* Decide at entry: uncollected and rejected tasks then cost no storage and no exit work. */
	cgroup_id = bpf_get_current_cgroup_id();
	if (tf_effective(c, cgroup_id, &eff))
		return 0;
	if (tf_filter_current(c, cgroup_id))
		return 0;
	s = bpf_task_storage_get(&syscall_start, bpf_get_current_task_btf(), NULL,
				 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s)
		return 0;
	s->cgroup_id = cgroup_id;
	s->eff = eff;
	s->nr = (__u32)id;
	s->ts = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(handle_sys_exit, struct pt_regs *regs, long ret)
{
	struct tf_syscall_key key = {};
	struct tf_probe_config *c;
	struct syscall_start *s;
	struct tf_hist_value *v;
	__u64 ts, now, dur;

	s = bpf_task_storage_get(&syscall_start, bpf_get_current_task_btf(), NULL, 0);
	if (!s || !s->ts)
		return 0; /* entry not seen: attached mid-syscall, or filtered */
	now = bpf_ktime_get_ns();
	ts = s->ts;
	s->ts = 0;
	c = tf_config_get();
	if (!tf_active(c) || now < ts)
		return 0;
	dur = now - ts;

	key.cgroup_id = s->cgroup_id;
	key.syscall_nr = s->nr;
	v = stats_get(&key);
	if (v) {
		__sync_fetch_and_add(&v->count, 1);
		__sync_fetch_and_add(&v->total_ns, dur);
		/* The mask keeps the index provably < 32 whatever clang does to the clamp. */
		__sync_fetch_and_add(&v->hist[tf_log2_slot(dur) & (TF_HIST_SLOTS - 1)], 1);
		if (ret < 0 && ret >= -MAX_ERRNO)
			__sync_fetch_and_add(&v->error_count, 1);
	}
	if (ret < 0 && ret >= -MAX_ERRNO)
		errno_count(key.cgroup_id, key.syscall_nr, (__u32)-ret);

	if (s->eff.slow_ns && dur >= s->eff.slow_ns)
		emit_slow(c, &s->eff, key.cgroup_id, key.syscall_nr, ret, dur);
	return 0;
}
