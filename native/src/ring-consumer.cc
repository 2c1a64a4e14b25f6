// SPDX-License-Identifier: Apache-2.0
#include "ring-consumer.h"

#include <bpf/libbpf.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <system_error>

#include "events.h"
#include "frame-sink.h"

namespace tracefeed {

namespace {

struct Batch {
	uint8_t* data;
	size_t len;
	uint32_t events;
};

// Longest wait of the fallback ring_buffer__poll loop: it bounds how long
// stop() takes when the thread cannot wait on its own epoll set.
constexpr int kFallbackPollMs = 100;

int64_t NowMs() {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void FreeBatchData(Napi::Env, uint8_t* data) {
	free(data);
}

// Zero-copy hand-off: JS owns the malloc'd batch and frees it when collected.
Napi::Buffer<uint8_t> ToBuffer(Napi::Env env, Batch& b) {
	auto buf = Napi::Buffer<uint8_t>::NewOrCopy(env, b.data, b.len, FreeBatchData);
	b.data = nullptr;
	return buf;
}

}  // namespace

struct RingShared {
	std::mutex mu;
	std::condition_variable space;  // signalled when a batch leaves the queue
	std::deque<Batch> pending;
	size_t max_pending = 8;
	std::atomic<bool> stopping{false};
	bool closed = false;  // after stop: wakes that arrive late do nothing

	~RingShared() {
		for (Batch& b : pending)
			free(b.data);
	}

	// Pops the oldest batch; false when closed or empty.
	bool Pop(Batch* out) {
		std::lock_guard<std::mutex> lock(mu);
		if (closed || pending.empty())
			return false;
		*out = pending.front();
		pending.pop_front();
		space.notify_one();
		return true;
	}
};

// Runs on the JS thread, once per queued batch.
static void DeliverOne(Napi::Env env, Napi::Function fn, const std::shared_ptr<RingShared>& shared) {
	Batch b;
	if (env == nullptr || fn == nullptr || !shared->Pop(&b))
		return;
	try {
		const uint32_t events = b.events;
		Napi::Buffer<uint8_t> buf = ToBuffer(env, b);
		fn.Call({buf, Napi::Number::New(env, events)});
	} catch (const Napi::Error& e) {
		free(b.data);
		// Surface it as an uncaught exception, as an event emitter would.
		napi_fatal_exception(env, e.Value());
	}
}

int RingConsumer::Create(int map_fd, const RingOptions& opts, std::shared_ptr<RingStats> stats,
                         std::unique_ptr<RingConsumer>* out) {
	std::unique_ptr<RingConsumer> rc(new RingConsumer());
	rc->opts_ = opts;
	rc->stats_ = std::move(stats);
	rc->shared_ = std::make_shared<RingShared>();
	rc->shared_->max_pending = opts.max_pending;

	rc->rb_ = ring_buffer__new(map_fd, OnSample, rc.get(), nullptr);
	if (rc->rb_ == nullptr)
		return -(errno ? errno : EINVAL);

	// The thread waits on its own epoll set: the ring map, edge-triggered (it
	// fires on the kernel's wake-ups, i.e. the forced ones at wakeup_bytes, not
	// while records merely wait, so a batch can gather without the thread
	// spinning), and an eventfd that stop() writes.
	rc->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	rc->wait_fd_ = epoll_create1(EPOLL_CLOEXEC);
	if (rc->wait_fd_ >= 0 && rc->stop_fd_ >= 0) {
		struct epoll_event ev = {};
		ev.events = EPOLLIN | EPOLLET;
		ev.data.fd = map_fd;
		struct epoll_event stop = {};
		stop.events = EPOLLIN;
		stop.data.fd = rc->stop_fd_;
		if (epoll_ctl(rc->wait_fd_, EPOLL_CTL_ADD, map_fd, &ev) != 0 ||
		    epoll_ctl(rc->wait_fd_, EPOLL_CTL_ADD, rc->stop_fd_, &stop) != 0) {
			close(rc->wait_fd_);
			rc->wait_fd_ = -1;  // fall back to ring_buffer__poll with a timeout
		}
	}
	*out = std::move(rc);
	return 0;
}

int RingConsumer::Start(Napi::Env env, int map_fd, const RingOptions& opts, Napi::Function on_batch,
                        std::shared_ptr<RingStats> stats, std::unique_ptr<RingConsumer>* out) {
	std::unique_ptr<RingConsumer> rc;
	int err = Create(map_fd, opts, std::move(stats), &rc);
	if (err)
		return err;

	// Unbounded here: the pending queue above is the bound (one wake per batch).
	rc->tsfn_ = Napi::ThreadSafeFunction::New(env, on_batch, "tracefeed.ring", 0, 1);
	rc->has_tsfn_ = true;
	rc->on_batch_ = Napi::Persistent(on_batch);

	try {
		rc->thread_ = std::thread(&RingConsumer::Run, rc.get());
	} catch (const std::system_error& e) {
		// rc's destructor frees the ring and releases the TSFN.
		return -(e.code().value() ? e.code().value() : EAGAIN);
	}
	*out = std::move(rc);
	return 0;
}

int RingConsumer::StartToSink(int map_fd, const RingOptions& opts, std::shared_ptr<FrameSinkCore> sink,
                              std::shared_ptr<RingStats> stats, std::unique_ptr<RingConsumer>* out) {
	std::unique_ptr<RingConsumer> rc;
	int err = Create(map_fd, opts, std::move(stats), &rc);
	if (err)
		return err;
	rc->sink_ = std::move(sink);
	try {
		rc->thread_ = std::thread(&RingConsumer::Run, rc.get());
	} catch (const std::system_error& e) {
		return -(e.code().value() ? e.code().value() : EAGAIN);
	}
	*out = std::move(rc);
	return 0;
}

void RingConsumer::Run() {
	// Signals belong to Node's main thread, never to the ring thread.
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, nullptr);

