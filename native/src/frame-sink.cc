// SPDX-License-Identifier: Apache-2.0
// FrameSinkCore: takes records from the ring consumers and JS, has them framed
// (FrameWriter, frame-writer.cc), asks JS for the names of their cgroups, and
// produces the frames to Kafka with librdkafka on its own thread, which also
// closes a frame when it has lingered long enough (the JS class is in
// frame-sink-binding.cc).
#include "frame-sink.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <system_error>

#include "cloudevents.h"
#include "events.h"

namespace tracefeed {

namespace {

// The record header of bpf/events.h: the walk of a region reads op and size.
constexpr size_t kRecordOp = offsetof(struct tf_event_header, op);
constexpr size_t kRecordSize = offsetof(struct tf_event_header, size);

int64_t NowMs() {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// RFC 3339 UTC with milliseconds, as JS's Date.toISOString().
std::string IsoNow() {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char out[40];
	size_t n = strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, sizeof(out) - n, ".%03ldZ", ts.tv_nsec / 1000000);
	return out;
}

// Per-message state, the librdkafka opaque of each frame.
struct FrameMeta {
	uint64_t sequence;
	uint64_t events;
	uint64_t bytes;
	// (op, records) of the frame, so a frame lost later is counted per op.
	std::vector<std::pair<uint8_t, uint32_t>> ops;
};

}  // namespace

// ---------------------------------------------------------------------------
// FrameSinkCore

FrameSinkCore::FrameSinkCore(const SinkOptions& opts) : opts_(opts), writer_(opts.node, opts.boot_time_ns) {
	for (auto& c : op_counts_)
		c.store(0, std::memory_order_relaxed);
	for (auto& c : op_bytes_)
		c.store(0, std::memory_order_relaxed);
}

std::shared_ptr<FrameSinkCore> FrameSinkCore::Create(const SinkOptions& opts, Napi::ThreadSafeFunction events,
                                                     std::string* error) {
	if (opts.node.empty() || opts.node.size() > TF_NODE_NAME_MAX) {
		*error = "node name must be 1.." + std::to_string(TF_NODE_NAME_MAX) + " bytes, got " + std::to_string(opts.node.size());
		return nullptr;
	}
	std::shared_ptr<FrameSinkCore> s(new FrameSinkCore(opts));
	s->events_ = events;
	s->has_events_ = true;

	char err[512];
	rd_kafka_conf_t* conf = rd_kafka_conf_new();
	const size_t max_message = opts.frame_max_bytes + 1024 * 1024;  // frame + cgroup names + headers
	// The buffer bound is ours (exact, in frame bytes); librdkafka's is set above it.
	const size_t queue_kb = opts.buffer_max_bytes / 1024 + max_message / 1024 + 1024;
	const std::vector<std::pair<std::string, std::string>> base = {
	    {"bootstrap.servers", opts.brokers},
	    {"client.id", opts.client_id},
	    {"enable.idempotence", "true"},  // implies acks=all, ordered retries
	    {"linger.ms", "0"},              // frames already linger in the sink
	    {"message.timeout.ms", "0"},     // hold frames while the broker is away (bounded by us)
	    {"message.max.bytes", std::to_string(max_message + 4096)},
	    {"queue.buffering.max.kbytes", std::to_string(queue_kb)},
	    {"queue.buffering.max.messages", "1000000"},
	    {"reconnect.backoff.ms", "200"},
	    {"reconnect.backoff.max.ms", "2000"},
	    {"socket.connection.setup.timeout.ms", "3000"},
	    {"log.connection.close", "false"},
	    {"log_level", "4"},
	};
	for (const auto* list : {&base, &opts.kafka_config}) {
		for (const auto& kv : *list) {
			if (rd_kafka_conf_set(conf, kv.first.c_str(), kv.second.c_str(), err, sizeof(err)) !=
			    RD_KAFKA_CONF_OK) {
				rd_kafka_conf_destroy(conf);
				*error = "kafka setting " + kv.first + "=" + kv.second + ": " + err;
				return nullptr;
			}
		}
	}
	rd_kafka_conf_set_opaque(conf, s.get());
	rd_kafka_conf_set_dr_msg_cb(conf, OnDelivery);
	rd_kafka_conf_set_error_cb(conf, OnError);
	rd_kafka_conf_set_log_cb(conf, OnLog);

	s->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (s->rk_ == nullptr) {
		rd_kafka_conf_destroy(conf);
		*error = std::string("cannot create the Kafka producer: ") + err;
		s->has_events_ = false;  // the caller still owns the TSFN
		return nullptr;
	}

	// The sink thread sleeps until a frame's deadline (a timerfd the appender
	// arms: no wake-up of its own), a delivery report or error (librdkafka's
	// main queue pokes a pipe, so stats are current), or stop (an eventfd).
	s->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (s->wake_fd_ < 0 || s->timer_fd_ < 0 || pipe2(s->dr_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
		*error = std::string("cannot create the sink's wake-up descriptors: ") + strerror(errno);
		s->has_events_ = false;
		return nullptr;  // the destructor destroys the producer
	}
	rd_kafka_queue_t* main_q = rd_kafka_queue_get_main(s->rk_);
	rd_kafka_queue_io_event_enable(main_q, s->dr_pipe_[1], "1", 1);
	rd_kafka_queue_destroy(main_q);

	try {
		s->thread_ = std::thread(&FrameSinkCore::Run, s.get());
	} catch (const std::system_error& e) {
		*error = std::string("cannot start the sink thread: ") + e.what();
		s->has_events_ = false;
		return nullptr;
	}
	return s;
}

FrameSinkCore::~FrameSinkCore() {
	Stop(0);
	if (rk_ != nullptr)
		rd_kafka_destroy(rk_);
	if (wake_fd_ >= 0)
		close(wake_fd_);
	if (timer_fd_ >= 0)
		close(timer_fd_);
	for (int fd : dr_pipe_)
		if (fd >= 0)
			close(fd);
}

void FrameSinkCore::ArmLocked(int64_t deadline_ms) {
	struct itimerspec at = {};
	at.it_value.tv_sec = deadline_ms / 1000;
	at.it_value.tv_nsec = (deadline_ms % 1000) * 1000000L;
	if (at.it_value.tv_sec == 0 && at.it_value.tv_nsec == 0)
		at.it_value.tv_nsec = 1;  // zero would disarm
	timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &at, nullptr);
}

void FrameSinkCore::Wake() {
	uint64_t one = 1;
	ssize_t r = write(wake_fd_, &one, sizeof(one));
	(void)r;  // EAGAIN means a wake-up is already pending
}

// Puts whole records (len <= frame_max_bytes, or one record) into the open
// frame, closing it first when they would not fit and after when it is full.
// A failed allocation drops them, counted.
bool FrameSinkCore::PlaceLocked(const uint8_t* data, size_t len, uint32_t seen,
                                const std::vector<uint64_t>& cgroups, const uint32_t* counts,
                                const uint64_t* bytes) {
	if (writer_.records_len() > 0 && writer_.records_len() + len > opts_.frame_max_bytes)
		CloseFrameLocked();
	const bool opened = writer_.records_len() == 0;
	std::vector<uint64_t> fresh;
	if (!writer_.Place(data, len, seen, cgroups, counts, opts_.frame_max_bytes, &fresh)) {
		stats_.frames_dropped++;
		stats_.events_dropped += seen;
		for (int op = 0; op < 256; op++)
			dropped_by_op_[op] += counts[op];
		return false;
	}
	for (uint64_t id : fresh)
		AskNameLocked(id);
	if (opened) {
		deadline_ms_ = NowMs() + opts_.linger_ms;
		ArmLocked(deadline_ms_);
	}
	SignalWantedLocked();
	for (int op = 0; op < 256; op++)
		if (counts[op] != 0) {
			op_counts_[op].fetch_add(counts[op], std::memory_order_relaxed);
			op_bytes_[op].fetch_add(bytes[op], std::memory_order_relaxed);
		}
	if (writer_.records_len() >= opts_.frame_max_bytes)
		CloseFrameLocked();
	return true;
}

bool FrameSinkCore::Append(const uint8_t* data, size_t len, uint32_t n) {
	if (len == 0)
		return true;
	// One pass: validate boundaries, count ops, note cgroups.
	uint32_t counts[256] = {};
	uint64_t bytes[256] = {};
	std::vector<uint64_t> cgroups;  // each change of cgroup along the region
	uint64_t last_cg = 0;
	size_t off = 0;
	uint32_t seen = 0;
	while (off < len) {
		if (len - off < sizeof(struct tf_event_header))
			break;
		const uint8_t op = data[off + kRecordOp];
		uint32_t size;
		memcpy(&size, data + off + kRecordSize, sizeof(size));
		if (size < sizeof(struct tf_event_header) || size % 8 != 0 || off + size > len)
			break;
		counts[op]++;
		bytes[op] += size;
		const uint8_t at = opts_.cgroup_offset[op];
		if (at != 0 && at + 8u <= size) {
			uint64_t id;
			memcpy(&id, data + off + at, 8);
			if (id != last_cg) {
				last_cg = id;
				cgroups.push_back(id);
			}
		}
		off += size;
		seen++;
	}

	std::unique_lock<std::mutex> lock(mu_);
	if (stopping_.load(std::memory_order_relaxed)) {
		// After stop nothing is framed: count it, as every drop is.
		stats_.events_dropped += seen;
		for (int op = 0; op < 256; op++)
			dropped_by_op_[op] += counts[op];
		return false;
	}
	if (off != len || (n != 0 && seen != n)) {
		stats_.malformed += n ? n : 1;
		lock.unlock();
		Log("error", "malformed record region dropped: walk stopped at byte " + std::to_string(off) + " of " +
		                 std::to_string(len) + " (" + std::to_string(seen) + " of " + std::to_string(n) +
		                 " records)");
		return false;
	}
	bool placed = true;
	if (len <= opts_.frame_max_bytes) {
		placed = PlaceLocked(data, len, seen, cgroups, counts, bytes);
	} else {
		// A region over the frame bound (a large summary flush) is split at
		// record boundaries, so that every frame stays under the broker's
		// message limit; no record is left out.
		size_t start = 0;
		while (start < len) {
			size_t end = start;
			uint32_t piece_seen = 0;
			uint32_t piece_counts[256] = {};
			uint64_t piece_bytes[256] = {};
			std::vector<uint64_t> piece_cgroups;
			uint64_t piece_last = 0;
			while (end < len) {
				uint32_t size;
				memcpy(&size, data + end + kRecordSize, sizeof(size));
				if (end > start && end - start + size > opts_.frame_max_bytes)
					break;  // a lone record over the bound still gets its own frame
				const uint8_t op = data[end + kRecordOp];
				piece_counts[op]++;
				piece_bytes[op] += size;
				const uint8_t at = opts_.cgroup_offset[op];
				if (at != 0 && at + 8u <= size) {
					uint64_t id;
					memcpy(&id, data + end + at, 8);
					if (id != piece_last) {
						piece_last = id;
						piece_cgroups.push_back(id);
					}
				}
				end += size;
				piece_seen++;
			}
			placed = PlaceLocked(data + start, end - start, piece_seen, piece_cgroups, piece_counts,
			                     piece_bytes) &&
			         placed;
			start = end;
		}
	}
	return placed;
}

// Asks JS for a cgroup's name the first time the sink meets it unnamed, so
// the answer usually arrives while the frame that carries it still lingers.
void FrameSinkCore::AskNameLocked(uint64_t id) {
	if (writer_.Ask(id))
		wanted_.push_back(id);
}

void FrameSinkCore::SignalWantedLocked() {
	if (wanted_.empty() || wanted_signalled_)
		return;
	wanted_signalled_ = true;
	Emit(new SinkEvent{SinkEvent::kCgroups, "", ""});
}

void FrameSinkCore::CloseFrameLocked() {
	names_pending_ = false;
	Frame f;
	if (!writer_.Close(&f))
		return;
	const uint64_t seq = f.sequence;
	const uint64_t events = f.events;
	uint8_t* frame = f.data;
	const size_t frame_len = f.len;
	std::vector<std::pair<uint8_t, uint32_t>>& ops = f.ops;
	stats_.frames_built++;

	if (stats_.buffered_bytes + frame_len > opts_.buffer_max_bytes) {
		free(frame);
		stats_.frames_dropped++;
		stats_.events_dropped += events;
		for (const auto& o : ops)
			dropped_by_op_[o.first] += o.second;
	} else {
		rd_kafka_headers_t* hdrs = rd_kafka_headers_new(8);
		const std::string count = std::to_string(f.records);
		const std::string id =
		    opts_.node + ":" + std::to_string(opts_.started_at_ms) + ":" + std::to_string(seq);
		const std::string source = ce::kNodeSourcePrefix + opts_.node;
		const std::string time = IsoNow();
		rd_kafka_header_add(hdrs, ce::kHeaderSpecVersion, -1, ce::kSpecVersion, -1);
		rd_kafka_header_add(hdrs, ce::kHeaderId, -1, id.data(), ssize_t(id.size()));
		rd_kafka_header_add(hdrs, ce::kHeaderSource, -1, source.data(), ssize_t(source.size()));
		rd_kafka_header_add(hdrs, ce::kHeaderType, -1, ce::kEventsType, -1);
		rd_kafka_header_add(hdrs, ce::kHeaderTime, -1, time.data(), ssize_t(time.size()));
		rd_kafka_header_add(hdrs, ce::kHeaderContentType, -1, ce::kEventsContentType, -1);
		rd_kafka_header_add(hdrs, "tracefeed_event_count", -1, count.data(), ssize_t(count.size()));
		auto* meta = new FrameMeta{seq, events, frame_len, std::move(ops)};
		rd_kafka_resp_err_t err = rd_kafka_producev(
		    rk_, RD_KAFKA_V_TOPIC(opts_.topic.c_str()), RD_KAFKA_V_KEY(opts_.node.data(), opts_.node.size()),
		    RD_KAFKA_V_VALUE(frame, frame_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
		    RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(meta), RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			// Not enqueued: we still own the frame and the headers.
			rd_kafka_headers_destroy(hdrs);
			free(frame);
			for (const auto& o : meta->ops)
				dropped_by_op_[o.first] += o.second;
			delete meta;
			stats_.frames_dropped++;
			stats_.events_dropped += events;
			stats_.send_errors++;
			stats_.last_error = rd_kafka_err2str(err);
		} else {
			stats_.buffered_frames++;
			stats_.buffered_events += events;
			stats_.buffered_bytes += frame_len;
			outstanding_.emplace(seq, NowMs());
		}
	}
}

void FrameSinkCore::Run() {
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, nullptr);

	while (!stopping_.load(std::memory_order_acquire)) {
		struct pollfd fds[3] = {{wake_fd_, POLLIN, 0}, {timer_fd_, POLLIN, 0}, {dr_pipe_[0], POLLIN, 0}};
		poll(fds, 3, -1);
		uint64_t v;
		if (fds[0].revents & POLLIN) {
			ssize_t r = read(wake_fd_, &v, sizeof(v));
			(void)r;
		}
		if (fds[1].revents & POLLIN) {
			ssize_t r = read(timer_fd_, &v, sizeof(v));
			(void)r;
		}
		if (fds[2].revents & POLLIN) {
			char drain[64];
			while (read(dr_pipe_[0], drain, sizeof(drain)) > 0) {
			}
		}
		{
			std::lock_guard<std::mutex> lock(mu_);
			if ((writer_.records_len() > 0 || names_pending_) && NowMs() >= deadline_ms_)
				CloseFrameLocked();
		}
		rd_kafka_poll(rk_, 0);  // delivery reports and errors
	}
}

void FrameSinkCore::Stop(int timeout_ms) {
	std::lock_guard<std::mutex> stop_lock(stop_mu_);
	if (stopped_ || rk_ == nullptr)
		return;
	stopped_ = true;
	{
		// One step under the lock: no append can open a frame after this close.
		std::lock_guard<std::mutex> lock(mu_);
		stopping_.store(true, std::memory_order_release);
		CloseFrameLocked();
	}
	if (wake_fd_ >= 0)
		Wake();
	if (thread_.joinable())
		thread_.join();
	// Delivery reports are served here now (this thread polls).
	rd_kafka_flush(rk_, timeout_ms < 0 ? 0 : timeout_ms);
	// What the broker has not acknowledged by now is lost: purge it so its
	// delivery reports count it as dropped.
	rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_poll(rk_, 0);
	std::lock_guard<std::mutex> lock(ev_mu_);
	if (has_events_) {
		events_.Release();
		has_events_ = false;
	}
}

void FrameSinkCore::OnDelivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
	auto* self = static_cast<FrameSinkCore*>(opaque);
	auto* meta = static_cast<FrameMeta*>(msg->_private);
	if (meta == nullptr)
		return;
	bool reconnected = false;
	std::string failure;
	{
		std::lock_guard<std::mutex> lock(self->mu_);
		SinkStats& s = self->stats_;
		s.buffered_frames--;
		s.buffered_events -= meta->events;
		s.buffered_bytes -= meta->bytes;
		self->outstanding_.erase(meta->sequence);
		if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			s.frames_sent++;
			s.events_sent += meta->events;
			s.bytes_sent += meta->bytes;
			reconnected = !s.connected;
			s.connected = true;
			self->last_logged_error_.clear();
		} else {
			s.frames_dropped++;
			s.events_dropped += meta->events;
			for (const auto& o : meta->ops)
				self->dropped_by_op_[o.first] += o.second;
			s.send_errors++;
			s.last_error = rd_kafka_err2str(msg->err);
			failure = s.last_error;
		}
	}
	delete meta;
	if (reconnected)
		self->Log("info", "kafka reachable, publishing");
	if (!failure.empty())
		self->Log("warn", "frame not delivered and dropped: " + failure);
}

