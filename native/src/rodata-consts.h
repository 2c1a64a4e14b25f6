// SPDX-License-Identifier: Apache-2.0
//
// Sets `const volatile` globals (the .rodata section) of an opened but not
// yet loaded object by name, locating each variable through the object's BTF
// DATASEC instead of a generated skeleton.
#pragma once

#include <stdint.h>

#include <string>
#include <utility>
#include <vector>

struct bpf_object;

namespace tracefeed {

struct ConstValue {
	std::string name;
	bool is_signed;  // value came from a negative number/bigint
	uint64_t bits;   // two's complement bits of the value
};

// Result of ApplyRodataConsts: 0 on success, else -errno plus a detail
// message (e.g. "unknown const 'foo'") for the thrown error.
struct ConstsResult {
	int err = 0;
	std::string detail;
	std::string map;  // internal map involved, if any
};

ConstsResult ApplyRodataConsts(struct bpf_object* obj, const std::vector<ConstValue>& consts);

}  // namespace tracefeed
