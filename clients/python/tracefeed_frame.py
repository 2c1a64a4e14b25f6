"""Decoder for tracefeed event frames (tracefeed.events.v1), standard library only.

    from tracefeed_frame import decode_frame
    frame = decode_frame(record.value)       # kafka-python, confluent-kafka, ...
    for event in frame.events:
        print(event["type"], event["attributes"])

Kafka wants credentials: user "agent" (the reader role), SASL mechanism
SCRAM-SHA-512 over SASL_PLAINTEXT, password in .tracefeed/secrets/kafka-agent.password:
    KafkaConsumer("tracefeed.events.v1", bootstrap_servers="127.0.0.1:9092",
                  security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                  sasl_plain_username="agent", sasl_plain_password=password)
(librdkafka before 2.6.1: sasl.mechanism PLAIN, same user and password.)

The layout is documented in docs/frame-format.md; the record structs come from
bpf/events.h. Run as a script to decode frames from files:
    python3 tracefeed_frame.py frame.bin [...]
"""
from __future__ import annotations

import json
import struct
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone

FRAME_MAGIC = 0x56454654  # b"TFEV" little-endian
FRAME_VERSION = 1
FIXED_HEADER = struct.Struct("<IHHIIQQHHI")  # 40 bytes
EVENT_HEADER = struct.Struct("<BBHIQII")  # 24 bytes: op, flags, pad, size, ktime_ns, generation, sample_weight

OP_EXEC = 1
OP_EXIT = 2
OP_CGROUP_STATS = 16
OP_PROBE_STATS = 17
FLAG_FOCUS = 0x02  # TF_FLAG_FOCUS: collected under a per-cgroup focus
FLAG_TRUNCATED = 0x01
# enum tf_probe, then user-space sources (SOURCE_NAMES in src/ingest/layout.ts)
SOURCE_NAMES = ["process", "tcp", "syscalls", "file", "sched", "cgroup"]
DROP_REASON_NAMES = ["ringbuf_full", "filtered", "sampled_out", "map_full"]

# struct tf_exec_event (320 bytes) after the header: pid, ppid, uid, pad, cgroup_id, comm[16], filename[256]
EXEC_BODY = struct.Struct("<IIIIQ16s256s")
# struct tf_exit_event (72 bytes) after the header: pid, ppid, exit_code, exit_signal, cgroup_id, lifetime_ns, comm[16]
EXIT_BODY = struct.Struct("<IIiIQQ16s")
# struct tf_cgroup_stats (144 bytes) after the header: cgroup_id, interval_ns, then the counters below
CGROUP_STATS_FIELDS = [
    "interval_ns",
    "cpu_usage_us",
    "cpu_throttled_us",
    "cpu_nr_throttled",
    "cpu_some_us",
    "cpu_full_us",
    "io_some_us",
    "io_full_us",
    "memory_some_us",
    "memory_full_us",
    "memory_high",
    "memory_max",
    "memory_oom",
    "memory_oom_kill",
]
CGROUP_STATS_BODY = struct.Struct("<Q" + "Q" * len(CGROUP_STATS_FIELDS))
# struct tf_probe_stats (104 bytes) after the header: probe, sample_n, overload_n, focus_count,
# interval_ns, emitted, drops[4], sink_dropped, pad
PROBE_STATS_BODY = struct.Struct("<IIIIQQ4QQQ")
RECORD_SIZE = {
    OP_EXEC: EVENT_HEADER.size + EXEC_BODY.size,
    OP_EXIT: EVENT_HEADER.size + EXIT_BODY.size,
    OP_CGROUP_STATS: EVENT_HEADER.size + CGROUP_STATS_BODY.size,
    OP_PROBE_STATS: EVENT_HEADER.size + PROBE_STATS_BODY.size,
}
PROBE_OF_OP = {OP_EXEC: "process", OP_EXIT: "process", OP_CGROUP_STATS: "cgroup"}


class FrameError(ValueError):
    """The bytes are not a valid frame; `reason` matches the TypeScript DecodeError reasons."""

    def __init__(self, message: str, reason: str, offset: int):
        super().__init__(message)
        self.reason = reason
        self.offset = offset


