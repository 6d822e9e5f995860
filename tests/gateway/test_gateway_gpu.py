"""The gateway's CUDA path: windows preprocessed and rendered by CuPy into the PyTorch CUDA engine's input give
the pictures and embeddings of the CPU path. Needs CuPy, torch with CUDA and a device; skipped with the reason
otherwise (nothing is faked)."""

from __future__ import annotations

import numpy as np
import pytest

from biomoe_edge.runtime.engines import open_engine
from biomoe_edge.runtime.gateway import Gateway
from biomoe_edge.runtime.pipeline import Pipeline
from biomoe_edge.runtime.gateway_config import parse_config
from biomoe_edge.vocabulary import REPRESENTATIONS

from gateway_helpers import description, packets

pytestmark = [pytest.mark.gpu, pytest.mark.torch]


@pytest.fixture(scope="module")
def cuda_stack():
    torch = pytest.importorskip("torch", reason="torch is needed for the PyTorch CUDA engine")
    cupy = pytest.importorskip("cupy", reason="CuPy is needed to render on the GPU (pip install biomoe-edge[gpu])")
    if not torch.cuda.is_available():
        pytest.skip(f"torch {torch.__version__} sees no CUDA device")
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CuPy without a driver
        pytest.skip(f"CuPy sees no CUDA device ({type(exc).__name__}: {exc})")
    return torch, cupy


def gateway_config(deadline_ms: float = 1e9):
    return parse_config({"windows": {"length_s": 10.0, "hop_s": 1.0, "representations": list(REPRESENTATIONS)},
                         "engine": {"max_batch": 12, "deadline_ms": deadline_ms, "max_queue": 4096}})


def run_pipeline(engine, seconds: float = 13.0):
    """Every window of two streams (bvp, eda) in all six representations: (jobs, images on the host, embeddings)."""
    pipeline = Pipeline(gateway_config(), engine)
    pipeline.add_device("wearable", description())
    for arrival, _, _, payload in packets(seconds):
        pipeline.handle_notification("wearable", payload, arrival)
    pipeline.flush_device("wearable")
    jobs, images, embeddings = [], [], []
    while batch := pipeline.next_batch(flush=True):
        result = pipeline.run_batch(batch)
        ordered = result.jobs
        rendered = pipeline.images[:len(ordered)]
        images.append(rendered.get() if hasattr(rendered, "get") else np.array(rendered))
        jobs.extend((job.window.modality, job.representation, job.window.start_s) for job in ordered)
        embeddings.append(np.stack([record.embedding for record in result.records]))
    assert not pipeline.jobs_failed
    return jobs, np.concatenate(images).astype(np.float32), np.concatenate(embeddings)


def test_cuda_pipeline_renders_and_embeds_like_the_cpu_pipeline(cuda_stack, reference_dir):
    _, cupy = cuda_stack
    checkpoint = reference_dir / "tiny_biomoe_seed11.pth"
    with open_engine("pytorch", checkpoint, device="cpu", max_batch=12) as cpu_engine:
        cpu_jobs, cpu_images, cpu_embeddings = run_pipeline(cpu_engine)
    with open_engine("pytorch", checkpoint, device="cuda", max_batch=12) as cuda_engine:
        cuda_jobs, cuda_images, cuda_embeddings = run_pipeline(cuda_engine)
        assert isinstance(Pipeline(parse_config({}), cuda_engine).images, cupy.ndarray)  # rendered on the GPU
    assert cuda_jobs == cpu_jobs and len(cpu_jobs) >= 2 * 3 * len(REPRESENTATIONS)  # 2 streams, >= 3 windows each
    # Pictures: cuFFT and scipy round differently, so compare per image by PSNR (as the CuPy render test does).
    mse = ((cuda_images - cpu_images) ** 2).reshape(len(cpu_images), -1).mean(axis=1)
    psnr_db = 10 * np.log10(1.0 / np.maximum(mse, 1e-12))
    assert psnr_db.min() >= 45.0, psnr_db.round(1)
    cosine = (cuda_embeddings * cpu_embeddings).sum(1) / (
        np.linalg.norm(cuda_embeddings, axis=1) * np.linalg.norm(cpu_embeddings, axis=1))
    assert cosine.min() >= 0.999, cosine.min()


async def test_gateway_on_cuda_warms_up_and_embeds_in_its_worker_thread_like_the_cpu_pipeline(cuda_stack, reference_dir):
    """The Gateway runs the warm-up and every batch in a worker thread (CuPy and CUDA graphs off the thread
    that allocated the buffer): its records equal the CPU pipeline's embeddings."""
    checkpoint = reference_dir / "tiny_biomoe_seed11.pth"
    with open_engine("pytorch", checkpoint, device="cpu", max_batch=12) as cpu_engine:
        cpu_jobs, _, cpu_embeddings = run_pipeline(cpu_engine)
    expected = dict(zip(cpu_jobs, cpu_embeddings))
    records = []
    with open_engine("pytorch", checkpoint, device="cuda", max_batch=12, cuda_graphs=True) as cuda_engine:
        async with Gateway(gateway_config(deadline_ms=50), engine=cuda_engine, transport=False) as gateway:
            gateway.on_embedding(records.append)
            gateway.add_device("wearable", description())
            for arrival, _, _, payload in packets(13.0):
                gateway.feed("wearable", payload, arrival)
    got = {(r.modality, r.representation, r.window_start_s): r.embedding for r in records}
    assert set(got) == set(expected) and len(records) == len(expected)
    a = np.stack([got[k] for k in expected])
    b = np.stack(list(expected.values()))
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cosine.min() >= 0.999, cosine.min()
