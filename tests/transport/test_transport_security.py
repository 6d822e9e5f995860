"""Genuine wearables only: security levels none / encrypted / bonded over Bumble's real SMP on its
virtual controller, through the production bleak code (BleakClient.pair() on the Bumble backend): pairing,
bonds, identity pins that survive a restart, impostors of a pinned name refused before any connection, devices that
refuse to pair or only do LE legacy pairing, resolvable private addresses, and a stream that changes its
description refused instead of merged."""

from __future__ import annotations

import asyncio
import collections
import json
import stat

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from biomoe_edge.firmware_bridge.emulation import VirtualBleNetwork
from biomoe_edge.runtime.transport import ConnectionManager, ConnectionState, DeviceTarget, TransportBackend
from biomoe_edge.runtime.transport.connection import REFUSED_IDENTITY, REFUSED_IMPOSTOR
from biomoe_edge.runtime.transport.security import (PINS_FILE, REFUSED_LEGACY, REFUSED_PAIRING, IdentityPins,
                                                    PinStoreError)

FAST = dict(scan_timeout_s=0.5, backoff_initial_s=0.02, backoff_max_s=0.2, seed=0)


class Recorder:
    """on_packet / on_state / on_refused, kept per device."""

    def __init__(self):
        self.packets = collections.defaultdict(list)
        self.states = collections.defaultdict(list)
        self.refused = []  # (device, name, address, reason)

    def on_packet(self, device, payload, arrival):
        self.packets[device].append(payload)

    def on_state(self, device, state, reason):
        self.states[device].append((state, reason))

    def on_refused(self, device, name, address, reason):
        self.refused.append((device, name, address, reason))

    async def until(self, predicate, timeout=15.0):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            assert loop.time() < deadline, f"condition not met; states {dict(self.states)}, refused {self.refused}"
            await asyncio.sleep(0.01)


async def _manager(network, targets, recorder, pins=None) -> ConnectionManager:
    return ConnectionManager(targets, on_packet=recorder.on_packet, on_state=recorder.on_state,
                             on_refused=recorder.on_refused, pins=pins,
                             backend=TransportBackend.bumble(await network.central()), **FAST)


def _ah(irk: bytes, prand: bytes) -> bytes:
    """The random address hash of Core spec Vol 3, Part H, 2.2.2 (AES-128 of 13 zero octets || prand), computed here
    with `cryptography`; Bluetooth's little-endian byte order in and out."""
    encryptor = Cipher(algorithms.AES(irk[::-1]), modes.ECB()).encryptor()
    out = encryptor.update(bytes(13) + prand[::-1]) + encryptor.finalize()
    return out[-3:][::-1]


def _resolves(address: str, irk: bytes) -> bool:
    octets = bytes.fromhex(address.replace(":", ""))[::-1]  # little-endian: hash, then prand
    return octets[5] >> 6 == 0b01 and _ah(irk, octets[3:6]) == octets[0:3]


async def test_a_bonded_wearable_connects_and_its_identity_is_pinned_and_persisted(recording, tmp_path):
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20)
        recorder = Recorder()
        manager = await _manager(network, [DeviceTarget(name="wear-1")], recorder, IdentityPins(tmp_path))
        connection = manager.connections["wear-1"]
        assert connection.security.value == "bonded"  # the native profile's default
        async with manager:
            await recorder.until(lambda: len(recorder.packets["wear-1"]) >= 20)
            link = connection.link
        assert link.encrypted and link.bonded and link.secure_connections and link.paired_now
        assert link.identity_address == wearable.address
        assert link.irk == wearable.device.irk.hex()  # the IRK the board distributed at pairing
        assert wearable.counters.pairings == 1 and wearable.counters.accesses_refused == 0
        assert recorder.refused == []
        assert len(recorder.packets["wear-1"]) == wearable.counters.total("packets_sent")
        # Persisted, owner-only, and read back by the next start.
        path = tmp_path / PINS_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text())["pins"]["wear-1"]["identity_address"] == wearable.address
        assert IdentityPins(tmp_path).get("wear-1").identity_address == wearable.address


