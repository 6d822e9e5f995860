"""``[[sinks]] kind = "recording"`` in the gateway TOML: its keys, its errors, one folder per gateway run."""

import pytest
from recording_helpers import packets, record_gateway_run

from biomoe_edge.config import tomllib
from biomoe_edge.runtime.gateway_config import ConfigError, build_sink, parse_config
from biomoe_edge.runtime.recording.sink import build_recording_sink
from biomoe_edge.runtime.recording import open_recording


def _sink(text, base):
    return parse_config(tomllib.loads(text), base_dir=base).sinks[0]


def test_the_recording_sink_keys(tmp_path):
    sink = _sink('[[sinks]]\nkind = "recording"\ndirectory = "recordings"\nsegment_s = 1.5\nlsl_markers = "Stim"\n', tmp_path)
    assert sink.kind == "recording"
    assert sink.options == {"directory": tmp_path / "recordings", "prefix": "recording", "segment_s": 1.5,
                            "lsl_markers": "Stim"}
    built = build_recording_sink(sink)
    assert type(built).__name__ == "RecordingSink" and built.directory == tmp_path / "recordings"
    assert built.writer is None  # nothing is written until the gateway attaches it to its pipeline
    with pytest.raises(ConfigError, match="built by the Gateway"):
        build_sink(sink)  # the configuration's layer does not import the recording package


@pytest.mark.parametrize("body, message", [
    ('kind = "recording"', r"sinks\[0\].directory: missing"),
    ('kind = "recording"\ndirectory = "r"\nsegment_s = 0', r"sinks\[0\].segment_s: expected at least 0.1"),
    ('kind = "recording"\ndirectory = "r"\nsegment_s = 600', r"sinks\[0\].segment_s: expected at most 60"),
    ('kind = "recording"\ndirectory = "r"\nprefix = "a/b"', r"sinks\[0\].prefix: expected a plain folder-name prefix"),
    ('kind = "recording"\ndirectory = "r"\nmax_mb = 3', r"sinks\[0\].max_mb: unknown key"),
])
def test_recording_sink_errors_name_the_key(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        _sink("[[sinks]]\n" + body + "\n", tmp_path)


def test_each_gateway_run_records_into_a_new_folder(tmp_path):
    _, _, first = record_gateway_run(tmp_path / "a", packets(12.0))
    _, _, second = record_gateway_run(tmp_path / "b", packets(12.0))
    assert first.name.startswith("recording-") and first != second
    settings = open_recording(first).settings
    assert settings["windows"]["bvp"] == {"length_s": 10.0, "hop_s": 2.0, "representations": ["spectrogram_psd", "waveform"]}
    assert settings["model"]["sha256"] == "0" * 64 and settings["engine"]["kind"] == "projection"
    assert settings["engine"]["max_batch"] == 8 and settings["subjects"] == {}