void FrameSinkCore::OnError(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
	auto* self = static_cast<FrameSinkCore*>(opaque);
	const auto code = static_cast<rd_kafka_resp_err_t>(err);
	std::string log;
	{
		std::lock_guard<std::mutex> lock(self->mu_);
		SinkStats& s = self->stats_;
		s.send_errors++;
		s.last_error = reason;
		if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || code == RD_KAFKA_RESP_ERR__TRANSPORT ||
		    code == RD_KAFKA_RESP_ERR__RESOLVE || code == RD_KAFKA_RESP_ERR__FATAL)
			s.connected = false;
		// Once per distinct error while it lasts, not once per reconnect attempt.
		if (self->last_logged_error_ != reason) {
			self->last_logged_error_ = reason;
			log = std::string("kafka send failed; buffering and retrying: ") + reason + " (" +
			      std::to_string(s.buffered_frames) + " frames, " + std::to_string(s.buffered_bytes) +
			      " bytes buffered)";
		}
	}
	if (code == RD_KAFKA_RESP_ERR__FATAL) {
		char why[512];
		rd_kafka_fatal_error(rk, why, sizeof(why));
		self->Log("error", std::string("kafka producer failed for good: ") + why);
	} else if (!log.empty()) {
		self->Log("warn", log);
	}
}

