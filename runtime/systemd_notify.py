"""sd_notify for ``Type=notify`` services (jetson/systemd/biomoe-edge.service), standard library only.

systemd passes a datagram socket in ``$NOTIFY_SOCKET``; the gateway reports ``READY=1`` once running,
``WATCHDOG=1`` from its event loop (a hung loop misses them and systemd restarts the service) and
``STOPPING=1`` on the way out. Outside systemd every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def sd_notify(state: str, *, environ=None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to systemd; False when not run by systemd or the send failed."""
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        # The service keeps running; systemd will say what it missed (start timeout or watchdog).
        log.warning("sd_notify(%r) to %s failed: %s", state, address, exc)
        return False
    return True


def watchdog_interval_s(*, environ=None) -> float | None:
    """Half the watchdog period systemd asks for (``$WATCHDOG_USEC``), or None when there is no watchdog."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None
