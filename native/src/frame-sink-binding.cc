// SPDX-License-Identifier: Apache-2.0
// The JS class FrameSink: options from JS, and the calls that reach the
// FrameSinkCore (frame-sink.cc) that ring consumers share.
#include <string.h>

#include <string>

#include "frame-sink.h"
#include "napi-args.h"

namespace tracefeed {

namespace {

const napi_type_tag kSinkTag = {0x7466'7369'6e6b'0001ULL, 0x9c1d'42a7'5be3'0f11ULL};

}  // namespace

// ---------------------------------------------------------------------------
// FrameSink (JS)

namespace {

constexpr const char* kOption = "FrameSink option ";

std::string OptString(Napi::Object o, const char* key, bool required, const std::string& def = "") {
	Napi::Value v = o.Get(key);
	if (v.IsUndefined()) {
		if (required)
			throw Napi::TypeError::New(o.Env(), std::string("FrameSink option ") + key + " is required");
		return def;
	}
	if (!v.IsString())
		throw Napi::TypeError::New(o.Env(), std::string("FrameSink option ") + key + " must be a string");
	return v.As<Napi::String>().Utf8Value();
}

class StopWorker : public Napi::AsyncWorker {
public:
	StopWorker(Napi::Env env, std::shared_ptr<FrameSinkCore> core, int timeout_ms)
	    : Napi::AsyncWorker(env, "tracefeed.sinkStop"),
	      deferred_(Napi::Promise::Deferred::New(env)),
	      core_(std::move(core)),
	      timeout_ms_(timeout_ms) {}
	Napi::Promise Promise() const { return deferred_.Promise(); }
	void Execute() override { core_->Stop(timeout_ms_); }
	void OnOK() override { deferred_.Resolve(Env().Undefined()); }
	void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

private:
	Napi::Promise::Deferred deferred_;
	std::shared_ptr<FrameSinkCore> core_;
	int timeout_ms_;
};

}  // namespace

Napi::Function FrameSink::Init(Napi::Env env) {
	return DefineClass(env, "FrameSink",
	                   {
	                       InstanceMethod<&FrameSink::Append>("append"),
	                       InstanceMethod<&FrameSink::Stats>("stats"),
	                       InstanceMethod<&FrameSink::OpCounts>("opCounts"),
	                       InstanceMethod<&FrameSink::OpBytes>("opBytes"),
	                       InstanceMethod<&FrameSink::TakeWantedCgroups>("takeWantedCgroups"),
	                       InstanceMethod<&FrameSink::DroppedByOp>("droppedByOp"),
	                       InstanceMethod<&FrameSink::TakeSeenCgroups>("takeSeenCgroups"),
	                       InstanceMethod<&FrameSink::SetCgroupName>("setCgroupName"),
	                       InstanceMethod<&FrameSink::ForgetCgroup>("forgetCgroup"),
	                       InstanceMethod<&FrameSink::Stop>("stop"),
	                   });
}

// new FrameSink(options, onEvent(kind, level?, message?))
FrameSink::FrameSink(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FrameSink>(info) {
	Napi::Env env = info.Env();
	if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction())
		throw Napi::TypeError::New(env, "FrameSink(options, onEvent) expects an object and a function");
	Napi::Object o = info[0].As<Napi::Object>();
	SinkOptions opts;
	opts.node = OptString(o, "node", true);
	opts.topic = OptString(o, "topic", true);
	opts.brokers = OptString(o, "brokers", true);
	opts.client_id = OptString(o, "clientId", false, "tracefeed-agent");
	opts.frame_max_bytes = size_t(OptNumber(o, "frameMaxBytes", double(opts.frame_max_bytes), 64, kOption));
	opts.linger_ms = int(OptNumber(o, "lingerMs", opts.linger_ms, 1, kOption));
	opts.buffer_max_bytes = size_t(OptNumber(o, "bufferMaxBytes", double(opts.buffer_max_bytes), 1024, kOption));
	opts.started_at_ms = int64_t(OptNumber(o, "startedAtMs", 0, 0, kOption));
	Napi::Value boot = o.Get("bootTimeNs");
	if (!boot.IsBigInt())
		throw Napi::TypeError::New(env, "FrameSink option bootTimeNs must be a bigint");
	bool lossless = false;
	opts.boot_time_ns = boot.As<Napi::BigInt>().Uint64Value(&lossless);
	if (!lossless)
		throw Napi::RangeError::New(env, "FrameSink option bootTimeNs must fit in 64 bits");
	Napi::Value offsets = o.Get("cgroupOffsets");
	if (!offsets.IsTypedArray() || offsets.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
	    offsets.As<Napi::Uint8Array>().ElementLength() != 256)
		throw Napi::TypeError::New(env, "FrameSink option cgroupOffsets must be a Uint8Array of 256");
	memcpy(opts.cgroup_offset, offsets.As<Napi::Uint8Array>().Data(), 256);
	Napi::Value extra = o.Get("kafka");
	if (!extra.IsUndefined()) {
		if (!extra.IsObject())
			throw Napi::TypeError::New(env, "FrameSink option kafka must be an object of strings");
		Napi::Object k = extra.As<Napi::Object>();
		Napi::Array names = k.GetPropertyNames();
		for (uint32_t i = 0; i < names.Length(); i++) {
			std::string name = names.Get(i).As<Napi::String>().Utf8Value();
			Napi::Value v = k.Get(name);
			if (!v.IsString())
				throw Napi::TypeError::New(env, "kafka setting " + name + " must be a string");
			opts.kafka_config.emplace_back(name, v.As<Napi::String>().Utf8Value());
		}
	}

	Napi::ThreadSafeFunction tsfn =
	    Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "tracefeed.frameSink", 0, 1);
	tsfn.Unref(env);  // the sink alone never keeps the process alive
	std::string error;
	core_ = FrameSinkCore::Create(opts, tsfn, &error);
	if (!core_) {
		tsfn.Release();
		throw Napi::Error::New(env, "FrameSink: " + error);
	}
	napi_type_tag_object(env, info.This(), &kSinkTag);
}