@dataclass
class Frame:
    version: int
    node: str
    boot_time_ns: int
    sequence: int
    event_count: int
    events: list[dict] = field(default_factory=list)


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def _decode_record(buf: memoryview, off: int, node: str, boot_time_ns: int) -> dict:
    op, flags, _pad, size, ktime, generation, weight = EVENT_HEADER.unpack_from(buf, off)
    wall = boot_time_ns + ktime
    event = {
        "probe": PROBE_OF_OP.get(op, "unknown"),
        "time_unix_nano": str(wall),
        "time": datetime.fromtimestamp(wall // 1_000_000 / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "ktime_ns": str(ktime),
        "node": node,
        "truncated": bool(flags & FLAG_TRUNCATED),
        "focused": bool(flags & FLAG_FOCUS),
        "generation": generation,
        "sample_weight": weight,
    }
    if op == OP_EXEC:
        pid, ppid, uid, _p, cgroup, comm, filename = EXEC_BODY.unpack_from(buf, off + EVENT_HEADER.size)
        event["type"] = "process.exec"
        event["attributes"] = {
            "process.pid": pid,
            "process.parent_pid": ppid,
            "process.executable.name": _cstr(comm),
            "process.executable.path": _cstr(filename),
            "process.user.id": uid,
            "cgroup.id": str(cgroup),
            "host.name": node,
        }
    elif op == OP_EXIT:
        pid, ppid, code, signal, cgroup, lifetime, comm = EXIT_BODY.unpack_from(buf, off + EVENT_HEADER.size)
        event["type"] = "process.exit"
        event["attributes"] = {
            "process.pid": pid,
            "process.parent_pid": ppid,
            "process.executable.name": _cstr(comm),
            "process.exit.code": code,
            "process.exit.signal": signal,
            "process.lifetime_ns": lifetime,
            "cgroup.id": str(cgroup),
            "host.name": node,
        }
    elif op == OP_CGROUP_STATS:
        cgroup, *values = CGROUP_STATS_BODY.unpack_from(buf, off + EVENT_HEADER.size)
        event["type"] = "cgroup.stats"
        attributes = {"cgroup.id": str(cgroup)}
        attributes.update({f"cgroup.{name}": v for name, v in zip(CGROUP_STATS_FIELDS, values)})
        attributes["host.name"] = node
        event["attributes"] = attributes
    elif op == OP_PROBE_STATS:
        probe, sample_n, overload_n, focus_count, interval_ns, emitted, *rest = PROBE_STATS_BODY.unpack_from(
            buf, off + EVENT_HEADER.size
        )
        drops, sink_dropped = rest[:4], rest[4]
        event["probe"] = SOURCE_NAMES[probe] if probe < len(SOURCE_NAMES) else f"probe.{probe}"
        event["type"] = "probe.stats"
        attributes = {
            "probe.sample_n": sample_n,
            "probe.overload_n": overload_n,
            "probe.focus_count": focus_count,
            "probe.interval_ns": interval_ns,
            "probe.emitted": emitted,
        }
        attributes.update({f"probe.drops.{name}": d for name, d in zip(DROP_REASON_NAMES, drops)})
        attributes["probe.sink_dropped"] = sink_dropped
        attributes["host.name"] = node
        event["attributes"] = attributes
    else:
        event["type"] = f"unknown.{op}"
        event["attributes"] = {"host.name": node}
    return event


def decode_frame(data: bytes) -> Frame:
    buf = memoryview(data)
    if len(buf) < FIXED_HEADER.size:
        raise FrameError(f"frame is {len(buf)} bytes, shorter than the 40-byte header", "truncated", 0)
    magic, version, header_len, count, records_len, boot, seq, node_len, _flags, _res = FIXED_HEADER.unpack_from(buf, 0)
    if magic != FRAME_MAGIC:
        raise FrameError(f"bad frame magic 0x{magic:x}", "bad-magic", 0)
    if version != FRAME_VERSION:
        raise FrameError(f"unsupported frame version {version}", "unsupported-version", 4)
    if header_len < 40 or header_len % 8 or 40 + node_len > header_len:
        raise FrameError(f"bad header_len {header_len}", "bad-header", 6)
    if header_len + records_len != len(buf):
        reason = "truncated" if header_len + records_len > len(buf) else "bad-header"
        raise FrameError(f"frame says {header_len}+{records_len} bytes but has {len(buf)}", reason, 12)
    # Invalid UTF-8 is replaced (U+FFFD), as the TypeScript decoder does.
    node = bytes(buf[40 : 40 + node_len]).decode("utf-8", errors="replace")
    frame = Frame(version, node, boot, seq, count)
    off = header_len
    end = len(buf)
    while off < end:
        if end - off < EVENT_HEADER.size:
            raise FrameError(f"record at {off - header_len} is cut short", "truncated", off - header_len)
        op, _f, _p, size, _k, _g, _w = EVENT_HEADER.unpack_from(buf, off)
        if size < EVENT_HEADER.size or size % 8:
            raise FrameError(f"record at {off - header_len} has size {size}", "bad-record-size", off - header_len)
        if off + size > end:
            raise FrameError(f"record at {off - header_len} runs past the frame", "truncated", off - header_len)
        if op in RECORD_SIZE and RECORD_SIZE[op] != size:
            raise FrameError(f"op {op} must be {RECORD_SIZE[op]} bytes, is {size}", "bad-record-size", off - header_len)
        frame.events.append(_decode_record(buf, off, node, boot))
        off += size
    if len(frame.events) != count:
        raise FrameError(f"frame says {count} events but holds {len(frame.events)}", "count-mismatch", 8)
    return frame


def main(paths: list[str]) -> int:
    for path in paths:
        with open(path, "rb") as f:
            frame = decode_frame(f.read())
        for event in frame.events:
            print(json.dumps(event))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
