"""``biomoe-edge embed --ray``: a corpus embedded on Ray Data, each work item replayed through the gateway's own
``Pipeline`` by the serial embed's code (:func:`.embed.embed_sources`), so the dataset equals the serial one.

Work items are whole inputs, or the time slices of a long one. A window belongs to the slice holding its start
(``window_start_s``), so every window is kept exactly once. A slice's replay gets, per stream, the stream's first
block (it fixes the window grid's anchor, as in the whole replay) and then the blocks from ``warmup_s`` before
the slice to ``tail_s`` after it: the skip between them re-anchors the stream on the same grid (as the gateway does
after an outage), and the warm-up covers everything the ingest carries from one window to the next (gap filling,
late data, clock jitter), so the slice's windows are the whole replay's, bit for bit. The few warm-up and tail
windows a slice computes are dropped (``windows_discarded``).

Each item runs in a Ray actor holding one engine (``Dataset.map_batches`` with an actor class) and is written as
a dataset of its own under ``OUT.work/`` (``biomoe_edge.dataset``: whole or not at all), named after the item.
A worker that dies is restarted by Ray and its item retried; it overwrites the item's folder, so nothing is
counted twice. ``resume=True`` keeps the items already complete there. When every item is there, they are
joined into ``OUT`` in the canonical row order (:func:`canonical_order`), and ``OUT.work/`` is removed.

Ray is imported only here, only when :func:`embed_on_ray` runs; the gateway never imports this module.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pathlib
import shutil
import time
from dataclasses import asdict, dataclass

import numpy as np

log = logging.getLogger("biomoe_edge.runtime.recording.distributed")

WORK_SUFFIX = ".work"
PLAN_FILE = "plan.json"


@dataclass(frozen=True)
class WorkItem:
    """One input (``start_s`` and ``end_s`` None), or the windows of one input whose start is in
    [``start_s``, ``end_s``) (None: open on that side). ``samples``: how many samples it covers (progress)."""

    item_id: str
    input_index: int
    path: str
    start_s: float | None
    end_s: float | None
    samples: int

    @property
    def sliced(self) -> bool:
        return self.start_s is not None or self.end_s is not None


def _time_span(source) -> tuple[float, float, list[np.ndarray]]:
    """First and last finite sample time over the source's streams, and each stream's times."""
    all_times = [np.asarray(times, dtype=np.float64) for _, times, _ in source.iter_streams()]
    finite = [t[np.isfinite(t)] for t in all_times]
    finite = [t for t in finite if t.size]
    if not finite:
        return math.nan, math.nan, all_times
    return min(float(t.min()) for t in finite), max(float(t.max()) for t in finite), all_times


def plan_items(paths, sources, *, slice_s: float | None) -> list[WorkItem]:
    """Work items of ``sources`` (opened from ``paths``): one per input, or slices of ``slice_s`` seconds of window
    starts for inputs longer than that (None: never slice)."""
    if slice_s is not None and not (math.isfinite(slice_s) and slice_s > 0):
        raise ValueError(f"--slice must be a positive number of seconds, got {slice_s!r}")
    items = []
    for index, (path, source) in enumerate(zip(paths, sources)):
        total = int(getattr(source, "total_samples", 0) or 0)
        first, last, stream_times = _time_span(source) if slice_s is not None else (math.nan, math.nan, [])
        if slice_s is None or not math.isfinite(first) or last - first <= slice_s:
            items.append(WorkItem(f"{index:05d}", index, str(path), None, None, total))
            continue
        count = math.ceil((last - first) / slice_s)
        bounds = [None] + [first + k * slice_s for k in range(1, count)] + [None]
        for k in range(count):
            lo = -math.inf if bounds[k] is None else bounds[k]
            hi = math.inf if bounds[k + 1] is None else bounds[k + 1]
            samples = sum(int(np.count_nonzero((t >= lo) & (t < hi))) for t in stream_times)
            items.append(WorkItem(f"{index:05d}-{k:04d}", index, str(path), bounds[k], bounds[k + 1], samples))
    return items


class SlicedSource:
    """A source as the replay of one slice sees it: per stream its first block, then the blocks that reach into
    [start_s - warmup_s, end_s + tail_s). Everything else (streams, settings, markers, subjects) is the source's."""

    def __init__(self, source, start_s: float | None, end_s: float | None, *, warmup_s: float, tail_s: float,
                 samples: int):
        self._source = source
        self.start_s, self.end_s = start_s, end_s
        self.low_s = -math.inf if start_s is None else start_s - warmup_s
        self.high_s = math.inf if end_s is None else end_s + tail_s
        self.total_samples = samples

    def __getattr__(self, name):
        return getattr(self._source, name)

    def blocks(self, *, segments_done=None):
        anchored = set()
        for block in self._source.blocks(segments_done=segments_done):
            times = np.asarray(block.gateway_times_s, dtype=np.float64)
            finite = times[np.isfinite(times)]
            key = (block.device, block.modality)
            if key not in anchored:
                if finite.size:
                    anchored.add(key)
                yield block
            elif finite.size and finite.max() >= self.low_s and finite.min() < self.high_s:
                yield block


