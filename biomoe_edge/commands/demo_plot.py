"""The demo report's timeline as a picture beside report.json: latency of the recent embeddings, and embeddings,
packets lost and samples dropped over the run (matplotlib, the viz extra)."""

from __future__ import annotations

import pathlib


def write_timeline_png(report: dict, path) -> pathlib.Path:
    """Two panels from ``report["timeline"]`` (one point per console tick): latency p50/p95 (ms), and the
    counters (embeddings; packets lost and samples dropped, on their own axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = report.get("timeline") or []
    t = [p["t_s"] for p in points]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, dpi=110)
    for key, label in (("latency_p50_ms", "p50"), ("latency_p95_ms", "p95")):
        top.plot(t, [float("nan") if p[key] is None else p[key] for p in points], marker=".", label=label)
    top.set_ylabel("latency from sample arrival (ms)")
    top.legend(fontsize=8)
    bottom.plot(t, [p["embeddings"] for p in points], color="black", label="embeddings")
    bottom.set_ylabel("embeddings so far")
    lost = bottom.twinx()
    lost.plot(t, [p["packets_lost"] for p in points], color="tab:red", label="packets lost")
    lost.plot(t, [p["samples_dropped"] for p in points], color="tab:orange", label="samples dropped")
    lost.set_ylabel("lost / dropped so far")
    lost.legend(fontsize=8, loc="upper left")
    bottom.set_xlabel("seconds since the start")
    model = report.get("model") or {}
    caveat = "; RANDOM weights" if model.get("random_weights") else ""
    settings = report.get("settings", {})
    figure.suptitle(f"biomoe-edge demo: {settings.get('devices')} wearables, loss {settings.get('loss')}{caveat}",
                    fontsize=10)
    figure.tight_layout()
    path = pathlib.Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path
