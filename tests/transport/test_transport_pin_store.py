"""The bonded-identity pin store is trusted only when nobody else could have written it (OpenSSH's StrictModes),
and every entry is checked on load: before, a 0666 file edited by anyone let an impostor in and a garbage
address loaded."""

import json
import os

import pytest

from biomoe_edge.runtime.transport.security import PINS_FILE, IdentityPins, PinStoreError

GOOD = {"version": 1, "pins": {"wear-1": {"identity_address": "c0:11:22:33:44:55", "irk": "0f" * 16,
                                          "pinned_at": "2026-01-01T00:00:00+00:00"}}}


def _store(tmp_path, data=GOOD, *, mode=0o600, folder_mode=0o700):
    folder = tmp_path / "state"
    folder.mkdir()
    (folder / PINS_FILE).write_text(json.dumps(data))
    os.chmod(folder / PINS_FILE, mode)
    os.chmod(folder, folder_mode)
    return folder


def test_a_private_pin_store_loads_with_its_address_normalised(tmp_path):
    pins = IdentityPins(_store(tmp_path))
    assert pins.get("wear-1").identity_address == "C0:11:22:33:44:55" and pins.get("wear-1").irk == "0f" * 16


@pytest.mark.parametrize("mode, folder_mode, what", [(0o666, 0o700, "file"), (0o620, 0o700, "file"),
                                                     (0o600, 0o777, "folder"), (0o600, 0o770, "folder")])
def test_a_pin_store_others_could_write_is_refused(tmp_path, mode, folder_mode, what):
    with pytest.raises(PinStoreError, match=f"pin store's {what} is writable by group or others"):
        IdentityPins(_store(tmp_path, mode=mode, folder_mode=folder_mode))


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_pin_store_of_another_user_is_refused(tmp_path):
    folder = _store(tmp_path)
    os.chown(folder / PINS_FILE, 4321, 4321)
    with pytest.raises(PinStoreError, match="belongs to user 4321"):
        IdentityPins(folder)


@pytest.mark.parametrize("entry, message", [
    ({"identity_address": "not-an-address"}, "not a Bluetooth address"),
    ({"identity_address": "C0:11:22:33:44:55:66"}, "not a Bluetooth address"),
    ({"identity_address": "C0:11:22:33:44:55", "irk": "zz"}, "irk must be 16 bytes"),
    ({"identity_address": "C0:11:22:33:44:55", "irk": 5}, "irk must be 16 bytes"),
])
def test_every_address_and_irk_is_validated_on_load(tmp_path, entry, message):
    with pytest.raises(PinStoreError, match=message):
        IdentityPins(_store(tmp_path, {"version": 1, "pins": {"wear-1": entry}}))
