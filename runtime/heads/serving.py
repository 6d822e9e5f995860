"""The gateway's heads, from its configuration: load every ``[[heads]]`` folder, refuse a head trained on
another backbone than the running engine's, and build the fusion stage with the ``[[subjects]]`` table."""

from __future__ import annotations

import time

from .fusion import FusionStage
from .head import load_head


def fusion_stage_for(config, model: dict, *, clock=time.monotonic) -> FusionStage:
    """A :class:`FusionStage` serving ``config.heads`` (a ``GatewayConfig``) for embeddings of ``model`` (the
    pipeline's ``model_identity``). HeadError when a head cannot be loaded or was trained on other weights
    (the message names both backbones)."""
    heads = []
    for entry in config.heads:
        head = load_head(entry.path)
        head.check_backbone(model)
        heads.append(head)
    subjects = {device: subject.name for subject in config.subjects for device in subject.devices}
    return FusionStage(heads, subjects=subjects, head_subjects=[entry.subjects for entry in config.heads],
                       tolerance_s=[entry.tolerance_s for entry in config.heads],
                       deadline_s=[entry.deadline_s for entry in config.heads], clock=clock)