def slice_margins(config) -> tuple[float, float]:
    """(warm-up, tail) seconds a slice replays beyond its bounds, for the replay's windows ``config``."""
    from biomoe_edge.runtime.ingest import IngestConfig

    ingest = IngestConfig()
    longest = max(spec.window.length_s for spec in config.modalities.values())
    hop = max(spec.window.hop_s for spec in config.modalities.values())
    # Before a window: its nearest-slot start, a filled gap's real neighbour, late data and clock jitter, a hop.
    warmup = ingest.late_tolerance_s + ingest.max_gap_fill_s + hop + 1.0
    # After a slice's last window start: that window's samples and a filled gap after its end.
    tail = longest + ingest.max_gap_fill_s + 1.0
    return warmup, tail


def canonical_order(frame):
    """``frame``'s rows in the order ``embed --ray`` writes them: by input (in the order given; the rows of each
    input are contiguous, as the manifest's ``summary.inputs[*].rows`` counts them), then subject, device,
    modality, window start, representation. Sort a serial dataset so to compare it row by row."""
    counts = [int(entry["rows"]) for entry in frame.attrs["metadata"]["summary"]["inputs"]]
    if sum(counts) != len(frame):
        raise ValueError(f"the summary counts {sum(counts)} rows, the frame has {len(frame)}")
    input_index = np.repeat(np.arange(len(counts)), counts)
    keys = [frame["representation"].to_numpy(dtype=str), frame["window_start_s"].to_numpy(dtype=np.float64),
            frame["modality"].to_numpy(dtype=str), frame["device"].to_numpy(dtype=str),
            frame["subject"].to_numpy(dtype=str), input_index]
    ordered = frame.iloc[np.lexsort(keys)].reset_index(drop=True)
    ordered.attrs = frame.attrs
    return ordered


class ItemError(RuntimeError):
    """A work item failed in a worker (its input named); the run stops, the complete items stay for --resume."""


