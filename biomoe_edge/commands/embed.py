"""``biomoe-edge embed INPUT... --out DATASET``: recordings (the gateway's, EDF/EDF+, CSV) through the gateway's own
``Pipeline``, as fast as the machine allows, into a labelled Parquet dataset (``biomoe_edge.dataset``).

For a gateway recording the windows, representations and engine default to what the gateway used (the recording
keeps them), so the rows are the live embeddings: ``window_start_s`` is the number the live record carries.
"""

from __future__ import annotations

HELP = "recordings, EDF/EDF+ or CSV files -> a labelled dataset of embeddings (Parquet; load_dataset)"


def add_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="recording folders, .edf/.bdf or .csv files, or heartpy:data.csv (data2.csv, data3.csv: "
                             "HeartPy's real PPG recordings, as inspect-signal takes them)")
    parser.add_argument("--out", required=True, metavar="DATASET", help="the dataset folder to write")
    parser.add_argument("--representations", default=None, metavar="LIST",
                        help="comma-separated (default: the recording's; the gateway's default for files)")
    parser.add_argument("--labels", default=None, metavar="FILE",
                        help="label intervals: CSV subject,start_s,end_s,label[,device] or an EDF+ file's annotations "
                             "(default: the recordings' markers)")
    parser.add_argument("--no-markers", action="store_true", help="do not label windows from markers")
    parser.add_argument("--map", default=None, metavar="CH:MOD[@HZ],...",
                        help='channel to modality for EDF/CSV inputs, e.g. "ECG:ecg,PPG:bvp@64" (@HZ: the rate the '
                             "channel must have; for a CSV without a time column, its rate)")
    parser.add_argument("--rate", type=float, default=None, metavar="HZ", help="sample rate of CSV files without a time column")
    parser.add_argument("--time-column", default=None, metavar="NAME",
                        help="the time column of CSV files (default: time_s or time, when present)")
    parser.add_argument("--time-unit", choices=("s", "ms", "us"), default="s",
                        help="the unit of the time column (default s); a rate no wearable of the modality has is "
                             "refused, naming the likely unit")
    parser.add_argument("--subject", default=None, help="the subject of every input (default: as recorded, else the "
                                                        "input's name)")
    parser.add_argument("--window", type=float, default=None, metavar="S", help="window length (default: as recorded)")
    parser.add_argument("--hop", type=float, default=None, metavar="S", help="window hop (default: as recorded)")
    parser.add_argument("--engine", choices=("auto", "onnxruntime", "pytorch", "tensorrt"), default=None,
                        help="engine (default: the one the recording was made with; for files, ONNX Runtime on the "
                             "demo's model)")
    parser.add_argument("--model", default=None, metavar="PATH", help="the model file (.onnx, .engine) for --engine")
    from biomoe_edge.commands.weights import add_weights_arguments

    add_weights_arguments(parser, required=False)  # --checkpoint | --random-weights [SEED], --strict
    parser.add_argument("--batch", type=int, default=None, metavar="N", help="images per engine batch (default: as recorded)")
    parser.add_argument("--any-model", action="store_true",
                        help="embed even when the engine's model is not the one the recording was made with")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    from biomoe_edge.commands.embed_ray import add_ray_arguments

    add_ray_arguments(parser)  # --ray [ADDRESS], --resume, --workers, --gpus-per-worker, --slice


def open_chosen_engine(args, sources):
    """--engine/--model: that engine (with --checkpoint or --random-weights for the PyTorch engine); else
    --checkpoint or --random-weights: the demo's ONNX export of those weights; else the engine the recordings were
    made with. Random weights only when asked for (or recorded), and every output says so."""
    from biomoe_edge.export.cache import open_cached_engine
    from biomoe_edge.commands.weights import PUBLISHED_CHECKPOINT_URL
    from biomoe_edge.runtime.engines import open_engine
    from biomoe_edge.runtime.recording.embed import open_recorded_engine

    batch = args.batch or 16
    seed = args.random_weights or 0
    device = "cuda" if getattr(args, "gpus_per_worker", 0) else None  # a Ray worker given GPUs runs its engine there
    if args.engine or args.model:
        kind = args.engine or "auto"
        path = args.model or args.checkpoint
        random_weights = path is None and args.random_weights is not None
        options = {"onnxruntime": {"max_batch": batch},
                   "pytorch": {"max_batch": batch, "strict": args.strict, **({"seed": seed} if random_weights else {}),
                               **({"device": device} if device else {})},
                   }.get(kind, {})
        return open_engine(kind, path, random_weights=random_weights, **options)
    if args.checkpoint is not None or args.random_weights is not None:
        return open_cached_engine("onnxruntime", args.checkpoint, max_batch=batch, seed=seed, strict=args.strict)
    engine = open_recorded_engine(sources, max_batch=args.batch, device=device)
    if engine is None:
        raise ValueError(f"choose the weights: the inputs record no model. --checkpoint Tiny-BioMoE.pth (the "
                         f"published weights: {PUBLISHED_CHECKPOINT_URL}), --engine/--model PATH, or --random-weights "
                         "(meaningless embeddings; the dataset's random_weights column says so)")
    return engine


