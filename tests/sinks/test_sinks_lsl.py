import time

import numpy as np
import pytest
from sink_records import make_records


@pytest.fixture(scope="module")
def pylsl():
    try:
        import pylsl
    except (ImportError, RuntimeError) as exc:  # pylsl raises RuntimeError when liblsl cannot load
        pytest.skip(f"pylsl cannot load liblsl here ({exc}); its wheels bundle liblsl for x86-64 only")
    return pylsl


def test_lsl_outlet_delivers_embeddings_to_a_real_inlet(pylsl):
    from biomoe_edge.runtime.sinks import LslSink

    prefix = f"biomoe-test-{time.monotonic_ns()}"
    sink = LslSink(stream_prefix=prefix)
    records = make_records(6, seed=7)
    bvp = [r for r in records if r.modality == "bvp"]
    sink.write(bvp[:1])  # creates the outlet so the inlet can resolve it
    name = sink.stream_name(bvp[0].device, "bvp", bvp[0].representation)
    found = pylsl.resolve_byprop("name", name, minimum=1, timeout=10.0)
    assert found, f"no LSL stream named {name} resolved on this machine"
    info = found[0]
    assert info.channel_count() == 192 and info.type() == "Embedding"
    inlet = pylsl.StreamInlet(info)
    full = inlet.info(timeout=5.0)
    assert full.desc().child("model").child_value("sha256") == "ab" * 32
    inlet.open_stream(timeout=5.0)
    time.sleep(0.2)
    sink.write(bvp[1:])
    got, stamps = [], []
    deadline = time.monotonic() + 5.0
    while len(got) < len(bvp) - 1 and time.monotonic() < deadline:
        sample, stamp = inlet.pull_sample(timeout=0.5)
        if sample is not None:
            got.append(sample)
            stamps.append(stamp)
    assert len(got) == len(bvp) - 1
    np.testing.assert_array_equal(np.asarray(got, np.float32), np.stack([r.embedding for r in bvp[1:]]))
    # Stamps are the windows' ends converted to the LSL clock: their spacing is the records' spacing.
    np.testing.assert_allclose(np.diff(stamps), np.diff([r.window_end_s for r in bvp[1:]]), atol=1e-3)
    assert sink.stats()["outlets"] == 1
    sink.close()


def test_predictions_have_their_own_outlet_with_classes_as_channel_labels(pylsl):
    from sink_records import make_predictions

    from biomoe_edge.runtime.sinks import LslSink

    prefix = f"biomoe-test-{time.monotonic_ns()}"
    sink = LslSink(stream_prefix=prefix)
    predictions = [p for p in make_predictions(8, seed=3, subject="s1") if len(p.classes) == 2]
    sink.write(predictions[:1] + make_records(1))
    name = sink.prediction_stream_name("s1")
    found = pylsl.resolve_byprop("name", name, minimum=1, timeout=10.0)
    assert found, f"no LSL stream named {name}"
    assert found[0].type() == "Prediction" and found[0].channel_count() == 2
    inlet = pylsl.StreamInlet(found[0])
    full = inlet.info(timeout=5.0)
    channel = full.desc().child("channels").child("channel")
    labels = []
    while not channel.empty():
        labels.append(channel.child_value("label"))
        channel = channel.next_sibling()
    assert labels == list(predictions[0].classes)
    assert full.desc().child("head").child_value("sha256") == predictions[0].head["sha256"]
    inlet.open_stream(timeout=5.0)
    time.sleep(0.2)
    sink.write(predictions[1:])
    got = []
    deadline = time.monotonic() + 5.0
    while len(got) < len(predictions) - 1 and time.monotonic() < deadline:
        sample, _ = inlet.pull_sample(timeout=0.5)
        if sample is not None:
            got.append(sample)
    np.testing.assert_array_equal(np.asarray(got, np.float32), np.stack([p.probabilities for p in predictions[1:]]))
    assert sink.stats()["outlets"] == 2  # the embedding outlet beside it
    sink.close()
