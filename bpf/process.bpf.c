// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Process lifecycle probe: one TF_OP_EXEC record per successful execve and
 * one TF_OP_EXIT record per exiting thread-group leader, streamed through a
 * single BPF ring buffer. Record layouts live in events.h.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The wire format promises 8-byte multiples: catch a layout slip at build. */
_Static_assert(sizeof(struct tf_event_header) == 24, "tf_event_header is 24 bytes");
_Static_assert(sizeof(struct tf_exec_event) == 320, "tf_exec_event is 320 bytes");
_Static_assert(sizeof(struct tf_exit_event) == 72, "tf_exit_event is 72 bytes");

/*
 * Wake the consumer only once this many bytes are pending; user space polls
 * with a timeout and consumes anyway, so small bursts cost no wakeups.
 * Set from user space before load (.rodata is frozen after).
 */
const volatile __u64 wakeup_bytes = 65536;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024); /* resized from user space before load */
} rb SEC(".maps");

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

static __always_inline void count_drop(enum tf_drop_reason reason)
{
	__u32 key = TF_PROBE_PROCESS * TF_DROP_REASON_MAX + reason;
	__u64 *val;

	/* Per-CPU slot: a plain increment is race-free on this CPU. */
	val = bpf_map_lookup_elem(&tf_drops, &key);
	if (val)
		*val += 1;
}

static __always_inline void count_emitted(void)
{
	__u32 key = TF_PROBE_PROCESS;
	__u64 *val;

	val = bpf_map_lookup_elem(&tf_emitted, &key);
	if (val)
		*val += 1;
}

static __always_inline void submit(void *event)
{
	__u64 flags = BPF_RB_NO_WAKEUP;

	/* Batch wakeups: only force one when enough data is waiting. */
	if (bpf_ringbuf_query(&rb, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(event, flags);
	count_emitted();
}

SEC("tracepoint/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct tf_exec_event *e;
	unsigned int fname_off;
	long len;

	/* Reserve first: on a full ring we only pay for the drop counter. */
	e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
	if (!e) {
		count_drop(TF_DROP_RINGBUF_FULL);
		return 0;
	}

	/* Ring memory is not zeroed: every byte below is written explicitly. */
	e->hdr.op = TF_OP_EXEC;
	e->hdr.flags = 0;
	e->hdr.pad = 0;
	e->hdr.size = sizeof(*e);
	e->hdr.ktime_ns = bpf_ktime_get_ns();
	e->hdr.generation = 0;
	e->hdr.sample_weight = 1;

	/* After exec, current is the new image: tgid is the process id. */
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->pad = 0;
	e->cgroup_id = bpf_get_current_cgroup_id();

	/* comm is already the new binary's name; the helper zero-pads it. */
	bpf_get_current_comm(&e->comm, sizeof(e->comm));

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

	submit(e);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int handle_exit(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 id = bpf_get_current_pid_tgid();
	__u32 pid = id >> 32, tid = (__u32)id;
	struct tf_exit_event *e;
	__u64 now;
	int code;

	/* Threads exit too: only the group leader ends the process. */
	if (pid != tid)
		return 0;

	e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
	if (!e) {
		count_drop(TF_DROP_RINGBUF_FULL);
		return 0;
	}

	now = bpf_ktime_get_ns();
	e->hdr.op = TF_OP_EXIT;
	e->hdr.flags = 0;
	e->hdr.pad = 0;
	e->hdr.size = sizeof(*e);
	e->hdr.ktime_ns = now;
	e->hdr.generation = 0;
	e->hdr.sample_weight = 1;

	e->pid = pid;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);

	/* do_exit() already stored the wait(2) status in task->exit_code. */
	code = BPF_CORE_READ(task, exit_code);
	e->exit_code = (code >> 8) & 0xff;
	e->exit_signal = code & 0x7f;
	e->cgroup_id = bpf_get_current_cgroup_id();

	/* start_time is CLOCK_MONOTONIC ns, the same clock as ktime. */
	e->lifetime_ns = now - BPF_CORE_READ(task, start_time);
	bpf_get_current_comm(&e->comm, sizeof(e->comm));

	submit(e);
	return 0;
}