def run(args) -> int:
    import pathlib

    from biomoe_edge.commands.embed_ray import check_ray_arguments, run_ray
    from biomoe_edge.dataset import check_target
    from biomoe_edge.runtime.recording.embed import embed_to_dataset
    from biomoe_edge.runtime.recording.labels import read_labels
    from biomoe_edge.runtime.recording.sources import open_source

    check_ray_arguments(args)
    if args.ray is not None:
        return run_ray(args)
    if args.batch is not None and args.batch < 1:
        raise ValueError(f"--batch must be at least 1, got {args.batch}")
    representations = None
    if args.representations:
        representations = [r.strip() for r in args.representations.split(",") if r.strip()]
    out = pathlib.Path(args.out)
    check_target(out, args.overwrite)  # before minutes of work, not after
    if args.random_weights is not None and args.model:
        raise ValueError("--random-weights and --model exclude each other: choose one")
    sources = [open_source(path, channel_map=args.map, rate_hz=args.rate, time_column=args.time_column,
                           time_unit=args.time_unit) for path in args.inputs]
    labels = read_labels(args.labels, subject=args.subject) if args.labels else None  # bad labels: before the work
    if labels is not None:  # and labels that would label nothing, or would in the inputs' time base
        from biomoe_edge.runtime.recording.labels import fit_labels_to_inputs, input_spans

        labels = fit_labels_to_inputs(labels, input_spans(sources, subject=args.subject), labels_name=args.labels)
    engine = open_chosen_engine(args, sources)
    options = dict(out=out, labels=labels, representations=representations, window_s=args.window,
                   hop_s=args.hop, subject=args.subject, use_markers=not args.no_markers, any_model=args.any_model,
                   overwrite=args.overwrite, metadata={"labels_file": args.labels})
    try:
        frame = _with_progress(lambda progress: embed_to_dataset(sources, engine, progress=progress, **options),
                               quiet=args.quiet)
    finally:
        engine.close()
    metadata = frame.attrs["metadata"]
    summary, elapsed = metadata["summary"], metadata["elapsed_s"]
    print(f"wrote {out}: {summary['rows']} rows ({summary['windows']} windows) in {elapsed:.1f} s "
          f"({summary['windows'] / elapsed if elapsed > 0 else 0:.1f} windows/s); sha256 {frame.attrs['sha256']}")
    labelled = ", ".join(f"{k} {v}" for k, v in sorted(summary["labelled"].items())) or "none"
    unlabelled = ", ".join(f"{k} {v}" for k, v in sorted(summary["unlabelled"].items())) or "none"
    withheld = sum(i["windows_withheld"] for i in summary["inputs"])
    print(f"windows labelled: {labelled}; unlabelled: {unlabelled}; withheld for quality (not embedded): {withheld}")
    if metadata["random_weights"]:
        print("note: RANDOM weights (no checkpoint): the embeddings are meaningless (random_weights column)")
    picture = _projection_png(frame, out)
    if picture is not None:
        print(f"wrote {picture} (the embeddings in 2-D, PCA, by label and by subject)")
    return 0


def _projection_png(frame, out):
    """The dataset's 2-D projection beside its manifest; None (said in the log) without the train/viz extras."""
    import logging

    try:
        from biomoe_edge.training.plots import write_embedding_projection_png

        return write_embedding_projection_png(frame, out / "projection.png", title=f"{out.name}: {len(frame)} rows")
    except ImportError as exc:
        logging.getLogger(__name__).warning("no projection.png: %s (pip install 'biomoe-edge[train]')", exc)
        return None


def _with_progress(work, *, quiet: bool):
    """``work(progress)`` under a rich progress bar over the samples replayed (none when ``quiet``)."""
    if quiet:
        return work(None)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("embedding"), BarColumn(), TextColumn("{task.percentage:>3.0f}% of the samples"),
                  TimeElapsedColumn(), TimeRemainingColumn()) as progress:
        task = progress.add_task("embed", total=None)
        return work(lambda done, total: progress.update(task, completed=done, total=total))
