// SPDX-License-Identifier: Apache-2.0
//
// JS class BpfObject: one libbpf bpf_object, its links and its ring consumer.
// Every teardown (close(), GC finalizer) goes through CloseAll().
#pragma once

#include <napi.h>

#include <map>
#include <memory>
#include <string>

#include "bpf-error.h"
#include "ring-consumer.h"

struct bpf_object;
struct bpf_program;
struct bpf_map;
struct bpf_link;

namespace tracefeed {

class BpfObject : public Napi::ObjectWrap<BpfObject> {
public:
	static Napi::Function Init(Napi::Env env);

	explicit BpfObject(const Napi::CallbackInfo& info);
	~BpfObject() override;

private:
	Napi::Value Load(const Napi::CallbackInfo& info);
	Napi::Value Attach(const Napi::CallbackInfo& info);
	Napi::Value Detach(const Napi::CallbackInfo& info);
	Napi::Value Programs(const Napi::CallbackInfo& info);
	Napi::Value Maps(const Napi::CallbackInfo& info);
	Napi::Value MapLookup(const Napi::CallbackInfo& info);
	Napi::Value MapUpdate(const Napi::CallbackInfo& info);
	Napi::Value MapDelete(const Napi::CallbackInfo& info);
	Napi::Value MapDump(const Napi::CallbackInfo& info);
	Napi::Value SumPercpuCounters(const Napi::CallbackInfo& info);
	Napi::Value StartRing(const Napi::CallbackInfo& info);
	Napi::Value RingStats(const Napi::CallbackInfo& info);
	Napi::Value StopRing(const Napi::CallbackInfo& info);
	Napi::Value Close(const Napi::CallbackInfo& info);

	// The single cleanup path. `from_js` allows delivering the last batches.
	void CloseAll(bool from_js);

	ErrorContext Ctx(const char* step, const std::string& program = std::string(),
	                 const std::string& map = std::string()) const;
	void RequireOpen(Napi::Env env, const char* step, const std::string& program = std::string(),
	                 const std::string& map = std::string()) const;
	struct bpf_program* FindProgram(Napi::Env env, const char* step, const std::string& name) const;
	struct bpf_map* FindMap(Napi::Env env, const char* step, const std::string& name) const;
	struct bpf_map* FindLoadedMap(Napi::Env env, const char* step, const std::string& name) const;

	std::string path_;
	struct bpf_object* obj_ = nullptr;
	bool loaded_ = false;
	std::map<std::string, struct bpf_link*> links_;  // by program name
	std::unique_ptr<RingConsumer> ring_;
	std::shared_ptr<tracefeed::RingStats> ring_stats_ = std::make_shared<tracefeed::RingStats>();
};

}  // namespace tracefeed
