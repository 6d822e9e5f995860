"""The closing summary of a run says why there is no embedding: no wearable connected (and why), no data, or a run
shorter than a window; never the last when no sample arrived."""

import io

from rich.console import Console

from biomoe_edge.commands.run import idle_reason
from biomoe_edge.runtime.console import summary_view

NO_DBUS = "Bluetooth adapter hci0: no D-Bus system bus"


def _headline(streams, **extra) -> str:
    summary = {"latency_ms": {"p50": None, "p95": None, "p99": None}, "streams": streams, "warnings": [],
               "model": None, "engine": None, "duration_s": 5.0, "embeddings": 0, "embedding_dim": 192,
               "not_embedded": {"images_dropped": {}, "images_render_failed": {}, "images_unfinished_at_exit": 0,
                                "windows_withheld": 0}, **extra}
    out = io.StringIO()
    Console(file=out, width=400).print(summary_view(summary, title="run"))
    return next(line for line in out.getvalue().splitlines() if line.startswith("run: "))


def _stream(samples):
    return {"device": "wrist", "modality": "bvp", "packets_received": samples // 16, "packets_lost": 0,
            "samples_received": samples, "samples_windowed": 0, "samples_pending": samples, "samples_dropped": {},
            "embeddings": 0}


def test_no_wearable_connected_is_said_with_the_reason():
    devices = [{"device": "wrist", "connects": 0, "last_error": NO_DBUS},
               {"device": "chest", "connects": 0, "last_error": NO_DBUS}]
    reason = idle_reason(devices)
    assert reason == {"idle_reason": f"no wearable connected: {NO_DBUS}"}
    assert _headline([_stream(0)], **reason).endswith(f"no embedding (no wearable connected: {NO_DBUS})")
    assert idle_reason([]) == {"idle_reason": "no [[devices]] in the allow-list"}
    assert idle_reason([{"device": "wrist", "connects": 1, "last_error": None}] + devices) == {}


def test_streams_without_samples_are_not_a_short_run():
    assert _headline([_stream(0)]).endswith("no embedding (no wearable delivered data)")
    assert _headline([_stream(320)]).endswith("no embedding (the run was shorter than a window)")
