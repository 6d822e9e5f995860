"""``biomoe-edge emulate`` in-process: a NeuroKit2-simulated wearable, a gateway connection, counted losses."""

from __future__ import annotations

import re

import pytest

from biomoe_edge.cli import main


def test_emulate_in_process_streams_simulated_signals_and_counts_what_it_dropped(capsys):
    pytest.importorskip("neurokit2", reason="simulated signals need NeuroKit2 (pip install 'biomoe-edge[signals]')")
    code = main(
        ["emulate", "--profile", "native", "--signals", "simulated", "--loss", "0.05", "--seed", "3",
         "--duration", "2", "--speed", "10", "--modalities", "bvp,ecg,eda,resp"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "[biomoe-wear-1] connected: mtu 247" in out
    progress = [line for line in out.splitlines() if line.startswith("t=")]
    assert progress and all(m in progress[-1] for m in ("bvp:", "ecg:", "eda:", "resp:"))
    sent = int(re.search(r"sent (\d+),", out).group(1))
    dropped = int(re.search(r"dropped on purpose (\d+)", out).group(1))
    received, lost = map(int, re.search(r"gateway: received (\d+) packets, counted (\d+) lost", out).groups())
    assert received == sent > 50  # sent: what arrived at the central (the in-flight losses of a drop are apart)
    assert int(re.search(r"lost in flight as a link dropped (\d+)", out).group(1)) == 0  # no link dropped
    assert dropped - 4 <= lost <= dropped  # a drop after a stream's last delivered packet cannot be seen
    assert dropped > 0


def test_emulate_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["emulate", "--loss", "1.5"])
    assert "probability" in capsys.readouterr().err
    assert main(["emulate", "--signals", "/nonexistent.csv", "--recording-rate", "10", "--duration", "1"]) == 1
    assert "nonexistent.csv" in capsys.readouterr().err


def test_emulate_a_heart_rate_strap(capsys):
    assert main(["emulate", "--profile", "heart_rate", "--duration", "1", "--speed", "10", "--loss", "0.2", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    sent = int(re.search(r"sent (\d+),", out).group(1))
    received = int(re.search(r"gateway: received (\d+) notifications", out).group(1))
    assert received == sent >= 3
    assert re.search(r"last \d+ bpm", out)


@pytest.mark.parametrize("security, link, pairings", [
    ("none", "nothing asked of the link", 0),
    # the Bumble central pairs with bonding whenever it pairs: an encrypted link is bonded too
    ("encrypted", "encrypted=True bonded=True paired_now=True", 1),
    ("bonded", "encrypted=True bonded=True paired_now=True", 1)])
def test_emulate_runs_the_board_and_the_gateway_side_at_the_security_asked(capsys, security, link, pairings):
    assert main(["emulate", "--duration", "1", "--speed", "5", "--modalities", "bvp", "--security", security]) == 0
    out = capsys.readouterr().out
    assert f"link security {security}: {link}" in out
    assert int(re.search(r"pairings (\d+), pairings refused (\d+)", out).group(1)) == pairings
    received = int(re.search(r"gateway: received (\d+) packets", out).group(1))
    assert received > 0


def test_emulate_defaults_to_the_profiles_security(capsys):
    assert main(["emulate", "--duration", "1", "--speed", "5", "--modalities", "bvp"]) == 0
    assert "link security bonded: encrypted=True bonded=True" in capsys.readouterr().out  # native boards bond
