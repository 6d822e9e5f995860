import pathlib

import pytest

from biomoe_edge.config import tomllib
from biomoe_edge.runtime.gateway_config import ConfigError, load_config, parse_config

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "gateway.toml"


def test_the_documented_example_loads_with_its_values():
    config = load_config(EXAMPLE)
    assert [d.label for d in config.devices] == ["biomoe-wrist-1", "C4:7D:4F:00:00:02"]
    assert config.devices[0].modalities == ("bvp", "eda")
    assert config.modality("eda").window.length_s == 20.0
    assert config.modality("EDA").representations == ("waveform", "scalogram")
    assert config.modality("bvp").window.hop_s == 1.0
    assert config.modality("bvp").representations == ("spectrogram_psd", "scalogram")
    assert config.engine.deadline_s == pytest.approx(0.05)
    assert config.engine.device == "cpu"
    assert config.engine.path == EXAMPLE.parent / "../build/fp32/model.onnx" and not config.engine.random_weights
    assert [s.kind for s in config.sinks] == ["jsonl", "mqtt"]
    assert config.sinks[0].options["directory"] == EXAMPLE.parent / "../build/embeddings"  # not into examples/
    assert config.sinks[0].options["max_bytes"] == 64 << 20


def test_the_examples_commented_standard_profile_devices_load_when_uncommented():
    import re

    text = re.sub(r"(?m)^# (?=\[\[devices\]\]|name =|address =|profile =|modalities =)", "", EXAMPLE.read_text())
    config = parse_config(tomllib.loads(text), base_dir=EXAMPLE.parent)
    assert [(d.profile, d.modalities) for d in config.devices[2:]] == [
        ("polar_pmd", ("ecg",)), ("polar_pmd", ("bvp",)), ("pulse_oximeter", ("spo2",)), ("heart_rate", ())]
    assert config.modality("spo2").window.length_s == 30.0


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(text))
    return str(info.value)


@pytest.mark.parametrize("text, expected", [
    ('[[sinks]]\nkind="jsonl"\ndirectory="x"\n[[sinks]]\nkind="mqtt"\nport="abc"',
     'sinks[1].port: expected an integer, got "abc"'),
    ('[engine]\nmax_batch=0', "engine.max_batch: expected at least 1, got 0"),
    ('[engine]\nkind="tensorflow"', 'engine.kind: expected one of auto, tensorrt, onnxruntime, pytorch, got "tensorflow"'),
    ('[engine]\nmax_bacth=4', 'engine.max_bacth: unknown key "max_bacth"'),
    ('colour="red"', 'colour: unknown key "colour"'),
    ('[windows]\nrepresentations=["scalogram","gaf"]', 'windows.representations[1]: unknown representation "gaf"'),
    ('[windows]\nlength_s=5\nhop_s=6', "windows.hop_s: hop_s (6.0) must not exceed length_s (5.0)"),
    ('[modalities.emg]\nhop_s=1', "modalities.emg: unknown modality 'emg'"),
    ('[modalities.bvp]\nhop_s=true', "modalities.bvp.hop_s: expected a number, got true"),
    ('[[devices]]\nprofile="native"', "devices[0]: a device needs a name or an address"),
    ('[[devices]]\nname="a"\nmodalities="bvp"', 'devices[0].modalities: expected an array of strings, got "bvp"'),
    ('[[devices]]\nname="a"\n[[devices]]\nname="a"', 'devices[1]: "a" is already listed at devices[0]'),
    ('[[sinks]]\nkind="jsonl"', "sinks[0].directory: missing"),
    ('[[sinks]]\nkind="mqtt"\ntopic="x/{user}"', "sinks[0].topic: bad placeholder"),
    ('devices = 3', "devices: expected an array of tables"),
    ('[[devices]]\naddress="zz"', "devices[0].address: not a Bluetooth address"),
    ('[[devices]]\nname="h10"\nprofile="polar"', 'devices[0].profile: expected one of native, heart_rate, '
     'pulse_oximeter, polar_pmd, got "polar"'),
    ('[[devices]]\nname="h10"\nprofile="polar_pmd"\nmodalities=["ecg","eda"]',
     "devices[0].modalities[1]: a polar_pmd device cannot deliver 'eda'; it delivers only ecg, bvp"),
    ('[[devices]]\nname="ox"\nprofile="pulse_oximeter"\nmodalities=["bvp"]',
     "devices[0].modalities[0]: a pulse_oximeter device cannot deliver 'bvp'; it delivers only spo2"),
    ('[[devices]]\nname="strap"\nprofile="heart_rate"\nmodalities=["ecg"]',
     "devices[0].modalities[0]: a heart_rate device cannot deliver 'ecg'; it delivers no model modality"),
    ('[[devices]]\nname="h10"\nprofile="polar_pmd"\nmodalities=["ecg","ECG"]', "devices[0].modalities: lists a modality twice"),
    ('[windows]\nlength_s=3\n[[devices]]\nname="ox"\nprofile="pulse_oximeter"',
     "windows.length_s: spo2 windows of 3 s hold fewer than 4 measurements of a pulse_oximeter device"),
    ('[modalities.spo2]\nlength_s=30\nhop_s=0.5\n[[devices]]\nname="ox"\nprofile="pulse_oximeter"',
     "modalities.spo2.hop_s: a pulse_oximeter device (ox) measures about once a second"),
    # 3 s of EDA at its 8 Hz model rate: 24 samples, renderable; of SpO2 at 4 Hz: 12, not.
    ('[windows]\nlength_s=3\n[[devices]]\nname="w"\nmodalities=["eda","spo2"]',
     "windows.length_s: spo2 windows of 3 s hold fewer than 16 samples at its model rate (4 Hz)"),
    ('[windows]\nlength_s=10\n[modalities.eda]\nlength_s=1.5\n[[devices]]\nname="w"\nmodalities=["eda"]',
     "modalities.eda.length_s: eda windows of 1.5 s hold fewer than 16 samples at its model rate (8 Hz)"),
    ('[windows]\nlength_s=inf', "windows.length_s: expected a finite number, got Infinity"),
    ('[engine]\ndeadline_ms=nan', "engine.deadline_ms: expected a finite number, got NaN"),
    ('[engine]\ndevice="gpu0"', 'engine.device: expected "cpu", "cuda" or "cuda:N", got "gpu0"'),
    ('[engine]\nkind="pytorch"\nprecision="int8"', "engine.precision: the PyTorch engine runs fp32 or fp16"),
])
def test_errors_name_the_offending_key(text, expected):
    assert expected in _error(text)