def _item_error_message(exc: BaseException) -> str | None:
    """The message of the ItemError a worker raised, from what Ray raised in the driver (which wraps it, and
    carries the worker's traceback as text), if it holds one."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        for line in reversed(str(exc).splitlines()):
            if "ItemError: " in line:
                return line.split("ItemError: ", 1)[1].strip()
        if isinstance(exc, ItemError):
            return str(exc).strip()
        exc = getattr(exc, "cause", None) or exc.__cause__
    return None


class EmbedWorker:
    """A Ray Data actor: one engine (``engine_factory()``, opened once), work items in, one item dataset each out
    (under ``work_dir``); returns per item its windows, rows, seconds and the worker's pid."""

    def __init__(self, engine_factory, work_dir: str, source_options: dict, embed_options: dict):
        self.engine = engine_factory()
        self.work_dir = pathlib.Path(work_dir)
        self.source_options = source_options
        self.embed_options = embed_options

    def __call__(self, batch: dict) -> dict:
        out = {"item_id": [], "windows": [], "rows": [], "seconds": [], "pid": []}
        for i in range(len(batch["item_id"])):
            item = WorkItem(**{name: _plain(batch[name][i]) for name in WorkItem.__dataclass_fields__})
            start = time.perf_counter()
            try:
                windows, rows = embed_item(item, self.engine, self.work_dir, self.source_options, self.embed_options)
            except Exception as exc:  # noqa: BLE001 - named and raised to the driver, which stops the run
                raise ItemError(f"{item.path} (work item {item.item_id}): {type(exc).__name__}: {exc}") from None
            out["item_id"].append(item.item_id)
            out["windows"].append(windows)
            out["rows"].append(rows)
            out["seconds"].append(time.perf_counter() - start)
            out["pid"].append(os.getpid())
        return {name: np.asarray(values) for name, values in out.items()}


