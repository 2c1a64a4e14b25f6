// SPDX-License-Identifier: Apache-2.0
//
// Forwards libbpf_set_print() output to a JS function. libbpf may print
// from any thread (the ring thread included), so lines travel through a
// non-blocking, unref'd thread-safe function: a full queue drops the line
// rather than stall the caller, and the logger never keeps Node alive.
#pragma once

#include <napi.h>

namespace tracefeed {

// Installs the libbpf print hook (warn goes to stderr until a logger is set).
void InitLibbpfLogger(Napi::Env env);

// JS: setLogger(fn | null). null/undefined restores the stderr default.
Napi::Value SetLogger(const Napi::CallbackInfo& info);

}  // namespace tracefeed
