"""Recordings and imported files to a labelled dataset: replay each through the gateway's ``Pipeline``, label each
window, and collect one row per (subject, device, modality, representation, window) with the model identity
(``embed_sources``, NumPy only); ``build_dataset`` and ``embed_to_dataset`` (pandas, pyarrow) make the DataFrame
and write it with ``biomoe_edge.dataset``. The Python side of ``biomoe-edge embed``.
"""

from __future__ import annotations

import collections
import logging
import math
import pathlib

import numpy as np

from biomoe_edge.dataset import (DATASET_COLUMNS, check_columns, check_target, frame_from_columns, read_manifest,
                                 write_dataset)
from biomoe_edge.identity import backbone_identity, describe_backbone, model_identity
from biomoe_edge.vocabulary import EMBEDDING_DIM

from .exc import ModelMismatchError
from .labels import WindowLabeller, marker_intervals
from .replay import Replay, replay_config

log = logging.getLogger("biomoe_edge.runtime.recording")

#: The model identity fields a recording and the engine replaying it must agree on.
MODEL_KEYS = ("sha256", "checkpoint_sha256", "precision", "random_weights", "seed")


def recorded_engine(source) -> dict | None:
    """How the gateway that made ``source`` ran its model: kind, path, precision, device, seed, max_batch (None
    for imported files, or a recording that does not say)."""
    engine = (source.settings or {}).get("engine") or {}
    model = (source.settings or {}).get("model") or {}
    if not engine.get("kind"):
        return None
    return {"kind": engine["kind"], "path": model.get("source") or engine.get("source"),
            "precision": engine.get("precision") or model.get("precision"), "device": engine.get("device") or "cpu",
            "seed": model.get("seed"), "max_batch": engine.get("max_batch")}


def open_recorded_engine(sources, *, max_batch: int | None = None, device: str | None = None):
    """Open the engine the recordings among ``sources`` were made with (they must agree); None when no source
    records one (imported files only)."""
    from biomoe_edge.runtime.engines import open_engine

    specs = {}
    for source in sources:
        spec = recorded_engine(source)
        if spec is not None:
            specs.setdefault((spec["kind"], spec["path"], spec["precision"], spec["seed"]), (source, spec))
    if not specs:
        return None
    if len(specs) > 1:
        raise ModelMismatchError("the recordings were made with different engines or models ("
                                 + "; ".join(f"{s.path}: {k[0]} {k[1] or 'random weights'}" for k, (s, _) in specs.items())
                                 + "); embed them separately or choose one with --engine/--model")
    source, spec = next(iter(specs.values()))
    kind, path = spec["kind"], spec["path"]
    if path is not None and not pathlib.Path(path).exists():
        raise ModelMismatchError(f"{source.path}: recorded with the {kind} engine on {path}, which is not on this "
                                 "machine; pass --model PATH (a file of the same model) and --engine")
    batch = int(max_batch or spec["max_batch"] or 16)
    random_weights = False
    if kind == "pytorch":
        options = {"max_batch": batch, "precision": spec["precision"] or "fp32", "device": device or spec["device"]}
        if path is None:  # the gateway ran random weights: the recording asks for the same ones
            random_weights = True
            options["seed"] = int(spec["seed"] or 0)
    elif kind == "onnxruntime":
        options = {"max_batch": batch}
    elif kind == "tensorrt":
        options = {}
    else:
        raise ModelMismatchError(f"{source.path}: recorded with a {kind!r} engine, which embed cannot open; pass "
                                 "--engine and --model")
    return open_engine(kind, path, random_weights=random_weights, **options)


def check_model(source, engine) -> None:
    """ModelMismatchError when ``engine`` does not run the model ``source`` was recorded with."""
    recorded = (source.settings or {}).get("model")
    if not recorded:
        return
    running = model_identity(dict(getattr(engine, "identity", {}) or {}))
    for key in MODEL_KEYS:
        if recorded.get(key) != running.get(key):
            raise ModelMismatchError(
                f"{pathlib.Path(source.path) / 'recording.json'}: settings.model.{key} is {recorded.get(key)!r}, the "
                f"engine's is {running.get(key)!r}: recorded with {describe_backbone(backbone_identity(recorded))}, "
                f"embedding with {describe_backbone(backbone_identity(running))}. Embed with the recorded model "
                "(default), or pass --any-model to embed with this one anyway")