void FrameSinkCore::OnLog(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
	auto* self = static_cast<FrameSinkCore*>(rd_kafka_opaque(rk));
	if (self == nullptr)
		return;
	// Errors reach OnError too; these lines are librdkafka's own warnings.
	self->Log(level <= 3 ? "warn" : "info", std::string("librdkafka ") + fac + ": " + buf);
}

void FrameSinkCore::Log(const char* level, std::string message) {
	Emit(new SinkEvent{SinkEvent::kLog, level, std::move(message)});
}

void FrameSinkCore::Emit(SinkEvent* ev) {
	auto call = [](Napi::Env env, Napi::Function fn, SinkEvent* e) {
		if (env != nullptr && fn != nullptr) {
			try {
				if (e->kind == SinkEvent::kCgroups)
					fn.Call({Napi::String::New(env, "cgroups")});
				else
					fn.Call({Napi::String::New(env, "log"), Napi::String::New(env, e->level),
					         Napi::String::New(env, e->message)});
			} catch (const Napi::Error& err) {
				napi_fatal_exception(env, err.Value());
			}
		}
		delete e;
	};
	// librdkafka threads may log while Stop releases the function.
	std::lock_guard<std::mutex> lock(ev_mu_);
	if (!has_events_ || events_.NonBlockingCall(ev, call) != napi_ok)
		delete ev;  // closing: nobody is listening
}