def test_standard_profiles_resolve_their_modalities():
    config = parse_config(tomllib.loads("""
[modalities.spo2]
length_s = 30.0
[[devices]]
name = "Polar H10 1234"
profile = "polar_pmd"
[[devices]]
name = "Polar Sense 5678"
profile = "polar_pmd"
modalities = ["bvp"]
[[devices]]
name = "oximeter"
profile = "pulse_oximeter"
[[devices]]
name = "strap"
profile = "heart_rate"
"""))
    assert [(d.profile, d.modalities) for d in config.devices] == [
        ("polar_pmd", ("ecg",)), ("polar_pmd", ("bvp",)), ("pulse_oximeter", ("spo2",)), ("heart_rate", ())]
    # Short SpO2 windows are fine when no pulse oximeter feeds them (a native device may stream SpO2 faster).
    parse_config(tomllib.loads('[windows]\nlength_s=4\nhop_s=0.5\n[[devices]]\nname="w"\nmodalities=["spo2"]'))


def test_modality_overrides_inherit_the_defaults():
    config = parse_config(tomllib.loads('[windows]\nlength_s=8\nhop_s=2\n[modalities.resp]\nhop_s=4'))
    assert (config.modality("resp").window.length_s, config.modality("resp").window.hop_s) == (8.0, 4.0)
    assert (config.modality("ecg").window.length_s, config.modality("ecg").window.hop_s) == (8.0, 2.0)


def test_load_config_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[engine]\nprecision = 'int4'\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: engine\.precision: expected one of fp32, fp16, int8"):
        load_config(path)
    path.write_text("[engine\n")
    with pytest.raises(ValueError, match="invalid TOML"):
        load_config(path)


def test_the_jetson_default_configuration_loads():
    path = EXAMPLE.parents[1] / "jetson" / "gateway.toml"
    if not path.exists():
        pytest.skip("jetson/gateway.toml not in this checkout")
    config = load_config(path)
    assert config.engine.kind == "tensorrt" and config.engine.precision == "fp16"
    assert config.devices == ()  # an empty allow-list: the gateway connects to nothing by itself


def test_every_sink_kind_builds_from_its_table(tmp_path):
    from biomoe_edge.runtime.gateway_config import build_sink
    from biomoe_edge.runtime.sinks import JsonlSink, NpzSink

    config = parse_config({"sinks": [{"kind": "jsonl", "directory": "j", "max_mb": 1},
                                      {"kind": "npz", "directory": "n", "max_age_s": 60}]}, base_dir=tmp_path)
    jsonl, npz = (build_sink(s) for s in config.sinks)
    assert isinstance(jsonl, JsonlSink) and jsonl.directory == tmp_path / "j" and jsonl.max_bytes == 1 << 20
    assert isinstance(npz, NpzSink) and npz.max_age_s == 60.0


def test_run_command_reports_a_missing_model_in_one_line(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "gateway.toml"
    path.write_text('[engine]\nkind = "onnxruntime"\npath = "missing.onnx"\n[[devices]]\nname = "w"\n')
    proc = subprocess.run([sys.executable, "-m", "biomoe_edge", "run", str(path), "--duration", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "missing.onnx" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.torch
def test_run_command_with_an_empty_allow_list_idles_and_writes_nothing(tmp_path):
    """A fresh Jetson's configuration lists no device: `run` must stay up (a service must not crash-loop)."""
    import subprocess
    import sys

    pytest.importorskip("torch", reason="the configuration below uses the PyTorch engine")
    path = tmp_path / "gateway.toml"
    path.write_text('[engine]\nkind = "pytorch"\nrandom_weights = true\nmax_batch = 2\n[[sinks]]\nkind = "jsonl"\n'
                    'directory = "out"\n')
    proc = subprocess.run([sys.executable, "-m", "biomoe_edge", "run", str(path), "--duration", "1.5", "--quiet"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "lists no [[devices]]" in proc.stderr
    assert (tmp_path / "out").is_dir() and not list((tmp_path / "out").iterdir())
