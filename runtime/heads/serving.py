"""The gateway's heads, from its ``[[heads]]`` entries: load every folder (a head, or a bridge: docs/bridge.md),
refuse one trained on another backbone than the running engine's, or a bridge reading a tap the engine does not
return, and build the fusion stage (heads), the bridge stage (bridges) and the fallback stage (bridges standing in
for heads, ``fallback``) with the device -> subject mapping."""

from __future__ import annotations

import time

from .bridge import BridgeStage, check_engine_taps, is_bridge_folder, load_bridge, read_bridge_manifest
from .fallback import FallbackStage
from .fusion import FusionStage
from .head import load_head, read_head_manifest


def read_served_folder_manifest(path) -> dict:
    """The checked manifest of a folder the gateway serves as ``[[heads]]``: bridge.json when it is a bridge
    folder, else head.json (HeadError, or BridgeError, naming what is wrong). Its ``kind`` says which."""
    return read_bridge_manifest(path) if is_bridge_folder(path) else read_head_manifest(path)


def _engine_label(engine) -> str:
    source = (getattr(engine, "identity", None) or {}).get("source")
    return f"{type(engine).__name__}" + (f" ({source})" if source else "")


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


def bridge_stage_for(entries, subjects: dict, model: dict, *, clock=time.monotonic,
                     engine=None) -> BridgeStage | None:
    """A :class:`BridgeStage` serving the bridges among ``entries``; None when there is none. BridgeError (a
    HeadError) when a bridge cannot be loaded, was fitted on other weights than ``model``'s, or reads a tap that
    ``engine`` (the running engine, when given) does not return."""
    entries, bridges = _load_checked(entries, "bridge", load_bridge, model)
    if not entries:
        return None
    if engine is not None:
        check_engine_taps(bridges, tuple(getattr(engine, "taps", ())), _engine_label(engine))
    return BridgeStage(bridges, subjects=subjects, bridge_subjects=[entry.subjects for entry in entries],
                       clock=clock)


def fallback_stage_for(entries, subjects: dict, model: dict, fusion: FusionStage | None, *, clock=time.monotonic,
                       engine=None) -> FallbackStage | None:
    """A :class:`FallbackStage` for the heads among ``entries`` that name ``fallback`` bridges (their heads as
    ``fusion`` serves them); None when no head does. BridgeError when a bridge cannot be loaded, was fitted on
    other weights, or reads a tap the running ``engine`` does not return."""
    entries = [entry for entry in entries if entry.kind == "head"]
    if fusion is None or not any(getattr(entry, "fallback", ()) for entry in entries):
        return None
    standbys, loaded = [], []
    for entry, head in zip(entries, fusion.heads):
        if not entry.fallback:
            continue
        bridges = [load_bridge(path) for path in entry.fallback]
        for bridge in bridges:
            bridge.check_backbone(model)
        loaded.extend(bridges)
        standbys.append((head, bridges, entry.tolerance_s, entry.deadline_s, entry.subjects))
    if engine is not None:
        check_engine_taps(loaded, tuple(getattr(engine, "taps", ())), _engine_label(engine))
    return FallbackStage(standbys, subjects=subjects, clock=clock)
