// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Process lifecycle probe: one TF_OP_EXEC record per successful execve and
 * one TF_OP_EXIT record per exiting thread-group leader, streamed through the
 * object's ring buffer. Record layouts live in events.h; what gets emitted is
 * steered at run time through the control maps of control.h.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#define TF_THIS_PROBE TF_PROBE_PROCESS
#include "control.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The wire format promises 8-byte multiples: catch a layout slip at build. */
_Static_assert(sizeof(struct tf_event_header) == 24, "tf_event_header is 24 bytes");
_Static_assert(sizeof(struct tf_exec_event) == 320, "tf_exec_event is 320 bytes");
_Static_assert(sizeof(struct tf_exit_event) == 72, "tf_exit_event is 72 bytes");

SEC("tracepoint/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct tf_probe_config *c = tf_config_get();
	char comm[TF_COMM_LEN];
	struct tf_exec_event *e;
	unsigned int fname_off;
	__u64 cgroup_id;
	__u32 pid, weight;
	long len;

	if (!c || !c->enabled || tf_scope_rejects_current(c))
		return 0;

	/* After exec, current is the new image: tgid is the process id. */
	pid = bpf_get_current_pid_tgid() >> 32;
	cgroup_id = bpf_get_current_cgroup_id();
	/* comm is already the new binary's name; the helper zero-pads it. */
	bpf_get_current_comm(comm, sizeof(comm));

	if (tf_filter_task(c, cgroup_id, pid, comm)) {
		tf_count_drop(TF_DROP_FILTERED);
		return 0;
	}
	if (tf_sampled_out(c->sample_n, &weight)) {
		tf_count_drop(TF_DROP_SAMPLED);
		return 0;
	}

	/* Reserve after filtering: a rejected event costs no ring space. */
	e = tf_reserve(sizeof(*e));
	if (!e)
		return 0;

	/* Ring memory is not zeroed: every byte below is written explicitly. */
	tf_hdr_fill(&e->hdr, TF_OP_EXEC, sizeof(*e), c, weight, 0);
	e->pid = pid;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->pad = 0;
	e->cgroup_id = cgroup_id;
	__builtin_memcpy(e->comm, comm, sizeof(e->comm));

	/* Clear the filename so bytes after the NUL never leak old records. */
	__builtin_memset(e->filename, 0, sizeof(e->filename));

	/* __data_loc: low 16 bits are the string's offset from the record. */
	fname_off = ctx->__data_loc_filename & 0xFFFF;
	len = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename),
					(void *)ctx + fname_off);
	if (len < 0)
		e->filename[0] = '\0';
	else if (len >= (long)sizeof(e->filename))
		e->hdr.flags |= TF_FLAG_TRUNCATED; /* filled: may be cut */

	tf_submit(e);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int handle_exit(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct tf_probe_config *c = tf_config_get();
	__u64 id = bpf_get_current_pid_tgid();
	__u32 pid = id >> 32, tid = (__u32)id;
	char comm[TF_COMM_LEN];
	struct tf_exit_event *e;
	__u64 cgroup_id;
	__u32 weight;
	int code;

	if (!c || !c->enabled || tf_scope_rejects_current(c))
		return 0;

	/* Threads exit too: only the group leader ends the process. */
	if (pid != tid)
		return 0;

	cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(comm, sizeof(comm));

	if (tf_filter_task(c, cgroup_id, pid, comm)) {
		tf_count_drop(TF_DROP_FILTERED);
		return 0;
	}
	if (tf_sampled_out(c->sample_n, &weight)) {
		tf_count_drop(TF_DROP_SAMPLED);
		return 0;
	}

	e = tf_reserve(sizeof(*e));
	if (!e)
		return 0;

	tf_hdr_fill(&e->hdr, TF_OP_EXIT, sizeof(*e), c, weight, 0);
	e->pid = pid;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);

	/* do_exit() already stored the wait(2) status in task->exit_code. */
	code = BPF_CORE_READ(task, exit_code);
	e->exit_code = (code >> 8) & 0xff;
	e->exit_signal = code & 0x7f;
	e->cgroup_id = cgroup_id;

	/* start_time is CLOCK_MONOTONIC ns, the same clock as ktime. */
	e->lifetime_ns = e->hdr.ktime_ns - BPF_CORE_READ(task, start_time);
	__builtin_memcpy(e->comm, comm, sizeof(e->comm));

	tf_submit(e);
	return 0;
}
