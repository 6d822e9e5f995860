"""The gateway's heads, from its ``[[heads]]`` entries: load every folder (a head, or a bridge: docs/bridge.md),
refuse one trained on another backbone than the running engine's, and build the fusion stage (heads) and the
bridge stage (bridges) with the device -> subject mapping."""

from __future__ import annotations

import time

from .bridge import BridgeStage, is_bridge_folder, load_bridge, read_bridge_manifest
from .fusion import FusionStage
from .head import load_head, read_head_manifest


def read_served_folder_manifest(path) -> dict:
    """The checked manifest of a folder the gateway serves as ``[[heads]]``: bridge.json when it is a bridge
    folder, else head.json (HeadError, or BridgeError, naming what is wrong). Its ``kind`` says which."""
    return read_bridge_manifest(path) if is_bridge_folder(path) else read_head_manifest(path)


def _load_checked(entries, kind: str, load, model: dict) -> tuple[list, list]:
    """The entries of ``kind`` ("head" or "bridge") and each loaded with ``load``, its backbone checked against
    ``model`` (the refusal raises)."""
    entries = [entry for entry in entries if entry.kind == kind]
    loaded = [load(entry.path) for entry in entries]
    for item in loaded:
        item.check_backbone(model)
    return entries, loaded


def fusion_stage_for(entries, subjects: dict, model: dict, *, clock=time.monotonic) -> FusionStage | None:
    """A :class:`FusionStage` serving the heads among ``entries`` (``[[heads]]``: ``gateway_config.HeadConfig``)
    for embeddings of ``model`` (the pipeline's ``model_identity``); ``subjects``: device -> subject. None when
    every entry is a bridge. HeadError when a head cannot be loaded or was trained on other weights (the message
    names both backbones)."""
    entries, heads = _load_checked(entries, "head", load_head, model)
    if not entries:
        return None
    return FusionStage(heads, subjects=subjects, head_subjects=[entry.subjects for entry in entries],
                       tolerance_s=[entry.tolerance_s for entry in entries],
                       deadline_s=[entry.deadline_s for entry in entries], clock=clock)


def bridge_stage_for(entries, subjects: dict, model: dict, *, clock=time.monotonic) -> BridgeStage | None:
    """A :class:`BridgeStage` serving the bridges among ``entries``; None when there is none. BridgeError (a
    HeadError) when a bridge cannot be loaded or was fitted on other weights than ``model``'s."""
    entries, bridges = _load_checked(entries, "bridge", load_bridge, model)
    if not entries:
        return None
    return BridgeStage(bridges, subjects=subjects, bridge_subjects=[entry.subjects for entry in entries],
                       clock=clock)