bool FrameSink::IsSink(Napi::Env env, Napi::Value v) {
	if (!v.IsObject())
		return false;
	bool tagged = false;
	return napi_check_object_type_tag(env, v, &kSinkTag, &tagged) == napi_ok && tagged;
}

std::shared_ptr<FrameSinkCore> FrameSink::CoreOf(Napi::Value v) {
	return Unwrap(v.As<Napi::Object>())->core_;
}

Napi::Value FrameSink::Append(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	if (info.Length() < 1 || !info[0].IsTypedArray())
		throw Napi::TypeError::New(env, "append(records, count?) expects a Buffer or Uint8Array");
	Napi::Uint8Array a = info[0].As<Napi::Uint8Array>();
	uint32_t n = 0;
	if (info.Length() > 1 && info[1].IsNumber())
		n = info[1].As<Napi::Number>().Uint32Value();
	return Napi::Boolean::New(env, core_->Append(a.Data(), a.ByteLength(), n));
}

Napi::Value FrameSink::Stats(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	SinkStats s = core_->Stats();
	Napi::Object o = Napi::Object::New(env);
	o.Set("connected", Napi::Boolean::New(env, s.connected));
	o.Set("framesBuilt", Napi::Number::New(env, double(s.frames_built)));
	o.Set("framesSent", Napi::Number::New(env, double(s.frames_sent)));
	o.Set("eventsSent", Napi::Number::New(env, double(s.events_sent)));
	o.Set("bytesSent", Napi::Number::New(env, double(s.bytes_sent)));
	o.Set("framesDropped", Napi::Number::New(env, double(s.frames_dropped)));
	o.Set("eventsDropped", Napi::Number::New(env, double(s.events_dropped)));
	o.Set("bufferedFrames", Napi::Number::New(env, double(s.buffered_frames)));
	o.Set("bufferedEvents", Napi::Number::New(env, double(s.buffered_events)));
	o.Set("bufferedBytes", Napi::Number::New(env, double(s.buffered_bytes)));
	o.Set("sendErrors", Napi::Number::New(env, double(s.send_errors)));
	o.Set("malformed", Napi::Number::New(env, double(s.malformed)));
	o.Set("lagMs", Napi::Number::New(env, double(s.lag_ms)));
	o.Set("lastError", s.last_error.empty() ? env.Undefined() : Napi::String::New(env, s.last_error));
	return o;
}

Napi::Value FrameSink::OpCounts(const Napi::CallbackInfo& info) {
	Napi::Float64Array out = Napi::Float64Array::New(info.Env(), 256);
	core_->OpCounts(out.Data());
	return out;
}

Napi::Value FrameSink::OpBytes(const Napi::CallbackInfo& info) {
	Napi::Float64Array out = Napi::Float64Array::New(info.Env(), 256);
	core_->OpBytes(out.Data());
	return out;
}

Napi::Value FrameSink::DroppedByOp(const Napi::CallbackInfo& info) {
	Napi::Float64Array out = Napi::Float64Array::New(info.Env(), 256);
	core_->DroppedByOp(out.Data());
	return out;
}

Napi::Value FrameSink::TakeSeenCgroups(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	std::vector<uint64_t> ids = core_->TakeSeenCgroups();
	Napi::Array out = Napi::Array::New(env, ids.size());
	for (size_t i = 0; i < ids.size(); i++)
		out.Set(uint32_t(i), Napi::BigInt::New(env, ids[i]));
	return out;
}

Napi::Value FrameSink::TakeWantedCgroups(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	std::vector<uint64_t> ids = core_->TakeWantedCgroups();
	Napi::Array out = Napi::Array::New(env, ids.size());
	for (size_t i = 0; i < ids.size(); i++)
		out.Set(uint32_t(i), Napi::BigInt::New(env, ids[i]));
	return out;
}

Napi::Value FrameSink::SetCgroupName(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	if (info.Length() < 2 || !info[0].IsBigInt() || !info[1].IsString())
		throw Napi::TypeError::New(env, "setCgroupName(id: bigint, path: string)");
	bool lossless = false;
	uint64_t id = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
	if (!lossless)
		throw Napi::RangeError::New(env, "cgroup id must fit in 64 bits");
	core_->SetCgroupName(id, info[1].As<Napi::String>().Utf8Value());
	return env.Undefined();
}

Napi::Value FrameSink::ForgetCgroup(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	if (info.Length() < 1 || !info[0].IsBigInt())
		throw Napi::TypeError::New(env, "forgetCgroup(id: bigint)");
	bool lossless = false;
	uint64_t id = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
	if (!lossless)
		throw Napi::RangeError::New(env, "cgroup id must fit in 64 bits");
	core_->ForgetCgroup(id);
	return env.Undefined();
}

// stop(timeoutMs): Promise<void>, off the JS thread (it waits for the broker).
Napi::Value FrameSink::Stop(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	int timeout = 5000;
	if (info.Length() > 0 && info[0].IsNumber())
		timeout = info[0].As<Napi::Number>().Int32Value();
	auto* w = new StopWorker(env, core_, timeout);
	Napi::Promise p = w->Promise();
	w->Queue();
	return p;
}

}  // namespace tracefeed