class Rows:
    """Dataset columns being collected (lists), in ``DATASET_COLUMNS`` order."""

    def __init__(self):
        self.columns: dict[str, list] = {name: [] for name in DATASET_COLUMNS}

    def __len__(self) -> int:
        return len(self.columns["subject"])

    def add(self, subject: str, record, label: str | None) -> None:
        c = self.columns
        model = record.model
        c["subject"].append(subject)
        c["device"].append(record.device)
        c["modality"].append(record.modality)
        c["representation"].append(record.representation)
        c["window_start_s"].append(float(record.window_start_s))
        c["window_end_s"].append(float(record.window_end_s))
        c["quality"].append(list(record.quality))
        c["label"].append(label)
        c["embedding"].append(np.asarray(record.embedding, dtype=np.float32).reshape(EMBEDDING_DIM))
        c["model_sha256"].append(model.get("sha256"))
        c["checkpoint_sha256"].append(model.get("checkpoint_sha256"))
        c["precision"].append(model.get("precision"))
        c["random_weights"].append(bool(model.get("random_weights")))
        c["seed"].append(model.get("seed"))
        c["engine"].append((record.engine or {}).get("kind"))


def embed_sources(sources, engine, *, representations=None, window_s: float | None = None,
                  hop_s: float | None = None, labels=None, subject: str | None = None, use_markers: bool = True,
                  any_model: bool = False, on_progress=None) -> tuple[Rows, dict]:
    """Replay every source on ``engine`` and collect dataset rows.

    ``labels``: label intervals (``labels.read_labels``); None: each source's markers label its windows (when
    ``use_markers``). ``subject``: overrides every source's subjects. ``on_progress(done, total)`` in samples.
    Returns the rows and a summary (per source: windows, withheld, rows; labels and unlabelled windows by reason).
    Raises before any replay when a recording's model differs from the engine's (unless ``any_model``)."""
    if not any_model:
        for source in sources:
            check_model(source, engine)
    total = sum(int(getattr(source, "total_samples", 0)) for source in sources) or 1
    done = [0]

    def on_block(block):
        done[0] += len(block.gateway_times_s)
        if on_progress is not None:
            on_progress(done[0], total)

    rows = Rows()
    summary = {"inputs": [], "windows": 0, "rows": 0, "labelled": collections.Counter(),
               "unlabelled": collections.Counter(), "labels": "file" if labels is not None else
               ("markers" if use_markers else "none")}
    label_subjects = {i.subject for i in labels} if labels is not None else set()
    seen_subjects = set()
    for source in sources:
        config = replay_config(source, representations=representations, window_s=window_s, hop_s=hop_s,
                               max_batch=int(getattr(engine, "max_batch", 16) or 16))
        replay = Replay(source, engine, config)
        records = list(replay.records(on_block=on_block))
        devices = {device: source.subject_of(device, subject) for device, _ in source.streams}
        seen_subjects.update(devices.values())
        if labels is not None:
            labeller = WindowLabeller(labels)
        elif use_markers and source.markers:
            # The last marker labels to the end of the data: no window lies beyond it.
            labeller = WindowLabeller(marker_intervals(source.markers, devices=devices, end_s=math.inf))
        else:
            labeller = WindowLabeller(())
        window_labels: dict = {}
        for record in records:
            key = (record.device, record.modality, record.window_start_s, record.window_end_s)
            if key not in window_labels:
                window_labels[key] = labeller.label(devices[record.device], record.device, record.window_start_s,
                                                    record.window_end_s)
            rows.add(devices[record.device], record, window_labels[key])
        stats = replay.stats()
        summary["inputs"].append({
            "path": str(source.path), "kind": source.kind, "complete": bool(source.complete),
            "subjects": sorted(set(devices.values())), "windows": len(window_labels), "rows": len(records),
            "windows_withheld": sum(stats["windows_withheld"].values()), "jobs_failed": stats["jobs_failed"],
            "streams": stats["streams"], "markers": len(source.markers),
            "windows_config": {m: {"length_s": c.window.length_s, "hop_s": c.window.hop_s,
                                   "representations": list(c.representations)}
                               for m, c in config.modalities.items()},
        })
        summary["windows"] += len(window_labels)
        summary["labelled"].update(labeller.labelled)
        summary["unlabelled"].update(labeller.unlabelled)
        if not source.complete:
            log.warning("%s: not closed cleanly (crashed or still running): embedding what its whole segments hold",
                        source.path)
    summary["rows"] = len(rows)
    summary["labelled"] = dict(summary["labelled"])
    summary["unlabelled"] = dict(summary["unlabelled"])
    summary["label_subjects_without_data"] = sorted(s for s in label_subjects - seen_subjects if s is not None)
    if summary["label_subjects_without_data"]:
        log.warning("the labels name subjects no input has: %s (the inputs' subjects: %s)",
                    ", ".join(summary["label_subjects_without_data"]), ", ".join(sorted(seen_subjects)))
    return rows, summary


