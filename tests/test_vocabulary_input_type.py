"""``InputType``: the one parser of "modality:representation" (manifests, configuration, command line)."""

import pytest

from biomoe_edge.vocabulary import InputType, Modality, Representation


def test_parse_normalises_and_prints_back():
    it = InputType.parse(" ECG : spectrogram_psd ")
    assert it == InputType(Modality.ECG, Representation.SPECTROGRAM_PSD)
    assert str(it) == "ecg:spectrogram_psd"
    assert InputType.parse(str(it)) == it
    assert InputType.parse(it) is it


def test_modality_aliases_are_accepted():
    assert str(InputType.parse("ppg:scalogram")) == "bvp:scalogram"
    assert Modality.parse("PPG") is Modality.BVP


@pytest.mark.parametrize("text, message", [
    ("ecg", r"'ecg' is not MODALITY:REPRESENTATION"),
    ("eeg:scalogram", r"input 'eeg:scalogram': unknown modality 'eeg'; expected one of: eda, bvp"),
    ("ecg:spectrogram", r"input 'ecg:spectrogram': unknown representation 'spectrogram'; expected one of: "
                        r"spectrogram_psd, spectrogram_angle"),
])
def test_bad_text_is_named_with_the_valid_names(text, message):
    with pytest.raises(ValueError, match=message):
        InputType.parse(text)


def test_values_are_hashable_and_frozen():
    a, b = InputType.parse("eda:recurrence"), InputType("eda", "recurrence")
    assert a == b and len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.modality = Modality.ECG
