"""The profile registry is the one home of what the SDK knows about a profile: no profile name is spelled out in
code elsewhere, every record is complete and consistent, and each emulated measurement reads back, through the
profile's own stream, as the vital signs it encodes."""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

from biomoe_edge.firmware_bridge.emulation.signals import VitalSigns
from biomoe_edge.firmware_bridge.profiles.registry import NAMES, PROFILES, Emulation, Profile, profile_spec
from biomoe_edge.vocabulary import Modality

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: Code folders of the SDK (tests and the developer scripts aside: the fuzzer labels its decoders by their
#: profile); the registry's own folder is where the names live.
CODE = ("biomoe_edge", "runtime", "firmware_bridge", "export", "training", "benchmarks", "jetson")
REGISTRY_HOME = ROOT / "firmware_bridge" / "profiles"


def _docstrings(tree) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def profile_literals(path: pathlib.Path) -> list[str]:
    """``file:line: 'name'`` for each string constant in code (docstrings aside) that names a profile."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words = node.value.replace(",", " ").replace(":", " ").split()
            if any(word in NAMES for word in words):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    return found


def test_no_profile_name_is_spelled_out_outside_the_registry():
    offenders = []
    for folder in CODE:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if REGISTRY_HOME not in path.parents:
                offenders += profile_literals(path)
    assert offenders == [], "profile names belong in firmware_bridge/profiles/registry.py:\n" + "\n".join(offenders)


def test_the_literal_finder_finds_one(tmp_path):
    """The check above can fail: a profile name in a string, in a tuple, or in a message is found; a docstring is not."""
    sample = ROOT / "tests" / "firmware_bridge" / "_profile_literal_sample.py"
    sample.write_text('"""Docstrings may name polar_pmd."""\nX = ("heart_rate", "x")\nY = f"a {1} polar_pmd: device"\n')
    try:
        assert [line.split(": ", 1)[0] for line in profile_literals(sample)] == [
            "tests/firmware_bridge/_profile_literal_sample.py:2", "tests/firmware_bridge/_profile_literal_sample.py:3"]
    finally:
        sample.unlink()


def test_names_parse_and_unknown_ones_are_refused_by_name():
    assert NAMES == ("native", "heart_rate", "pulse_oximeter", "polar_pmd")  # the order errors list them in
    assert profile_spec("polar_pmd") is PROFILES[Profile.POLAR_PMD]
    assert f"{Profile.HEART_RATE}" == str(Profile.HEART_RATE) == "heart_rate"
    with pytest.raises(ValueError, match="'garmin'; expected one of: native, heart_rate"):
        profile_spec("garmin")


@pytest.mark.parametrize("profile", list(Profile))
def test_every_record_is_consistent(profile):
    spec = PROFILES[profile]
    assert spec.profile is profile and spec.summary
    assert spec.service_uuid != spec.data_uuid and len(spec.data_uuid) == 36
    if spec.describes_itself:
        assert spec.emulation is Emulation.NATIVE_PACKETS and spec.open_streams is None
        return
    for modality in spec.deliverable + spec.default_modalities:
        Modality.parse(modality)
    assert set(spec.default_modalities) <= set(spec.deliverable)
    assert set(spec.device_names) >= {spec.default_modalities}
    if spec.control_uuid is not None:  # a control point needs its commands and the reading of its answers
        assert spec.start_commands(spec.default_modalities) and spec.stop_command and spec.start_refusal
    if spec.emulation is Emulation.MEASUREMENT_PER_SECOND:
        assert spec.emulated_measurement is not None and spec.arrival_timed
    for modalities in [(m,) for m in spec.deliverable] or [()]:
        routes = spec.open_streams(modalities)
        assert len({route.key for route in routes}) == len(routes)
        assert [route.modality for route in routes if route.modality is not None] == list(modalities)


@pytest.mark.parametrize("profile", [p for p, s in PROFILES.items() if s.emulation is Emulation.MEASUREMENT_PER_SECOND])
def test_each_emulated_measurement_reads_back_through_the_profiles_stream(profile):
    spec = PROFILES[profile]
    (route,) = spec.open_streams(spec.default_modalities)
    vitals = VitalSigns(bpm=71.6, rr_intervals_s=(0.84, 0.85), spo2=96.44)
    value = spec.emulated_measurement(vitals)
    assert spec.stream_key(value) == route.key
    (block,) = route.stream.push(value, 12.5)
    samples = block.samples if route.select is None else route.select(block.samples)
    expected = {"spo2": 96.4, None: 72.0}[route.modality]  # SpO2 with one decimal; bpm rounded
    np.testing.assert_allclose(samples, [[expected]])
    assert block.gateway_times_s.tolist() == [12.5]
