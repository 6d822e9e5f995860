"""A bridge exported by ``export_bridge`` served by the Gateway (``[[heads]]``) on a PPG-only wearable playing the
SIMULATED subject's PPG, from the taps of the engine's own run (ONNX Runtime on a graph exported with the tap, and
the PyTorch engine): the served probabilities equal the PyTorch bridged model run on the images and the old head
on the same windows (the gateway's recording, replayed), and a gateway running other weights refuses the bridge."""

from __future__ import annotations

import asyncio
import warnings

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch", reason="the bridge trains and exports with PyTorch (the export extra)")

from biomoe_edge.training.bridge import export_bridge  # noqa: E402
from biomoe_edge.training.bridge.simulation import PPG_FS  # noqa: E402

T0 = 500.0
SECONDS = 50.0


@pytest.fixture(scope="module")
def bridge_dir(small_fit, tmp_path_factory):
    folder = tmp_path_factory.mktemp("served-bridge")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_bridge(small_fit, folder, precision="fp32", max_batch=8)
    return folder


def config_dict(bridge_dir, tmp_path):
    return {"windows": {"length_s": 10.0, "hop_s": 5.0, "representations": ["spectrogram_psd"]},
            "devices": [{"name": "verity", "modalities": ["bvp"]}],
            "heads": [{"path": str(bridge_dir)}],
            "engine": {"max_batch": 8, "deadline_ms": 20},
            "sinks": [{"kind": "recording", "directory": str(tmp_path / "rec")}]}


def ppg_packets(ppg):
    from biomoe_edge.firmware_bridge import SampleFormat, encode_packet

    frame = 28
    return [(T0 + (first + frame - 1) / PPG_FS + 0.03,
             encode_packet(stream_id=0, sequence=sequence, timestamp_us=int(round(first / PPG_FS * 1e6)),
                           samples=ppg[first:first + frame, None], sample_format=SampleFormat.FLOAT32))
            for sequence, first in enumerate(range(0, len(ppg) - frame + 1, frame))]


async def serve(config, engine, ppg):
    from biomoe_edge.firmware_bridge import DeviceDescription, SampleFormat, StreamDescription
    from biomoe_edge.runtime.gateway import Gateway

    gateway = Gateway(config, engine=engine, transport=False, warmup=False)
    predictions = []
    async with gateway:
        gateway.add_device("verity", DeviceDescription("sim-1.0", (StreamDescription(
            stream_id=0, modality="bvp", sample_rate_hz=PPG_FS, channels=1, sample_format=SampleFormat.FLOAT32),)))
        gateway.on_prediction(predictions.append)
        for i, (arrival, payload) in enumerate(ppg_packets(ppg)):
            gateway.feed("verity", payload, arrival)
            if i % 20 == 0:
                await asyncio.sleep(0)
    return gateway, predictions


def gateway_image(window):
    """The window drawn as Pipeline.compute draws it (its float64 samples, preprocess, render)."""
    from biomoe_edge.runtime.transforms.preprocess import preprocess
    from biomoe_edge.runtime.transforms.render import render

    x, model_fs = preprocess(window.samples[:1], window.fs, "bvp")
    image = np.empty((1, 3, 224, 224), np.float32)
    render(x, model_fs, ("spectrogram_psd",), modality="bvp", out=image)
    return image


@pytest.fixture(scope="module")
def tapped_graph(small_fit, stand_in_model, tmp_path_factory):
    """The stand-in weights exported for ONNX Runtime with the bridge's tap as an extra output."""
    from biomoe_edge.export import export_onnx

    images = np.random.default_rng(0).random((2, 3, 224, 224), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_onnx(stand_in_model, tmp_path_factory.mktemp("tapped") / "model.onnx", max_batch=8,
                           fidelity_images=images, taps=(small_fit.bridge.input_position,))


@pytest.mark.parametrize("kind", ["onnxruntime", "pytorch"])
def test_the_gateway_serves_an_exported_bridge_equal_to_pytorch(bridge_dir, small_fit, small_recording,
                                                                 reference_dir, tmp_path, kind, request):
    from biomoe_edge.runtime.engines import open_engine
    from biomoe_edge.runtime.gateway_config import parse_config
    from biomoe_edge.runtime.recording import Replay, open_recording

    _, _, simulated = small_recording
    if kind == "onnxruntime":
        engine = open_engine("onnxruntime", request.getfixturevalue("tapped_graph"), max_batch=8)
        assert engine.taps == (small_fit.bridge.input_position,)
    else:
        engine = open_engine("pytorch", reference_dir / "tiny_biomoe_seed11.pth", max_batch=8)
    runs = []
    infer_tapped = engine.infer_tapped
    engine.infer_tapped = lambda images, taps: runs.append(len(images)) or infer_tapped(images, taps)
    gateway, predictions = asyncio.run(serve(parse_config(config_dict(bridge_dir, tmp_path)), engine,
                                             simulated.ppg[:int(SECONDS * PPG_FS)]))
    assert len(predictions) >= 6
    assert all(p.via_bridge and p.head["kind"] == "bridge" and p.inputs == ("bvp:spectrogram_psd",)
               and p.modalities == ("bvp",) and p.classes == tuple(small_fit.head.classes) for p in predictions)

    (recording,) = (tmp_path / "rec").iterdir()
    windows = {float(w.end_s): w for w in Replay(open_recording(recording), None).windows()}
    rows = [windows[p.window_end_s] for p in predictions]
    images = np.concatenate([gateway_image(w) for w in rows])
    with torch.no_grad():
        embeddings = small_fit.bridged_model()(torch.from_numpy(images)).numpy()
    reference = small_fit.head.predict_proba(embeddings)
    served = np.stack([p.probabilities for p in predictions])
    assert np.abs(served - reference).max() < 1e-4
    # One engine run per batch gave both the embeddings and the bridge's features; the engine ran nothing else.
    assert engine.runs == len(runs) and sum(runs) == len(predictions)


def test_a_gateway_of_other_weights_refuses_the_bridge(bridge_dir, tmp_path):
    from biomoe_edge.runtime.engines import open_engine
    from biomoe_edge.runtime.gateway import Gateway
    from biomoe_edge.runtime.gateway_config import parse_config
    from biomoe_edge.runtime.heads import BridgeError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine = open_engine("pytorch", None, random_weights=True, seed=3, max_batch=8)
    gateway = Gateway(parse_config(config_dict(bridge_dir, tmp_path)), engine=engine, transport=False, warmup=False)

    async def start():
        async with gateway:
            pass

    with pytest.raises(BridgeError, match="trained on the embeddings of checkpoint .* but the gateway runs random"):
        asyncio.run(start())
