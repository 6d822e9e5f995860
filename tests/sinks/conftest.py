"""A real Mosquitto broker on loopback (Debian's /usr/sbin/mosquitto), started and stopped by the tests."""

from __future__ import annotations

import getpass
import pathlib
import shutil
import signal
import socket
import subprocess
import time

import pytest


def _mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if pathlib.Path(p).exists()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"mosquitto did not open port {port} within {timeout_s} s")


class MosquittoBroker:
    """One broker process on 127.0.0.1:port with persistence in a temp folder (so a restart keeps the
    subscriptions and queued QoS 1 messages of persistent sessions, like a production broker)."""

    def __init__(self, binary: str, workdir: pathlib.Path, *, listener_options: str = "",
                 allow_anonymous: bool = True):
        self.binary = binary
        self.port = _free_port()
        self.workdir = workdir
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            + listener_options +
            f"allow_anonymous {str(allow_anonymous).lower()}\n"
            # Stay the user running the tests: as root, mosquitto would otherwise switch to user "mosquitto",
            # which cannot write the persistence file into pytest's private temp folder.
            f"user {getpass.getuser()}\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "log_dest stderr\n"
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=open(self.workdir / "broker.log", "ab"))
        _wait_for_port(self.port)
        time.sleep(0.1)
        if self.process.poll() is not None:  # it could not bind: something else took the port meanwhile
            raise RuntimeError(f"mosquitto exited at start (port {self.port}); see {self.workdir / 'broker.log'}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # SIGTERM: mosquitto saves its persistence file
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def _binary_or_skip() -> str:
    binary = _mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto not installed (Debian: apt-get install mosquitto); .ci/run installs it")
    return binary


@pytest.fixture
def mosquitto(tmp_path):
    broker = MosquittoBroker(_binary_or_skip(), tmp_path)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def make_broker(tmp_path):
    """Start brokers with other listener settings (TLS, passwords); each stopped at the end of the test."""
    brokers = []

    def make(name: str = "broker", **options) -> MosquittoBroker:
        workdir = tmp_path / name
        workdir.mkdir()
        broker = MosquittoBroker(_binary_or_skip(), workdir, **options)
        broker.start()
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory):
    """A test CA, a broker certificate for 127.0.0.1 and localhost, one for another host name, and a client
    certificate, all made here (cryptography)."""
    from mqtt_clients import make_certificates

    return make_certificates(tmp_path_factory.mktemp("pki"))