async def test_an_impostor_of_a_pinned_name_is_refused_never_connected_also_after_a_restart(recording, tmp_path):
    """The impostor attack: the genuine wearable drops its link while another device advertises its name (with
    another identity). Then the gateway restarts with only the impostor on the air."""
    async with VirtualBleNetwork() as network:
        genuine = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20, seed=1)
        recorder = Recorder()
        pins = IdentityPins(tmp_path)
        manager = await _manager(network, [DeviceTarget(name="wear-1")], recorder, pins)
        connection = manager.connections["wear-1"]
        async with manager:
            await recorder.until(lambda: len(recorder.packets["wear-1"]) >= 10)
            impostor = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20, seed=2)
            genuine.reconnect_delay_s = 0.6 * genuine.speed  # 0.6 s off the air
            await genuine.disconnect()
            await recorder.until(lambda: connection.stats.connects == 2)  # the genuine one again
            await recorder.until(lambda: len(recorder.packets["wear-1"]) >= 30)
        assert impostor.address != genuine.address
        assert impostor.counters.connections == 0  # never connected
        assert connection.stats.refusals[REFUSED_IMPOSTOR] >= 1
        assert set(recorder.refused) == {("wear-1", "wear-1", impostor.address, REFUSED_IMPOSTOR)}
        assert genuine.counters.pairings == 1  # the reconnection used the bond
        assert len(recorder.packets["wear-1"]) == genuine.counters.total("packets_sent")

        await genuine.stop()
        recorder = Recorder()
        manager = await _manager(network, [DeviceTarget(name="wear-1")], recorder, IdentityPins(tmp_path))
        async with manager:
            await recorder.until(lambda: manager.connections["wear-1"].stats.refusals[REFUSED_IMPOSTOR] >= 3)
        assert impostor.counters.connections == 0 and recorder.packets == {}
        assert all(entry == ("wear-1", "wear-1", impostor.address, REFUSED_IMPOSTOR) for entry in recorder.refused)


async def test_a_wearable_that_refuses_to_pair_is_refused_and_retried_not_connected_for_data(recording):
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20,
                                              pairing="refuse")
        recorder = Recorder()
        pins = IdentityPins(None)
        manager = await _manager(network, [DeviceTarget(name="wear-1")], recorder, pins)
        connection = manager.connections["wear-1"]
        async with manager:
            await recorder.until(lambda: connection.stats.refusals[REFUSED_PAIRING] >= 2)
        assert "PAIRING_NOT_SUPPORTED" in connection.stats.last_error
        assert wearable.counters.pairings_refused >= 2 and wearable.counters.pairings == 0
        assert recorder.packets == {} and "wear-1" not in pins
        assert connection.stats.connects == 0
        assert ("disconnected", f"refused: {REFUSED_PAIRING}") in recorder.states["wear-1"]


async def test_encrypted_refuses_a_link_that_cannot_be_encrypted_and_takes_one_that_can(recording):
    async with VirtualBleNetwork() as network:
        refuser = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20,
                                             security="none", pairing="refuse")
        willing = await network.add_wearable("wear-2", signals=recording, modalities=("bvp",), speed=20,
                                             security="encrypted", seed=3)
        recorder = Recorder()
        pins = IdentityPins(None)
        targets = [DeviceTarget(name="wear-1", security="encrypted"), DeviceTarget(name="wear-2", security="encrypted")]
        manager = await _manager(network, targets, recorder, pins)
        async with manager:
            await recorder.until(lambda: manager.connections["wear-1"].stats.refusals[REFUSED_PAIRING] >= 2
                                 and len(recorder.packets["wear-2"]) >= 10)
            link = manager.connections["wear-2"].link
        # An open board serves anyone, yet the gateway read nothing from it: the link could not be encrypted.
        assert recorder.packets.get("wear-1", []) == [] and refuser.counters.total("packets_sent") == 0
        assert link.encrypted and len(pins) == 0  # encrypted identifies nobody: no pin
        assert len(recorder.packets["wear-2"]) == willing.counters.total("packets_sent")


async def test_bonded_refuses_le_legacy_pairing_which_encrypted_accepts(recording):
    async with VirtualBleNetwork() as network:
        await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20, security="encrypted",
                                   pairing="legacy")
        recorder = Recorder()
        manager = await _manager(network, [DeviceTarget(name="wear-1", security="bonded")], recorder)
        async with manager:
            await recorder.until(lambda: manager.connections["wear-1"].stats.refusals[REFUSED_LEGACY] >= 1)
        assert recorder.packets == {}
    async with VirtualBleNetwork() as network:
        await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20, security="encrypted",
                                   pairing="legacy")
        recorder = Recorder()
        manager = await _manager(network, [DeviceTarget(name="wear-1", security="encrypted")], recorder)
        async with manager:
            await recorder.until(lambda: len(recorder.packets["wear-1"]) >= 5)
            link = manager.connections["wear-1"].link
        assert link.encrypted and link.secure_connections is False


async def test_a_bonded_wearable_back_with_a_new_resolvable_private_address_is_recognised(recording):
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20, privacy=True)
        first_address = wearable.advertised_address
        irk = wearable.device.irk
        assert first_address != wearable.address and _resolves(first_address, irk)
        recorder = Recorder()
        pins = IdentityPins(None)
        manager = await _manager(network, [DeviceTarget(name="wear-1")], recorder, pins)
        connection = manager.connections["wear-1"]
        async with manager:
            await recorder.until(lambda: connection.state is ConnectionState.CONNECTED)
            assert pins.get("wear-1").identity_address == wearable.address  # the identity, never on the air
            wearable.reconnect_delay_s = 0.2 * wearable.speed
            await wearable.disconnect()
            await recorder.until(lambda: connection.stats.connects == 2)
            second_address = wearable.advertised_address
            await recorder.until(lambda: len(recorder.packets["wear-1"]) >= 20)
            link = connection.link
        assert second_address not in (first_address, wearable.address) and _resolves(second_address, irk)
        assert connection.address == wearable.address  # the scan reported the resolved identity, as BlueZ does
        assert link.identity_address == wearable.address and link.paired_now is False  # encrypted with the bond
        assert wearable.counters.pairings == 1 and recorder.refused == []


