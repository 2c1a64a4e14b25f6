// SPDX-License-Identifier: Apache-2.0
#include "bpf-object.h"
#include "frame-sink.h"
#include "napi-args.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <cmath>
#include <vector>

#include "rodata-consts.h"

namespace tracefeed {

namespace {

struct ObjectCloser {
	void operator()(struct bpf_object* obj) const { bpf_object__close(obj); }
};
using ObjectPtr = std::unique_ptr<struct bpf_object, ObjectCloser>;

// errno right after a failed libbpf call, never 0.
int LastErrno() {
	return errno ? errno : EINVAL;
}

bool IsPercpu(enum bpf_map_type type) {
	return type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_HASH ||
	       type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

// Value buffer size libbpf expects: per-CPU maps hold one 8-aligned slot per possible CPU.
size_t ValueBytes(const struct bpf_map* map, int ncpus) {
	size_t size = bpf_map__value_size(map);
	if (IsPercpu(bpf_map__type(map)))
		return ((size + 7) / 8 * 8) * size_t(ncpus);
	return size;
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* what) {
	if (info.Length() <= i || !info[i].IsString())
		throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
	return info[i].As<Napi::String>().Utf8Value();
}

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* what) {
	if (info.Length() <= i || !info[i].IsBuffer())
		throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Buffer");
	return info[i].As<Napi::Buffer<uint8_t>>();
}

ConstValue ParseConst(Napi::Env env, const std::string& name, Napi::Value v) {
	ConstValue c{name, false, 0};
	if (v.IsBigInt()) {
		bool lossless = false;
		int64_t s = v.As<Napi::BigInt>().Int64Value(&lossless);
		if (lossless && s < 0) {
			c.is_signed = true;
			c.bits = uint64_t(s);
			return c;
		}
		c.bits = v.As<Napi::BigInt>().Uint64Value(&lossless);
		if (!lossless)
			throw Napi::RangeError::New(env, "const '" + name + "' does not fit in 64 bits");
		return c;
	}
	if (v.IsNumber()) {
		double d = v.As<Napi::Number>().DoubleValue();
		if (std::floor(d) != d || std::fabs(d) > 9007199254740991.0)
			throw Napi::RangeError::New(env, "const '" + name + "' must be a safe integer (use a bigint)");
		c.is_signed = d < 0;
		c.bits = d < 0 ? uint64_t(int64_t(d)) : uint64_t(d);
		return c;
	}
	if (v.IsBoolean()) {
		c.bits = v.As<Napi::Boolean>().Value() ? 1 : 0;
		return c;
	}
	throw Napi::TypeError::New(env, "const '" + name + "' must be a number or bigint");
}

uint32_t ProgId(const struct bpf_program* prog) {
	int fd = bpf_program__fd(prog);
	if (fd < 0)
		return 0;
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	// bpf_prog_get_info_by_fd() is libbpf >= 1.2; this works on 1.1 too.
	return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

uint32_t MapId(const struct bpf_map* map) {
	int fd = bpf_map__fd(map);
	if (fd < 0)
		return 0;
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

// libbpf resolves tracepoint ids through tracefs; a container without it
// fails with a bare ENOENT, so say what is missing.
std::string AttachHint(const struct bpf_program* prog, int err) {
	const char* sec = bpf_program__section_name(prog);
	const bool is_tp = sec != nullptr && (strncmp(sec, "tracepoint/", 11) == 0 || strncmp(sec, "tp/", 3) == 0);
	if (err != ENOENT || !is_tp)
		return std::string();
	if (access("/sys/kernel/tracing/events", F_OK) == 0 ||
	    access("/sys/kernel/debug/tracing/events", F_OK) == 0)
		return std::string();
	return "tracefs not mounted (mount -t tracefs tracefs /sys/kernel/tracing)";
}

}  // namespace

Napi::Function BpfObject::Init(Napi::Env env) {
	return DefineClass(env, "BpfObject",
	                   {
	                       InstanceMethod<&BpfObject::Load>("load"),
	                       InstanceMethod<&BpfObject::Attach>("attach"),
	                       InstanceMethod<&BpfObject::Detach>("detach"),
	                       InstanceMethod<&BpfObject::Programs>("programs"),
	                       InstanceMethod<&BpfObject::Maps>("maps"),
	                       InstanceMethod<&BpfObject::MapLookup>("mapLookup"),
	                       InstanceMethod<&BpfObject::MapUpdate>("mapUpdate"),
	                       InstanceMethod<&BpfObject::MapDelete>("mapDelete"),
	                       InstanceMethod<&BpfObject::MapDump>("mapDump"),
	                       InstanceMethod<&BpfObject::SumPercpuCounters>("sumPercpuCounters"),
	                       InstanceMethod<&BpfObject::StartRing>("startRing"),
	                       InstanceMethod<&BpfObject::RingStats>("ringStats"),
	                       InstanceMethod<&BpfObject::StopRing>("stopRing"),
	                       InstanceMethod<&BpfObject::Close>("close"),
	                   });
}

BpfObject::BpfObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObject>(info) {
	Napi::Env env = info.Env();
	path_ = ArgString(info, 0, "path");

	Napi::Object opts = Napi::Object::New(env);
	if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull()) {
		if (!info[1].IsObject())
			throw Napi::TypeError::New(env, "options must be an object");
		opts = info[1].As<Napi::Object>();
	}

	// Parse everything before touching libbpf so type errors leak nothing.
	std::vector<ConstValue> consts;
	Napi::Value consts_v = opts.Get("consts");
	if (!consts_v.IsUndefined() && !consts_v.IsNull()) {
		if (!consts_v.IsObject())
			throw Napi::TypeError::New(env, "options.consts must be an object");
		Napi::Object o = consts_v.As<Napi::Object>();
		Napi::Array keys = o.GetPropertyNames();
		for (uint32_t i = 0; i < keys.Length(); i++) {
			std::string k = keys.Get(i).ToString().Utf8Value();
			consts.push_back(ParseConst(env, k, o.Get(k)));
		}
	}
	std::vector<std::pair<std::string, uint32_t>> ring_sizes;
	Napi::Value rings_v = opts.Get("ringbufBytes");
	if (!rings_v.IsUndefined() && !rings_v.IsNull()) {
		if (!rings_v.IsObject())
			throw Napi::TypeError::New(env, "options.ringbufBytes must be an object");
		Napi::Object o = rings_v.As<Napi::Object>();
		Napi::Array keys = o.GetPropertyNames();
		for (uint32_t i = 0; i < keys.Length(); i++) {
			std::string k = keys.Get(i).ToString().Utf8Value();
			Napi::Value v = o.Get(k);
			double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
			if (!(d > 0) || std::floor(d) != d || d > 4294967295.0)
				throw Napi::RangeError::New(env, "ringbufBytes['" + k + "'] must be a positive integer");
			ring_sizes.emplace_back(k, uint32_t(d));
		}
	}

	errno = 0;
	ObjectPtr obj(bpf_object__open_file(path_.c_str(), nullptr));
	if (!obj)
		ThrowBpfError(env, Ctx("open"), LastErrno());

	// Ring sizes are fixed at map creation: set them now, before load.
	const long page = sysconf(_SC_PAGESIZE);
	for (const auto& rs : ring_sizes) {
		struct bpf_map* map = bpf_object__find_map_by_name(obj.get(), rs.first.c_str());
		if (map == nullptr)
			ThrowBpfError(env, Ctx("map", "", rs.first), ENOENT, "unknown map");
		if (bpf_map__type(map) != BPF_MAP_TYPE_RINGBUF)
			ThrowBpfError(env, Ctx("map", "", rs.first), EINVAL, "ringbufBytes on a non-ringbuf map");
		const uint32_t n = rs.second;
		if ((n & (n - 1)) != 0 || n % page != 0)
			ThrowBpfError(env, Ctx("map", "", rs.first), EINVAL,
			              "ring size " + std::to_string(n) + " is not a power of 2 multiple of the page size");
		int err = bpf_map__set_max_entries(map, n);
		if (err)
			ThrowBpfError(env, Ctx("map", "", rs.first), err, "cannot resize ring");
	}

	ConstsResult cr = ApplyRodataConsts(obj.get(), consts);
	if (cr.err)
		ThrowBpfError(env, Ctx("open", "", cr.map), cr.err, cr.detail);

	obj_ = obj.release();
}

BpfObject::~BpfObject() {
	CloseAll(false);
}

ErrorContext BpfObject::Ctx(const char* step, const std::string& program, const std::string& map) const {
	return ErrorContext{step, path_, program, map};
}

void BpfObject::RequireOpen(Napi::Env env, const char* step, const std::string& program,
                            const std::string& map) const {
	if (obj_ == nullptr)
		ThrowBpfError(env, Ctx(step, program, map), EBADF, "object is closed");
}

struct bpf_program* BpfObject::FindProgram(Napi::Env env, const char* step, const std::string& name) const {
	RequireOpen(env, step, name);
	struct bpf_program* prog = bpf_object__find_program_by_name(obj_, name.c_str());
	if (prog == nullptr)
		ThrowBpfError(env, Ctx(step, name), ENOENT, "unknown program");
	return prog;
}

struct bpf_map* BpfObject::FindMap(Napi::Env env, const char* step, const std::string& name) const {
	RequireOpen(env, step, "", name);
	struct bpf_map* map = bpf_object__find_map_by_name(obj_, name.c_str());
	if (map == nullptr)
		ThrowBpfError(env, Ctx(step, "", name), ENOENT, "unknown map");
	return map;
}

struct bpf_map* BpfObject::FindLoadedMap(Napi::Env env, const char* step, const std::string& name) const {
	struct bpf_map* map = FindMap(env, step, name);
	if (!loaded_ || bpf_map__fd(map) < 0)
		ThrowBpfError(env, Ctx(step, "", name), EBADF, "object not loaded");
	return map;
}

Napi::Value BpfObject::Load(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	RequireOpen(env, "load");
	if (loaded_)
		return env.Undefined();  // loading twice is a no-op, like attach
	// The verifier gives up with EAGAIN when a signal is pending on the loading
	// thread, and Node's main thread gets them often (SIGCHLD from every child,
	// SIGPROF under a profiler): a long verification can lose every retry
	// libbpf makes. Hold signals for the load; they are delivered right after.
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int err = bpf_object__load(obj_);
	pthread_sigmask(SIG_SETMASK, &old, nullptr);
	if (err)
		ThrowBpfError(env, Ctx("load"), err);
	loaded_ = true;
	return env.Undefined();
}

Napi::Value BpfObject::Attach(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	std::string name = ArgString(info, 0, "program");
	struct bpf_program* prog = FindProgram(env, "attach", name);
	if (links_.count(name))
		return env.Undefined();
	errno = 0;
	struct bpf_link* link = nullptr;
	if (info.Length() > 1 && !info[1].IsUndefined()) {
		// cgroup programs (cgroup_skb/...) attach to a cgroup directory, not by section.
		std::string cgroup = ArgString(info, 1, "cgroup path");
		int fd = open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			ThrowBpfError(env, Ctx("attach", name), errno, "cannot open cgroup " + cgroup);
		link = bpf_program__attach_cgroup(prog, fd);
		const int saved = errno;
		close(fd);  // the link holds its own reference to the cgroup
		errno = saved;
	} else {
		link = bpf_program__attach(prog);
	}
	if (link == nullptr) {
		const int err = LastErrno();
		ThrowBpfError(env, Ctx("attach", name), err, AttachHint(prog, err));
	}
	links_[name] = link;
	return env.Undefined();
}

Napi::Value BpfObject::Detach(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	std::string name = ArgString(info, 0, "program");
	FindProgram(env, "detach", name);
	auto it = links_.find(name);
	if (it == links_.end())
		return env.Undefined();
	struct bpf_link* link = it->second;
	links_.erase(it);  // destroy frees the link even when it reports an error
	int err = bpf_link__destroy(link);
	if (err)
		ThrowBpfError(env, Ctx("detach", name), err);
	return env.Undefined();
}

Napi::Value BpfObject::Programs(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	Napi::Array out = Napi::Array::New(env);
	if (obj_ == nullptr)
		return out;
	struct bpf_program* prog;
	uint32_t i = 0;
	bpf_object__for_each_program(prog, obj_) {
		const char* name = bpf_program__name(prog);
		Napi::Object o = Napi::Object::New(env);
		o.Set("name", name);
		o.Set("id", Napi::Number::New(env, ProgId(prog)));
		o.Set("attached", Napi::Boolean::New(env, links_.count(name) > 0));
		o.Set("section", bpf_program__section_name(prog));
		out.Set(i++, o);
	}
	return out;
}

Napi::Value BpfObject::Maps(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	Napi::Array out = Napi::Array::New(env);
	if (obj_ == nullptr)
		return out;
	struct bpf_map* map;
	uint32_t i = 0;
	bpf_object__for_each_map(map, obj_) {
		Napi::Object o = Napi::Object::New(env);
		o.Set("name", bpf_map__name(map));
		o.Set("id", Napi::Number::New(env, MapId(map)));
		o.Set("type", Napi::Number::New(env, bpf_map__type(map)));
		o.Set("keySize", Napi::Number::New(env, bpf_map__key_size(map)));
		o.Set("valueSize", Napi::Number::New(env, bpf_map__value_size(map)));
		o.Set("maxEntries", Napi::Number::New(env, bpf_map__max_entries(map)));
		out.Set(i++, o);
	}
	return out;
}

Napi::Value BpfObject::MapLookup(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	std::string name = ArgString(info, 0, "map");
	Napi::Buffer<uint8_t> key = ArgBuffer(info, 1, "key");
	struct bpf_map* map = FindLoadedMap(env, "map", name);

	const size_t vsz = ValueBytes(map, libbpf_num_possible_cpus());
	Napi::Buffer<uint8_t> value = Napi::Buffer<uint8_t>::New(env, vsz);
	int err = bpf_map__lookup_elem(map, key.Data(), key.Length(), value.Data(), vsz, 0);
	if (err == -ENOENT)
		return env.Null();
	if (err)
		ThrowBpfError(env, Ctx("map", "", name), err, "lookup");
	return value;
}

Napi::Value BpfObject::MapUpdate(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	std::string name = ArgString(info, 0, "map");
	Napi::Buffer<uint8_t> key = ArgBuffer(info, 1, "key");
	Napi::Buffer<uint8_t> value = ArgBuffer(info, 2, "value");
	uint64_t flags = BPF_ANY;
	if (info.Length() > 3 && !info[3].IsUndefined()) {
		if (!info[3].IsNumber())
			throw Napi::TypeError::New(env, "flags must be a number");
		flags = uint64_t(info[3].As<Napi::Number>().Int64Value());
	}
	struct bpf_map* map = FindLoadedMap(env, "map", name);
	int err = bpf_map__update_elem(map, key.Data(), key.Length(), value.Data(), value.Length(), flags);
	if (err)
		ThrowBpfError(env, Ctx("map", "", name), err, "update");
	return env.Undefined();
}

Napi::Value BpfObject::MapDelete(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	std::string name = ArgString(info, 0, "map");
	Napi::Buffer<uint8_t> key = ArgBuffer(info, 1, "key");
	struct bpf_map* map = FindLoadedMap(env, "map", name);
	int err = bpf_map__delete_elem(map, key.Data(), key.Length(), 0);
	if (err == -ENOENT)
		return Napi::Boolean::New(env, false);
	if (err)
		ThrowBpfError(env, Ctx("map", "", name), err, "delete");
	return Napi::Boolean::New(env, true);
}

// Walks the map with get_next_key + lookup. With `delete`, each entry is
// deleted right after it is read: an update that lands between the two is
// lost to this dump (counted neither here nor next time). Callers that
// aggregate in the kernel accept that small undercount; there is no atomic
// lookup-and-delete for hash maps on every kernel/libbpf we support.
// A key deleted by the kernel mid-walk is skipped. Keys added mid-walk may or
// may not be seen (hash order).
Napi::Value BpfObject::MapDump(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	std::string name = ArgString(info, 0, "map");
	bool del = false;
	double max = -1;
	if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull()) {
		if (!info[1].IsObject())
			throw Napi::TypeError::New(env, "mapDump options must be an object");
		Napi::Object o = info[1].As<Napi::Object>();
		Napi::Value d = o.Get("delete");
		if (!d.IsUndefined()) {
			if (!d.IsBoolean())
				throw Napi::TypeError::New(env, "delete must be a boolean");
			del = d.As<Napi::Boolean>().Value();
		}
		max = OptNumber(o, "max", -1, 0);
	}
	struct bpf_map* map = FindLoadedMap(env, "map", name);
	const enum bpf_map_type type = bpf_map__type(map);
	if (type == BPF_MAP_TYPE_RINGBUF || type == BPF_MAP_TYPE_PERF_EVENT_ARRAY)
		ThrowBpfError(env, Ctx("map", "", name), EINVAL, "map type cannot be dumped");
	if (del && (type == BPF_MAP_TYPE_ARRAY || type == BPF_MAP_TYPE_PERCPU_ARRAY))
		ThrowBpfError(env, Ctx("map", "", name), EINVAL, "array entries cannot be deleted");

