// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * File open probe: one TF_OP_FILE_OPEN record per open/openat/openat2 with
 * its result (fd or -errno). The entry tracepoint remembers the caller's
 * path pointer and flags. The exit tracepoint takes the path of a
 * successful open from the kernel's own objects: the returned fd's struct
 * file in current->files, then its dentry chain up to the mount root, across
 * mounts up to the mount namespace root. That path is what the kernel
 * opened (symlinks resolved, no //, /./ or ..), whatever the caller's
 * buffer holds by then, so path filters judge it. A failed open has no
 * file: its record carries the caller's string, flagged
 * TF_FLAG_PATH_UNVERIFIED.
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
_Static_assert((TF_PATH_COMPONENTS & (TF_PATH_COMPONENTS - 1)) == 0,
	       "TF_PATH_COMPONENTS is a power of two (ring index mask)");
_Static_assert(TF_PATH_LEN == 256, "path offsets are masked with 0xff");

/* Read-only view of a kernel object as a BTF type; the verifier inlines it (no call). */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define TF_CAST(type, p) ((const struct type *)bpf_rdonly_cast((const void *)(p), \
				bpf_core_type_id_kernel(struct type)))

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

/* One path component found by the walk: a dentry's name. */
struct path_comp {
	__u64 dentry; /* kernel pointer to the dentry */
	__u64 name;   /* kernel pointer to the name bytes */
	__u32 len;
	__u32 pad;
};

/*
 * The record is built here first: filtered opens never touch the ring.
 * spill takes the tail of a component copied at the end of rec.path (the
 * copy is bounded by masks the verifier can follow, not by the space left);
 * comp is a ring of the last TF_PATH_COMPONENTS components walked, which
 * are the root-most ones once the walk reaches the root.
 */
struct open_scratch {
	struct tf_file_open rec;
	char spill[TF_PATH_LEN];
	struct path_comp comp[TF_PATH_COMPONENTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct open_scratch);
} open_scratch SEC(".maps");

enum walk_state {
	WALK_GOING = 0,
	WALK_ROOTED = 1,   /* reached the root of a mount namespace */
	WALK_UNROOTED = 2, /* reached a top that is no namespace's root */
};

/* Walk state, on the caller's stack (bpf_loop's context). */
struct walk {
	__u64 dentry;   /* current dentry */
	__u64 mnt;      /* struct mount the dentry is seen through */
	__u64 mnt_root; /* that mount's root dentry */
	__u32 n;        /* components walked (the ring holds the last TF_PATH_COMPONENTS) */
	__u32 state;    /* enum walk_state */
};

/* One step up: a component (dentry -> d_parent), or a mount crossing. 1 stops. */
static long walk_step(__u64 i, void *ctx)
{
	struct walk *w = ctx;
	const struct dentry *d = TF_CAST(dentry, w->dentry);
	__u64 parent = (__u64)d->d_parent;
	struct open_scratch *s;
	struct path_comp *c;
	__u32 zero = 0;

	if (w->dentry == w->mnt_root || w->dentry == parent) {
		const struct mount *m = TF_CAST(mount, w->mnt);
		__u64 up = (__u64)m->mnt_parent;

		if (w->dentry != w->mnt_root || up == w->mnt || !up) {
			/* Top of the mount tree; or a disconnected dentry (IS_ROOT, not the mount's root). */
			const struct mnt_namespace *ns = m->mnt_ns;

			w->state = w->dentry == w->mnt_root && ns && (__u64)ns->root == w->mnt
					   ? WALK_ROOTED
					   : WALK_UNROOTED;
			return 1;
		}
		/* Mount root: continue from the mountpoint in the parent mount. */
		w->dentry = (__u64)m->mnt_mountpoint;
		w->mnt = up;
		w->mnt_root = (__u64)TF_CAST(mount, up)->mnt.mnt_root;
		return 0;
	}
	s = bpf_map_lookup_elem(&open_scratch, &zero);
	if (!s)
		return 1;
	c = &s->comp[w->n & (TF_PATH_COMPONENTS - 1)];
	c->dentry = w->dentry;
	c->name = (__u64)d->d_name.name;
	c->len = d->d_name.len;
	w->n++;
	w->dentry = parent;
	return 0;
}

/* Copy state: components are written root-most first, each after a '/'. */
struct copy {
	__u32 n;    /* components walked */
	__u32 off;  /* bytes written to rec.path; > TF_PATH_LEN - 1: cut */
	__u32 bare; /* 1: no '/' before the first component (partial path) */
	__u32 done; /* components written */
};

/*
 * A short name lives inside its dentry (d_shortname, 40 bytes): copied with
 * five plain loads instead of a helper call. The words run past the name;
 * the next component or the final clear overwrites the excess.
 */
static __always_inline bool copy_inline_name(char *dst, const struct path_comp *p, __u32 len)
{
	const struct dentry *d;
	__u64 *out = (__u64 *)dst;

	if (!bpf_core_field_exists(struct dentry, d_shortname))
		return false;
	if (len >= sizeof(d->d_shortname) ||
	    p->name != p->dentry + bpf_core_field_offset(struct dentry, d_shortname))
		return false;
	d = TF_CAST(dentry, p->dentry);
	out[0] = d->d_shortname.words[0];
	out[1] = d->d_shortname.words[1];
	out[2] = d->d_shortname.words[2];
	out[3] = d->d_shortname.words[3];
	out[4] = d->d_shortname.words[4];
	return true;
}

static long copy_step(__u64 k, void *ctx)
{
	struct copy *c = ctx;
	struct open_scratch *s;
	struct path_comp *p;
	__u32 zero = 0, off = c->off, len;

	if (off >= TF_PATH_LEN - 1)
		return 1;
	s = bpf_map_lookup_elem(&open_scratch, &zero);
	if (!s)
		return 1;
	p = &s->comp[(c->n - 1 - (__u32)k) & (TF_PATH_COMPONENTS - 1)];
	len = p->len & 0xff; /* NAME_MAX */
	if (!(k == 0 && c->bare))
		s->rec.path[off++ & 0xff] = '/';
	/* off <= 255, and len <= 255 or 40 inline bytes: the copy ends inside rec.path + spill. */
	if (!copy_inline_name(&s->rec.path[off & 0xff], p, len))
		bpf_probe_read_kernel(&s->rec.path[off & 0xff], len, (const void *)p->name);
	c->off = off + len;
	c->done++;
	return 0;
}

/*
 * Writes the path of the file behind `fd` of the current task into
 * s->rec.path (zeroed by the caller). Returns TF_FLAG_* bits to add, or -1
 * when there is no such file (then the caller falls back to the user string).
 */
static __always_inline int resolve_fd_path(struct open_scratch *s, long fd)
{
	const struct task_struct *t = bpf_get_current_task_btf();
	const struct fdtable *fdt = t->files->fdt;
	const struct file *f;
	struct walk w = {};
	struct copy c = {};
	struct file **fds = fdt->fd;
	__u64 fp = 0, vfsmnt;
	__u32 ncopy;
	int flags = 0;

	if (fd < 0 || fd >= fdt->max_fds)
		return -1;
	if (bpf_probe_read_kernel(&fp, sizeof(fp), &fds[fd]) || !fp)
		return -1;
	f = TF_CAST(file, fp);
	vfsmnt = (__u64)f->f_path.mnt;
	if (!vfsmnt)
		return -1;
	w.dentry = (__u64)f->f_path.dentry;
	w.mnt = vfsmnt - bpf_core_field_offset(struct mount, mnt); /* container_of */
	w.mnt_root = (__u64)TF_CAST(vfsmount, vfsmnt)->mnt_root;
	bpf_loop(TF_PATH_WALK_MAX, walk_step, &w, 0);

	if (w.state != WALK_ROOTED)
		flags |= TF_FLAG_PATH_PARTIAL;
	c.n = w.n;
	c.bare = w.state != WALK_ROOTED;
	if (w.n > TF_PATH_COMPONENTS)
		flags |= TF_FLAG_TRUNCATED;
	ncopy = w.n < TF_PATH_COMPONENTS ? w.n : TF_PATH_COMPONENTS;
	bpf_loop(ncopy, copy_step, &c, 0);
	if (c.off < TF_PATH_LEN) {
		/* Clear what an inline copy wrote past the last name. */
		__u64 *z = (__u64 *)&s->rec.path[c.off & 0xff];

		z[0] = 0;
		z[1] = 0;
		z[2] = 0;
		z[3] = 0;
		z[4] = 0;
	}
	if (c.off == 0 && !c.bare) {
		s->rec.path[0] = '/'; /* the root itself */
	} else if (c.off > TF_PATH_LEN - 1 || c.done < ncopy) {
		s->rec.path[TF_PATH_LEN - 1] = '\0';
		flags |= TF_FLAG_TRUNCATED;
	}
	return flags;
}

static __always_inline int on_enter(const char *fname, __s32 flags)
{
	struct tf_probe_config *c = tf_config_get();
	struct open_start *s;
	struct tf_eff eff;
	__u64 cgroup_id;

	if (!tf_active(c) || tf_scope_rejects_current(c))
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
	struct open_scratch *s;
	struct tf_file_open *e, *out;
	struct open_start *st;
	__u32 zero = 0, weight = 1, path_filter;
	int pflags;
	__u64 fname;
	long len;

	st = bpf_task_storage_get(&open_start, bpf_get_current_task_btf(), NULL, 0);
	if (!st || !st->pending)
		return 0; /* entry not seen: attached mid-open, or filtered */
	st->pending = 0;
	fname = st->fname;
	c = tf_config_get();
	if (!tf_active(c))
		return 0;
	s = bpf_map_lookup_elem(&open_scratch, &zero);
	if (!s)
		return 0;
	e = &s->rec;

	/* Without a path filter, sample first: a sampled-out open costs no path walk. */
	path_filter = c->filter_mask & (TF_FILTER_ALLOW_PATH | TF_FILTER_DENY_PATH);
	if (!path_filter && tf_sampled_out(st->sample_n, &weight)) {
		tf_count_drop(TF_DROP_SAMPLED);
		return 0;
	}

	/* Zero first: the copies stop short of the end, and the LPM key reads 64 bytes. */
	__builtin_memset(e->path, 0, sizeof(e->path));
	pflags = ret >= 0 ? resolve_fd_path(s, ret) : -1;
	if (pflags < 0) {
		/* No file to read: the caller's string, which may have changed since. */
		len = bpf_probe_read_user_str(e->path, sizeof(e->path), (const void *)fname);
		if (len < 0)
			e->path[0] = '\0';
		pflags = TF_FLAG_PATH_UNVERIFIED;
		if (len >= (long)sizeof(e->path))
			pflags |= TF_FLAG_TRUNCATED; /* filled: may be cut */
	}
	/* A partial path cannot be judged by a prefix: it passes rather than hides. */
	if (!(pflags & TF_FLAG_PATH_PARTIAL) && tf_filter_path(c, e->path)) {
		tf_count_drop(TF_DROP_FILTERED);
		return 0;
	}
	if (path_filter && tf_sampled_out(st->sample_n, &weight)) {
		tf_count_drop(TF_DROP_SAMPLED);
		return 0;
	}
	out = tf_reserve(sizeof(*out));
	if (!out)
		return 0;
	tf_hdr_fill(&e->hdr, TF_OP_FILE_OPEN, sizeof(*e), c, weight, st->hdr_flags | pflags);
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->flags = st->flags;
	e->ret = (__s32)ret;
	e->pad = 0;
	e->cgroup_id = st->cgroup_id;
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
