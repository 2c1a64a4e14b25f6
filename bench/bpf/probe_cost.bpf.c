// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Bench only (bench/probe-emit-cost.mjs): per-event kernel cost of emitting a
 * record to the ring buffer versus counting the same event. Every program
 * hooks tp_btf/sys_enter and keeps only getppid() calls of one process
 * (target_tgid, set before load); the bench attaches one program at a time.
 *
 *   count_only    filter, config lookup, per-CPU counter ++
 *   gather_count  + the fields a record carries (cgroup, comm, ktime) and the
 *                 task filter and sampling checks, then counts: no ring
 *   emit_batched  the tracefeed path: reserve 64 bytes, fill, tf_submit()
 *                 (BPF_RB_NO_WAKEUP unless AVAIL_DATA >= wakeup_bytes)
 *   emit_wakeup   same record, bpf_ringbuf_submit(e, 0): the kernel wakes the
 *                 reader whenever it has caught up (per-event wake-ups)
 *   emit_force    same record, BPF_RB_FORCE_WAKEUP on every event
 *
 * Breakdown (where the emit path's time goes), each count_only plus one step:
 *   step_ktime    + bpf_ktime_get_ns()
 *   step_cgroup   + bpf_get_current_cgroup_id()
 *   step_comm     + bpf_get_current_comm()
 *   step_ring     + reserve 64 bytes, write only op and size, tf_submit()
 *   step_ring_nowake  same, into a 32 MiB ring `rb_nowake`, always
 *                 BPF_RB_NO_WAKEUP (the reader finds it on its <=100 ms poll):
 *                 step_ring minus this is the cost of the threshold wake-ups
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define TF_THIS_PROBE TF_PROBE_PROCESS /* any slot: this object has one probe */
#include "control.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 target_tgid = 0;
const volatile long target_nr = 110; /* __NR_getppid on x86_64 */

#define BENCH_OP 200 /* outside the product's op space */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 32 * 1024 * 1024);
} rb_nowake SEC(".maps");

/* 64 bytes: header + the fields a typical tracefeed record carries. */
struct bench_event {
	struct tf_event_header hdr;
	__u32 pid;
	__u32 tid;
	__u64 cgroup_id;
	__u64 nr;
	char comm[TF_COMM_LEN];
};
_Static_assert(sizeof(struct bench_event) == 64, "bench_event is 64 bytes");

static __always_inline struct tf_probe_config *bench_match(long id)
{
	struct tf_probe_config *c;

	if (id != target_nr)
		return NULL;
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return NULL;
	c = tf_config_get();
	if (!c || !c->enabled)
		return NULL;
	return c;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(count_only, struct pt_regs *regs, long id)
{
	if (!bench_match(id))
		return 0;
	tf_count(&tf_emitted, TF_THIS_PROBE);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(gather_count, struct pt_regs *regs, long id)
{
	struct tf_probe_config *c = bench_match(id);
	struct bench_event ev;
	__u64 pid_tgid;
	__u32 weight;

	if (!c)
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	ev.cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(ev.comm, sizeof(ev.comm));
	if (tf_filter_task(c, ev.cgroup_id, pid_tgid >> 32, ev.comm)) {
		tf_count_drop(TF_DROP_FILTERED);
		return 0;
	}
	if (tf_sampled_out(c->sample_n, &weight)) {
		tf_count_drop(TF_DROP_SAMPLED);
		return 0;
	}
	tf_hdr_fill(&ev.hdr, BENCH_OP, sizeof(ev), c, weight, 0);
	/* Keep the gathered values live without a ring: fold them into the count. */
	tf_count(&tf_emitted, TF_THIS_PROBE + ((ev.hdr.ktime_ns ^ ev.cgroup_id ^ ev.comm[0]) == 1));
	return 0;
}

static __always_inline void emit(long id, int mode)
{
	struct tf_probe_config *c = bench_match(id);
	struct bench_event *e;
	__u64 pid_tgid, cgroup_id;
	char comm[TF_COMM_LEN];
	__u32 weight;

	if (!c)
		return;
	pid_tgid = bpf_get_current_pid_tgid();
	cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(comm, sizeof(comm));
	if (tf_filter_task(c, cgroup_id, pid_tgid >> 32, comm)) {
		tf_count_drop(TF_DROP_FILTERED);
		return;
	}
	if (tf_sampled_out(c->sample_n, &weight)) {
		tf_count_drop(TF_DROP_SAMPLED);
		return;
	}
	e = tf_reserve(sizeof(*e));
	if (!e)
		return;
	tf_hdr_fill(&e->hdr, BENCH_OP, sizeof(*e), c, weight, 0);
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->cgroup_id = cgroup_id;
	e->nr = id;
	__builtin_memcpy(e->comm, comm, sizeof(e->comm));
	if (mode == 0) {
		tf_submit(e);
		return;
	}
	bpf_ringbuf_submit(e, mode == 1 ? 0 : BPF_RB_FORCE_WAKEUP);
	tf_count(&tf_emitted, TF_THIS_PROBE);
}

SEC("tp_btf/sys_enter")
int BPF_PROG(emit_batched, struct pt_regs *regs, long id)
{
	emit(id, 0);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(emit_wakeup, struct pt_regs *regs, long id)
{
	emit(id, 1);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(emit_force, struct pt_regs *regs, long id)
{
	emit(id, 2);
	return 0;
}

/* ---- breakdown steps ---------------------------------------------------- */

SEC("tp_btf/sys_enter")
int BPF_PROG(step_ktime, struct pt_regs *regs, long id)
{
	if (!bench_match(id))
		return 0;
	tf_count(&tf_emitted, TF_THIS_PROBE + (bpf_ktime_get_ns() == 1));
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(step_cgroup, struct pt_regs *regs, long id)
{
	if (!bench_match(id))
		return 0;
	tf_count(&tf_emitted, TF_THIS_PROBE + (bpf_get_current_cgroup_id() == 1));
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(step_comm, struct pt_regs *regs, long id)
{
	char comm[TF_COMM_LEN];

	if (!bench_match(id))
		return 0;
	bpf_get_current_comm(comm, sizeof(comm));
	tf_count(&tf_emitted, TF_THIS_PROBE + (comm[0] == 1));
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(step_ring, struct pt_regs *regs, long id)
{
	struct bench_event *e;

	if (!bench_match(id))
		return 0;
	e = tf_reserve(sizeof(*e));
	if (!e)
		return 0;
	/* Only what the reader validates; the rest of the slot is stale bytes. */
	e->hdr.op = BENCH_OP;
	e->hdr.size = sizeof(*e);
	tf_submit(e);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(step_ring_nowake, struct pt_regs *regs, long id)
{
	struct bench_event *e;

	if (!bench_match(id))
		return 0;
	e = bpf_ringbuf_reserve(&rb_nowake, sizeof(*e), 0);
	if (!e) {
		tf_count_drop(TF_DROP_RINGBUF_FULL);
		return 0;
	}
	e->hdr.op = BENCH_OP;
	e->hdr.size = sizeof(*e);
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	tf_count(&tf_emitted, TF_THIS_PROBE);
	return 0;
}
