// SPDX-License-Identifier: Apache-2.0
//
// The node agent's data path, off the JS heap: ring threads (and JS, for
// summary records) append whole records; the sink frames them (frame v1,
// docs/frame-format.md), names the cgroups each frame uses with
// TF_OP_CGROUP_INFO records, and produces one Kafka record per frame through
// librdkafka (idempotent, acks=all, CRC32C in hardware, no copy of the frame).
//
// Bounded: frames waiting for the broker are held up to buffer_max_bytes;
// past it the newest frame is dropped and counted. Nothing is dropped
// silently: every drop and every malformed region is in Stats().
//
// cgroup names come from JS (the resolver walks /sys/fs/cgroup): a cgroup id
// the sink cannot name is announced once through the event callback and
// carried to later frames until JS answers with SetCgroupName, or gives it up
// with ForgetCgroup. How long to keep trying is JS's (NodeAgent.nameCgroups),
// not the sink's.
#pragma once

#include <napi.h>

#include <stddef.h>
#include <stdint.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "frame-writer.h"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_message_s rd_kafka_message_t;

namespace tracefeed {

struct SinkOptions {
	std::string node;
	std::string topic;
	std::string brokers;
	std::string client_id;
	uint64_t boot_time_ns = 0;
	int64_t started_at_ms = 0;
	size_t frame_max_bytes = 512 * 1024;
	int linger_ms = 200;
	size_t buffer_max_bytes = 64 * 1024 * 1024;
	// Offset of the cgroup id in each op's record; 0 when the op has none.
	uint8_t cgroup_offset[256] = {};
	// Extra librdkafka properties, applied last.
	std::vector<std::pair<std::string, std::string>> kafka_config;
};

struct SinkStats {
	bool connected = false;
	uint64_t frames_built = 0;
	uint64_t frames_sent = 0;
	uint64_t events_sent = 0;
	uint64_t bytes_sent = 0;
	uint64_t frames_dropped = 0;
	uint64_t events_dropped = 0;
	uint64_t buffered_frames = 0;
	uint64_t buffered_events = 0;
	uint64_t buffered_bytes = 0;
	uint64_t send_errors = 0;
	uint64_t malformed = 0;
	int64_t lag_ms = 0;
	std::string last_error;
};

// What the sink tells JS, from any thread, through one thread-safe function.
struct SinkEvent {
	enum Kind { kCgroups, kLog } kind;
	std::string level;    // kLog: "info" | "warn" | "error"
	std::string message;  // kLog
};

class FrameSinkCore {
public:
	FrameSinkCore(const FrameSinkCore&) = delete;
	FrameSinkCore& operator=(const FrameSinkCore&) = delete;
	~FrameSinkCore();

	// Creates the producer and starts the sink thread. On failure returns
	// null and sets *error to a message naming the bad setting.
	static std::shared_ptr<FrameSinkCore> Create(const SinkOptions& opts, Napi::ThreadSafeFunction events,
	                                             std::string* error);

	// Appends a region of whole records (n of them). Thread-safe. A region
	// whose record walk fails is dropped whole and counted as malformed; one
	// over frame_max_bytes is split into several frames at record boundaries.
	bool Append(const uint8_t* data, size_t len, uint32_t n);

	// Closes the open frame, stops the thread, waits up to timeout_ms for
	// the broker to acknowledge what is buffered, then counts the rest as
	// dropped. Idempotent; blocks (JS calls it from a worker).
	void Stop(int timeout_ms);

	SinkStats Stats();
	void OpCounts(double out[256]);
	// Record bytes framed, by op (the records' own sizes, headers included).
	void OpBytes(double out[256]);
	// Records dropped after the ring (buffer bound, stop, failed delivery), by op.
	void DroppedByOp(double out[256]);
	// cgroup ids the frames closed since the last call carried (bounded by FrameWriter::kMaxCgroupNames).
	std::vector<uint64_t> TakeSeenCgroups();
	std::vector<uint64_t> TakeWantedCgroups();
	void SetCgroupName(uint64_t id, std::string path);
	// JS could not name it: frames stop carrying it (asked again if its records come back).
	void ForgetCgroup(uint64_t id);


private:
	explicit FrameSinkCore(const SinkOptions& opts);

