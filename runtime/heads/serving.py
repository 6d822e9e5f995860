"""The gateway's heads, from its configuration: load every ``[[heads]]`` folder (a head, or a bridge: docs/bridge.md),
refuse one trained on another backbone than the running engine's, and build the fusion stage (heads), the
bridge stage (bridges) and the fallback stage (bridges standing in for heads, ``fallback``) with the
``[[subjects]]`` table."""

from __future__ import annotations

import time

from .bridge import BridgeStage, check_engine_taps, load_bridge
from .fallback import FallbackStage
from .fusion import FusionStage
from .head import load_head


def _subjects(config) -> dict:
    return {device: subject.name for subject in config.subjects for device in subject.devices}


def _engine_label(engine) -> str:
    source = (getattr(engine, "identity", None) or {}).get("source")
    return f"{type(engine).__name__}" + (f" ({source})" if source else "")


def _load_checked(config, kind: str, load, model: dict) -> tuple[list, list]:
    """The ``[[heads]]`` entries of ``kind`` ("head" or "bridge") and each loaded with ``load``, its backbone
    checked against ``model`` (the refusal raises)."""
    entries = [entry for entry in config.heads if entry.kind == kind]
    loaded = [load(entry.path) for entry in entries]
    for item in loaded:
        item.check_backbone(model)
    return entries, loaded


def fusion_stage_for(config, model: dict, *, clock=time.monotonic) -> FusionStage | None:
    """A :class:`FusionStage` serving the heads of ``config.heads`` (a ``GatewayConfig``) for embeddings of
    ``model`` (the pipeline's ``model_identity``); None when every entry is a bridge. HeadError when a head cannot
    be loaded or was trained on other weights (the message names both backbones)."""
    entries, heads = _load_checked(config, "head", load_head, model)
    if not entries:
        return None
    return FusionStage(heads, subjects=_subjects(config), head_subjects=[entry.subjects for entry in entries],
                       tolerance_s=[entry.tolerance_s for entry in entries],
                       deadline_s=[entry.deadline_s for entry in entries], clock=clock)


def bridge_stage_for(config, model: dict, *, clock=time.monotonic, engine=None) -> BridgeStage | None:
    """A :class:`BridgeStage` serving the bridges of ``config.heads``; None when there is none. BridgeError (a
    HeadError) when a bridge cannot be loaded, was fitted on other weights than ``model``'s, or reads a tap that
    ``engine`` (the running engine, when given) does not return."""
    entries, bridges = _load_checked(config, "bridge", load_bridge, model)
    if not entries:
        return None
    if engine is not None:
        check_engine_taps(bridges, tuple(getattr(engine, "taps", ())), _engine_label(engine))
    return BridgeStage(bridges, subjects=_subjects(config), bridge_subjects=[entry.subjects for entry in entries],
                       clock=clock)


def fallback_stage_for(config, model: dict, fusion: FusionStage | None, *, clock=time.monotonic,
                       engine=None) -> FallbackStage | None:
    """A :class:`FallbackStage` for the heads of ``config.heads`` that name ``fallback`` bridges (their heads as
    ``fusion`` serves them); None when no head does. BridgeError when a bridge cannot be loaded, was fitted on
    other weights, or reads a tap the running ``engine`` does not return."""
    entries = [entry for entry in config.heads if entry.kind == "head"]
    if fusion is None or not any(getattr(entry, "fallback", ()) for entry in entries):
        return None
    standbys, loaded = [], []
    for entry, state in zip(entries, fusion.states):
        if not entry.fallback:
            continue
        bridges = [load_bridge(path) for path in entry.fallback]
        for bridge in bridges:
            bridge.check_backbone(model)
        loaded.extend(bridges)
        standbys.append((state.head, bridges, entry.tolerance_s, entry.deadline_s, entry.subjects))
    if engine is not None:
        check_engine_taps(loaded, tuple(getattr(engine, "taps", ())), _engine_label(engine))
    return FallbackStage(standbys, subjects=_subjects(config), clock=clock)
