// SPDX-License-Identifier: Apache-2.0
#include "rodata-consts.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <string.h>

namespace tracefeed {

namespace {

struct VarSlot {
	uint32_t offset;
	uint32_t size;
};

// Finds the internal map whose BTF value type is a DATASEC named ".rodata"
// (or ".rodata.*"): that is where libbpf keeps const volatile globals.
struct RodataSec {
	struct bpf_map* map = nullptr;
	const struct btf_type* datasec = nullptr;
};

bool IsRodataName(const char* name) {
	return name != nullptr &&
	       (strcmp(name, ".rodata") == 0 || strncmp(name, ".rodata.", 8) == 0);
}

std::vector<RodataSec> FindRodataSecs(struct bpf_object* obj, const struct btf* btf) {
	std::vector<RodataSec> out;
	struct bpf_map* map;
	bpf_object__for_each_map(map, obj) {
		if (!bpf_map__is_internal(map))
			continue;
		uint32_t type_id = bpf_map__btf_value_type_id(map);
		const struct btf_type* t = btf__type_by_id(btf, type_id);
		if (t == nullptr || !btf_is_datasec(t))
			continue;
		if (!IsRodataName(btf__name_by_offset(btf, t->name_off)))
			continue;
		out.push_back({map, t});
	}
	return out;
}

bool FindVar(const struct btf* btf, const struct btf_type* datasec, const std::string& name,
             VarSlot* slot) {
	const struct btf_var_secinfo* vs = btf_var_secinfos(datasec);
	for (uint16_t i = 0; i < btf_vlen(datasec); i++, vs++) {
		const struct btf_type* var = btf__type_by_id(btf, vs->type);
		if (var == nullptr || !btf_is_var(var))
			continue;
		if (name == btf__name_by_offset(btf, var->name_off)) {
			*slot = {vs->offset, vs->size};
			return true;
		}
	}
	return false;
}

bool FitsIn(const ConstValue& v, uint32_t size) {
	if (size >= 8)
		return true;
	const unsigned bits = size * 8;
	if (v.is_signed) {
		const int64_t s = static_cast<int64_t>(v.bits);
		const int64_t min = -(int64_t(1) << (bits - 1));
		return s >= min;
	}
	return v.bits < (uint64_t(1) << bits);
}

}  // namespace

ConstsResult ApplyRodataConsts(struct bpf_object* obj, const std::vector<ConstValue>& consts) {
	ConstsResult res;
	if (consts.empty())
		return res;

	const struct btf* btf = bpf_object__btf(obj);
	if (btf == nullptr) {
		res.err = -ENOENT;
		res.detail = "object has no BTF, cannot set consts";
		return res;
	}
	std::vector<RodataSec> secs = FindRodataSecs(obj, btf);

	// Work on copies of each section's image, then hand them back in one go.
	std::vector<std::vector<uint8_t>> images(secs.size());
	for (size_t i = 0; i < secs.size(); i++) {
		size_t sz = 0;
		const void* init = bpf_map__initial_value(secs[i].map, &sz);
		if (init == nullptr) {
			res.err = -EINVAL;
			res.detail = "no initial value for .rodata";
			res.map = bpf_map__name(secs[i].map);
			return res;
		}
		images[i].assign(static_cast<const uint8_t*>(init),
		                 static_cast<const uint8_t*>(init) + sz);
	}

	for (const ConstValue& v : consts) {
		size_t sec = 0;
		VarSlot slot{};
		for (; sec < secs.size(); sec++)
			if (FindVar(btf, secs[sec].datasec, v.name, &slot))
				break;
		if (sec == secs.size()) {
			res.err = -ENOENT;
			res.detail = "unknown const '" + v.name + "' (not a const volatile global)";
			return res;
		}
		if (slot.size != 1 && slot.size != 2 && slot.size != 4 && slot.size != 8) {
			res.err = -EINVAL;
			res.detail = "const '" + v.name + "' is " + std::to_string(slot.size) +
			             " bytes; only 1/2/4/8-byte integers can be set";
			return res;
		}
		if (!FitsIn(v, slot.size)) {
			res.err = -ERANGE;
			res.detail = "value for const '" + v.name + "' does not fit in " +
			             std::to_string(slot.size) + " bytes";
			return res;
		}
		if (slot.offset + slot.size > images[sec].size()) {
			res.err = -EINVAL;
			res.detail = "const '" + v.name + "' lies outside its section";
			return res;
		}
		// Host byte order, low bytes first on little-endian targets.
		uint8_t* dst = images[sec].data() + slot.offset;
		switch (slot.size) {
		case 1: { uint8_t x = static_cast<uint8_t>(v.bits); memcpy(dst, &x, 1); break; }
		case 2: { uint16_t x = static_cast<uint16_t>(v.bits); memcpy(dst, &x, 2); break; }
		case 4: { uint32_t x = static_cast<uint32_t>(v.bits); memcpy(dst, &x, 4); break; }
		default: memcpy(dst, &v.bits, 8); break;
		}
	}

	for (size_t i = 0; i < secs.size(); i++) {
		int err = bpf_map__set_initial_value(secs[i].map, images[i].data(), images[i].size());
		if (err) {
			res.err = err;
			res.detail = "cannot set .rodata initial value";
			res.map = bpf_map__name(secs[i].map);
			return res;
		}
	}
	return res;
}

}  // namespace tracefeed
