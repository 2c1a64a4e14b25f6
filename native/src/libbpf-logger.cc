// SPDX-License-Identifier: Apache-2.0
#include "libbpf-logger.h"

#include <bpf/libbpf.h>
#include <stdarg.h>
#include <stdio.h>

#include <mutex>
#include <string>

namespace tracefeed {

namespace {

struct LogLine {
	enum libbpf_print_level level;
	std::string message;
};

// Lines waiting for the JS thread; beyond this libbpf output is dropped.
constexpr size_t kMaxQueuedLines = 4096;

std::mutex g_mu;
Napi::ThreadSafeFunction g_tsfn;  // empty when no logger is set
napi_env g_env = nullptr;         // env that owns g_tsfn

const char* LevelName(enum libbpf_print_level level) {
	switch (level) {
	case LIBBPF_WARN:
		return "warn";
	case LIBBPF_INFO:
		return "info";
	default:
		return "debug";
	}
}

// Runs on the JS thread for each queued line.
void CallLogger(Napi::Env env, Napi::Function fn, LogLine* line) {
	if (env != nullptr && fn != nullptr) {
		try {
			fn.Call({Napi::String::New(env, LevelName(line->level)),
			         Napi::String::New(env, line->message)});
		} catch (const Napi::Error& e) {
			// A throwing logger must not take the process down silently.
			napi_fatal_exception(env, e.Value());
		}
	}
	delete line;
}

int PrintHook(enum libbpf_print_level level, const char* fmt, va_list args) {
	va_list copy;
	va_copy(copy, args);
	char small[512];
	int n = vsnprintf(small, sizeof(small), fmt, copy);
	va_end(copy);
	if (n < 0)
		return 0;

	std::string message;
	if (static_cast<size_t>(n) < sizeof(small)) {
		message.assign(small, n);
	} else {
		message.resize(n + 1);
		vsnprintf(&message[0], n + 1, fmt, args);
		message.resize(n);
	}
	while (!message.empty() && message.back() == '\n')
		message.pop_back();

	std::lock_guard<std::mutex> lock(g_mu);
	if (!g_tsfn) {
		// Default: only warnings, to stderr, like libbpf's own printer.
		if (level == LIBBPF_WARN)
			fprintf(stderr, "%s\n", message.c_str());
		return 0;
	}
	auto* line = new LogLine{level, std::move(message)};
	if (g_tsfn.NonBlockingCall(line, CallLogger) != napi_ok)
		delete line;  // queue full or closing: drop, never block libbpf
	return 0;
}

// Drops the current logger; caller holds g_mu.
void ReleaseLocked() {
	if (g_tsfn) {
		g_tsfn.Release();
		g_tsfn = Napi::ThreadSafeFunction();
		g_env = nullptr;
	}
}

void OnEnvCleanup(void* arg) {
	std::lock_guard<std::mutex> lock(g_mu);
	if (g_env == static_cast<napi_env>(arg))
		ReleaseLocked();
}

}  // namespace

void InitLibbpfLogger(Napi::Env env) {
	(void)env;
	libbpf_set_print(PrintHook);
}

Napi::Value SetLogger(const Napi::CallbackInfo& info) {
	Napi::Env env = info.Env();
	const bool clear = info.Length() == 0 || info[0].IsNull() || info[0].IsUndefined();
	if (!clear && !info[0].IsFunction())
		throw Napi::TypeError::New(env, "setLogger expects a function or null");

	std::lock_guard<std::mutex> lock(g_mu);
	if (g_env != nullptr)
		napi_remove_env_cleanup_hook(g_env, OnEnvCleanup, g_env);
	ReleaseLocked();
	if (clear)
		return env.Undefined();

	g_tsfn = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "tracefeed.libbpfLogger",
	                                       kMaxQueuedLines, 1);
	g_tsfn.Unref(env);  // logging alone never keeps the event loop alive
	g_env = env;
	napi_add_env_cleanup_hook(env, OnEnvCleanup, env);
	return env.Undefined();
}

}  // namespace tracefeed
