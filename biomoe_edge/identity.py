"""Which Tiny-BioMoE weights produced an embedding: the identity every record carries, and what heads and bridges
are bound to.

An engine's ``identity`` (``runtime.engines.Engine.identity``) names the file it loaded and, where a manifest or
checkpoint says so, the checkpoint that file came from. Records carry :func:`model_identity` of it. A task head or
a bridge is trained on the embeddings of one backbone: :func:`backbone_identity` is what its manifest stores, and
:func:`backbone_mismatch` is how the gateway refuses to serve it on another (embeddings of other weights are
meaningless to it).

Random weights are never mistaken for real ones: a model without a known checkpoint counts as random weights
unless its engine says otherwise.
"""

from __future__ import annotations


def model_identity(engine_identity: dict) -> dict:
    """The ``model`` dict of every record, from an engine's ``identity``.

    ``sha256``: the file the engine loaded (ONNX, TensorRT engine or checkpoint; None for random weights built
    in memory). ``checkpoint_sha256``: the Tiny-BioMoE checkpoint the weights came from (None: random weights).
    ``precision``, ``source`` (the loaded file's path), ``random_weights`` and ``seed`` (of random weights)."""
    identity = dict(engine_identity or {})
    checkpoint = identity.get("checkpoint_sha256")
    random_weights = identity.get("random_weights")
    if random_weights is None:
        random_weights = checkpoint is None
    return {
        "sha256": identity.get("model_sha256"),
        "checkpoint_sha256": checkpoint,
        "precision": identity.get("precision"),
        "source": identity.get("source"),
        "random_weights": bool(random_weights),
        "seed": identity.get("seed") if random_weights else None,
    }


def backbone_identity(model: dict) -> dict:
    """What a head or bridge manifest stores as ``backbone``: the weights (checkpoint sha256, or random weights
    and their seed) and the precision whose embeddings it was trained on. ``model``: a record's ``model`` dict
    (:func:`model_identity`) or a dataset's model columns under the same names."""
    random_weights = bool(model.get("random_weights", model.get("checkpoint_sha256") is None))
    return {
        "checkpoint_sha256": None if random_weights else model.get("checkpoint_sha256"),
        "random_weights": random_weights,
        "seed": model.get("seed") if random_weights else None,
        "precision": model.get("precision"),
    }


def describe_backbone(backbone: dict) -> str:
    """One short phrase for messages: ``checkpoint 3f2a9c1d... fp16`` or ``random weights (seed 0) fp32``."""
    if backbone.get("random_weights"):
        weights = f"random weights (seed {backbone.get('seed')})"
    else:
        weights = f"checkpoint {str(backbone.get('checkpoint_sha256'))[:16]}..."
    return f"{weights} {backbone.get('precision')}"


def backbone_mismatch(trained_on: dict, running: dict) -> str | None:
    """Why a head or bridge trained on backbone ``trained_on`` must not run on ``running`` (both
    :func:`backbone_identity` dicts), or None when they agree."""
    keys = ("random_weights", "checkpoint_sha256", "seed", "precision")
    if all(trained_on.get(key) == running.get(key) for key in keys):
        return None
    return (f"trained on the embeddings of {describe_backbone(trained_on)}, but the gateway runs "
            f"{describe_backbone(running)}")
