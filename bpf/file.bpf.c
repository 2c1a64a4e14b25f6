// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * File open probe: one TF_OP_FILE_OPEN record per open/openat/openat2 with
 * its result (fd or -errno). The entry tracepoint remembers the caller's
 * path pointer and flags; the exit tracepoint reads the path (the kernel
 * has just copied it, so its pages are resident), filters and emits.
 * The sys_enter_open/sys_exit_open pair exists only where the arch has
 * open(2) (x86_64 yes, arm64 no): user space attaches it when present.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#define TF_THIS_PROBE TF_PROBE_FILE
#include "control.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

_Static_assert(sizeof(struct tf_file_open) == 320, "tf_file_open is 320 bytes");

/* Per-thread state between entry and exit; freed with the task. */
struct open_start {
	__u64 fname;     /* user pointer (NULL too: the open fails with EFAULT) */
	__u64 cgroup_id;
	__s32 flags;
	__u32 pending;   /* 0: no entry seen, or already consumed */
	__u32 sample_n;  /* at entry: the cgroup's focus or the baseline */
	__u32 hdr_flags; /* TF_FLAG_FOCUS when under a focus */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct open_start);
} open_start SEC(".maps");

/* The record is built here first: filtered opens never touch the ring. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tf_file_open);
} open_scratch SEC(".maps");

static __always_inline int on_enter(const char *fname, __s32 flags)
{
	struct tf_probe_config *c = tf_config_get();
	struct open_start *s;
	struct tf_eff eff;
	__u64 cgroup_id;

	if (!tf_active(c))
		return 0;
	cgroup_id = bpf_get_current_cgroup_id();
	if (tf_effective(c, cgroup_id, &eff))
		return 0;
	if (tf_filter_current(c, cgroup_id))
		return 0;
	s = bpf_task_storage_get(&open_start, bpf_get_current_task_btf(), NULL,
				 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s)
		return 0;
	s->cgroup_id = cgroup_id;
	s->flags = flags;
	s->sample_n = eff.sample_n;
	s->hdr_flags = eff.flags;
	s->fname = (__u64)fname;
	s->pending = 1;
	return 0;
}

static __always_inline int on_exit(long ret)
{
	struct tf_probe_config *c;
	struct tf_file_open *e, *out;
	struct open_start *s;
	__u32 zero = 0, weight;
	__u64 fname;
	long len;

	s = bpf_task_storage_get(&open_start, bpf_get_current_task_btf(), NULL, 0);
	if (!s || !s->pending)
		return 0; /* entry not seen: attached mid-open, or filtered */
	s->pending = 0;
	fname = s->fname;
	c = tf_config_get();
	if (!tf_active(c))
		return 0;
	e = bpf_map_lookup_elem(&open_scratch, &zero);
	if (!e)
		return 0;

	/* Zero first: the helper stops at the NUL, and the LPM key reads 64 bytes. */
	__builtin_memset(e->path, 0, sizeof(e->path));
	len = bpf_probe_read_user_str(e->path, sizeof(e->path), (const void *)fname);
	if (len < 0)
		e->path[0] = '\0';
	if (tf_filter_path(c, e->path)) {
		tf_count_drop(TF_DROP_FILTERED);
		return 0;
	}
	if (tf_sampled_out(s->sample_n, &weight)) {
		tf_count_drop(TF_DROP_SAMPLED);
		return 0;
	}
	out = tf_reserve(sizeof(*out));
	if (!out)
		return 0;
	tf_hdr_fill(&e->hdr, TF_OP_FILE_OPEN, sizeof(*e), c, weight, s->hdr_flags);
	if (len >= (long)sizeof(e->path))
		e->hdr.flags |= TF_FLAG_TRUNCATED; /* filled: may be cut */
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->flags = s->flags;
	e->ret = (__s32)ret;
	e->pad = 0;
	e->cgroup_id = s->cgroup_id;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	__builtin_memcpy(out, e, sizeof(*out));
	tf_submit(out);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int handle_openat_enter(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter((const char *)ctx->args[1], (__s32)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int handle_openat_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int handle_openat2_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct open_how *how = (struct open_how *)ctx->args[2];
	__u64 flags = 0;

	/* how->flags is u64 in the ABI; open(2) flags all fit in the low 32 bits. */
	bpf_probe_read_user(&flags, sizeof(flags), &how->flags);
	return on_enter((const char *)ctx->args[1], (__s32)flags);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int handle_openat2_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_open")
int handle_open_enter(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter((const char *)ctx->args[0], (__s32)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_exit_open")
int handle_open_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx->ret);
}
