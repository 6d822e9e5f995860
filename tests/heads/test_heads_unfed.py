"""A head or bridge that nothing configured can feed is refused at configuration, naming it, its inputs and the
devices (before: accepted, then 0 predictions with every counter at 0); at run time, an input that does not come
is counted per input and warned about once."""

import logging

import pytest

pytest.importorskip("onnxruntime", reason="heads are served with ONNX Runtime")

from heads_helpers import record, write_head  # noqa: E402
from test_heads_bridge import write_bridge  # noqa: E402

from biomoe_edge.runtime.gateway_config import ConfigError, parse_config  # noqa: E402
from biomoe_edge.runtime.heads import FusionStage, load_head  # noqa: E402


def _config(head_path, devices, **head_options):
    return {"windows": {"length_s": 10.0, "hop_s": 1.0, "representations": ["scalogram", "spectrogram_psd"]},
            "devices": devices, "subjects": [{"name": "p1", "devices": [d["name"] for d in devices]}],
            "heads": [{"path": str(head_path), **head_options}]}


def test_a_head_no_configured_device_feeds_is_refused_naming_head_inputs_and_devices(tmp_path):
    folder, _, _ = write_head(tmp_path / "head", ["eda:scalogram", "bvp:spectrogram_psd"], ["rest", "pain"])
    devices = [{"name": "wrist", "modalities": ["bvp"]}]  # delivers bvp only: eda never comes
    with pytest.raises(ConfigError) as error:
        parse_config(_config(folder, devices))
    message = str(error.value)
    assert error.value.key_path == "heads[0].path"
    assert str(folder) in message and "eda:scalogram" in message and "delivers eda" in message
    assert "wrist: bvp" in message
    parse_config(_config(folder, devices + [{"name": "chest", "modalities": ["eda"]}]))  # fed: accepted


def test_a_head_is_fed_only_by_the_devices_of_its_subjects(tmp_path):
    folder, _, _ = write_head(tmp_path / "head", ["eda:scalogram"], ["rest", "pain"])
    data = _config(folder, [{"name": "wrist", "modalities": ["eda"]}, {"name": "ring", "modalities": ["bvp"]}],
                   subjects=["p2"])
    data["subjects"] = [{"name": "p1", "devices": ["wrist"]}, {"name": "p2", "devices": ["ring"]}]
    with pytest.raises(ConfigError, match="no configured device of its subjects delivers eda"):
        parse_config(data)


def test_a_bridge_no_configured_device_feeds_is_refused(tmp_path):
    folder = write_bridge(tmp_path / "bridge", inputs=("spo2:scalogram",), window_s=10.0)
    with pytest.raises(ConfigError, match=r"bridge .* needs spo2:scalogram, but no configured device delivers spo2"):
        parse_config(_config(folder, [{"name": "wrist", "modalities": ["bvp"]}]))


def test_an_input_that_never_comes_is_counted_per_input_and_warned_about_once(tmp_path, caplog):
    folder, _, _ = write_head(tmp_path / "head", ["eda:scalogram", "bvp:spectrogram_psd"], ["rest", "pain"])
    now = [100.0]
    stage = FusionStage([load_head(folder)], subjects={"wrist": "p1"}, deadline_s=2.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="biomoe_edge.runtime.heads.fusion"):
        for i in range(5):  # eda windows only: bvp never comes
            now[0] = 100.0 + 3 * i
            stage.add([record("wrist", "eda", "scalogram", 90.0 + 3 * i)])
            now[0] += 2.5
            stage.expire()
    (stats,) = stage.stats()
    assert stats["missing_inputs"] == {"bvp:spectrogram_psd": 5} and stats["windows_dropped"] == {"input_missing": 5}
    warnings = [r for r in caplog.records if "bvp:spectrogram_psd" in r.getMessage()]
    assert len(warnings) == 1 and "missing_inputs" in warnings[0].getMessage()
