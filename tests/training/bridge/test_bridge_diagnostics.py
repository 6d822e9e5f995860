"""bridge fit warns when its figures say it learned nothing: every probe F1 at 1.000 (degenerate pseudo-labels), or
held-out agreement no better than the old head without a bridge."""

import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("torch", reason="the bridge package needs PyTorch (the export extra)")

from biomoe_edge.training.bridge.diagnostics import degenerate_fit_warnings  # noqa: E402


def _positions(*scores):
    return {"input_candidates": [{"name": f"tap{i}", "probe_macro_f1": s} for i, s in enumerate(scores)]}


def test_perfect_probes_everywhere_and_a_bridge_no_better_than_none_are_both_said():
    found = degenerate_fit_warnings(_positions(1.0, 1.0, 0.9995),
                                    {"agreement_with_old_head": 0.75, "old_head_on_new_embeddings_agreement": 0.75})
    assert len(found) == 2
    assert found[0].startswith("every input position's probe F1 is 1.000")
    assert "agrees with the old head on 0.750 of the held-out windows, no more than" in found[1]


def test_a_fit_that_learned_something_gets_no_warning():
    assert degenerate_fit_warnings(_positions(1.0, 0.8), {"agreement_with_old_head": 0.9,
                                                          "old_head_on_new_embeddings_agreement": 0.4}) == []
    assert degenerate_fit_warnings({}, {}) == []
