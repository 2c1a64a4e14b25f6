// SPDX-License-Identifier: Apache-2.0
#include "bpf-error.h"

#include <string.h>

namespace tracefeed {

std::string ErrnoName(int err) {
	const char* name = strerrorname_np(err);  // glibc >= 2.32
	if (name != nullptr)
		return name;
	return "E" + std::to_string(err);
}

static std::string ErrnoText(int err) {
	char buf[256];
	// GNU strerror_r returns a pointer that may or may not be buf.
	return std::string(strerror_r(err, buf, sizeof(buf)));
}

Napi::Error MakeBpfError(Napi::Env env, const ErrorContext& ctx, long err,
                         const std::string& detail) {
	const int code = PositiveErrno(err);
	const std::string name = ErrnoName(code);

	std::string msg = "bpf " + ctx.step + " failed: ";
	if (!detail.empty())
		msg += detail + ": ";
	msg += ErrnoText(code) + " (" + name + ", errno " + std::to_string(code) + ")";

	std::string where;
	auto add = [&where](const char* key, const std::string& value) {
		if (value.empty())
			return;
		if (!where.empty())
			where += ", ";
		where += std::string(key) + "=" + value;
	};
	add("object", ctx.object);
	add("program", ctx.program);
	add("map", ctx.map);
	if (!where.empty())
		msg += " [" + where + "]";

	Napi::Error error = Napi::Error::New(env, msg);
	Napi::Object obj = error.Value();
	obj.Set("step", ctx.step);
	obj.Set("errno", Napi::Number::New(env, code));
	obj.Set("code", name);
	if (!ctx.object.empty())
		obj.Set("object", ctx.object);
	if (!ctx.program.empty())
		obj.Set("program", ctx.program);
	if (!ctx.map.empty())
		obj.Set("map", ctx.map);
	return error;
}

void ThrowBpfError(Napi::Env env, const ErrorContext& ctx, long err,
                   const std::string& detail) {
	throw MakeBpfError(env, ctx, err, detail);
}

}  // namespace tracefeed
