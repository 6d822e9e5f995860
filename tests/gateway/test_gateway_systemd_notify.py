"""The gateway speaks sd_notify to systemd (jetson/systemd/biomoe-edge.service is Type=notify with a watchdog):
checked over a real AF_UNIX datagram socket, the way systemd listens.

The gateway runs on ONNX Runtime, as on a Jetson without PyTorch: these tests belong to the gateway path that CI
runs on Python 3.10 and 3.12 too."""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from biomoe_edge.manifest import write_manifest
from biomoe_edge.runtime.systemd_notify import sd_notify, watchdog_interval_s


def onnx_engine_config(tmp_path, extra: str = "") -> pathlib.Path:
    """gateway.toml on an ONNX Runtime engine: a small real ONNX graph with the engine's interface (images (B, 3, 224,
    224) float32 -> (B, 192) float32: the mean of each colour plane times a fixed matrix) and its export manifest.
    The gateway only starts, idles and stops here, so what the model computes does not matter; Tiny-BioMoE's own
    graph would need PyTorch to export."""
    weights = numpy_helper.from_array(np.random.default_rng(0).standard_normal((3, 192)).astype(np.float32), "weights")
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
         helper.make_node("MatMul", ["flat", "weights"], ["embeddings"])],
        "channel_means", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", 192])], initializer=[weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what ONNX Runtime 1.18 (the SDK's lower bound) reads
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp_path / "model.onnx"))
    # The manifest `biomoe-edge export` would write (with the file's sha256): no checkpoint, so random weights.
    write_manifest(tmp_path / "model.onnx", {"precision": "fp32", "max_batch": 4, "random_weights": True})
    config = tmp_path / "gateway.toml"
    config.write_text(f'[engine]\nkind = "onnxruntime"\npath = "model.onnx"\n{extra}')
    return config


def listening_socket(path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    return sock


def received(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except (TimeoutError, socket.timeout):
            return messages


def test_sd_notify_sends_the_state_and_is_a_no_op_outside_systemd(tmp_path):
    path = tmp_path / "notify"
    with listening_socket(path) as sock:
        assert sd_notify("READY=1", environ={"NOTIFY_SOCKET": str(path)})
        assert received(sock) == ["READY=1"]
    assert not sd_notify("READY=1", environ={})
    # a socket that is gone: reported, never raised
    assert not sd_notify("READY=1", environ={"NOTIFY_SOCKET": str(tmp_path / "gone")})


def test_watchdog_interval_is_half_the_period_and_only_for_our_pid():
    assert watchdog_interval_s(environ={"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval_s(environ={"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval_s(environ={"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval_s(environ={}) is None


def test_run_reports_ready_pings_the_watchdog_and_says_stopping(tmp_path):
    config = onnx_engine_config(tmp_path)  # no [[devices]]: the gateway idles, as on a fresh install
    path = tmp_path / "notify"
    env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"}
    with listening_socket(path) as sock:
        result = subprocess.run(
            [sys.executable, "-m", "biomoe_edge", "run", str(config), "--duration", "2.5", "--quiet"],
            env=env, capture_output=True, text=True, timeout=240,
        )
        messages = received(sock)
    assert result.returncode == 0, result.stderr
    assert messages[0] == "READY=1"
    assert messages[-1] == "STOPPING=1"
    assert messages.count("WATCHDOG=1") >= 3  # every 0.5 s for 2.5 s


def test_sigterm_stops_the_gateway_cleanly_with_stopping_and_closed_files(tmp_path):
    config = onnx_engine_config(tmp_path, '\n[[sinks]]\nkind = "jsonl"\ndirectory = "out"\n')
    path = tmp_path / "notify"
    env = {**os.environ, "NOTIFY_SOCKET": str(path)}
    with listening_socket(path) as sock:
        sock.settimeout(120)
        proc = subprocess.Popen([sys.executable, "-m", "biomoe_edge", "run", str(config), "--quiet"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert sock.recv(4096).decode() == "READY=1"
            proc.send_signal(signal.SIGTERM)  # what `systemctl stop` sends
            _, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
        sock.settimeout(0.2)
        messages = received(sock)
    assert proc.returncode == 0, stderr
    assert messages[-1:] == ["STOPPING=1"]
    assert not list((tmp_path / "out").glob("*.partial"))  # the sink closed its file
