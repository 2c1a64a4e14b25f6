// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Bench only (bench/ring-drain.mjs): a firehose for the user-space drain.
 * Each getppid() of target_tgid emits `burst` 32-byte records through the
 * product's tf_reserve()/tf_submit() (batched wake-ups). Every record carries
 * a sequence number taken before the reserve, so a gap seen in JavaScript is
 * a record the kernel could not place (also counted in tf_drops).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define TF_THIS_PROBE TF_PROBE_PROCESS
#include "control.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 target_tgid = 0;
const volatile long target_nr = 110; /* __NR_getppid on x86_64 */
const volatile __u32 burst = 64;

#define BENCH_OP 201

struct small_event {
	struct tf_event_header hdr;
	__u64 seq;
};
_Static_assert(sizeof(struct small_event) == 32, "small_event is 32 bytes");

__u64 next_seq = 0;

struct loop_ctx {
	struct tf_probe_config *c;
};

static long emit_one(__u64 i, void *ctx)
{
	struct tf_probe_config *c = ((struct loop_ctx *)ctx)->c;
	struct small_event *e;
	__u64 seq = __sync_fetch_and_add(&next_seq, 1);

	e = tf_reserve(sizeof(*e));
	if (!e)
		return 0; /* counted as ringbuf_full; keep going */
	tf_hdr_fill(&e->hdr, BENCH_OP, sizeof(*e), c, 1, 0);
	e->seq = seq;
	tf_submit(e);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(burst_emit, struct pt_regs *regs, long id)
{
	struct tf_probe_config *c;
	struct loop_ctx lc;

	if (id != target_nr || (bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	c = tf_config_get();
	if (!c || !c->enabled)
		return 0;
	lc.c = c;
	bpf_loop(burst, emit_one, &lc, 0);
	return 0;
}
