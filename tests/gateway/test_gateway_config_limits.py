"""Configuration input that must not hang, crash or escape: numbers outside physical ranges, hostile nesting,
paths out of their directory, topic templates that reach into objects. Any TOML either loads or raises
ConfigError naming a key (hypothesis, over the schema and over raw text)."""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biomoe_edge.config import tomllib
from biomoe_edge.runtime.gateway_config import ConfigError, load_config, parse_config


def _error(text: str, tmp_path) -> ConfigError:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


@pytest.mark.parametrize("text, key", [
    ("[windows]\nhop_s = 1e-6", "windows.hop_s"),
    ("[modalities.bvp]\nhop_s = 0.001", "modalities.bvp.hop_s"),
    ("[windows]\nlength_s = 1e12\nhop_s = 1", "windows.length_s"),
    ("[windows]\nlength_s = 0.01\nhop_s = 0.01", "windows.length_s"),
    ('[[sinks]]\nkind = "jsonl"\ndirectory = "x"\nmax_mb = 1e308', "sinks[0].max_mb"),
    ('[[sinks]]\nkind = "npz"\ndirectory = "x"\nmax_mb = 1e-300', "sinks[0].max_mb"),
    ('[[sinks]]\nkind = "jsonl"\ndirectory = "x"\nmax_age_s = 1e-9', "sinks[0].max_age_s"),
    ('[[sinks]]\nkind = "jsonl"\ndirectory = "x"\nflush_s = 1e9', "sinks[0].flush_s"),
    ('[[sinks]]\nkind = "jsonl"\ndirectory = "x"\nprefix = "../../escaped"', "sinks[0].prefix"),
    ('[[sinks]]\nkind = "jsonl"\ndirectory = "x"\nprefix = "/etc/x"', "sinks[0].prefix"),
    ('[[sinks]]\nkind = "jsonl"\ndirectory = "x"\nfile_mode = 0o666', "sinks[0].file_mode"),
    ('[[sinks]]\nkind = "jsonl"\ndirectory = "x"\nfile_mode = "0400"', "sinks[0].file_mode"),
    ('[[sinks]]\nkind = "mqtt"\ntopic = "biomoe/{device.__class__}"', "sinks[0].topic"),
    ('[[sinks]]\nkind = "mqtt"\ntopic = "biomoe/{device[0]}"', "sinks[0].topic"),
    ('[[sinks]]\nkind = "mqtt"\ntopic = "biomoe/#/{device}"', "sinks[0].topic"),
    ('[[sinks]]\nkind = "mqtt"\nprediction_topic = "p/{device}"', "sinks[0].prediction_topic"),
    ('[[sinks]]\nkind = "mqtt"\nmax_queue = 100000000000', "sinks[0].max_queue"),
    ('[[sinks]]\nkind = "mqtt"\nusername = "u"\npassword = "p"\npassword_env = "P"', "sinks[0].password_env"),
    ('[[sinks]]\nkind = "mqtt"\npassword_file = "p"', "sinks[0].password_file"),
    ('[[sinks]]\nkind = "mqtt"\ntls_cert_file = "c.pem"', "sinks[0].tls_cert_file"),
    ('[[sinks]]\nkind = "mqtt"\ntls_ca_file = "ca.pem"\ntls_key_file = "k.pem"', "sinks[0].tls_key_file"),
    ('[[sinks]]\nkind = "mqtt"\npassword_env = "A B"\nusername = "u"', "sinks[0].password_env"),
    ("[engine]\ndeadline_ms = 1e300", "engine.deadline_ms"),
    ("[engine]\nmax_queue = 9223372036854775807", "engine.max_queue"),
    ("[transport]\nbackoff_min_s = 1e-300", "transport.backoff_min_s"),
    ("[transport]\nconnect_timeout_s = 1e308", "transport.connect_timeout_s"),
])
def test_out_of_range_values_are_refused_by_key(tmp_path, text, key):
    error = _error(text, tmp_path)
    assert error.key_path == key, str(error)
    assert str(tmp_path / "gateway.toml") in str(error)


def test_mqtt_tls_and_secret_keys_load_with_paths_resolved(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text(textwrap.dedent("""
        [[sinks]]
        kind = "mqtt"
        host = "broker.local"
        port = 8883
        username = "gateway-1"
        password_file = "secrets/mqtt"
        tls_ca_file = "pki/ca.pem"
        tls_cert_file = "pki/gw.pem"
        tls_key_file = "pki/gw.key"
        prediction_topic = "clinic/{subject}/pain"
        [[sinks]]
        kind = "jsonl"
        directory = "out"
        prefix = "ward-3.embeddings"
        file_mode = 0o600
        flush_s = 0.5
    """))
    mqtt, jsonl = load_config(path).sinks
    assert mqtt.options["password_file"] == tmp_path / "secrets/mqtt" and mqtt.options["password"] is None
    assert mqtt.options["tls_ca_file"] == tmp_path / "pki/ca.pem" and mqtt.options["tls_verify_hostname"] is True
    assert jsonl.options["file_mode"] == 0o600 and jsonl.options["flush_s"] == 0.5


def _run_limited(code: str, memory_bytes: int = 2 << 30) -> subprocess.CompletedProcess:
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, preexec_fn=limit)


