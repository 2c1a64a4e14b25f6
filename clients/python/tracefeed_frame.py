"""Decoder for tracefeed event frames (tracefeed.events.v1), standard library only.

    from tracefeed_frame import decode_frame, decode_events
    frame = decode_frame(record.value)       # kafka-python, confluent-kafka, ...
    for event in decode_events(frame):       # every op, cgroups named
        print(event["type"], event["attributes"])

Kafka wants credentials: user "agent" (the reader role), SASL mechanism
SCRAM-SHA-512 over SASL_PLAINTEXT, password in .tracefeed/secrets/kafka-agent.password:
    KafkaConsumer("tracefeed.events.v1", bootstrap_servers="127.0.0.1:9092",
                  security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                  sasl_plain_username="agent", sasl_plain_password=password)
(librdkafka before 2.6.1: sasl.mechanism PLAIN, same user and password.)

The layout is documented in docs/frame-format.md; offsets and sizes come from
tracefeed_layout.py, generated from bpf/events.h (scripts/gen-layouts.mjs).
Keep both files together. Run as a script to decode frames from files:
    python3 tracefeed_frame.py frame.bin [...]
"""
from __future__ import annotations

import json
import math
import re
import struct
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone

# Layouts and the op tables (event type, struct, source by op) are generated from
# bpf/events.h and the family registry.
from tracefeed_layout import OP_TYPE, PROBE_OF_OP, SOURCE_NAMES, STRUCT_OF_OP, TF_DEFINES, TF_ENUMS, TF_STRUCTS

FRAME_MAGIC = TF_DEFINES["TF_FRAME_MAGIC"]  # b"TFEV" little-endian
FRAME_VERSION = TF_DEFINES["TF_FRAME_VERSION"]
FLAG_TRUNCATED = TF_DEFINES["TF_FLAG_TRUNCATED"]
FLAG_FOCUS = TF_DEFINES["TF_FLAG_FOCUS"]  # collected under a per-cgroup focus
FLAG_PATH_UNVERIFIED = TF_DEFINES["TF_FLAG_PATH_UNVERIFIED"]  # file.open path is the caller's string (failed open)
FLAG_PATH_PARTIAL = TF_DEFINES["TF_FLAG_PATH_PARTIAL"]  # file.open path walk found no mount namespace root
OP = {name[len("TF_OP_") :]: v for name, v in TF_ENUMS["tf_op"].items()}
DROP_REASON_NAMES = ["ringbuf_full", "filtered", "sampled_out", "map_full"]
# Fixed-size records; TF_OP_CGROUP_INFO is variable (its path follows).
RECORD_SIZE = {op: TF_STRUCTS[name]["size"] for op, name in STRUCT_OF_OP.items() if op != OP["CGROUP_INFO"]}
TCP_STATES = ["", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"]
AF_INET6 = 10
# DNS response codes and common query types (src/families/dns/index.ts)
DNS_RCODES = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"]
DNS_QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV", 64: "SVCB", 65: "HTTPS", 255: "ANY"}
CONTAINER_PATTERNS = [
    re.compile(r"(?:docker|cri-containerd|crio|libpod|containerd)-([0-9a-f]{64})\.scope"),
    re.compile(r"/(?:docker|containerd|crio|libpod)/([0-9a-f]{64})(?:/|$)"),
    re.compile(r"/kubepods[^/]*/(?:[^/]+/)*?([0-9a-f]{64})(?:/|$)"),
]
POD_PATTERN = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")

_SCALAR = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "s8": "b", "s16": "h", "s32": "i", "s64": "q"}


class _Layout:
    """One struct of bpf/events.h: reads its fields by name, little-endian."""

    def __init__(self, name: str):
        self.name = name
        self.size = TF_STRUCTS[name]["size"]
        self.fields = {f["name"]: f for f in TF_STRUCTS[name]["fields"]}

    def read(self, buf: memoryview, at: int, name: str, index: int = 0):
        f = self.fields[name]
        if f["kind"] == "char":
            return bytes(buf[at + f["offset"] : at + f["offset"] + f["size"]])
        fmt = "<" + _SCALAR[f["kind"]]
        width = f["size"] // f["count"]
        return struct.unpack_from(fmt, buf, at + f["offset"] + index * width)[0]

    def raw(self, buf: memoryview, at: int, name: str) -> bytes:
        f = self.fields[name]
        return bytes(buf[at + f["offset"] : at + f["offset"] + f["size"]])

    def array(self, buf: memoryview, at: int, name: str) -> list:
        return [self.read(buf, at, name, i) for i in range(self.fields[name]["count"])]

    def cstr(self, buf: memoryview, at: int, name: str) -> str:
        return _cstr(self.read(buf, at, name))

    def offset(self, name: str) -> int:
        return self.fields[name]["offset"]


