# SPDX-License-Identifier: Apache-2.0
"""Feeds length-prefixed frames from stdin to clients/python/tracefeed_frame.py.

Each case must decode or raise FrameError (with a reason and an offset);
anything else is a failure. Prints one JSON summary line on stdout:
{"cases", "ok", "frame_errors", "failures": [{"index", "error", "hex"}], "seconds"}.
"""
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "clients", "python"))
from tracefeed_frame import FrameError, decode_frame  # noqa: E402

REASONS = {"bad-magic", "unsupported-version", "truncated", "bad-header", "bad-record-size", "count-mismatch"}


def main() -> int:
    data = sys.stdin.buffer.read()
    off = cases = ok = errors = 0
    failures = []
    t0 = time.perf_counter()
    while off + 4 <= len(data):
        (n,) = struct.unpack_from("<I", data, off)
        case = data[off + 4 : off + 4 + n]
        off += 4 + n
        started = time.perf_counter()
        try:
            decode_frame(case)
            ok += 1
        except FrameError as e:
            errors += 1
            if e.reason not in REASONS or not isinstance(e.offset, int):
                failures.append({"index": cases, "error": f"FrameError without a known reason: {e.reason}", "hex": case.hex()})
        except Exception as e:  # noqa: BLE001 - the point is to catch anything else
            failures.append({"index": cases, "error": f"{type(e).__name__}: {e}", "hex": case.hex()})
        if time.perf_counter() - started > 1.0:
            failures.append({"index": cases, "error": "took over 1 s", "hex": case.hex()})
        cases += 1
    print(json.dumps({"cases": cases, "ok": ok, "frame_errors": errors, "failures": failures[:5],
                      "failure_count": len(failures), "seconds": time.perf_counter() - t0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
