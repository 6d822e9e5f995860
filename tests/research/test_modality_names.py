"""One set of modality names and aliases everywhere: "ppg" is bvp for every parser of a modality name."""

import pytest

from biomoe_edge.commands.demo import parse_modalities
from biomoe_edge.runtime.recording.sources import parse_channel_map
from biomoe_edge.runtime.transforms import modality_defaults
from biomoe_edge.training.datasets import parse_inputs
from biomoe_edge.vocabulary import MODALITY_ALIASES, Modality


def test_every_parser_takes_ppg_for_bvp():
    assert MODALITY_ALIASES == {"ppg": "bvp"}
    assert Modality.parse(" PPG ") is Modality.BVP
    assert parse_modalities("ppg,eda") == ("bvp", "eda")  # demo --modalities
    assert modality_defaults("ppg").modality == "bvp"  # inspect-signal --modality
    assert parse_channel_map("PPG:ppg@64") == [("PPG", "bvp", 64.0)]  # embed / bridge --map
    assert parse_inputs("ppg:spectrogram_psd") == ("bvp:spectrogram_psd",)  # train-head --inputs


def test_bridge_new_takes_ppg_for_bvp():
    from biomoe_edge.vocabulary import InputType  # bridge --new parses with it

    parsed = InputType.parse("ppg:spectrogram_psd")
    assert (parsed.modality.value, parsed.representation.value) == ("bvp", "spectrogram_psd")


def test_an_unknown_name_lists_the_names_and_the_aliases():
    with pytest.raises(ValueError, match=r"unknown modality 'pgg'; expected one of: eda, bvp, resp, spo2, ecg "
                                         r"\(ppg for bvp\)"):
        Modality.parse("pgg")
