"""What the commands that load Tiny-BioMoE share (not a command): where the published weights come from, the
``--checkpoint | --random-weights`` arguments, and loading the model they name."""

from __future__ import annotations

import argparse
import logging
import pathlib

#: Where the published weights come from (the authors' GitHub release; 89 MB).
PUBLISHED_CHECKPOINT_URL = "https://github.com/GkikasStefanos/Tiny-BioMoE/releases/latest/download/Tiny-BioMoE.pth"


def check_checkpoint_file(checkpoint) -> None:
    """ValueError saying where the weights come from when ``--checkpoint`` names no file (every command that
    takes it: demo, embed, export, bridge fit...), instead of the operating system's "[Errno 2]"."""
    if checkpoint is None:
        return
    path = pathlib.Path(checkpoint)
    if path.is_file():
        return
    what = "is a folder, not a checkpoint file" if path.is_dir() else "no such file"
    raise ValueError(f"--checkpoint {path}: {what}. The published Tiny-BioMoE weights are Tiny-BioMoE.pth (89 MB): "
                     f"{PUBLISHED_CHECKPOINT_URL} (biomoe-edge inspect Tiny-BioMoE.pth checks the download); or pass "
                     "--random-weights instead (meaningless embeddings, for trying the plumbing; every output says so)")


def add_weights_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """``--checkpoint PATH`` | ``--random-weights [SEED]``, and ``--strict``: shared by the commands that load
    Tiny-BioMoE, so that random weights are always an explicit choice."""
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--checkpoint", type=pathlib.Path, metavar="PATH",
                        help="Tiny-BioMoE .pth: the published weights are Tiny-BioMoE.pth from "
                             f"{PUBLISHED_CHECKPOINT_URL.rsplit('/latest', 1)[0]} (89 MB)")
    source.add_argument("--random-weights", type=int, nargs="?", const=0, default=None, metavar="SEED",
                        help="use deterministic random weights instead (seed 0 unless given): meaningless "
                             "embeddings, for testing the plumbing; every output says so")
    parser.add_argument("--strict", action="store_true",
                        help="refuse checkpoint entries that are not part of Tiny-BioMoE (pretraining heads, "
                             "optimizer state) instead of ignoring them with a warning")


def load_model(checkpoint, random_weights, *, strict: bool = False, log: logging.Logger | None = None):
    """Tiny-BioMoE from ``--checkpoint`` or ``--random-weights SEED``; the random-weights warning goes to ``log``
    (one line, no Python source line) instead of the warnings module."""
    import warnings

    from biomoe_edge.export import load_tiny_biomoe

    if checkpoint is not None:
        return load_tiny_biomoe(checkpoint, strict=strict)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_tiny_biomoe(seed=random_weights)
    for warning in caught:
        (log or logging.getLogger(__name__)).warning("%s", warning.message)
    return model