def _plain(value):
    """A NumPy scalar from a Ray batch as Python; NaN (Ray's None in a float column) as None."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value


def item_folder(work_dir, item: WorkItem) -> pathlib.Path:
    return pathlib.Path(work_dir) / f"item-{item.item_id}"


def embed_item(item: WorkItem, engine, work_dir, source_options: dict, embed_options: dict) -> tuple[int, int]:
    """Replay one work item on ``engine`` with the serial embed's code, keep the windows whose start is in the
    item, and write them as a dataset under ``work_dir``. Returns (windows, rows)."""
    from biomoe_edge.dataset import check_columns, frame_from_columns, write_dataset

    from .embed import Rows, embed_sources
    from .labels import WindowLabeller, marker_intervals
    from .replay import replay_config
    from .sources import open_source

    source = open_source(item.path, **source_options)
    replayed = source
    if item.sliced:
        config = replay_config(source, representations=embed_options.get("representations"),
                               window_s=embed_options.get("window_s"), hop_s=embed_options.get("hop_s"))
        warmup, tail = slice_margins(config)
        replayed = SlicedSource(source, item.start_s, item.end_s, warmup_s=warmup, tail_s=tail, samples=item.samples)
    rows, summary = embed_sources([replayed], engine, any_model=True, **embed_options)  # the model: checked once
    lo = -math.inf if item.start_s is None else item.start_s
    hi = math.inf if item.end_s is None else item.end_s
    keep = [i for i, start in enumerate(rows.columns["window_start_s"]) if lo <= start < hi]
    kept = Rows()
    for name, values in rows.columns.items():
        kept.columns[name] = [values[i] for i in keep]
    # Labels counted over the kept windows only (a slice's replay labelled its warm-up windows too).
    labels, subject = embed_options.get("labels"), embed_options.get("subject")
    devices = {device: source.subject_of(device, subject) for device, _ in source.streams}
    if labels is not None:
        labeller = WindowLabeller(labels)
    elif embed_options.get("use_markers", True) and source.markers:
        labeller = WindowLabeller(marker_intervals(source.markers, devices=devices, end_s=math.inf))
    else:
        labeller = WindowLabeller(())
    c = kept.columns
    windows = dict.fromkeys(zip(c["device"], c["modality"], c["window_start_s"], c["window_end_s"]))
    for device, _, start, end in windows:
        labeller.label(devices[device], device, start, end)
    (entry,) = summary["inputs"]
    entry.update(path=item.path, windows=len(windows), rows=len(kept), slice=[item.start_s, item.end_s],
                 windows_discarded=summary["windows"] - len(windows))
    metadata = {"item": asdict(item), "input": entry, "labelled": dict(labeller.labelled),
                "unlabelled": dict(labeller.unlabelled)}
    write_dataset(frame_from_columns(check_columns(kept.columns)), item_folder(work_dir, item), metadata=metadata,
                  overwrite=True)
    return len(windows), len(kept)


def _plan_fingerprint(items, identity: dict, options: dict) -> str:
    text = json.dumps({"items": [asdict(i) for i in items], "engine": identity, "options": options},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def prepare_work_dir(work_dir: pathlib.Path, fingerprint: str, *, resume: bool) -> None:
    """Create ``work_dir`` for a plan, or with ``resume`` reuse the one an interrupted run of the same plan left."""
    plan = work_dir / PLAN_FILE
    if work_dir.exists():
        if not resume:
            raise FileExistsError(f"{work_dir}: an interrupted run's work is there; pass --resume to continue it, or "
                                  "remove the folder to start over")
        recorded = json.loads(plan.read_text()).get("fingerprint") if plan.is_file() else None
        if recorded != fingerprint:
            raise ValueError(f"{work_dir}: made by a run with other inputs, options or model; remove the folder to "
                             "start over")
        return
    work_dir.mkdir(parents=True)
    plan.write_text(json.dumps({"fingerprint": fingerprint}) + "\n")


def completed_items(work_dir: pathlib.Path, items) -> dict[str, dict]:
    """Items whose dataset in ``work_dir`` is whole (its content matches its hash): item_id -> its metadata."""
    from biomoe_edge.dataset import DatasetError, read_manifest

    done = {}
    for item in items:
        folder = item_folder(work_dir, item)
        try:
            manifest = read_manifest(folder)
        except DatasetError:
            continue
        if manifest.get("metadata", {}).get("item") == asdict(item):
            done[item.item_id] = manifest["metadata"]
    return done


class Progress:
    """Windows done, windows/s and the time left, from the items finished in this run (samples as the measure of
    work left). ``report(dict)`` after each item."""

    def __init__(self, items, done: dict, report=None):
        self.total_samples = sum(i.samples for i in items) or 1
        by_id = {i.item_id: i for i in items}
        self.samples_before = sum(by_id[i].samples for i in done)
        self.windows_before = sum(m["input"]["windows"] for m in done.values())
        self.items_total = len(items)
        self.items_done = len(done)
        self.samples = self.windows = 0
        self.by_id = by_id
        self.start = time.perf_counter()
        self.report = report

    def item_done(self, item_id: str, windows: int, worker_pid: int | None = None) -> dict:
        self.items_done += 1
        self.samples += self.by_id[item_id].samples
        self.windows += int(windows)
        elapsed = time.perf_counter() - self.start
        left = self.total_samples - self.samples_before - self.samples
        state = {"items_done": self.items_done, "items_total": self.items_total,
                 "windows_done": self.windows_before + self.windows, "elapsed_s": elapsed,
                 "windows_per_s": self.windows / elapsed if elapsed > 0 else 0.0,
                 "eta_s": elapsed * max(left, 0) / self.samples if self.samples else None,
                 "item_id": item_id, "worker_pid": worker_pid}
        if self.report is not None:
            self.report(state)
        return state


def cluster_workers(resources: dict, workers: int | None, gpus_per_worker: float) -> int:
    """How many workers to start on a cluster with ``resources`` (``ray.cluster_resources()``): ``workers``, or as
    many as it holds (one CPU each, and ``gpus_per_worker`` GPUs). ValueError when it cannot hold them: Ray would
    wait for resources that never come."""
    cpus, gpus = int(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    if gpus_per_worker > 0 and gpus < gpus_per_worker:
        raise ValueError(f"--gpus-per-worker {gpus_per_worker:g}: the Ray cluster has {gpus:g} GPUs")
    fits = min(cpus, int(gpus // gpus_per_worker)) if gpus_per_worker > 0 else cpus
    if workers is None:
        return max(1, fits)
    if workers > fits:
        raise ValueError(f"--workers {workers}: the Ray cluster holds {fits} (one CPU each"
                         + (f", {gpus_per_worker:g} GPU each; it has {cpus} CPUs, {gpus:g} GPUs)" if gpus_per_worker
                            else f"; it has {cpus} CPUs)"))
    return workers


def embed_on_ray(inputs, engine_factory, *, out, address: str | None = None, workers: int | None = None,
                 gpus_per_worker: float = 0.0, slice_s: float | None = 1800.0, resume: bool = False,
                 overwrite: bool = False, source_options: dict | None = None, labels=None, representations=None,
                 window_s: float | None = None, hop_s: float | None = None, subject: str | None = None,
                 use_markers: bool = True, any_model: bool = False, progress=None, metadata: dict | None = None):
    """Embed ``inputs`` on Ray into the dataset ``out`` (what ``embed_to_dataset`` writes, rows in
    :func:`canonical_order`); returns its DataFrame.

    ``engine_factory()``: opens one engine; called once in the driver (the model check) and once per worker, so it
    must pickle (a module-level function or class). ``address``: None starts a local Ray sized to the machine;
    "auto" or "ray://HOST:PORT" joins a cluster (Ray already initialised in this process: used as it is).
    ``workers``: actors, each holding one engine (default: the cluster's CPUs, or its GPUs / ``gpus_per_worker``).
    ``slice_s``: inputs longer than this are split into slices of window starts (None: never).
    ``progress(state)``: after each item, state has windows_done, windows_per_s, eta_s, items_done, items_total."""
    import ray

    from biomoe_edge._version import __version__
    from biomoe_edge.dataset import (check_columns, check_target, frame_from_columns, load_dataset, read_manifest,
                                     write_dataset)

    from .embed import check_model
    from .sources import open_source

    out = pathlib.Path(out)
    check_target(out, overwrite)
    source_options = dict(source_options or {})
    inputs = [str(p) for p in ([inputs] if isinstance(inputs, (str, pathlib.Path)) else inputs)]
    if not inputs:
        raise ValueError("no input: give recording folders, EDF or CSV files")
    sources = [open_source(path, **source_options) for path in inputs]
    engine = engine_factory()
    try:
        if not any_model:
            for source in sources:
                check_model(source, engine)
        identity = {k: v for k, v in dict(getattr(engine, "identity", {}) or {}).items()
                    if isinstance(v, (str, int, float, bool, type(None)))}
    finally:
        engine.close()
    items = plan_items(inputs, sources, slice_s=slice_s)
    del sources
    embed_options = {"labels": labels, "representations": representations, "window_s": window_s, "hop_s": hop_s,
                     "subject": subject, "use_markers": use_markers}
    work_dir = out.with_name(out.name + WORK_SUFFIX)
    started_ray = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False, **({} if address else {"ignore_reinit_error": True}))
        started_ray = True
    try:
        # What the cluster cannot hold is refused before any work (Ray would wait for it forever).
        workers = cluster_workers(ray.cluster_resources(), workers, gpus_per_worker)
        prepare_work_dir(work_dir, _plan_fingerprint(items, identity, {**embed_options, **source_options}),
                         resume=resume)
        done = completed_items(work_dir, items)
        if done:
            log.info("resuming: %d of %d items complete in %s", len(done), len(items), work_dir)
        tracker = Progress(items, done, progress)
        todo = [item for item in items if item.item_id not in done]
        resumed = len(done)
        start = time.perf_counter()
        if todo:
            workers = min(workers, len(todo))
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False
            rows = [{**asdict(item), "start_s": math.nan if item.start_s is None else item.start_s,
                     "end_s": math.nan if item.end_s is None else item.end_s} for item in todo]
            results = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
                EmbedWorker, batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
                **({"num_gpus": gpus_per_worker} if gpus_per_worker > 0 else {}),
                fn_constructor_kwargs={"engine_factory": engine_factory, "work_dir": str(work_dir),
                                       "source_options": source_options, "embed_options": embed_options})
            # Ray Data restarts a dead worker and runs its item again (by default): the item's folder is
            # overwritten, so no window is counted twice.
            try:
                for result in results.iter_rows():
                    tracker.item_done(str(result["item_id"]), int(result["windows"]), int(result["pid"]))
            except Exception as exc:
                message = _item_error_message(exc)
                if message is None:
                    raise
                raise ItemError(f"{message}; the {tracker.items_done} complete items are kept in {work_dir}: run "
                                "again with --resume once it is fixed") from None
        elapsed = time.perf_counter() - start
    finally:
        if started_ray:
            ray.shutdown()

    # Join the items: each one's rows, in item order, then the canonical order.
    done = completed_items(work_dir, items)
    missing = [item.item_id for item in items if item.item_id not in done]
    if missing:
        raise RuntimeError(f"{work_dir}: items {', '.join(missing)} did not complete; run again with --resume")
    import pandas as pd

    summary = merge_summaries(items, done, labels=labels, use_markers=use_markers)
    joined = pd.concat([load_dataset(item_folder(work_dir, item)) for item in items], ignore_index=True)
    joined.attrs = {"metadata": {"summary": summary}}
    frame = frame_from_columns(check_columns(canonical_order(joined)))
    frame.attrs["metadata"] = {
        "sdk_version": __version__, "inputs": inputs, "summary": summary, "elapsed_s": elapsed,
        "random_weights": bool(frame["random_weights"].any()) if len(frame) else None, "engine": identity,
        "ray": {"items": len(items), "items_resumed": resumed, "workers": workers, "gpus_per_worker": gpus_per_worker,
                "slice_s": slice_s, "windows_discarded": sum(m["input"]["windows_discarded"] for m in done.values())},
        **(metadata or {})}
    write_dataset(frame, out, metadata=frame.attrs["metadata"], overwrite=overwrite)
    frame.attrs["sha256"] = read_manifest(out)["sha256"]
    shutil.rmtree(work_dir, ignore_errors=True)
    return frame


def merge_summaries(items, done: dict, *, labels, use_markers: bool) -> dict:
    """The serial embed's summary from the items' (one entry per input; counts summed over its slices)."""
    import collections

    inputs: dict[int, dict] = {}
    labelled, unlabelled = collections.Counter(), collections.Counter()
    for item in items:
        meta = done[item.item_id]
        entry = dict(meta["input"])
        labelled.update(meta["labelled"])
        unlabelled.update(meta["unlabelled"])
        merged = inputs.get(item.input_index)
        if merged is None:
            entry.pop("slice", None)
            entry["slices"] = 1
            inputs[item.input_index] = entry
            continue
        merged["slices"] += 1
        for key in ("windows", "rows", "windows_withheld", "windows_discarded"):
            merged[key] += entry.get(key, 0)
        for reason, count in entry.get("jobs_failed", {}).items():
            merged["jobs_failed"][reason] = merged["jobs_failed"].get(reason, 0) + count
        merged["subjects"] = sorted(set(merged["subjects"]) | set(entry["subjects"]))
    entries = [inputs[k] for k in sorted(inputs)]
    seen_subjects = {subject for entry in entries for subject in entry["subjects"]}
    without_data = sorted({i.subject for i in labels or ()} - seen_subjects - {None})
    if without_data:
        log.warning("the labels name subjects no input has: %s (the inputs' subjects: %s)", ", ".join(without_data),
                    ", ".join(sorted(seen_subjects)))
    return {"inputs": entries, "windows": sum(e["windows"] for e in entries), "rows": sum(e["rows"] for e in entries),
            "labelled": dict(labelled), "unlabelled": dict(unlabelled),
            "labels": "file" if labels is not None else ("markers" if use_markers else "none"),
            "label_subjects_without_data": without_data}
