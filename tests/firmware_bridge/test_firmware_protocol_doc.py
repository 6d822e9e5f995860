"""PROTOCOL.md says what the code does: its MTU table, worked examples and UUIDs are checked here."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

from biomoe_edge import firmware_bridge as fb
from biomoe_edge.firmware_bridge import gatt
from biomoe_edge.vocabulary import SecurityLevel

DOC = (pathlib.Path(fb.__file__).resolve().parent / "PROTOCOL.md").read_text()


def test_mtu_table_matches_max_samples_per_packet():
    columns = [(1, "int16"), (1, "int24"), (1, "float32"), (3, "int16"), (3, "int24")]
    rows = re.findall(r"^\| (\d+)(?: \([^)]*\))? \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", DOC, re.M)
    assert len(rows) == 4
    for row in rows:
        mtu, value, payload, *counts = map(int, row)
        assert (value, payload) == (mtu - 3, mtu - 16)
        assert counts == [fb.max_samples_per_packet(mtu, c, f) for c, f in columns]


def test_worked_packet_examples_decode_as_described():
    first = DOC.index("Worked example")
    line = DOC[first:].split("```")[1].strip().splitlines()[0]
    data = bytes.fromhex(line.replace("|", " "))
    packet = fb.decode_packet(data)
    assert (packet.stream_id, packet.sequence, packet.timestamp_us) == (1, 7, 1_000_000)
    np.testing.assert_array_equal(packet.samples, [[100, -100], [200, -200]])
    int24 = re.search(r"int24 example.*?`([0-9a-f ]+)`", DOC, re.S).group(1)
    packet = fb.decode_packet(bytes.fromhex(int24))
    assert (packet.sequence, packet.timestamp_us) == (65535, 4_294_967_000)
    np.testing.assert_array_equal(packet.samples[:, 0], [-2, 8388607])


def test_description_example_decodes_as_described():
    block = DOC[DOC.index("Example, firmware"):].split("```")[1]
    desc = fb.decode_description(bytes.fromhex(block.replace("|", " ")))
    assert desc == fb.DeviceDescription("1.4.2", (fb.StreamDescription(0, "ecg", 130.0, 1, "int24", 0.001, 0.0, "mV"),))


@pytest.mark.parametrize("name", ["SERVICE_UUID", "DATA_CHAR_UUID", "CONTROL_CHAR_UUID", "DESCRIPTION_CHAR_UUID"])
def test_uuids_in_the_document(name):
    assert f"`{getattr(gatt, name)}`" in DOC


def test_att_error_codes_in_the_document():
    for code in (gatt.ATT_ERROR_INVALID_LENGTH, gatt.ATT_ERROR_UNKNOWN_OPCODE, gatt.ATT_ERROR_UNKNOWN_STREAM,
                 gatt.ATT_ERROR_INVALID_PARAMETER, gatt.ATT_ERROR_MTU_TOO_SMALL, gatt.ATT_ERROR_BUSY):
        assert f"| 0x{code:02X} |" in DOC


def test_link_security_section_names_the_codes_and_the_c_functions():
    from biomoe_edge.firmware_bridge.emulation import board_security

    section = DOC[DOC.index("## 11. Link security"):]
    for code in (board_security.ATT_ERROR_INSUFFICIENT_AUTHENTICATION, board_security.ATT_ERROR_INSUFFICIENT_ENCRYPTION):
        assert f"| 0x{code:02X} |" in section
    assert f"reason 0x{board_security.SMP_ERROR_AUTHENTICATION_REQUIREMENTS:02X}" in section
    header = (pathlib.Path(fb.__file__).resolve().parent / "c" / "fwb_packet.h").read_text()
    for name in ("fwb_check_access", "fwb_check_pairing"):
        assert name in section and f"{name}(" in header
    for level in SecurityLevel:
        assert f"| `{level.value}`" in section
