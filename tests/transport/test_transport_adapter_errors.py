"""Adapter problems say what to do: the production connection code on bleak's real BlueZ backend, with the D-Bus
system bus missing (a socket path that does not exist) and with a real dbus-daemon on which BlueZ is not running.

No Bluetooth adapter is faked: the cases that need a real BlueZ (adapter absent, powered off, access denied) are
checked on the exception objects bleak's BlueZ backend raises for them."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess

import pytest

from biomoe_edge.runtime.transport import DeviceConnection, DeviceTarget, TransportBackend
from biomoe_edge.runtime.transport.adapter_errors import adapter_problem, describe_error, system_bus_socket

pytest.importorskip("bleak", reason="the transport runs bleak")


async def _first_failure(adapter: str, caplog) -> tuple[DeviceConnection, list]:
    """Run one allow-listed device on the platform (BlueZ) backend until its first attempt failed."""
    states = []
    connection = DeviceConnection(
        DeviceTarget(name="biomoe-wrist-1"), on_packet=lambda *a: None,
        on_state=lambda device, state, reason: states.append((device, state, reason)),
        backend=TransportBackend.platform(adapter=adapter), scan_timeout_s=1.0)
    with caplog.at_level(logging.WARNING, logger="biomoe_edge.runtime.transport.connection"):
        await connection.start()
        for _ in range(500):
            if connection.stats.failed_attempts:
                break
            await asyncio.sleep(0.01)
        await connection.stop()
    assert connection.stats.failed_attempts >= 1, states
    return connection, states


async def test_a_missing_dbus_socket_names_the_adapter_the_socket_and_the_fix(tmp_path, monkeypatch, caplog):
    socket = tmp_path / "no-such-dir" / "system_bus_socket"
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={socket}")
    connection, states = await _first_failure("hci0", caplog)
    message = connection.stats.last_error
    assert message.startswith(f"Bluetooth adapter hci0: no D-Bus system bus ({socket} does not exist)")
    assert "sudo systemctl start dbus bluetooth" in message and "DBUS_SYSTEM_BUS_ADDRESS is set to" in message
    assert "FileNotFoundError" not in message
    # The state callback and the one warning a user sees carry the same message.
    assert ("biomoe-wrist-1", "disconnected", message) in states
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(f"biomoe-wrist-1: {message}; retrying")


@pytest.fixture
def dbus_without_bluez(tmp_path):
    """A real dbus-daemon on a private socket, as the system bus, on which nothing owns org.bluez."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.skip("dbus-daemon is not installed (Debian: apt-get install dbus): the no-BlueZ case needs a real bus")
    socket = tmp_path / "system_bus_socket"
    config = tmp_path / "bus.conf"
    config.write_text(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/>
  </policy>
</busconfig>
""")
    process = subprocess.Popen([daemon, f"--config-file={config}", "--nofork", "--print-address"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        address = process.stdout.readline().strip()
        if not address:
            pytest.skip("dbus-daemon did not start here")
        yield f"unix:path={socket}"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_dbus_without_bluez_says_to_start_bluetoothd(dbus_without_bluez, monkeypatch, caplog):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", dbus_without_bluez)
    connection, _ = await _first_failure("hci1", caplog)
    message = connection.stats.last_error
    assert message.startswith("Bluetooth adapter hci1: BlueZ (bluetoothd, bus name org.bluez) is not running")
    assert "sudo systemctl enable --now bluetooth" in message


def _bleak_exc():
    return pytest.importorskip("bleak.exc")


def test_adapter_absent_powered_off_and_denied_each_name_the_adapter_and_the_fix():
    exc = _bleak_exc()
    reason = exc.BleakBluetoothNotAvailableReason
    # What bleak's BlueZ backend raises: StartDiscovery on a powered-off adapter answers NotReady; the manager's
    # own checks raise "adapter 'hciN' not found" and BleakBluetoothNotAvailableError; BlueZ's D-Bus policy
    # answers AccessDenied to users outside the bluetooth group.
    cases = {
        "powered_off": [exc.BleakDBusError("org.bluez.Error.NotReady", ["Resource Not Ready"]),
                        exc.BleakBluetoothNotAvailableError("No powered Bluetooth adapters found.", reason.POWERED_OFF)],
        "no_adapter": [exc.BleakError("adapter 'hci1' not found"),
                       exc.BleakBluetoothNotAvailableError("No Bluetooth adapters found.", reason.NO_BLUETOOTH)],
        "permission_denied": [exc.BleakDBusError("org.freedesktop.DBus.Error.AccessDenied",
                                                 ["Rejected send message"]),
                              PermissionError(13, "Permission denied")],
    }
    fixes = {"powered_off": "bluetoothctl power on", "no_adapter": "bluetoothctl list",
             "permission_denied": "bluetooth` group"}
    for expected, errors in cases.items():
        for error in errors:
            problem = adapter_problem(error, "hci1")
            assert problem is not None and problem.reason == expected, (error, problem)
            assert problem.message.startswith("Bluetooth adapter hci1") and fixes[expected] in problem.message
    assert "capabilities" in adapter_problem(PermissionError(13, "Permission denied"), "hci0").message


def test_other_failures_keep_their_own_text():
    assert adapter_problem(LookupError("not found: no allow-listed advertisement in 10 s")) is None
    assert describe_error(TimeoutError()) == "TimeoutError"
    assert describe_error(ConnectionError("disconnected during set-up")) == "ConnectionError: disconnected during set-up"
    exc = _bleak_exc()
    assert adapter_problem(exc.BleakDBusError("org.bluez.Error.Failed", ["le-connection-abort-by-local"])) is None


def test_bus_socket_is_read_from_the_address(monkeypatch):
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    assert system_bus_socket() == "/var/run/dbus/system_bus_socket"
    assert system_bus_socket("tcp:host=x,port=1;unix:path=/run/a,guid=1") == "/run/a"
    assert system_bus_socket("unix:abstract=/tmp/dbus-x") == "@/tmp/dbus-x"
