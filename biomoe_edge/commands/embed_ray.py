"""``biomoe-edge embed INPUT... --out DATASET --ray [ADDRESS]``: the same embed on Ray Data, one engine per worker
(``biomoe_edge.runtime.recording.distributed``). Ray is imported only when ``--ray`` is given."""

from __future__ import annotations

import argparse
import os
import sys

#: --slice default: inputs longer than this many seconds are split (each slice recomputes a few windows).
DEFAULT_SLICE_S = 1800.0


def add_ray_arguments(parser) -> None:
    group = parser.add_argument_group("on Ray Data (pip install 'biomoe-edge[cluster]')")
    group.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="embed on Ray: without ADDRESS a local Ray sized to this machine; 'auto' or "
                            "ray://HOST:PORT an existing cluster (the SDK installed on its nodes)")
    group.add_argument("--resume", action="store_true",
                       help="with --ray: continue an interrupted run (OUT.work/), skipping the items it completed")
    group.add_argument("--workers", type=int, default=None, metavar="N",
                       help="with --ray: workers, each holding one engine (default: the cluster's CPUs, or its GPUs "
                            "/ --gpus-per-worker)")
    group.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="N",
                       help="with --ray: GPUs each worker reserves (default 0: engines on CPUs)")
    group.add_argument("--slice", type=float, default=DEFAULT_SLICE_S, metavar="S",
                       help=f"with --ray: split inputs longer than S seconds into slices of S s, so one long "
                            f"recording spreads over workers (default {DEFAULT_SLICE_S:g})")


def check_ray_arguments(args) -> None:
    """ValueError naming a Ray-only option given without --ray, or a bad value."""
    if args.ray is None:
        given = [name for name, on in (("--resume", args.resume), ("--workers", args.workers is not None),
                                       ("--gpus-per-worker", args.gpus_per_worker),
                                       ("--slice", args.slice != DEFAULT_SLICE_S)) if on]
        if given:
            raise ValueError(f"{', '.join(given)} apply only with --ray")
        return
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if not args.gpus_per_worker >= 0:
        raise ValueError(f"--gpus-per-worker must be 0 or more, got {args.gpus_per_worker}")
    if not args.slice > 0:
        raise ValueError(f"--slice must be a positive number of seconds, got {args.slice}")


class EngineOpener:
    """Opens the engine ``embed`` would open for these arguments; pickled to every Ray worker, which opens its own.
    With --gpus-per-worker the engine runs on CUDA where Ray gave the process GPUs (``CUDA_VISIBLE_DEVICES``, which
    Ray sets in such a worker); the driver's check of the model runs on the CPU."""

    def __init__(self, args):
        self.arguments = dict(vars(args))

    def __call__(self):
        from biomoe_edge.commands.embed import open_chosen_engine
        from biomoe_edge.runtime.recording.sources import open_source

        args = argparse.Namespace(**self.arguments)
        if not os.environ.get("CUDA_VISIBLE_DEVICES"):
            args.gpus_per_worker = 0
        sources = [open_source(path, channel_map=args.map, rate_hz=args.rate, time_column=args.time_column)
                   for path in args.inputs]
        return open_chosen_engine(args, sources)


def format_progress(state: dict) -> str:
    eta = state["eta_s"]
    eta_text = "?" if eta is None else f"{int(eta // 3600)}:{int(eta % 3600 // 60):02d}:{int(eta % 60):02d}"
    return (f"embedding on Ray: {state['items_done']}/{state['items_total']} items, {state['windows_done']} windows, "
            f"{state['windows_per_s']:.2f} windows/s, ETA {eta_text}")


def run_ray(args) -> int:
    import pathlib

    if not args.verbose:  # Ray Data's executor logs each run at info; the progress lines below say it
        os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")
    try:
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(f"--ray needs Ray Data ({exc}): pip install 'biomoe-edge[cluster]'") from None
    from biomoe_edge.runtime.recording.distributed import embed_on_ray
    from biomoe_edge.runtime.recording.labels import read_labels

    if args.batch is not None and args.batch < 1:
        raise ValueError(f"--batch must be at least 1, got {args.batch}")
    if args.random_weights is not None and args.model:
        raise ValueError("--random-weights and --model exclude each other: choose one")
    representations = None
    if args.representations:
        representations = [r.strip() for r in args.representations.split(",") if r.strip()]
    labels = read_labels(args.labels, subject=args.subject) if args.labels else None
    report = None if args.quiet else (lambda state: print(format_progress(state), file=sys.stderr, flush=True))
    frame = embed_on_ray(
        args.inputs, EngineOpener(args), out=pathlib.Path(args.out), address=None if args.ray == "local" else args.ray,
        workers=args.workers, gpus_per_worker=args.gpus_per_worker, slice_s=args.slice, resume=args.resume,
        overwrite=args.overwrite, source_options={"channel_map": args.map, "rate_hz": args.rate,
                                                  "time_column": args.time_column},
        labels=labels, representations=representations, window_s=args.window, hop_s=args.hop, subject=args.subject,
        use_markers=not args.no_markers, any_model=args.any_model, progress=report,
        metadata={"labels_file": args.labels})
    metadata = frame.attrs["metadata"]
    summary, elapsed, on_ray = metadata["summary"], metadata["elapsed_s"], metadata["ray"]
    print(f"wrote {args.out}: {summary['rows']} rows ({summary['windows']} windows) in {elapsed:.1f} s on Ray "
          f"({on_ray['workers']} workers, {on_ray['items']} items, {on_ray['items_resumed']} resumed; "
          f"{summary['windows'] / elapsed if elapsed > 0 else 0:.1f} windows/s); sha256 {frame.attrs['sha256']}")
    if metadata["random_weights"]:
        print("note: RANDOM weights (no checkpoint): the embeddings are meaningless (random_weights column)")
    return 0
