"""A password others can read, or one sent without TLS, is warned about (refused with strict): before, an inline
password in a world-readable TOML was accepted silently and sent in clear."""

import logging
import os

import pytest

from biomoe_edge.runtime.gateway_config import ConfigError, load_config

MQTT = """
[[sinks]]
kind = "mqtt"
host = "broker.example"
username = "gw"
"""


def _toml(tmp_path, body, mode):
    path = tmp_path / "gateway.toml"
    path.write_text(MQTT + body)
    os.chmod(path, mode)
    return path


def test_an_inline_password_in_a_world_readable_file_without_tls_is_warned_about_twice(tmp_path, caplog):
    path = _toml(tmp_path, 'password = "hunter2"\n', 0o644)
    with caplog.at_level(logging.WARNING, logger="biomoe_edge.runtime.gateway_config"):
        load_config(path)
    messages = [r.getMessage() for r in caplog.records]
    assert any("sinks[0].password" in m and "every user can read" in m for m in messages)
    assert any("sinks[0].tls_ca_file" in m and "without TLS" in m for m in messages)
    with pytest.raises(ConfigError, match=r"sinks\[0\].password.*every user can read"):
        load_config(path, strict=True)


def test_a_world_readable_password_file_is_refused_with_strict(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("hunter2")
    os.chmod(secret, 0o604)
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here")
    path = _toml(tmp_path, f'password_file = "{secret}"\ntls_ca_file = "{ca}"\n', 0o600)
    with pytest.raises(ConfigError, match=r"sinks\[0\].password_file.*every user can read"):
        load_config(path, strict=True)
    os.chmod(secret, 0o600)
    load_config(path, strict=True)  # private, and over TLS: nothing to say


def test_a_private_file_over_tls_is_quiet(tmp_path, caplog):
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here")
    path = _toml(tmp_path, f'password = "hunter2"\ntls_ca_file = "{ca}"\n', 0o640)
    with caplog.at_level(logging.WARNING, logger="biomoe_edge.runtime.gateway_config"):
        load_config(path, strict=True)
    assert not caplog.records