LAYOUTS = {name: _Layout(name) for name in TF_STRUCTS}
FRAME_HEADER = LAYOUTS["tf_frame_header"]
EVENT_HEADER = LAYOUTS["tf_event_header"]


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


def _round(x: float) -> int:
    """JavaScript's Math.round: halves go up."""
    return math.floor(x + 0.5)


def histogram_quantile(hist: list, q: float) -> int:
    """Quantile q of a log2 histogram (slot i counts [2^i, 2^(i+1)) ns), as src/wire/histogram.ts."""
    total = sum(hist)
    if total == 0:
        return 0
    rank = q * total
    seen = 0
    for i, n in enumerate(hist):
        if n > 0 and seen + n >= rank:
            lo = 0 if i == 0 else 2**i
            return _round(lo + ((rank - seen) / n) * (2 ** (i + 1) - lo))
        seen += n
    return 2 ** len(hist)


def format_address(raw: bytes, family: int) -> str:
    """IPv4 dotted quad, or IPv6 with the longest run of zero groups compressed (RFC 5952)."""
    if family != AF_INET6:
        return ".".join(str(b) for b in raw[:4])
    parts = [format((raw[i] << 8) | raw[i + 1], "x") for i in range(0, 16, 2)]
    best, best_len, i = -1, 0, 0
    while i < 8:
        if parts[i] != "0":
            i += 1
            continue
        j = i
        while j < 8 and parts[j] == "0":
            j += 1
        if j - i > best_len and j - i > 1:
            best, best_len = i, j - i
        i = j
    if best < 0:
        return ":".join(parts)
    return ":".join(parts[:best]) + "::" + ":".join(parts[best + best_len :])


def _hist_json(hist: list) -> str:
    return json.dumps(hist, separators=(",", ":"))


