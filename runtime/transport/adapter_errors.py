"""Why the gateway cannot use the Bluetooth adapter, in one message that names the adapter and the fix.

On Linux, bleak reaches the adapter through BlueZ (``bluetoothd``) over the D-Bus system bus. When a link of
that chain is missing, what surfaces is low-level: a ``FileNotFoundError`` without a path when the bus socket
is absent, ``[org.freedesktop.DBus.Error.ServiceUnknown]`` when BlueZ is not running, ``[org.bluez.Error.NotReady]``
when the adapter is powered off. :func:`adapter_problem` recognises each of these and says what to do:

=================  ===================================================================================
reason             fix
=================  ===================================================================================
no_dbus            start D-Bus (``sudo systemctl start dbus``); in a container, mount the host's socket
no_bluez           install and start BlueZ (``sudo systemctl enable --now bluetooth``)
no_adapter         plug in / unblock the adapter, or name the right one in ``transport.adapter``
powered_off        ``bluetoothctl power on`` (``rfkill unblock bluetooth`` if blocked)
permission_denied  the ``bluetooth`` group (BlueZ's D-Bus policy); for the service, its user, groups,
                   capabilities and address families
=================  ===================================================================================

Anything else (a device out of range, a refused connection) is not an adapter problem: :func:`describe_error`
then gives the exception's own text. bleak is imported only to recognise its exception types.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Where libdbus and dbus-fast look for the system bus when ``DBUS_SYSTEM_BUS_ADDRESS`` is not set.
DEFAULT_SYSTEM_BUS_ADDRESS = "unix:path=/var/run/dbus/system_bus_socket"

REASONS = ("no_dbus", "no_bluez", "no_adapter", "powered_off", "permission_denied")

_DBUS_NO_BLUEZ = ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner")
_DBUS_DENIED = ("org.freedesktop.DBus.Error.AccessDenied", "org.bluez.Error.NotPermitted",
                "org.bluez.Error.NotAuthorized", "org.freedesktop.DBus.Error.AuthFailed")
_DBUS_NO_ADAPTER = ("org.freedesktop.DBus.Error.UnknownObject", "org.freedesktop.DBus.Error.UnknownMethod",
                    "org.freedesktop.DBus.Error.UnknownInterface")
_DBUS_POWERED_OFF = ("org.bluez.Error.NotReady",)


@dataclass(frozen=True)
class AdapterProblem:
    """What stops the gateway from using the adapter: ``reason`` (one of ``REASONS``), the adapter as the user
    configured it, and the message (what is wrong, then ``Fix:`` what to do)."""

    reason: str
    adapter: str
    message: str

    def __str__(self) -> str:
        return self.message


def system_bus_address() -> str:
    """The D-Bus system bus address bleak connects to (``DBUS_SYSTEM_BUS_ADDRESS`` or the default)."""
    return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS_ADDRESS


def system_bus_socket(address: str | None = None) -> str | None:
    """The socket path of the first ``unix:path=`` (or ``abstract=``) transport in a D-Bus address."""
    for transport in (address or system_bus_address()).split(";"):
        kind, _, params = transport.partition(":")
        if kind != "unix":
            continue
        for param in params.split(","):
            name, _, value = param.partition("=")
            if name == "path":
                return value
            if name == "abstract":
                return "@" + value
    return None


def adapter_label(adapter: str | None) -> str:
    return f"Bluetooth adapter {adapter}" if adapter else "the default Bluetooth adapter"


def adapter_of(backend) -> str | None:
    """The BlueZ adapter a ``TransportBackend`` scans with (None: bleak's default; Bumble: no adapter)."""
    kwargs = getattr(backend, "scanner_kwargs", None) or {}
    return (kwargs.get("bluez") or {}).get("adapter")


def _bleak_error_kind(exc: BaseException) -> tuple[str | None, str]:
    """(``dbus_error`` or bleak's not-available reason name, detail) of a bleak exception, else (None, "")."""
    try:
        from bleak.exc import BleakBluetoothNotAvailableError, BleakDBusError, BleakError
    except ImportError:  # bleak missing: nothing of it to recognise
        return None, ""
    if isinstance(exc, BleakDBusError):
        return exc.dbus_error, exc.dbus_error_details or ""
    if isinstance(exc, BleakBluetoothNotAvailableError):
        return exc.reason.name, str(exc.args[0]) if exc.args else ""
    if isinstance(exc, BleakError):
        text = str(exc)
        # bleak's BlueZ manager: "adapter 'hci1' not found" when the configured adapter is not in BlueZ.
        if text.startswith("adapter '") and text.endswith("not found"):
            return "ADAPTER_NOT_FOUND", text
    return None, ""


def adapter_problem(exc: BaseException, adapter: str | None = None) -> AdapterProblem | None:
    """The adapter problem ``exc`` (raised by a bleak scan or connect) stands for, or None if it is none."""
    label = adapter_label(adapter)
    name = adapter or "hci0"
    kind, detail = _bleak_error_kind(exc)
    detail = f" ({detail})" if detail else ""

    socket = system_bus_socket() or system_bus_address()
    # dbus-fast's connect() raises these without a file name; a FileNotFoundError while the socket exists came
    # from somewhere else.
    bus_gone = isinstance(exc, ConnectionRefusedError) or (
        isinstance(exc, FileNotFoundError) and (socket.startswith("@") or not os.path.exists(socket)))
    if bus_gone and getattr(exc, "filename", None) is None:
        what = "does not exist" if isinstance(exc, FileNotFoundError) else "refuses connections (no daemon on it)"
        where = (f"; DBUS_SYSTEM_BUS_ADDRESS is set to {system_bus_address()!r}: correct or unset it"
                 if os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") else "; in a container, mount the host's /var/run/dbus")
        return AdapterProblem("no_dbus", name, (
            f"{label}: no D-Bus system bus ({socket} {what}), so bleak cannot reach BlueZ. "
            f"Fix: start D-Bus and BlueZ (`sudo systemctl start dbus bluetooth`){where}"))
    if isinstance(exc, PermissionError) or kind in _DBUS_DENIED or (kind or "").startswith("DENIED_BY"):
        return AdapterProblem("permission_denied", name, (
            f"{label}: permission denied{detail or f' ({exc})'}: BlueZ lets only root and members of the "
            f"`bluetooth` group use it over D-Bus. Fix: `sudo usermod -aG bluetooth $USER` and log in again; for "
            f"the systemd service, check that its user is in the `bluetooth` group and what the unit allows "
            f"(User=, SupplementaryGroups=, its capabilities, RestrictAddressFamilies= keeping AF_UNIX for D-Bus; "
            f"jetson/systemd/biomoe-edge.service)"))
    if kind in _DBUS_NO_BLUEZ:
        return AdapterProblem("no_bluez", name, (
            f"{label}: BlueZ (bluetoothd, bus name org.bluez) is not running on the D-Bus system bus{detail}. "
            f"Fix: `sudo apt-get install bluez`, then `sudo systemctl enable --now bluetooth`"))
    if kind in _DBUS_POWERED_OFF or kind == "POWERED_OFF":
        return AdapterProblem("powered_off", name, (
            f"{label} is powered off{detail}. Fix: `bluetoothctl power on` (`rfkill unblock bluetooth` first if "
            f"`rfkill list` shows it blocked); AutoEnable=true in /etc/bluetooth/main.conf powers it at boot"))
    if kind in _DBUS_NO_ADAPTER or kind in ("ADAPTER_NOT_FOUND", "NO_BLUETOOTH", "NO_BLE_CENTRAL_ROLE"):
        which = "has no Bluetooth LE adapter" if kind in ("NO_BLUETOOTH", "NO_BLE_CENTRAL_ROLE") else f"has no {name}"
        return AdapterProblem("no_adapter", name, (
            f"{label} not found: BlueZ runs but {which}{detail}. Fix: plug in the adapter (`rfkill list`, "
            f"`dmesg | grep -i bluetooth`), and name one that `bluetoothctl list` shows in [transport] adapter"))
    return None


def describe_error(exc: BaseException, adapter: str | None = None) -> str:
    """One line for logs and reports: the adapter problem's message, else ``Type: text`` of the exception."""
    problem = adapter_problem(exc, adapter)
    if problem is not None:
        return problem.message
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