	const int ncpus = libbpf_num_possible_cpus();
	if (ncpus <= 0)
		ThrowBpfError(env, Ctx("map", "", name), ncpus ? ncpus : EINVAL, "cannot count CPUs");
	const size_t ksz = bpf_map__key_size(map);
	const size_t vsz = ValueBytes(map, ncpus);
	// Never more than max_entries distinct keys; the cap also ends a walk that
	// keeps restarting because the kernel deletes keys under it.
	size_t limit = size_t(bpf_map__max_entries(map));
	if (max >= 0 && size_t(max) < limit)
		limit = size_t(max);

	std::vector<uint8_t> keys, values;
	size_t count = 0;
	auto result = [&]() {
		Napi::Object out = Napi::Object::New(env);
		out.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), keys.size()));
		out.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), values.size()));
		out.Set("count", Napi::Number::New(env, double(count)));
		return out;
	};
	// Hash maps are read with the kernel's batch ops, many entries per call. Emptied
	// as they are read (lookup_and_delete_batch: each bucket copied and emptied under
	// its lock), an update can only be lost in the few instructions between a
	// program's lookup and its write, not in the microseconds between a lookup
	// syscall and a delete syscall. Kernels or maps without them take the walk below.
	const bool hash = type == BPF_MAP_TYPE_HASH || type == BPF_MAP_TYPE_PERCPU_HASH ||
	                  type == BPF_MAP_TYPE_LRU_HASH || type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
	if (hash && limit > 0) {
		const size_t chunk = std::min<size_t>(limit, 4096);
		std::vector<uint8_t> kbuf(ksz * chunk), vbuf(vsz * chunk);
		uint32_t in_batch = 0, out_batch = 0;
		bool first = true, batched = true;
		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		const int fd = bpf_map__fd(map);
		while (count < limit) {
			__u32 n = __u32(std::min(chunk, limit - count));
			void* in = first ? nullptr : &in_batch;
			int berr = del ? bpf_map_lookup_and_delete_batch(fd, in, &out_batch, kbuf.data(), vbuf.data(), &n, &opts)
			               : bpf_map_lookup_batch(fd, in, &out_batch, kbuf.data(), vbuf.data(), &n, &opts);
			if (berr && berr != -ENOENT) {
				if (first && (berr == -EINVAL || berr == -ENOTSUP || berr == -EOPNOTSUPP)) {
					batched = false;  // not supported here: walk instead
					break;
				}
				if (berr == -ENOSPC)
					break;  // the next bucket holds more than `max` leaves room for
				ThrowBpfError(env, Ctx("map", "", name), berr, del ? "lookup_and_delete_batch" : "lookup_batch");
			}
			keys.insert(keys.end(), kbuf.begin(), kbuf.begin() + ptrdiff_t(n * ksz));
			values.insert(values.end(), vbuf.begin(), vbuf.begin() + ptrdiff_t(n * vsz));
			count += n;
			if (berr == -ENOENT)
				break;  // the whole map was read
			in_batch = out_batch;
			first = false;
		}
		if (batched)
			return result();
	}

	std::vector<uint8_t> cur(ksz), next(ksz), value(vsz);
	int err = bpf_map__get_next_key(map, nullptr, cur.data(), ksz);
	if (err && err != -ENOENT)
		ThrowBpfError(env, Ctx("map", "", name), err, "get_next_key");
	bool have = err == 0;
	// Steps bound the walk even when every key vanishes under us (restarts).
	for (size_t steps = 0; have && count < limit && steps < 2 * limit + 16; steps++) {
		// Find the successor before a delete makes `cur` unknown to the map.
		err = bpf_map__get_next_key(map, cur.data(), next.data(), ksz);
		if (err && err != -ENOENT)
			ThrowBpfError(env, Ctx("map", "", name), err, "get_next_key");
		const bool more = err == 0;
		err = bpf_map__lookup_elem(map, cur.data(), ksz, value.data(), vsz, 0);
		if (err == 0) {
			keys.insert(keys.end(), cur.begin(), cur.end());
			values.insert(values.end(), value.begin(), value.end());
			count++;
			if (del) {
				err = bpf_map__delete_elem(map, cur.data(), ksz, 0);
				if (err && err != -ENOENT)
					ThrowBpfError(env, Ctx("map", "", name), err, "delete");
			}
		} else if (err != -ENOENT) {  // ENOENT: deleted by the kernel meanwhile
			ThrowBpfError(env, Ctx("map", "", name), err, "lookup");
		}
		have = more;
		cur.swap(next);
	}

	return result();
}

