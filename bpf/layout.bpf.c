// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Not a probe: puts every struct and enum of events.h into this object's
 * BTF, from which scripts/gen-layouts.mjs generates the TypeScript and
 * Python mirrors (src/wire/layout.generated.ts,
 * clients/python/tracefeed_layout.py), including records only user space
 * builds.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct tf_all_layouts {
	/* Enums are in BTF only where a type uses them. */
	enum tf_op op;
	enum tf_probe probe;
	enum tf_drop_reason drop_reason;
	struct tf_frame_header frame_header;
	struct tf_event_header header;
	struct tf_exec_event exec;
	struct tf_exit_event exit;
	struct tf_tcp_event tcp;
	struct tf_syscall_summary syscall_summary;
	struct tf_syscall_errno syscall_errno;
	struct tf_syscall_slow syscall_slow;
	struct tf_file_open file_open;
	struct tf_runq_summary runq_summary;
	struct tf_syscall_key syscall_key;
	struct tf_hist_value hist_value;
	struct tf_errno_key errno_key;
	struct tf_probe_config probe_config;
	struct tf_path_key path_key;
	struct tf_cgroup_info cgroup_info;
	struct tf_cgroup_stats cgroup_stats;
	struct tf_probe_stats probe_stats;
	struct tf_focus focus;
	struct tf_dns_event dns;
	struct tf_dns_key dns_key;
	struct tf_dns_query dns_query;
	struct tf_dns_lookups dns_lookups;
};

struct tf_all_layouts tf_all_layouts SEC(".bss.layouts");
