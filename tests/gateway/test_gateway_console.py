"""The console tells the truth: the demo's final screen says what its JSON report says (one snapshot), drops are
shown with their reasons, warnings stay on screen during the live view, random weights are said everywhere, and
``biomoe-edge run`` ends with a closing summary that names why a device never connected."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("bumble", reason="the demo's wearables run on Bumble")
pytest.importorskip("torch", reason="the test's engine is the PyTorch engine (no ONNX export in the test budget)")


def _cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_the_final_screen_and_the_json_report_say_the_same(tmp_path):
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "biomoe_edge", "demo", "--duration", "8", "--devices", "2", "--modalities", "ppg,eda",
         "--window", "4", "--loss", "0.1", "--seed", "3", "--engine", "pytorch", "--random-weights",
         "--report", str(report_path)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    screen, report = proc.stdout, json.loads(report_path.read_text())
    # The model, in the status panel and the JSON.
    assert "RANDOM WEIGHTS (seed 0)" in screen and "random_weights: true" in screen
    assert report["model"]["random_weights"] is True and report["settings"]["random_weights_seed"] == 0
    # The headline.
    lat = report["latency_ms"]
    assert (f"biomoe-edge demo: {report['duration_s']:.1f} s, {report['embeddings']} embeddings of 192 values; "
            f"latency from sample arrival p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, p99 {lat['p99']:.1f} ms"
            in screen)
    assert all(v == round(v, 1) for v in lat.values())
    # Every setting, on screen and in the JSON ("ppg" is accepted for bvp).
    assert report["settings"]["modalities"] == ["bvp", "eda"] and report["settings"]["loss"] == 0.1
    assert "loss 0.1, modalities bvp,eda, spectrogram_psd, windows 4 s every 1 s, engine pytorch" in screen
    # Every stream's row is its JSON entry, drops with their reasons.
    rows = {tuple(_cells(line)[:2]): _cells(line) for line in screen.splitlines() if line.startswith("biomoe-demo-")}
    assert len(rows) == len(report["streams"]) == 4
    for entry in report["streams"]:
        row = rows[(entry["device"], entry["modality"])]
        numbers = [entry[k] for k in ("packets_received", "packets_lost", "samples_received", "samples_windowed",
                                      "samples_pending")]
        assert row[2:7] == [str(n) for n in numbers]
        dropped = entry["samples_dropped"]
        expected = ", ".join(f"{n} {r}" for r, n in sorted(dropped.items(), key=lambda item: -item[1]) if n) or "0"
        assert row[7] == expected and row[8] == str(entry["embeddings"])
        assert entry["samples_received"] == (entry["samples_windowed"] + entry["samples_pending"]
                                             + sum(dropped.values()))
    # Each reason that occurs is explained on screen and in the JSON.
    for reason in report["drop_reasons"]:
        assert f"{reason}: " in screen
    assert sum(e["packets_lost"] for e in report["streams"]) > 0  # 10 % loss: the screen had losses to show


class _Terminal(io.StringIO):
    """A terminal for rich (the live view is drawn only on one)."""

    def isatty(self) -> bool:
        return True


def test_warnings_stay_in_the_live_view_and_reach_the_report():
    from biomoe_edge.commands.demo import open_demo_engine, run_demo

    terminal = _Terminal()
    engine = open_demo_engine("pytorch", None, max_batch=8)
    try:
        report, _, _ = asyncio.run(run_demo(
            duration_s=4.0, devices=1, loss=0.0, engine=engine, modalities=("bvp",), representations=("waveform",),
            window_s=3.0, hop_s=1.0, seed=5, out=terminal, wearable_options={"garbage": 0.2}))
    finally:
        engine.close()
    frames = terminal.getvalue()
    garbage = [w for w in report["warnings"] if "garbage" in w["message"] or "not a packet" in w["message"]]
    assert garbage, report["warnings"]
    # The last live frame drawn still shows the warning, in the status panel above the table.
    last_frame = frames[frames.rindex("status"):]
    assert garbage[0]["message"][:40] in re.sub(r"\s*│\s*", " ", last_frame.replace("\n", " "))
    assert "RANDOM WEIGHTS" in last_frame


def test_run_ends_with_a_summary_naming_why_a_device_never_connected(tmp_path):
    """No D-Bus system bus (the socket path does not exist): the production transport on bleak's BlueZ backend."""
    pytest.importorskip("bleak", reason="the transport runs bleak")
    config = tmp_path / "gateway.toml"
    config.write_text('[[devices]]\nname = "biomoe-wrist-1"\nmodalities = ["bvp"]\n[engine]\nmax_batch = 2\n'
                      '[transport]\nadapter = "hci0"\n')
    socket = tmp_path / "no-dbus" / "system_bus_socket"
    env = {**__import__("os").environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={socket}", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "biomoe_edge", "run", str(config), "--duration", "3",
                           "--random-weights", "--report", str(tmp_path / "summary.json")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = " ".join(proc.stdout.split())  # rich wraps long lines
    assert f"biomoe-wrist-1: NEVER CONNECTED" in out
    assert f"Bluetooth adapter hci0: no D-Bus system bus ({socket} does not exist)" in out
    assert "sudo systemctl start dbus bluetooth" in out
    assert "RANDOM WEIGHTS (seed 0)" in out and "random_weights: true" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    (device,) = summary["devices"]
    assert device["connects"] == 0 and device["failed_attempts"] >= 1 and "no D-Bus system bus" in device["last_error"]
    assert summary["model"]["random_weights"] is True
    # The start-up log says what runs, without -v.
    assert 'engine.kind = "auto" chose pytorch for random weights' in proc.stderr
    assert "random_weights: true" in proc.stderr


def test_run_refuses_a_model_path_that_does_not_exist(tmp_path):
    config = tmp_path / "gateway.toml"
    config.write_text('[engine]\nkind = "auto"\npath = "../models/tiny_biomoe_fp32.onnx"\n[[devices]]\nname = "w"\n')
    proc = subprocess.run([sys.executable, "-m", "biomoe_edge", "run", str(config), "--duration", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "engine.path: no model at" in proc.stderr and "tiny_biomoe_fp32.onnx" in proc.stderr
    assert "Traceback" not in proc.stderr and "chose" not in proc.stderr and "RANDOM WEIGHTS" not in proc.stderr


def test_the_demo_asks_for_the_weights():
    proc = subprocess.run([sys.executable, "-m", "biomoe_edge", "demo", "--duration", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "--checkpoint Tiny-BioMoE.pth" in proc.stderr and "--random-weights" in proc.stderr
    assert "github.com/GkikasStefanos/Tiny-BioMoE/releases" in proc.stderr


def test_the_warning_collector_counts_repeats():
    from biomoe_edge.runtime.console import WarningCollector

    collector = WarningCollector()
    logger = logging.getLogger("biomoe_edge.test_console")
    logger.addHandler(collector)
    try:
        for _ in range(3):
            logger.warning("sink %s failed", "mqtt")
        logger.info("not collected")
        logger.error("broken")
    finally:
        logger.removeHandler(collector)
    assert collector.items() == [{"level": "warning", "message": "sink mqtt failed", "count": 3},
                                 {"level": "error", "message": "broken", "count": 1}]
