// SPDX-License-Identifier: Apache-2.0
//
// FrameWriter: the open frame of a frame sink. Whole records are placed into
// it; closing it writes the frame v1 header (struct tf_frame_header) and one
// TF_OP_CGROUP_INFO record (struct tf_cgroup_info) per cgroup of the frame
// whose name is known (docs/frame-format.md). Layouts are the structs of
// bpf/events.h, written whole or at offsetof: no literal offsets.
//
// It keeps the cgroup names it was given and the ids asked of JS and not
// answered yet: those are carried to the next frames until they are named or
// forgotten. It knows nothing of Kafka, threads or JS and is not thread-safe:
// FrameSinkCore (frame-sink.cc) calls it under its lock.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace tracefeed {

// A closed frame, ready to produce.
struct Frame {
	uint8_t* data = nullptr;  // malloc'd: the caller frees it or hands it on (librdkafka F_FREE)
	size_t len = 0;
	uint64_t sequence = 0;
	// Records placed (from the rings and JS), and those plus the cgroup info records.
	uint64_t events = 0;
	uint32_t records = 0;
	// (op, records) of the frame, so a frame lost later is counted per op.
	std::vector<std::pair<uint8_t, uint32_t>> ops;
};

class FrameWriter {
public:
	static constexpr size_t kMaxCgroupNames = 65536;

	FrameWriter(const std::string& node, uint64_t boot_time_ns);
	~FrameWriter();
	FrameWriter(const FrameWriter&) = delete;
	FrameWriter& operator=(const FrameWriter&) = delete;

	// Bytes of records in the open frame (0: none).
	size_t records_len() const { return rec_len_; }
	// The open frame uses (or carries) this cgroup.
	bool HasCgroup(uint64_t id) const { return frame_cgroups_.count(id) != 0; }

	// Appends whole records (`seen` of them, `counts` per op, the cgroups they use in
	// `cgroups`); the cgroups new to the frame are appended to *fresh. The buffer grows to
	// hold frame_max_bytes (or the region, if larger). false when it cannot grow: nothing
	// is placed, the caller counts the drop.
	bool Place(const uint8_t* data, size_t len, uint32_t seen, const std::vector<uint64_t>& cgroups,
	           const uint32_t* counts, size_t frame_max_bytes, std::vector<uint64_t>* fresh);

	// Closes the open frame into *out: false when there is nothing to send yet (no records,
	// and no name known for the cgroups carried).
	bool Close(Frame* out);

	// A cgroup of the frame with no name: true when it was not asked yet (the caller asks JS).
	bool Ask(uint64_t id);
	void SetName(uint64_t id, std::string path);
	// Not to be named: no longer carried (asked again if its records come back).
	void Forget(uint64_t id);
	// The cgroups of the frames closed since the previous call (bounded by kMaxCgroupNames).
	std::vector<uint64_t> TakeSeenCgroups();

private:
	std::string node_;
	uint64_t boot_time_ns_;
	size_t header_len_;
	uint8_t* buf_ = nullptr;
	size_t cap_ = 0;
	size_t rec_len_ = 0;
	uint64_t events_in_frame_ = 0;
	uint64_t sequence_ = 0;
	uint32_t frame_ops_[256] = {};  // records per op in the open frame
	std::unordered_set<uint64_t> frame_cgroups_;
	std::unordered_set<uint64_t> cgroup_asked_;  // asked of JS, no answer yet (bounded by kMaxCgroupNames)
	std::unordered_map<uint64_t, std::string> cgroup_names_;
	std::unordered_set<uint64_t> seen_cgroups_;
};

}  // namespace tracefeed
