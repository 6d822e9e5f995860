"""Link security of the gateway's BLE connections: the three levels, what a connected link is, and the identities
pinned to allow-listed names.

``none``: today's behaviour: no pairing; the link is in clear and any device that matches the allow-list is taken.
``encrypted``: the link is paired and encrypted before the gateway reads or subscribes to anything.
``bonded``: LE Secure Connections pairing with a stored bond; the device is known thereafter by its bonded identity
(its identity address, to which the stack resolves its resolvable private addresses through the IRK it gave at
pairing). A device allow-listed by name is pinned to the identity first bonded under that name (``IdentityPins``,
persisted in the gateway's state directory): another device advertising the name is refused before any
connection, and a link whose bonded identity is not the pinned one is refused after pairing.

The link is brought to its level through bleak's own API (``BleakClient.pair()``: BlueZ's ``Device1.Pair``, a
no-op on a device BlueZ has bonded, whose links BlueZ encrypts with the stored key as they come up; the Bumble
backend's SMP). What the link then is comes from the backend where it says so (the Bumble backend's
``link_security()``), or from what BlueZ guarantees after a successful ``Pair`` (see docs/ble.md, "Security").
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import pathlib
import re
import tempfile
from dataclasses import asdict, dataclass

from biomoe_edge.firmware_bridge.profiles.registry import Profile, profile_spec
from biomoe_edge.runtime.transport.allow_list import normalize_address
from biomoe_edge.vocabulary import SecurityLevel

logger = logging.getLogger(__name__)


SECURITY_LEVELS = tuple(level.value for level in SecurityLevel)


def default_security(profile) -> SecurityLevel:
    """The level a device of ``profile`` runs at when its configuration names none: ``bonded`` for the native
    protocol (its boards are ours to make pair; PROTOCOL.md section 11), ``none`` for the standard profiles (what
    the straps and oximeters on the market accept varies; docs/ble.md, "Security" lists what is known)."""
    return SecurityLevel.BONDED if profile_spec(profile).name == Profile.NATIVE.value else SecurityLevel.NONE


@dataclass(frozen=True)
class LinkSecurity:
    """What a connected link is, after ``secure_link``. None where the stack does not say."""

    encrypted: bool
    #: a bond (long-term key) is stored for the peer, so later links are encrypted without pairing again
    bonded: bool
    #: the key comes from LE Secure Connections pairing (False: LE legacy pairing)
    secure_connections: bool | None
    #: the peer's identity address (its resolvable private addresses resolve to it), "AA:BB:CC:DD:EE:FF"
    identity_address: str | None
    #: the keys were made on this link (a pairing), not taken from a stored bond
    paired_now: bool | None
    #: the peer's identity resolving key, hex (BlueZ keeps it in /var/lib/bluetooth, out of the gateway's reach)
    irk: str | None


class SecurityRefused(Exception):
    """The link is not what the device's security level requires. ``reason``: one of the ``REFUSED_*`` phrases
    (what reports count by); ``detail``: what the stack said."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


REFUSED_PAIRING = "pairing refused or failed"
REFUSED_NOT_ENCRYPTED = "link not encrypted"
REFUSED_NO_BOND = "did not bond"
REFUSED_LEGACY = "LE legacy pairing (bonded needs LE Secure Connections)"
REFUSED_NO_IDENTITY = "no identity address"
REFUSED_UNVERIFIABLE = "the backend does not say whether the link is encrypted"


async def secure_link(client, level: SecurityLevel) -> LinkSecurity | None:
    """Bring a connected bleak ``client`` to ``level`` and return what its link is; ``SecurityRefused`` if it
    cannot be (pairing refused or failed, no encryption, LE legacy pairing, no bond). None for ``none``."""
    from bleak.backends import BleakBackend
    from bleak.exc import BleakError

    if level is SecurityLevel.NONE:
        return None
    try:
        await client.pair()
    except (BleakError, NotImplementedError) as exc:  # NotImplementedError: a backend that cannot pair (macOS)
        raise SecurityRefused(REFUSED_PAIRING, str(exc) or type(exc).__name__) from exc
    report = getattr(client._backend, "link_security", None)  # the Bumble backend reports its link as it is
    if callable(report):
        link = LinkSecurity(**report())
    elif client.backend_id == BleakBackend.BLUEZ_DBUS:
        # Pair() returned: the link is paired and encrypted, and BlueZ stored the bond (a Pair() on a bonded device
        # returns at once, and BlueZ encrypts every link to it with the stored key). bleak reports the identity
        # address once BlueZ has it (resolvable private addresses resolve through the IRK the kernel was given).
        link = LinkSecurity(encrypted=True, bonded=True, secure_connections=None, identity_address=client.address,
                            paired_now=None, irk=None)
    else:
        raise SecurityRefused(REFUSED_UNVERIFIABLE, str(client.backend_id))
    if not link.encrypted:
        raise SecurityRefused(REFUSED_NOT_ENCRYPTED, "after pairing")
    if level is SecurityLevel.BONDED:
        if not link.bonded:
            raise SecurityRefused(REFUSED_NO_BOND, "the device paired without bonding")
        if link.secure_connections is False:
            raise SecurityRefused(REFUSED_LEGACY)
        if not link.identity_address:
            raise SecurityRefused(REFUSED_NO_IDENTITY, "the stack gave none for the bond")
    return link


