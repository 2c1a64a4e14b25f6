// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Run-queue latency probe (after libbpf-tools runqlat): time from a task
 * becoming runnable (wakeup, or preemption while still runnable) to it
 * being switched in, as an exact log2 histogram per cgroup in runq_stats.
 * Nothing is streamed: user space reads and deletes the map each interval
 * and emits TF_OP_RUNQ_SUMMARY records.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#define TF_THIS_PROBE TF_PROBE_SCHED
#include "control.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TF_AGG_ENTRIES 16384
#define TASK_RUNNING 0

/* Kernels before 5.14 name the field `state` (and make it a long). */
struct task_struct___o {
	volatile long state;
} __attribute__((preserve_access_index));

/* tid -> ktime it became runnable. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} runq_start SEC(".maps");

/* cgroup v2 id -> histogram; error_count stays 0. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TF_AGG_ENTRIES);
	__type(key, __u64);
	__type(value, struct tf_hist_value);
} runq_stats SEC(".maps");

static const struct tf_hist_value zero_hist;

/* tp_btf args are trusted BTF pointers: plain loads, no probe-read helper calls. */
static __always_inline long task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return t->__state;
	return ((struct task_struct___o *)t)->state;
}

static __always_inline void enqueue(__u32 pid)
{
	__u64 ts;

	if (!pid)
		return; /* the per-CPU idle tasks all have pid 0 */
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&runq_start, &pid, &ts, BPF_ANY);
}

static __always_inline struct tf_hist_value *stats_get(__u64 *cgroup_id)
{
	struct tf_hist_value *v;
	long err;

	v = bpf_map_lookup_elem(&runq_stats, cgroup_id);
	if (v)
		return v;
	err = bpf_map_update_elem(&runq_stats, cgroup_id, &zero_hist, BPF_NOEXIST);
	if (err && err != -EEXIST) {
		tf_count_drop(TF_DROP_MAP_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&runq_stats, cgroup_id);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(handle_sched_wakeup, struct task_struct *p)
{
	struct tf_probe_config *c = tf_config_get();

	if (!tf_active(c))
		return 0;
	enqueue(p->pid);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(handle_sched_wakeup_new, struct task_struct *p)
{
	struct tf_probe_config *c = tf_config_get();

	if (!tf_active(c))
		return 0;
	enqueue(p->pid);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(handle_sched_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	struct tf_probe_config *c = tf_config_get();
	struct tf_hist_value *v;
	__u64 *tsp, ts, now, delta, cgroup_id;
	struct tf_eff eff;
	__u32 pid;

	if (!tf_active(c))
		return 0;
	/* Preempted while runnable: it is back on the run queue from now. */
	if (task_state(prev) == TASK_RUNNING)
		enqueue(prev->pid);

	pid = next->pid;
	tsp = bpf_map_lookup_elem(&runq_start, &pid);
	if (!tsp)
		return 0;
	ts = *tsp;
	bpf_map_delete_elem(&runq_start, &pid);
	now = bpf_ktime_get_ns();
	if (now < ts)
		return 0;
	delta = now - ts;

	/* The cgroup of the task whose wait is measured. */
	if (tf_scope_rejects_cgrp(c, next->cgroups->dfl_cgrp))
		return 0;
	cgroup_id = next->cgroups->dfl_cgrp->kn->id;
	if (tf_effective(c, cgroup_id, &eff))
		return 0;
	if (tf_filter_task(c, cgroup_id, next->tgid, NULL)) {
		tf_count_drop(TF_DROP_FILTERED);
		return 0;
	}
	v = stats_get(&cgroup_id);
	if (!v)
		return 0;
	__sync_fetch_and_add(&v->count, 1);
	__sync_fetch_and_add(&v->total_ns, delta);
	/* The mask keeps the index provably < 32 whatever clang does to the clamp. */
	__sync_fetch_and_add(&v->hist[tf_log2_slot(delta) & (TF_HIST_SLOTS - 1)], 1);
	return 0;
}