async def test_an_address_allow_listed_bonded_device_must_bond_as_that_identity(recording):
    """A device listed by address whose bond gives another identity (a resolvable private address it does not
    resolve to) is refused after pairing."""
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20, privacy=True)
        recorder = Recorder()
        # Listed under the address it advertised: the stack cannot resolve it before a bond, so the scan matches it.
        target = DeviceTarget(address=wearable.advertised_address)
        manager = await _manager(network, [target], recorder)
        async with manager:
            await recorder.until(lambda: manager.connections[target.label].stats.refusals[REFUSED_IDENTITY] >= 1)
        assert recorder.packets == {}
        assert recorder.refused[0][2:] == (wearable.address, REFUSED_IDENTITY)


def test_a_corrupt_pin_file_stops_the_start_naming_the_file(tmp_path):
    (tmp_path / PINS_FILE).write_text('{"version": 1, "pins": {"wear-1": {}}}')
    with pytest.raises(PinStoreError, match=f"{PINS_FILE}.*wear-1"):
        IdentityPins(tmp_path)


def test_security_levels_are_named_and_defaults_follow_the_profile():
    assert DeviceTarget(name="w").security == "bonded"
    assert DeviceTarget(name="h10", profile="polar_pmd").security == "none"
    assert DeviceTarget(name="ox", profile="pulse_oximeter", security="encrypted").security == "encrypted"
    with pytest.raises(ValueError, match="secure.*none, encrypted, bonded"):
        DeviceTarget(name="w", security="secure")



def test_the_configuration_names_each_devices_level_and_where_the_pins_live(tmp_path, monkeypatch):
    from biomoe_edge.runtime.gateway_config import ConfigError, load_config, parse_config

    devices = [{"name": "wrist"}, {"name": "h10", "profile": "polar_pmd"},
               {"name": "ox", "profile": "pulse_oximeter", "security": "encrypted"}]
    config = parse_config({"devices": devices})
    assert [d.security for d in config.devices] == ["bonded", "none", "encrypted"]
    assert config.transport.state_dir is None  # built in code: pins in memory
    config = parse_config({"devices": devices, "transport": {"security": "encrypted"}})
    assert [d.security for d in config.devices] == ["encrypted", "encrypted", "encrypted"]
    with pytest.raises(ConfigError, match=r"devices\[0\]\.security: expected one of none, encrypted, bonded"):
        parse_config({"devices": [{"name": "w", "security": "paired"}]})
    with pytest.raises(ConfigError, match=r"transport\.security"):
        parse_config({"transport": {"security": True}})
    path = tmp_path / "gateway.toml"
    path.write_text('[[devices]]\nname = "wrist"\n')
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    assert load_config(path).transport.state_dir == tmp_path / "state"  # systemd's StateDirectory=
    path.write_text('[transport]\nstate_dir = "pins"\n[[devices]]\nname = "wrist"\n')
    assert load_config(path).transport.state_dir == tmp_path / "pins"  # relative to the file


async def test_bonded_wearables_that_drop_their_links_reconnect_promptly(recording):
    """Reconnecting to a bonded device, Bumble first scans for the address it advertises now. That search used to
    lose its scan when another device's scan ended (and then waited forever, until bleak-retry-connector's 60 s
    safety timeout): two bonded wearables dropping their links together took a minute to come back."""
    async with VirtualBleNetwork() as network:
        wearables = [await network.add_wearable(f"wear-{i}", signals=recording, modalities=("bvp",), speed=20, seed=i,
                                                reconnect_delay_s=0.05 * 20) for i in (1, 2)]
        recorder = Recorder()
        targets = [DeviceTarget(name=w.name) for w in wearables]
        manager = await _manager(network, targets, recorder)
        connections = [manager.connections[w.name] for w in wearables]
        async with manager:
            for drop in range(3):
                await recorder.until(lambda: all(c.state is ConnectionState.CONNECTED for c in connections))
                await asyncio.gather(*(w.disconnect() for w in wearables))
                await recorder.until(lambda: all(c.stats.connects == drop + 2 for c in connections), timeout=10.0)
        assert all(c.link.bonded and not c.link.paired_now for c in connections)  # encrypted with the bond
        assert [w.counters.pairings for w in wearables] == [1, 1]
        assert recorder.refused == []