# -- pins -----------------------------------------------------------------------------------------------------

PINS_FILE = "bonded_identities.json"
PINS_VERSION = 1


class PinStoreError(RuntimeError):
    """The pin file cannot be read or written (its path and what is wrong)."""


@dataclass(frozen=True)
class Pin:
    """The identity an allow-listed name is pinned to."""

    identity_address: str
    irk: str | None = None  # hex, where the stack gave it (Bumble): a re-pairing must show the same
    pinned_at: str = ""  # UTC, ISO 8601


class IdentityPins:
    """Names pinned to bonded identities, persisted in ``directory/bonded_identities.json`` (mode 0600, replaced
    atomically) or, with ``directory=None``, kept in memory for this run only.

    A corrupt file is an error at start (``PinStoreError``): silently forgetting pins would let the next device
    that advertises a pinned name be pinned in its place. To let a device bond anew (a new wearable under an old
    name, or one that lost its keys), delete its entry from the file (or the file) while the gateway is stopped."""

    def __init__(self, directory=None):
        self.path = None if directory is None else pathlib.Path(directory) / PINS_FILE
        self._pins: dict[str, Pin] = {}
        if self.path is not None and self.path.exists():
            self._pins = self._load(self.path)

    @staticmethod
    def _check_owner_and_mode(path: pathlib.Path) -> None:
        """Like OpenSSH's StrictModes: a pin store (or its folder) that another user could write is not trusted;
        whoever edits it chooses which wearable is genuine."""
        for item, what in ((path, "file"), (path.parent, "folder")):
            info = os.stat(item)
            if info.st_mode & 0o022:
                raise PinStoreError(f"{item}: the pin store's {what} is writable by group or others (mode "
                                    f"{oct(info.st_mode & 0o777)}); refused, as anyone who can edit it picks which "
                                    f"wearable is genuine (chmod go-w {item})")
            if info.st_uid not in (os.geteuid(), 0):
                raise PinStoreError(f"{item}: the pin store's {what} belongs to user {info.st_uid}, not to this "
                                    f"gateway's user ({os.geteuid()}) or root; refused")

    @staticmethod
    def _load(path: pathlib.Path) -> dict[str, Pin]:
        IdentityPins._check_owner_and_mode(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("version") != PINS_VERSION or not isinstance(data.get("pins"), dict):
                raise ValueError(f"expected {{\"version\": {PINS_VERSION}, \"pins\": {{...}}}}")
            pins = {}
            for name, entry in data["pins"].items():
                if not isinstance(entry, dict) or not isinstance(entry.get("identity_address"), str):
                    raise ValueError(f"pin {name!r}: expected an object with an identity_address")
                if not name.strip():
                    raise ValueError("a pin with an empty name")
                address = normalize_address(entry["identity_address"])  # ValueError names a garbage address
                irk = entry.get("irk")
                if irk is not None and not (isinstance(irk, str) and re.fullmatch(r"[0-9a-fA-F]{32}", irk)):
                    raise ValueError(f"pin {name!r}: irk must be 16 bytes in hex (32 digits) or null, got {irk!r}")
                pins[name] = Pin(address, irk, str(entry.get("pinned_at", "")))
            return pins
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise PinStoreError(f"{path}: cannot read the pinned identities: {exc}") from None

    def get(self, name: str) -> Pin | None:
        return self._pins.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._pins

    def __len__(self) -> int:
        return len(self._pins)

    def pin(self, name: str, link: LinkSecurity) -> Pin:
        """Pin ``name`` to the identity of ``link`` (and persist it before returning)."""
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
        pin = Pin(normalize_address(link.identity_address), link.irk, now)
        self._pins[name] = pin
        if self.path is not None:
            self._save()
        return pin

    def _save(self) -> None:
        data = {"version": PINS_VERSION, "pins": {name: asdict(pin) for name, pin in sorted(self._pins.items())}}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=".pins-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:  # mkstemp creates it 0600
                    json.dump(data, out, indent=2)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, self.path)
            except BaseException:
                pathlib.Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise PinStoreError(f"{self.path}: cannot write the pinned identities: {exc}") from None


def state_directory(configured=None) -> pathlib.Path:
    """Where the gateway keeps its state (the pins): ``configured`` ([transport] state_dir), else systemd's
    ``$STATE_DIRECTORY`` (the unit's StateDirectory=, /var/lib/biomoe-edge), else ``$XDG_STATE_HOME/biomoe-edge``
    (``~/.local/state/biomoe-edge``)."""
    if configured is not None:
        return pathlib.Path(configured)
    systemd = os.environ.get("STATE_DIRECTORY")
    if systemd:
        return pathlib.Path(systemd.split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME") or str(pathlib.Path.home() / ".local" / "state")
    return pathlib.Path(xdg) / "biomoe-edge"