SinkStats FrameSinkCore::Stats() {
	std::lock_guard<std::mutex> lock(mu_);
	SinkStats s = stats_;
	s.lag_ms = outstanding_.empty() ? 0 : NowMs() - outstanding_.begin()->second;
	return s;
}

void FrameSinkCore::OpCounts(double out[256]) {
	for (int i = 0; i < 256; i++)
		out[i] = double(op_counts_[i].load(std::memory_order_relaxed));
}

void FrameSinkCore::OpBytes(double out[256]) {
	for (int i = 0; i < 256; i++)
		out[i] = double(op_bytes_[i].load(std::memory_order_relaxed));
}

void FrameSinkCore::DroppedByOp(double out[256]) {
	std::lock_guard<std::mutex> lock(mu_);
	for (int i = 0; i < 256; i++)
		out[i] = double(dropped_by_op_[i]);
}

std::vector<uint64_t> FrameSinkCore::TakeSeenCgroups() {
	std::lock_guard<std::mutex> lock(mu_);
	return writer_.TakeSeenCgroups();
}

std::vector<uint64_t> FrameSinkCore::TakeWantedCgroups() {
	std::lock_guard<std::mutex> lock(mu_);
	std::vector<uint64_t> out;
	out.swap(wanted_);
	wanted_signalled_ = false;
	return out;
}

void FrameSinkCore::SetCgroupName(uint64_t id, std::string path) {
	std::lock_guard<std::mutex> lock(mu_);
	writer_.SetName(id, std::move(path));
	// Records of this cgroup already left in an unnamed frame: send the name
	// now (in a frame of its own if none is open) rather than wait for more records.
	if (writer_.records_len() == 0 && writer_.HasCgroup(id) && !names_pending_ && !stopping_.load()) {
		names_pending_ = true;
		deadline_ms_ = NowMs();
		ArmLocked(deadline_ms_);
	}
}

void FrameSinkCore::ForgetCgroup(uint64_t id) {
	std::lock_guard<std::mutex> lock(mu_);
	writer_.Forget(id);
}

}  // namespace tracefeed
