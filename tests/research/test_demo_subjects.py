"""The demo's wearables are worn by distinct subjects (one each by default, or shared out among --subjects N), so
that a recording of the demo embeds into a dataset that cross-validation by subject can use."""

import pytest

from biomoe_edge.commands.demo import demo_config, demo_subjects

NAMES = [f"biomoe-demo-{i}" for i in range(1, 6)]


def _config(names, subjects=None):
    return demo_config(names, modalities=("ecg", "bvp"), representations=("spectrogram_psd",), window_s=10.0,
                       hop_s=1.0, max_batch=4, subjects=subjects)


def test_each_wearable_is_its_own_subject_by_default():
    config = _config(NAMES[:2])
    assert [config.subject_of(name) for name in NAMES[:2]] == ["subject-1", "subject-2"]


def test_subjects_share_the_wearables_out_in_order_and_none_is_left_empty():
    for count in range(1, 6):
        shared = demo_subjects(NAMES, count)
        assert list(shared) == [f"subject-{i}" for i in range(1, count + 1)]
        assert [name for worn in shared.values() for name in worn] == NAMES  # each wearable once, in order
        assert all(shared.values())
    config = _config(NAMES[:4], subjects=2)
    assert [config.subject_of(name) for name in NAMES[:4]] == ["subject-1", "subject-1", "subject-2", "subject-2"]


@pytest.mark.parametrize("count", [0, 6])
def test_more_subjects_than_wearables_or_none_is_refused(count):
    with pytest.raises(ValueError, match=r"--subjects must be between 1 and the number of wearables \(5\)"):
        demo_subjects(NAMES, count)