def _attributes(op: int, flags: int, buf: memoryview, at: int) -> dict:
    L = LAYOUTS[STRUCT_OF_OP[op]]
    r = lambda name, i=0: L.read(buf, at, name, i)  # noqa: E731
    cstr = lambda name: L.cstr(buf, at, name)  # noqa: E731
    if op == OP["EXEC"]:
        return {
            "process.pid": r("pid"),
            "process.parent_pid": r("ppid"),
            "process.executable.name": cstr("comm"),
            "process.executable.path": cstr("filename"),
            "process.user.id": r("uid"),
            "cgroup.id": str(r("cgroup_id")),
        }
    if op == OP["EXIT"]:
        return {
            "process.pid": r("pid"),
            "process.parent_pid": r("ppid"),
            "process.executable.name": cstr("comm"),
            "process.exit.code": r("exit_code"),
            "process.exit.signal": r("exit_signal"),
            "process.lifetime_ns": r("lifetime_ns"),
            "cgroup.id": str(r("cgroup_id")),
        }
    if STRUCT_OF_OP[op] == "tf_tcp_event":
        family = r("family")
        old, new = r("oldstate"), r("newstate")
        return {
            "process.pid": r("pid"),
            "process.executable.name": cstr("comm"),
            "network.transport": "tcp",
            "network.type": "ipv6" if family == AF_INET6 else "ipv4",
            "network.local.address": format_address(L.raw(buf, at, "saddr"), family),
            "network.local.port": r("sport"),
            "network.peer.address": format_address(L.raw(buf, at, "daddr"), family),
            "network.peer.port": r("dport"),
            "tcp.state.old": TCP_STATES[old] if old < len(TCP_STATES) else str(old),
            "tcp.state.new": TCP_STATES[new] if new < len(TCP_STATES) else str(new),
            "tcp.duration_ns": r("duration_ns"),
            "tcp.bytes_sent": r("bytes_sent"),
            "tcp.bytes_received": r("bytes_received"),
            "cgroup.id": str(r("cgroup_id")),
        }
    if op == OP["SYSCALL_SUMMARY"]:
        hist = L.array(buf, at, "hist")
        return {
            "cgroup.id": str(r("cgroup_id")),
            "syscall.nr": r("syscall_nr"),
            "summary.interval_ns": r("interval_ns"),
            "syscall.count": r("count"),
            "syscall.error_count": r("error_count"),
            "syscall.total_ns": r("total_ns"),
            "syscall.p50_ns": histogram_quantile(hist, 0.5),
            "syscall.p99_ns": histogram_quantile(hist, 0.99),
            "syscall.histogram_log2_ns": _hist_json(hist),
        }
    if op == OP["SYSCALL_ERRNO"]:
        return {
            "cgroup.id": str(r("cgroup_id")),
            "syscall.nr": r("syscall_nr"),
            "error.errno": r("err"),
            "syscall.error_count": r("count"),
            "summary.interval_ns": r("interval_ns"),
        }
    if op == OP["SYSCALL_SLOW"]:
        return {
            "process.pid": r("pid"),
            "thread.id": r("tid"),
            "cgroup.id": str(r("cgroup_id")),
            "syscall.nr": r("syscall_nr"),
            "syscall.return": r("ret"),
            "syscall.duration_ns": r("duration_ns"),
            "process.executable.name": cstr("comm"),
        }
    if op == OP["FILE_OPEN"]:
        return {
            "process.pid": r("pid"),
            "file.open.flags": r("flags"),
            "file.open.result": r("ret"),
            "cgroup.id": str(r("cgroup_id")),
            "process.executable.name": cstr("comm"),
            "file.path": cstr("path"),
            # Failed opens carry the caller's string; successful ones the file the kernel opened.
            "file.path.verified": not (flags & FLAG_PATH_UNVERIFIED),
            "file.path.partial": bool(flags & FLAG_PATH_PARTIAL),
        }
    if op == OP["RUNQ_SUMMARY"]:
        hist = L.array(buf, at, "hist")
        return {
            "cgroup.id": str(r("cgroup_id")),
            "summary.interval_ns": r("interval_ns"),
            "sched.runq.count": r("count"),
            "sched.runq.total_ns": r("total_ns"),
            "sched.runq.p50_ns": histogram_quantile(hist, 0.5),
            "sched.runq.p99_ns": histogram_quantile(hist, 0.99),
            "sched.runq.histogram_log2_ns": _hist_json(hist),
        }
    if op == OP["CGROUP_INFO"]:
        start = at + L.size
        path = bytes(buf[start : start + r("path_len")]).decode("utf-8", errors="replace")
        out = {"cgroup.id": str(r("cgroup_id")), "cgroup.path": path}
        for pattern in CONTAINER_PATTERNS:
            m = pattern.search(path)
            if m:
                out["container.id"] = m.group(1)
                break
        pod = POD_PATTERN.search(path)
        if pod:
            out["k8s.pod.uid"] = pod.group(1).replace("_", "-")
        return out
    if op == OP["CGROUP_STATS"]:
        out = {"cgroup.id": str(r("cgroup_id"))}
        for name in L.fields:
            if name not in ("hdr", "cgroup_id"):
                out[f"cgroup.{name}"] = r(name)
        return out
    if op in (OP["DNS_RESPONSE"], OP["DNS_TIMEOUT"]):
        family, rcode, qtype = r("family"), r("rcode"), r("qtype")
        return {
            "process.pid": r("pid"),
            "process.executable.name": cstr("comm"),
            "cgroup.id": str(r("cgroup_id")),
            "network.transport": "tcp" if r("transport") == 6 else "udp",
            "network.type": "ipv6" if family == AF_INET6 else "ipv4",
            "network.local.address": format_address(L.raw(buf, at, "saddr"), family),
            "network.local.port": r("sport"),
            "server.address": format_address(L.raw(buf, at, "daddr"), family),
            "server.port": r("dport"),
            "dns.question.name": cstr("name"),
            "dns.question.type": DNS_QTYPES.get(qtype, f"TYPE{qtype}"),
            "dns.question.type_code": qtype,
            "dns.id": r("id"),
            "dns.flags": r("dns_flags"),
            "dns.response_code": "TIMEOUT" if op == OP["DNS_TIMEOUT"] else DNS_RCODES[rcode] if rcode < len(DNS_RCODES) else f"RCODE{rcode}",
            "dns.rcode": rcode,
            "dns.answer_count": r("ancount"),
            "dns.latency_ns": r("latency_ns"),
        }
    if op == OP["DNS_LOOKUPS"]:
        return {
            "cgroup.id": str(r("cgroup_id")),
            "summary.interval_ns": r("interval_ns"),
            "dns.lookups": r("count"),
        }
    if op == OP["PROBE_STATS"]:
        out = {
            "probe.sample_n": r("sample_n"),
            "probe.overload_n": r("overload_n"),
            "probe.focus_count": r("focus_count"),
            "probe.interval_ns": r("interval_ns"),
            "probe.emitted": r("emitted"),
        }
        for i, d in enumerate(L.array(buf, at, "drops")):
            out[f"probe.drops.{DROP_REASON_NAMES[i] if i < len(DROP_REASON_NAMES) else i}"] = d
        out["probe.sink_dropped"] = r("sink_dropped")
        return out
    return {}


