"""The gateway speaks sd_notify to systemd (jetson/systemd/biomoe-edge.service is Type=notify with a watchdog):
checked over a real AF_UNIX datagram socket, the way systemd listens."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from biomoe_edge.runtime.systemd_notify import sd_notify, watchdog_interval_s


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
    config = tmp_path / "gateway.toml"
    config.write_text('[engine]\nkind = "pytorch"\nrandom_weights = true\n')  # no [[devices]]: the gateway idles, as on a fresh install
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
    config = tmp_path / "gateway.toml"
    config.write_text('[engine]\nkind = "pytorch"\nrandom_weights = true\n\n[[sinks]]\nkind = "jsonl"\ndirectory = "out"\n')
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
