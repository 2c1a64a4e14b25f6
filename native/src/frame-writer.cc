// SPDX-License-Identifier: Apache-2.0
// FrameWriter: frame v1 out of whole records, with their cgroups named
// (frame-writer.h).
#include "frame-writer.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events.h"

namespace tracefeed {

namespace {

// Frame v1 header and TF_OP_CGROUP_INFO records: struct tf_frame_header and
// struct tf_cgroup_info of bpf/events.h (docs/frame-format.md).
constexpr size_t kFrameFixedHeader = sizeof(struct tf_frame_header);
constexpr size_t kCgroupInfoFixed = sizeof(struct tf_cgroup_info);
constexpr size_t kMaxCgroupPath = 4096;

// Records are host order on the wire: little-endian hosts only (x86-64, arm64).
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "frames are little-endian");

uint64_t MonoNs() {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
}

size_t Align8(size_t n) {
	return (n + 7) & ~size_t(7);
}

size_t PathLen(const std::string& path) {
	return path.size() < kMaxCgroupPath ? path.size() : kMaxCgroupPath;
}

}  // namespace

FrameWriter::FrameWriter(const std::string& node, uint64_t boot_time_ns)
    : node_(node), boot_time_ns_(boot_time_ns), header_len_(Align8(kFrameFixedHeader + node.size())) {}

FrameWriter::~FrameWriter() {
	free(buf_);
}

bool FrameWriter::Place(const uint8_t* data, size_t len, uint32_t seen, const std::vector<uint64_t>& cgroups,
                        const uint32_t* counts, size_t frame_max_bytes, std::vector<uint64_t>* fresh) {
	const size_t need = header_len_ + rec_len_ + len;
	if (need > cap_) {
		size_t cap = header_len_ + (frame_max_bytes > len ? frame_max_bytes : len);
		if (cap < need)
			cap = need;
		uint8_t* grown = static_cast<uint8_t*>(realloc(buf_, cap));
		if (grown == nullptr)
			return false;
		buf_ = grown;
		cap_ = cap;
	}
	memcpy(buf_ + header_len_ + rec_len_, data, len);
	rec_len_ += len;
	events_in_frame_ += seen;
	for (uint64_t id : cgroups)
		if (frame_cgroups_.insert(id).second)
			fresh->push_back(id);
	for (int op = 0; op < 256; op++)
		frame_ops_[op] += counts[op];
	return true;
}

bool FrameWriter::Close(Frame* out) {
	if (rec_len_ == 0 && frame_cgroups_.empty())
		return false;
	// Name the frame's cgroups: known ones get an info record now; those JS
	// has not answered yet are carried to the next frames.
	std::unordered_set<uint64_t> carry;
	size_t info_bytes = 0;
	uint32_t info_count = 0;
	for (uint64_t id : frame_cgroups_) {
		auto it = cgroup_names_.find(id);
		if (it != cgroup_names_.end()) {
			info_bytes += kCgroupInfoFixed + Align8(PathLen(it->second));
			continue;
		}
		if (cgroup_asked_.count(id) != 0)
			carry.insert(id);  // else given up (Forget), or past the bound
	}
	if (rec_len_ == 0 && info_bytes == 0) {
		// Nothing to send yet: the carried names are still unknown.
		frame_cgroups_.swap(carry);
		return false;
	}
	const size_t total = header_len_ + rec_len_ + info_bytes;
	if (total > cap_) {
		uint8_t* grown = static_cast<uint8_t*>(realloc(buf_, total));
		if (grown == nullptr) {
			info_bytes = 0;  // send the frame unnamed rather than not at all
		} else {
			buf_ = grown;
			cap_ = total;
		}
	}
	size_t off = header_len_ + rec_len_;
	if (info_bytes > 0) {
		const uint64_t now = MonoNs();
		for (uint64_t id : frame_cgroups_) {
			auto it = cgroup_names_.find(id);
			if (it == cgroup_names_.end())
				continue;
			const size_t plen = PathLen(it->second);
			const size_t size = kCgroupInfoFixed + Align8(plen);
			uint8_t* r = buf_ + off;
			memset(r, 0, size);
			struct tf_cgroup_info info = {};
			info.hdr.op = TF_OP_CGROUP_INFO;
			info.hdr.size = uint32_t(size);
			info.hdr.ktime_ns = now;
			info.hdr.generation = 0;  // user-space record
			info.hdr.sample_weight = 1;
			info.cgroup_id = id;
			info.path_len = uint16_t(plen);
			memcpy(r, &info, sizeof(info));
			memcpy(r + kCgroupInfoFixed, it->second.data(), plen);
			off += size;
			info_count++;
		}
	}
	// The interval's cgroups, per frame rather than per record.
	if (seen_cgroups_.size() < kMaxCgroupNames)
		seen_cgroups_.insert(frame_cgroups_.begin(), frame_cgroups_.end());
	frame_cgroups_.swap(carry);
	out->ops.clear();
	for (int op = 0; op < 256; op++)
		if (frame_ops_[op] != 0) {
			out->ops.emplace_back(uint8_t(op), frame_ops_[op]);
			frame_ops_[op] = 0;
		}

	const uint64_t seq = sequence_++;
	const size_t records_len = off - header_len_;
	const uint64_t events = events_in_frame_;
	uint8_t* h = buf_;
	memset(h, 0, header_len_);
	struct tf_frame_header fh = {};
	fh.magic = TF_FRAME_MAGIC;
	fh.version = TF_FRAME_VERSION;
	fh.header_len = uint16_t(header_len_);
	fh.event_count = uint32_t(events + info_count);
	fh.records_len = uint32_t(records_len);
	fh.boot_time_ns = boot_time_ns_;
	fh.sequence = seq;
	fh.node_len = uint16_t(node_.size());
	memcpy(h, &fh, sizeof(fh));
	memcpy(h + kFrameFixedHeader, node_.data(), node_.size());

	out->data = buf_;
	out->len = off;
	out->sequence = seq;
	out->events = events;
	out->records = uint32_t(events + info_count);
	buf_ = nullptr;
	cap_ = 0;
	rec_len_ = 0;
	events_in_frame_ = 0;
	return true;
}

bool FrameWriter::Ask(uint64_t id) {
	if (cgroup_names_.count(id) != 0 || cgroup_asked_.size() >= kMaxCgroupNames)
		return false;
	return cgroup_asked_.insert(id).second;
}

void FrameWriter::SetName(uint64_t id, std::string path) {
	if (cgroup_names_.size() >= kMaxCgroupNames)
		cgroup_names_.clear();  // asked again on the next miss
	cgroup_names_[id] = std::move(path);
	cgroup_asked_.erase(id);  // answered: named frames from now on
}

void FrameWriter::Forget(uint64_t id) {
	cgroup_asked_.erase(id);
	if (rec_len_ == 0)
		frame_cgroups_.erase(id);  // only carried: no open frame has its records
}

std::vector<uint64_t> FrameWriter::TakeSeenCgroups() {
	std::vector<uint64_t> out(seen_cgroups_.begin(), seen_cgroups_.end());
	seen_cgroups_.clear();
	return out;
}

}  // namespace tracefeed