Napi::Value BpfObject::SumPercpuCounters(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	std::string name = ArgString(info, 0, "map");
	struct bpf_map* map = FindLoadedMap(env, "map", name);
	if (bpf_map__type(map) != BPF_MAP_TYPE_PERCPU_ARRAY || bpf_map__value_size(map) != 8 ||
	    bpf_map__key_size(map) != 4)
		ThrowBpfError(env, Ctx("map", "", name), EINVAL, "not a per-CPU array of u64");

	const int ncpus = libbpf_num_possible_cpus();
	if (ncpus <= 0)
		ThrowBpfError(env, Ctx("map", "", name), ncpus ? ncpus : EINVAL, "cannot count CPUs");
	std::vector<uint64_t> values(static_cast<size_t>(ncpus));
	const uint32_t n = bpf_map__max_entries(map);
	Napi::Array out = Napi::Array::New(env, n);
	for (uint32_t i = 0; i < n; i++) {
		int err = bpf_map__lookup_elem(map, &i, sizeof(i), values.data(), values.size() * 8, 0);
		if (err)
			ThrowBpfError(env, Ctx("map", "", name), err, "lookup of index " + std::to_string(i));
		uint64_t sum = 0;
		for (uint64_t v : values)
			sum += v;
		out.Set(i, Napi::BigInt::New(env, sum));
	}
	return out;
}