def build_dataset(inputs, engine=None, *, out=None, labels=None, channel_map=None, rate_hz: float | None = None,
                  time_column: str | None = None, max_batch: int | None = None, overwrite: bool = False, **options):
    """Embed recordings and files into a dataset (the Python side of ``biomoe-edge embed``); returns the DataFrame
    and writes it to ``out`` when given.

    ``inputs``: recording folders, EDF/EDF+ or CSV files (``channel_map`` "ECG:ecg,PPG:bvp@64" for the files,
    ``rate_hz``/``time_column`` for CSV). ``engine``: an opened engine; None opens the one the recordings were made
    with. ``labels``: a label CSV or EDF+ file (None: the recordings' markers). ``options``: those of
    :func:`embed_to_dataset` (representations, window_s, hop_s, subject, use_markers, any_model, progress)."""
    from .sources import open_source

    if isinstance(inputs, (str, pathlib.Path)):
        inputs = [inputs]
    if not inputs:
        raise ValueError("no input: give recording folders, EDF or CSV files")
    if out is not None:
        check_target(out, overwrite)
    sources = [open_source(path, channel_map=channel_map, rate_hz=rate_hz, time_column=time_column) for path in inputs]
    owns_engine = engine is None
    if engine is None:
        engine = open_recorded_engine(sources, max_batch=max_batch)
        if engine is None:
            raise ValueError("no engine: these inputs do not record one (imported files); pass engine=open_engine(...)")
    try:
        return embed_to_dataset(sources, engine, out=out, labels=labels, overwrite=overwrite, **options)
    finally:
        if owns_engine:
            engine.close()


def embed_to_dataset(sources, engine, *, out=None, labels=None, representations=None, window_s: float | None = None,
                     hop_s: float | None = None, subject: str | None = None, use_markers: bool = True,
                     any_model: bool = False, overwrite: bool = False, progress=None, metadata: dict | None = None):
    """Opened sources (``runtime.recording.open_source``) through ``engine`` into a dataset DataFrame, written to
    ``out`` when given (whole or not at all). ``labels``: a label file, or intervals already read
    (``runtime.recording.read_labels``); None: the sources' markers. ``progress(done, total)``: samples replayed."""
    import time

    from biomoe_edge._version import __version__

    from .labels import fit_labels_to_inputs, input_spans, read_labels

    if out is not None:
        check_target(out, overwrite)
    labels_file = None
    if labels is None or isinstance(labels, (list, tuple)):
        intervals = labels
    else:
        labels_file, intervals = str(labels), read_labels(labels, subject=subject)
    if intervals is not None:  # labels that would label nothing: refused before the work
        intervals = fit_labels_to_inputs(intervals, input_spans(sources, subject=subject),
                                         labels_name=labels_file or "the labels")
    start = time.perf_counter()
    rows, summary = embed_sources(sources, engine, representations=representations, window_s=window_s, hop_s=hop_s,
                                  labels=intervals, subject=subject, use_markers=use_markers, any_model=any_model,
                                  on_progress=progress)
    elapsed = time.perf_counter() - start
    frame = frame_from_columns(check_columns(rows.columns))
    identity = dict(getattr(engine, "identity", {}) or {})
    frame.attrs["metadata"] = {
        "sdk_version": __version__, "inputs": [str(s.path) for s in sources], "summary": summary,
        "labels_file": labels_file, "elapsed_s": elapsed,
        "random_weights": bool(frame["random_weights"].any()) if len(frame) else None,
        "engine": {k: v for k, v in identity.items() if isinstance(v, (str, int, float, bool, type(None)))},
        **(metadata or {})}
    if out is not None:
        write_dataset(frame, out, metadata=frame.attrs["metadata"], overwrite=overwrite)
        frame.attrs["sha256"] = read_manifest(out)["sha256"]
    return frame
