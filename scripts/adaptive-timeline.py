"""Draws the scenario timeline: bytes/s to Kafka over time for the adaptive and
full-rate passes, incident spans, and the feedback loop's actions.

usage: python scripts/adaptive-timeline.py docs/adaptive.json docs/adaptive-timeline.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def rates(samples):
    xs, ys = [], []
    for a, b in zip(samples, samples[1:]):
        dt = (b["t_ms"] - a["t_ms"]) / 1000
        if dt > 0:
            xs.append(b["t_ms"] / 1000)
            ys.append((b["bytes"] - a["bytes"]) / dt / 1024)
    return xs, ys


def main(src, dst):
    rep = json.load(open(src))
    fig, ax = plt.subplots(figsize=(12, 4.5), dpi=110)
    x, y = rates(rep["adaptive"]["samples"])
    ax.plot(x, y, color="tab:blue", lw=1.2, label="adaptive (KiB/s)")
    if rep.get("full"):
        fx, fy = rates(rep["full"]["samples"])
        ax.plot(fx, fy, color="tab:red", lw=0.8, alpha=0.6, label="every family at full rate (KiB/s)")
    ax.set_yscale("symlog", linthresh=1)
    for s in rep["adaptive"]["spans"]:
        ax.axvspan(s["start_ms"] / 1000, s["end_ms"] / 1000, color="orange", alpha=0.2)
        ax.text(s["start_ms"] / 1000, 1.01, s["incident"], transform=ax.get_xaxis_transform(),
                fontsize=8, rotation=20, va="bottom")
    styles = {"anomaly": ("purple", ":"), "applied": ("green", "-"), "reverted": ("gray", "--")}
    seen = set()
    for a in rep["adaptive"]["actions"]:
        color, ls = styles[a["kind"]]
        ax.axvline(a["t_ms"] / 1000, color=color, ls=ls, lw=0.9,
                   label=None if a["kind"] in seen else a["kind"])
        seen.add(a["kind"])
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("bytes/s to Kafka (KiB/s, symlog)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(dst)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
