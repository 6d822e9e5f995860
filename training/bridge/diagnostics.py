"""What a finished bridge fit's own figures say about whether it learned anything: pseudo-labels so degenerate
that position selection had nothing to choose by, or a bridge no better than no bridge at all. Words for the
command line; the figures themselves stay in bridge.json."""

from __future__ import annotations

#: A probe macro F1 this close to 1 on every input tap: the pseudo-labels are trivially predictable.
PERFECT_F1 = 0.999


def degenerate_fit_warnings(positions: dict, held_out: dict) -> list[str]:
    """Warnings from a fit's ``positions`` (input candidates with ``probe_macro_f1``) and ``held_out`` figures
    (``agreement_with_old_head``, ``old_head_on_new_embeddings_agreement``); empty when nothing looks degenerate."""
    warnings = []
    scores = [c["probe_macro_f1"] for c in positions.get("input_candidates", ()) if c.get("probe_macro_f1") is not None]
    if scores and min(scores) >= PERFECT_F1:
        warnings.append(f"every input position's probe F1 is {min(scores):.3f}: the old head's pseudo-labels on the "
                        "paired windows are trivially predictable (one class almost everywhere, or classes that "
                        "follow the session's time), so the probe could not tell the positions apart; record a "
                        "session that goes through more of the head's classes")
    bridged, direct = held_out.get("agreement_with_old_head"), held_out.get("old_head_on_new_embeddings_agreement")
    if bridged is not None and direct is not None and bridged <= direct:
        warnings.append(f"the bridged head agrees with the old head on {bridged:.3f} of the held-out windows, no more "
                        f"than the old head on the new modality's embeddings without a bridge ({direct:.3f}): the "
                        "bridge adds nothing here (too little or too uniform paired data, or too few epochs)")
    return warnings