def _decode_record(buf: memoryview, off: int, node: str, boot_time_ns: int) -> dict:
    h = lambda name: EVENT_HEADER.read(buf, off, name)  # noqa: E731
    op, flags, ktime = h("op"), h("flags"), h("ktime_ns")
    wall = boot_time_ns + ktime
    event = {
        "probe": PROBE_OF_OP.get(op, "unknown"),
        "time_unix_nano": str(wall),
        "time": datetime.fromtimestamp(wall // 1_000_000 / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "ktime_ns": str(ktime),
        "node": node,
        "truncated": bool(flags & FLAG_TRUNCATED),
        "focused": bool(flags & FLAG_FOCUS),
        "generation": h("generation"),
        "sample_weight": h("sample_weight"),
    }
    if op not in STRUCT_OF_OP:
        event["type"] = f"unknown.{op}"
        event["attributes"] = {"host.name": node}
        return event
    event["type"] = OP_TYPE[op]
    attributes = _attributes(op, flags, buf, off)
    attributes["host.name"] = node
    event["attributes"] = attributes
    if op == OP["PROBE_STATS"]:
        probe = LAYOUTS["tf_probe_stats"].read(buf, off, "probe")
        event["probe"] = SOURCE_NAMES[probe] if probe < len(SOURCE_NAMES) else f"probe.{probe}"
    return event


def decode_frame(data: bytes) -> Frame:
    buf = memoryview(data)
    fixed = FRAME_HEADER.size
    if len(buf) < fixed:
        raise FrameError(f"frame is {len(buf)} bytes, shorter than the {fixed}-byte header", "truncated", 0)
    f = lambda name: FRAME_HEADER.read(buf, 0, name)  # noqa: E731
    magic, version, header_len = f("magic"), f("version"), f("header_len")
    count, records_len, node_len = f("event_count"), f("records_len"), f("node_len")
    if magic != FRAME_MAGIC:
        raise FrameError(f"bad frame magic 0x{magic:x}", "bad-magic", FRAME_HEADER.offset("magic"))
    if version != FRAME_VERSION:
        raise FrameError(f"unsupported frame version {version}", "unsupported-version", FRAME_HEADER.offset("version"))
    if header_len < fixed or header_len % 8 or fixed + node_len > header_len:
        raise FrameError(f"bad header_len {header_len}", "bad-header", FRAME_HEADER.offset("header_len"))
    if header_len + records_len != len(buf):
        reason = "truncated" if header_len + records_len > len(buf) else "bad-header"
        raise FrameError(f"frame says {header_len}+{records_len} bytes but has {len(buf)}", reason, FRAME_HEADER.offset("records_len"))
    # Invalid UTF-8 is replaced (U+FFFD), as the TypeScript decoder does.
    node = bytes(buf[fixed : fixed + node_len]).decode("utf-8", errors="replace")
    frame = Frame(version, node, f("boot_time_ns"), f("sequence"), count)
    off = header_len
    end = len(buf)
    info = LAYOUTS["tf_cgroup_info"]
    while off < end:
        rel = off - header_len
        if end - off < EVENT_HEADER.size:
            raise FrameError(f"record at {rel} is cut short", "truncated", rel)
        op, size = EVENT_HEADER.read(buf, off, "op"), EVENT_HEADER.read(buf, off, "size")
        if size < EVENT_HEADER.size or size % 8:
            raise FrameError(f"record at {rel} has size {size}", "bad-record-size", rel)
        if off + size > end:
            raise FrameError(f"record at {rel} runs past the frame", "truncated", rel)
        if op in RECORD_SIZE and RECORD_SIZE[op] != size:
            raise FrameError(f"op {op} must be {RECORD_SIZE[op]} bytes, is {size}", "bad-record-size", rel)
        if op == OP["CGROUP_INFO"] and (size < info.size or info.size + info.read(buf, off, "path_len") > size):
            raise FrameError(f"cgroup info record at {rel}: path does not fit in {size} bytes", "bad-record-size", rel)
        frame.events.append(_decode_record(buf, off, node, f("boot_time_ns")))
        off += size
    if len(frame.events) != count:
        raise FrameError(f"frame says {count} events but holds {len(frame.events)}", "count-mismatch", FRAME_HEADER.offset("event_count"))
    return frame


def decode_events(frame: Frame) -> list:
    """The frame's events, each named by the frame's cgroup.info records (as decodeEvents in TypeScript)."""
    names = {}
    for e in frame.events:
        if e["type"] == "cgroup.info":
            names[e["attributes"]["cgroup.id"]] = {k: v for k, v in e["attributes"].items() if k not in ("cgroup.id", "host.name")}
    if names:
        for e in frame.events:
            if e["type"] != "cgroup.info":
                e["attributes"].update(names.get(e["attributes"].get("cgroup.id"), {}))
    return frame.events


def main(paths: list[str]) -> int:
    for path in paths:
        with open(path, "rb") as f:
            frame = decode_frame(f.read())
        for event in decode_events(frame):
            print(json.dumps(event, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