@pytest.mark.parametrize("body", [
    '"a" + ".a" * 50000 + " = 1\\n"',  # quadratic in tomllib: 25 s and 6 GB before
    '"x = " + "[" * 50000 + "]" * 50000 + "\\n"',  # RecursionError in tomllib before
    '"x = " + "{a=" * 50000 + "1" + "}" * 50000 + "\\n"',
    '"[" + "a." * 50000 + "a]\\n"',
])
def test_deep_nesting_fails_fast_with_a_config_error_not_recursion_or_gigabytes(tmp_path, body):
    path = tmp_path / "deep.toml"
    code = textwrap.dedent(f"""
        import pathlib
        from biomoe_edge.runtime.gateway_config import ConfigError, load_config
        path = pathlib.Path({str(path)!r})
        path.write_text({body})
        try:
            load_config(path)
        except ConfigError as exc:
            print("ConfigError", exc)
    """)
    result = _run_limited(code)  # 2 GB of address space: the old parse needed 6 GB
    assert result.returncode == 0, result.stderr[-1500:]
    assert result.stdout.startswith("ConfigError") and "nested deeper than" in result.stdout
    assert "line 1" in result.stdout


def test_a_huge_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text("# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="larger than"):
        load_config(path)


# -- property tests ---------------------------------------------------------------------------------------------

_numbers = st.one_of(st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1),
                     st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from([0, 1, -1, 1e-6, 1e-300, 1e308, 1e12, 0.05, 600.0, 65535, 65536]))
_strings = st.one_of(st.text(max_size=20), st.sampled_from(
    ["../../escaped", "{device.__class__}", "biomoe/{device}", "a/#", "", "0o640", "0640", "jsonl", "npz", "mqtt",
     "lsl", "native", "polar_pmd", "bvp", "eda", "scalogram", "cuda:0", "auto", "x" * 300]))
_scalars = st.one_of(_numbers, _strings, st.booleans())
_values = st.one_of(_scalars, st.lists(_scalars, max_size=4))

SCHEMA = {
    "windows": ["length_s", "hop_s", "representations"],
    "engine": ["kind", "path", "precision", "max_batch", "deadline_ms", "max_queue", "device"],
    "transport": ["adapter", "connect_timeout_s", "backoff_min_s", "backoff_max_s"],
}
SINK_KEYS = ["kind", "directory", "prefix", "max_mb", "max_age_s", "flush_s", "file_mode", "stream_prefix",
             "max_buffered_s", "host", "port", "topic", "prediction_topic", "qos", "client_id", "keepalive_s",
             "max_queue", "close_timeout_s", "username", "password", "password_file", "password_env", "tls_ca_file",
             "tls_cert_file", "tls_key_file", "tls_verify_hostname", "bogus"]
DEVICE_KEYS = ["name", "address", "profile", "modalities"]


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string, or (lone surrogates) a syntax error: both are fine inputs
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


@st.composite
def _documents(draw):
    lines = []
    for section, keys in SCHEMA.items():
        chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys)))
        if chosen:
            lines.append(f"[{section}]")
            lines += [f"{key} = {_toml_value(draw(_values))}" for key in chosen]
    for table, keys in (("sinks", SINK_KEYS), ("devices", DEVICE_KEYS)):
        for _ in range(draw(st.integers(0, 2))):
            lines.append(f"[[{table}]]")
            for key in draw(st.lists(st.sampled_from(keys), unique=True, max_size=8)):
                lines.append(f"{key} = {_toml_value(draw(_values))}")
    return "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None,  # about what loads, not how fast: a loaded CI machine is slow
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=_documents())
def test_any_schema_document_loads_or_names_the_key_at_fault(tmp_path, text):
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except ConfigError as exc:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8", errors="surrogatepass"))
        except (tomllib.TOMLDecodeError, UnicodeError):
            return  # not TOML at all: a ConfigError naming the line is all there is to say
        top = exc.key_path.split(".")[0].split("[")[0]
        assert top in data, f"the error names {exc.key_path!r}, not a key of the document: {exc}"


@settings(max_examples=300, deadline=None,  # about what loads, not how fast: a loaded CI machine is slow
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=st.text(alphabet=st.sampled_from(list("ab1.=[]{}\"'#,\n -_0x")), max_size=400))
def test_any_text_loads_or_raises_a_config_error(tmp_path, text):
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    try:
        load_config(path)
    except ConfigError:
        pass


def test_parse_config_shows_values_briefly_in_errors():
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(f'[windows]\nhop_s = "{"x" * 10000}"'))
    assert len(str(info.value)) < 200
