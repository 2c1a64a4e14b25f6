// SPDX-License-Identifier: Apache-2.0
//
// One way to turn a libbpf failure into a JS Error: the message names the
// step and the errno, and the error carries step/errno/code/object/program/map
// properties so callers can branch without parsing text.
#pragma once

#include <napi.h>

#include <string>

namespace tracefeed {

// Where a failure happened; also which object/program/map it concerns.
struct ErrorContext {
	std::string step;     // 'open' | 'load' | 'attach' | 'detach' | 'map' | 'ring' | 'close'
	std::string object;   // path of the .bpf.o, empty if unknown
	std::string program;  // program name, empty if not relevant
	std::string map;      // map name, empty if not relevant
};

// libbpf 1.x returns -errno; accept either sign and return the positive value.
inline int PositiveErrno(long err) {
	return static_cast<int>(err < 0 ? -err : err);
}

// Symbolic name of an errno ("EPERM"), or "E<n>" when glibc has none.
std::string ErrnoName(int err);

// Builds (does not throw) the Error. `detail` is an optional clause such as
// "unknown program 'foo'" placed between the step and the errno text.
Napi::Error MakeBpfError(Napi::Env env, const ErrorContext& ctx, long err,
                         const std::string& detail = std::string());

// Builds and throws it as a C++ exception (NAPI_CPP_EXCEPTIONS).
[[noreturn]] void ThrowBpfError(Napi::Env env, const ErrorContext& ctx, long err,
                                const std::string& detail = std::string());

}  // namespace tracefeed
