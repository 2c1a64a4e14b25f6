// SPDX-License-Identifier: Apache-2.0
//
// Drains one BPF ring buffer on a dedicated thread and hands JS whole
// batches (raw samples concatenated), never one call per event.
//
// Flow control: at most `max_pending` batches wait for the JS thread; when
// that many are queued the ring thread blocks, the kernel ring fills and the
// probe counts drops, so a slow consumer never costs unbounded memory.
// Batches travel through a bounded queue; a thread-safe function only wakes
// the JS thread (one wake per batch, so its queue is bounded the same way).
// Keeping the queue ourselves lets stop() deliver the still-queued batches
// synchronously, in order, without the join deadlocking on a full
// thread-safe-function queue that only the (joining) JS thread could drain.
#pragma once

#include <napi.h>

#include <stddef.h>
#include <stdint.h>

#include <atomic>
#include <memory>
#include <thread>

struct ring_buffer;

namespace tracefeed {

struct RingOptions {
	size_t batch_bytes = 262144;
	int flush_ms = 100;
	size_t max_pending = 8;
};

// Cumulative over every ring started on one BpfObject.
struct RingStats {
	std::atomic<uint64_t> batches{0};
	std::atomic<uint64_t> events{0};
	std::atomic<uint64_t> bytes{0};
	std::atomic<uint64_t> malformed{0};
	std::atomic<uint64_t> poll_errors{0};
};

struct RingShared;  // queue shared with the JS-side wake callbacks
class FrameSinkCore;

class RingConsumer {
public:
	// Creates the ring_buffer over map_fd and starts the thread.
	// Returns 0 or -errno (nothing is left running on failure).
	static int Start(Napi::Env env, int map_fd, const RingOptions& opts, Napi::Function on_batch,
	                 std::shared_ptr<RingStats> stats, std::unique_ptr<RingConsumer>* out);

	// Sink mode: batches go straight into a FrameSink on the ring thread; JS
	// is not involved (and no batch is queued for it).
	static int StartToSink(int map_fd, const RingOptions& opts, std::shared_ptr<FrameSinkCore> sink,
	                       std::shared_ptr<RingStats> stats, std::unique_ptr<RingConsumer>* out);

	// Stops and joins the thread. With `deliver`, still-queued batches and
	// the last partial batch are passed to on_batch before returning (JS
	// thread only, not from a finalizer); otherwise they are freed.
	// Idempotent. Rethrows the first exception thrown by on_batch.
	void Stop(bool deliver);

	~RingConsumer();

	RingConsumer(const RingConsumer&) = delete;
	RingConsumer& operator=(const RingConsumer&) = delete;

private:
	RingConsumer() = default;

	static int Create(int map_fd, const RingOptions& opts, std::shared_ptr<RingStats> stats,
	                  std::unique_ptr<RingConsumer>* out);
	static int OnSample(void* ctx, void* data, size_t len);
	void Run();
	void Append(const void* data, size_t len);
	void Flush();

	RingOptions opts_;
	struct ring_buffer* rb_ = nullptr;
	std::thread thread_;
	std::shared_ptr<RingShared> shared_;
	std::shared_ptr<RingStats> stats_;
	Napi::ThreadSafeFunction tsfn_;
	bool has_tsfn_ = false;
	Napi::FunctionReference on_batch_;  // for the synchronous final delivery
	std::shared_ptr<FrameSinkCore> sink_;  // sink mode when set
	bool stopped_ = false;

	// Batch being filled; touched by the ring thread only.
	uint8_t* cur_ = nullptr;
	size_t cur_len_ = 0;
	// Bytes appended by the last consume, for the idle back-off.
	size_t drained_bytes_ = 0;
	// Longest wait between drains of a ring that has been empty: the latency
	// of the first record after a quiet spell (records do not wake the thread
	// until wakeup_bytes of them wait).
	static constexpr int kIdlePollMaxMs = 400;
	int wait_fd_ = -1;  // epoll: the ring map (edge-triggered) and stop_fd_
	int stop_fd_ = -1;  // eventfd written by Stop()
	bool final_drain_ = false;  // the pass after stop: drain, do not cancel
	size_t cur_cap_ = 0;
	uint32_t cur_events_ = 0;
	int64_t cur_deadline_ms_ = 0;  // flush time of the batch's first sample
};

}  // namespace tracefeed
