// SPDX-License-Identifier: Apache-2.0
//
// Module entry: exports BpfObject, FrameSink, setLogger and libbpfVersion.
#include <napi.h>

#include <bpf/libbpf.h>

#include <string>

#include "bpf-object.h"
#include "frame-sink.h"
#include "libbpf-logger.h"

namespace tracefeed {

static Napi::Value LibbpfVersion(const Napi::CallbackInfo& info) {
	return Napi::String::New(info.Env(), std::to_string(libbpf_major_version()) + "." +
	                                         std::to_string(libbpf_minor_version()));
}

}  // namespace tracefeed

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
	tracefeed::InitLibbpfLogger(env);
	exports.Set("BpfObject", tracefeed::BpfObject::Init(env));
	exports.Set("FrameSink", tracefeed::FrameSink::Init(env));
	exports.Set("setLogger", Napi::Function::New(env, tracefeed::SetLogger, "setLogger"));
	exports.Set("libbpfVersion", Napi::Function::New(env, tracefeed::LibbpfVersion, "libbpfVersion"));
	return exports;
}

NODE_API_MODULE(tracefeed, InitModule)