// startRing(map, [opts,] onBatch | sink): batches go to a JS callback, or
// straight into a FrameSink on the ring thread.
Napi::Value BpfObject::StartRing(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	std::string name = ArgString(info, 0, "map");
	RingOptions opts;
	size_t target_index = 2;
	if (info.Length() == 2 && (info[1].IsFunction() || FrameSink::IsSink(env, info[1]))) {
		target_index = 1;  // startRing(map, target): all defaults
	} else if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull()) {
		if (!info[1].IsObject())
			throw Napi::TypeError::New(env, "ring options must be an object");
		Napi::Object o = info[1].As<Napi::Object>();
		opts.batch_bytes = size_t(OptNumber(o, "batchBytes", double(opts.batch_bytes), 16));
		opts.flush_ms = int(OptNumber(o, "flushMs", opts.flush_ms, 1));
		opts.max_pending = size_t(OptNumber(o, "maxPendingBatches", double(opts.max_pending), 1));
	}
	const bool to_sink = info.Length() > target_index && FrameSink::IsSink(env, info[target_index]);
	if (!to_sink && (info.Length() <= target_index || !info[target_index].IsFunction()))
		throw Napi::TypeError::New(env, "startRing needs an onBatch function or a FrameSink");

	struct bpf_map* map = FindLoadedMap(env, "ring", name);
	if (bpf_map__type(map) != BPF_MAP_TYPE_RINGBUF)
		ThrowBpfError(env, Ctx("ring", "", name), EINVAL, "not a ring buffer map");
	if (ring_)
		ThrowBpfError(env, Ctx("ring", "", name), EBUSY, "a ring is already running");

	int err = to_sink ? RingConsumer::StartToSink(bpf_map__fd(map), opts,
	                                              FrameSink::CoreOf(info[target_index]), ring_stats_, &ring_)
	                  : RingConsumer::Start(env, bpf_map__fd(map), opts, info[target_index].As<Napi::Function>(),
	                                        ring_stats_, &ring_);
	if (err)
		ThrowBpfError(env, Ctx("ring", "", name), err);
	return env.Undefined();
}