	struct Pending {
		uint64_t events;
		uint64_t bytes;
		int64_t queued_at_ms;
	};

	void Run();
	// Puts one region (whole records, `counts` of them and `bytes` of them per op) into the open
	// frame; the caller holds mu_.
	bool PlaceLocked(const uint8_t* data, size_t len, uint32_t seen, const std::vector<uint64_t>& cgroups,
	                 const uint32_t* counts, const uint64_t* bytes);
	void CloseFrameLocked();
	void AskNameLocked(uint64_t id);
	void SignalWantedLocked();
	void Emit(SinkEvent* ev);
	void Log(const char* level, std::string message);
	void Wake();
	void ArmLocked(int64_t deadline_ms);

	static void OnDelivery(rd_kafka_t* rk, const rd_kafka_message_t* msg, void* opaque);
	static void OnError(rd_kafka_t* rk, int err, const char* reason, void* opaque);
	static void OnLog(const rd_kafka_t* rk, int level, const char* fac, const char* buf);

	SinkOptions opts_;
	rd_kafka_t* rk_ = nullptr;
	std::mutex ev_mu_;  // guards events_ against Release while librdkafka threads log
	Napi::ThreadSafeFunction events_;
	bool has_events_ = false;
	std::thread thread_;
	int wake_fd_ = -1;   // eventfd: stop
	int timer_fd_ = -1;  // timerfd: the open frame's deadline
	int dr_pipe_[2] = {-1, -1};  // librdkafka's main queue signals here
	std::atomic<bool> stopping_{false};
	bool stopped_ = false;
	std::mutex stop_mu_;

	std::mutex mu_;  // everything below
	FrameWriter writer_;  // the open frame, and the cgroup names
	int64_t deadline_ms_ = 0;
	std::vector<uint64_t> wanted_;
	bool wanted_signalled_ = false;
	bool names_pending_ = false;  // a frame of names only is due at deadline_ms_
	std::map<uint64_t, int64_t> outstanding_;  // sequence -> queued at (ms), for lag
	SinkStats stats_;
	std::string last_logged_error_;
	uint64_t dropped_by_op_[256] = {};   // records dropped after the ring, per op

	std::atomic<uint64_t> op_counts_[256];
	std::atomic<uint64_t> op_bytes_[256];
};

// JS class FrameSink over a shared FrameSinkCore (ring threads hold it too).
class FrameSink : public Napi::ObjectWrap<FrameSink> {
public:
	static Napi::Function Init(Napi::Env env);
	// Rings may still hold the core after this object is collected: the last holder stops it.
	explicit FrameSink(const Napi::CallbackInfo& info);

	// For BpfObject.startRing(map, opts, sink).
	static bool IsSink(Napi::Env env, Napi::Value v);
	static std::shared_ptr<FrameSinkCore> CoreOf(Napi::Value v);

private:
	Napi::Value Append(const Napi::CallbackInfo& info);
	Napi::Value Stats(const Napi::CallbackInfo& info);
	Napi::Value OpCounts(const Napi::CallbackInfo& info);
	Napi::Value OpBytes(const Napi::CallbackInfo& info);
	Napi::Value TakeWantedCgroups(const Napi::CallbackInfo& info);
	Napi::Value DroppedByOp(const Napi::CallbackInfo& info);
	Napi::Value TakeSeenCgroups(const Napi::CallbackInfo& info);
	Napi::Value SetCgroupName(const Napi::CallbackInfo& info);
	Napi::Value ForgetCgroup(const Napi::CallbackInfo& info);
	Napi::Value Stop(const Napi::CallbackInfo& info);

	std::shared_ptr<FrameSinkCore> core_;
};

}  // namespace tracefeed
