// SPDX-License-Identifier: Apache-2.0
//
// Option parsing shared by the addon's JS classes: errors name the option.
#pragma once

#include <napi.h>

#include <stdint.h>

#include <cmath>
#include <string>

namespace tracefeed {

// Optional integer option >= min; `def` when absent. `owner` prefixes the
// option's name in errors (e.g. "FrameSink option ").
inline double OptNumber(Napi::Object opts, const char* key, double def, double min, const char* owner = "") {
	Napi::Value v = opts.Get(key);
	if (v.IsUndefined())
		return def;
	if (!v.IsNumber())
		throw Napi::TypeError::New(opts.Env(), std::string(owner) + key + " must be a number");
	double d = v.As<Napi::Number>().DoubleValue();
	if (!(d >= min) || std::floor(d) != d || d > 9007199254740991.0)
		throw Napi::RangeError::New(opts.Env(), std::string(owner) + key + " must be an integer >= " +
		                                            std::to_string(int64_t(min)));
	return d;
}

}  // namespace tracefeed