Napi::Value BpfObject::RingStats(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	Napi::Object o = Napi::Object::New(env);
	const tracefeed::RingStats& s = *ring_stats_;
	o.Set("batches", Napi::Number::New(env, double(s.batches.load())));
	o.Set("events", Napi::Number::New(env, double(s.events.load())));
	o.Set("bytes", Napi::Number::New(env, double(s.bytes.load())));
	o.Set("malformed", Napi::Number::New(env, double(s.malformed.load())));
	o.Set("pollErrors", Napi::Number::New(env, double(s.poll_errors.load())));
	return o;
}

Napi::Value BpfObject::StopRing(const Napi::CallbackInfo& info) {
	// Take ownership first: the ring is gone even if onBatch throws.
	std::unique_ptr<RingConsumer> ring = std::move(ring_);
	if (ring)
		ring->Stop(true);
	return info.Env().Undefined();
}

Napi::Value BpfObject::Close(const Napi::CallbackInfo& info) {
	CloseAll(true);
	return info.Env().Undefined();
}

void BpfObject::CloseAll(bool from_js) {
	// 1. Ring first: its thread reads a map fd that close would free.
	std::unique_ptr<RingConsumer> ring = std::move(ring_);
	std::exception_ptr pending;
	if (ring) {
		try {
			ring->Stop(from_js);
		} catch (...) {
			pending = std::current_exception();  // finish cleanup, rethrow below
		}
		ring.reset();
	}
	// 2. Links: stop the programs from running.
	for (auto& kv : links_)
		bpf_link__destroy(kv.second);
	links_.clear();
	// 3. The object: programs and maps (fds) go away with it.
	if (obj_ != nullptr) {
		bpf_object__close(obj_);
		obj_ = nullptr;
	}
	loaded_ = false;
	if (pending)
		std::rethrow_exception(pending);
}

}  // namespace tracefeed