	// Records submitted with BPF_RB_NO_WAKEUP signal nothing, so the ring is
	// also drained on a timer: every flush_ms while records come, backing off
	// to kIdlePollMaxMs while none do (an idle ring costs a few wake-ups/s).
	const int base_ms = opts_.flush_ms < kIdlePollMaxMs ? opts_.flush_ms : kIdlePollMaxMs;
	int idle_ms = base_ms;
	while (!shared_->stopping.load(std::memory_order_acquire)) {
		int timeout = idle_ms;
		if (cur_len_ > 0) {
			int64_t left = cur_deadline_ms_ - NowMs();
			timeout = left < 0 ? 0 : (left < timeout ? int(left) : timeout);
		}
		if (wait_fd_ >= 0) {
			struct epoll_event evs[2];
			epoll_wait(wait_fd_, evs, 2, timeout);
		} else {
			int err = ring_buffer__poll(rb_, timeout < kFallbackPollMs ? timeout : kFallbackPollMs);
			if (err < 0 && err != -EINTR)
				stats_->poll_errors.fetch_add(1, std::memory_order_relaxed);
		}
		if (shared_->stopping.load(std::memory_order_acquire))
			break;
		drained_bytes_ = 0;
		int err = ring_buffer__consume(rb_);
		if (err < 0 && err != -EINTR && err != -ECANCELED)
			stats_->poll_errors.fetch_add(1, std::memory_order_relaxed);
		idle_ms = drained_bytes_ > 0 ? base_ms : (idle_ms * 2 < kIdlePollMaxMs ? idle_ms * 2 : kIdlePollMaxMs);
		// A sink frames (and lingers) itself: hand it what was drained at once.
		if (cur_len_ > 0 && (sink_ || NowMs() >= cur_deadline_ms_))
			Flush();
	}
	// What the kernel has written so far goes out too (one bounded pass over
	// the ring), with the last partial batch; Stop() delivers or frees it.
	final_drain_ = true;
	if (ring_buffer__consume(rb_) < 0)
		stats_->poll_errors.fetch_add(1, std::memory_order_relaxed);
	if (cur_len_ > 0)
		Flush();
}

int RingConsumer::OnSample(void* ctx, void* data, size_t len) {
	auto* self = static_cast<RingConsumer*>(ctx);
	struct tf_event_header hdr;

	if (len < sizeof(hdr) || len % 8 != 0) {
		self->stats_->malformed.fetch_add(1, std::memory_order_relaxed);
	} else {
		memcpy(&hdr, data, sizeof(hdr));
		if (hdr.size != len)
			self->stats_->malformed.fetch_add(1, std::memory_order_relaxed);
		else
			self->Append(data, len);
	}
	// A negative return ends ring_buffer__consume(): stop promptly under load.
	return self->shared_->stopping.load(std::memory_order_relaxed) && !self->final_drain_ ? -ECANCELED : 0;
}

void RingConsumer::Append(const void* data, size_t len) {
	drained_bytes_ += len;
	if (cur_len_ > 0 && cur_len_ + len > cur_cap_)
		Flush();
	if (cur_ != nullptr && len > cur_cap_) {
		// Sink mode keeps its buffer between batches: grow it for an outsized sample.
		uint8_t* grown = static_cast<uint8_t*>(realloc(cur_, len));
		if (grown == nullptr) {
			stats_->poll_errors.fetch_add(1, std::memory_order_relaxed);
			return;
		}
		cur_ = grown;
		cur_cap_ = len;
	}
	if (cur_ == nullptr) {
		size_t cap = opts_.batch_bytes > len ? opts_.batch_bytes : len;
		cur_ = static_cast<uint8_t*>(malloc(cap));
		if (cur_ == nullptr) {
			// Out of memory: lose this sample, not the process.
			stats_->poll_errors.fetch_add(1, std::memory_order_relaxed);
			return;
		}
		cur_cap_ = cap;
	}
	if (cur_len_ == 0)
		cur_deadline_ms_ = NowMs() + opts_.flush_ms;
	memcpy(cur_ + cur_len_, data, len);
	cur_len_ += len;
	cur_events_++;
	stats_->events.fetch_add(1, std::memory_order_relaxed);
	stats_->bytes.fetch_add(len, std::memory_order_relaxed);
	if (cur_len_ >= opts_.batch_bytes)
		Flush();
}

void RingConsumer::Flush() {
	if (sink_) {
		// The sink copies the records into its frame: the batch buffer is reused.
		sink_->Append(cur_, cur_len_, cur_events_);
		cur_len_ = 0;
		cur_events_ = 0;
		stats_->batches.fetch_add(1, std::memory_order_relaxed);
		return;
	}
	Batch b{cur_, cur_len_, cur_events_};
	cur_ = nullptr;
	cur_len_ = cur_cap_ = 0;
	cur_events_ = 0;

	// A mostly empty batch would pin batch_bytes of memory while JS holds it.
	if (b.len * 2 < opts_.batch_bytes) {
		void* shrunk = realloc(b.data, b.len);
		if (shrunk != nullptr)
			b.data = static_cast<uint8_t*>(shrunk);
	}

	{
		std::unique_lock<std::mutex> lock(shared_->mu);
		// Backpressure: wait for JS to take a batch (the kernel ring absorbs
		// the burst meanwhile, then counts drops).
		shared_->space.wait(lock, [this] {
			return shared_->pending.size() < shared_->max_pending ||
			       shared_->stopping.load(std::memory_order_relaxed);
		});
		shared_->pending.push_back(b);
	}
	stats_->batches.fetch_add(1, std::memory_order_relaxed);

	std::shared_ptr<RingShared> shared = shared_;
	tsfn_.NonBlockingCall([shared](Napi::Env env, Napi::Function fn) { DeliverOne(env, fn, shared); });
}

void RingConsumer::Stop(bool deliver) {
	if (stopped_)
		return;
	stopped_ = true;

	{
		std::lock_guard<std::mutex> lock(shared_->mu);
		shared_->stopping.store(true, std::memory_order_release);
		shared_->space.notify_all();
	}
	if (stop_fd_ >= 0) {
		uint64_t one = 1;
		ssize_t r = write(stop_fd_, &one, sizeof(one));
		(void)r;
	}
	if (thread_.joinable())
		thread_.join();
	if (rb_ != nullptr)
		ring_buffer__free(rb_);
	rb_ = nullptr;

	std::deque<Batch> rest;
	{
		std::lock_guard<std::mutex> lock(shared_->mu);
		rest.swap(shared_->pending);
		shared_->closed = true;
	}
	// Late wakes still queued in the TSFN find `closed` and return; after
	// this the TSFN no longer holds the event loop open.
	if (has_tsfn_)
		tsfn_.Release();
	has_tsfn_ = false;

	if (!deliver || on_batch_.IsEmpty()) {
		for (Batch& b : rest)
			free(b.data);
		on_batch_.Reset();
		return;
	}

	Napi::Env env = on_batch_.Env();
	Napi::Function fn = on_batch_.Value();
	on_batch_.Reset();
	while (!rest.empty()) {
		Batch b = rest.front();
		rest.pop_front();
		try {
			const uint32_t events = b.events;
			fn.Call({ToBuffer(env, b), Napi::Number::New(env, events)});
		} catch (...) {
			free(b.data);
			for (Batch& r : rest)
				free(r.data);
			throw;
		}
	}
}

RingConsumer::~RingConsumer() {
	Stop(false);
	if (wait_fd_ >= 0)
		close(wait_fd_);
	if (stop_fd_ >= 0)
		close(stop_fd_);
	free(cur_);
}

}  // namespace tracefeed
