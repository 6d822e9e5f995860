"""Where the bridge reads and writes: the input position by a linear probe, the output position by linear CKA.

- Input position m (new model): for every candidate tap, a 5-fold logistic-regression probe of its pooled features
  against the pseudo-labels (the old head's argmax on the paired old-modality windows); the best macro F1 (mean
  over the folds) wins.
  Folds are grouped by time block (``Split.blocks``): with 10 s windows every second, neighbouring windows share
  90 % of their samples, and folds that split them would score memory, not decodability.
- Output position l (old model): the entry point whose old-modality features have the highest linear CKA with the
  new features at m. Tiny-BioMoE has two encoders, so an entry point inside one encoder is only half a position:
  the complete candidates are ``fused`` and ``experts`` (after both encoders) and the pair of the best entry point
  of each encoder (scored by the weaker of the two).
"""

from __future__ import annotations

import warnings

import numpy as np

from biomoe_edge.export.model.taps import ENTRY_POINTS

from .exc import PositionSelectionError

FOLDS = 5


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) of features x (N, d1) and y (N, d2) of the same N examples:
    ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) with column-centred Xc, Yc. 0 when either is constant."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"linear_cka needs (N, d) arrays of the same N, got {x.shape} and {y.shape}")
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    norm = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / norm) if norm > 0 else 0.0


def probe_classes(pseudo_labels: np.ndarray, *, folds: int = FOLDS) -> np.ndarray:
    """Mask of the windows the probe can use: those of classes with at least ``folds`` windows. Raises
    PositionSelectionError when fewer than two classes have that many."""
    labels, counts = np.unique(pseudo_labels, return_counts=True)
    usable = labels[counts >= folds]
    if len(usable) < 2:
        found = ", ".join(f"{label}: {count}" for label, count in zip(labels, counts)) or "none"
        raise PositionSelectionError(
            f"too little paired data to select positions: the old head's pseudo-labels on the {len(pseudo_labels)} "
            f"training windows are {{{found}}}; a {folds}-fold probe needs at least {folds} windows in each of two "
            "classes. Record a longer paired session, or one that goes through more of the head's classes")
    rare = labels[counts < folds]
    if len(rare):
        warnings.warn(f"pseudo-label class(es) [{', '.join(map(str, rare))}] have fewer than {folds} training windows "
                      "and are left out of the position probe", stacklevel=2)
    return np.isin(pseudo_labels, usable)


def probe_macro_f1(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, *, folds: int = FOLDS,
                   seed: int = 0) -> tuple[float, float]:
    """Macro F1 of a standardised logistic regression over ``folds`` folds grouped by ``groups``: (mean, standard
    deviation) over the folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(groups)) >= folds:
        cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        groups = None
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a fold's solver not converging to 1e-4 does not change the ranking
        scores = cross_val_score(probe, features, labels, groups=groups, cv=cv, scoring="f1_macro")
    return float(scores.mean()), float(scores.std())


def score_input_positions(features: dict[str, np.ndarray], pseudo_labels: np.ndarray, groups: np.ndarray, *,
                          folds: int = FOLDS, seed: int = 0, spread: dict | None = None) -> dict[str, float]:
    """Probe macro F1 (mean over folds) per candidate input position (name -> (N, d) pooled features); ``spread``,
    if given, receives each candidate's standard deviation over the folds."""
    pseudo_labels = np.asarray(pseudo_labels)
    groups = np.asarray(groups)
    keep = probe_classes(pseudo_labels, folds=folds)
    if len(np.unique(groups[keep])) < folds:
        warnings.warn(f"the paired data spans {len(np.unique(groups[keep]))} time blocks, fewer than the probe's "
                      f"{folds} folds: folds split windows instead, and overlapping windows make the probe scores "
                      "optimistic (they still rank the positions)", stacklevel=2)
    scores = {}
    for name, x in features.items():
        scores[name], std = probe_macro_f1(np.asarray(x)[keep], pseudo_labels[keep], groups[keep], folds=folds,
                                           seed=seed)
        if spread is not None:
            spread[name] = std
    return scores


def select_input_position(scores: dict[str, float]) -> str:
    """The candidate with the best probe macro F1 (the earlier candidate on a tie)."""
    return max(scores, key=lambda name: scores[name])


def score_entry_points(new_features: np.ndarray, old_summaries: dict[str, np.ndarray]) -> dict[str, float]:
    """Linear CKA of the new features at the input position with the old features at every entry point."""
    return {name: linear_cka(new_features, summary) for name, summary in old_summaries.items()}


def output_candidates(cka: dict[str, float]) -> list[dict]:
    """The complete output positions, best first: ``fused``, ``experts`` and the best pair of per-encoder entry
    points (score: the smaller CKA of the two), each {name, entry_points, cka}."""
    candidates = [{"name": name, "entry_points": [name], "cka": cka[name]}
                  for name in ("fused", "experts") if name in cka]
    best = {}
    for encoder in ("enc1", "enc2"):
        inside = [n for n in cka if ENTRY_POINTS[n].encoder == encoder]
        if inside:
            best[encoder] = max(inside, key=lambda n: cka[n])
    if len(best) == 2:
        pair = [best["enc1"], best["enc2"]]
        candidates.append({"name": "+".join(pair), "entry_points": pair, "cka": min(cka[n] for n in pair)})
    return sorted(candidates, key=lambda c: -c["cka"])
