import subprocess
import sys

import pytest

from biomoe_edge import REPRESENTATIONS, Modality, StreamSpec, WindowSpec, __version__
from biomoe_edge.cli import COMMANDS, build_parser
from biomoe_edge.vocabulary import check_representations


def test_version_command_prints_the_package_version():
    out = subprocess.run(
        [sys.executable, "-m", "biomoe_edge", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert __version__ in out


def test_every_command_has_a_module_with_help_and_arguments():
    parser = build_parser()
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([name, "--help"])
        assert exit_info.value.code == 0


def test_modality_parse_accepts_any_case_and_names_valid_ones():
    assert Modality.parse("BVP") is Modality.BVP
    with pytest.raises(ValueError, match="eda, bvp"):
        Modality.parse("emg")


def test_representation_check_names_the_unknown_one():
    assert check_representations("waveform") == ("waveform",)
    assert len(REPRESENTATIONS) == 6
    with pytest.raises(ValueError, match="'gaf'"):
        check_representations(["scalogram", "gaf"])


def test_specs_refuse_nonsense():
    with pytest.raises(ValueError, match="sample_rate_hz"):
        StreamSpec("dev", "ecg", 0)
    with pytest.raises(ValueError, match="hop_s"):
        WindowSpec(10, 0)
