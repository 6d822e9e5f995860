"""The bridge beside its baselines, on the same paired windows and the same train / held-out split.

- ``old_head_on_old``: the old head on the real old-modality windows (the reference the bridge imitates; it needs
  the old sensor, so it is no option on the new wearable);
- ``old_head_on_new``: (a) the old head applied to the new modality's embeddings directly (the backbone is shared,
  so this is the natural floor; no training);
- ``linear_map``: (b) ridge regression from new to old embeddings, then the old head;
- ``distilled_head``: (c) knowledge distillation into a new-modality head: a logistic regression on new-modality
  embeddings trained on the old head's pseudo-labels (distillation into the whole backbone is left out: see
  docs/bridge.md);
- ``oracle_head``: (d) a logistic regression on new-modality embeddings trained on the true labels (only where the
  paired data has labels, as a simulation does);
- ``bridge``: the fitted bridge.

Each row: accuracy and macro F1 against the true labels (where known), agreement with the old head's
pseudo-labels, and trainable parameters.
"""

from __future__ import annotations

import numpy as np
import torch

from biomoe_edge.export.model.taps import run_from

from .features import FeatureSet
from .fit import BridgeFit


def _scores(predicted: np.ndarray, pseudo: np.ndarray, truth: np.ndarray | None, classes) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    row = {"agreement_with_old_head": float((predicted == pseudo).mean())}
    if truth is not None:
        names = np.asarray(classes, dtype=object)[predicted]
        row["accuracy"] = float(accuracy_score(truth, names))
        row["macro_f1"] = float(f1_score(truth, names, average="macro", labels=sorted(set(truth) | set(names))))
    return row


def _logistic():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def _logistic_parameters(pipeline) -> int:
    classifier = pipeline[-1]
    return int(classifier.coef_.size + classifier.intercept_.size)


def compare_baselines(fit: BridgeFit, labels=None, *, test: FeatureSet | None = None, test_labels=None,
                      ridge_alpha: float = 1.0) -> list[dict]:
    """One row per method, fitted on ``fit``'s training windows and measured on its held-out windows, or on ``test``
    (features of other paired windows, e.g. other subjects, from :func:`.extract_features` with the same model and
    representations). ``labels`` (all of ``fit``'s paired windows) / ``test_labels``: true class names, or None."""
    from sklearn.linear_model import Ridge

    features, split, head = fit.features, fit.split, fit.head
    train = split.train
    pseudo_train = fit.pseudo_labels[train]
    classes = list(head.classes)
    if test is None:
        held = split.held_out
        test_new, test_old = features.new_embedding[held], features.old_embedding[held]
        test_input = features.new_pooled[fit.bridge.input_position][held]
        pseudo = fit.pseudo_labels[held]
        truth = None if labels is None else np.asarray(labels, dtype=object)[held]
    else:
        test_new, test_old = test.new_embedding, test.old_embedding
        test_input = test.new_pooled[fit.bridge.input_position]
        pseudo = head.predict_proba(test_old).argmax(1)
        truth = None if test_labels is None else np.asarray(test_labels, dtype=object)
    new_train = features.new_embedding[train]
    rows = []

    def add(name, description, predicted, parameters):
        rows.append({"method": name, "description": description, "trainable_parameters": int(parameters),
                     "windows": int(len(pseudo)), **_scores(np.asarray(predicted), pseudo, truth, classes)})

    add("old_head_on_old", "old head on the real old-modality windows (needs the old sensor)",
        head.predict_proba(test_old).argmax(1), 0)
    add("old_head_on_new", "(a) old head on the new modality's embeddings, no bridge",
        head.predict_proba(test_new).argmax(1), 0)
    ridge = Ridge(alpha=ridge_alpha).fit(new_train, features.old_embedding[train])
    add("linear_map", "(b) ridge map new -> old embedding, then the old head",
        head.predict_proba(ridge.predict(test_new).astype(np.float32)).argmax(1),
        ridge.coef_.size + ridge.intercept_.size)
    if len(np.unique(pseudo_train)) >= 2:
        distilled = _logistic().fit(new_train, pseudo_train)
        add("distilled_head", "(c) new-modality head (logistic regression) trained on the old head's pseudo-labels",
            distilled.predict(test_new), _logistic_parameters(distilled))
    if labels is not None:
        known = np.asarray(labels, dtype=object)
        y_train = np.asarray([classes.index(v) for v in known[train]])
        if len(np.unique(y_train)) >= 2:
            oracle = _logistic().fit(new_train, y_train)
            add("oracle_head", "(d) new-modality head (logistic regression) trained on the true labels",
                oracle.predict(test_new), _logistic_parameters(oracle))
    with torch.no_grad():
        bridged = run_from(fit.backbone_model, fit.bridge(torch.from_numpy(test_input))).numpy()
    add("bridge", f"BioX-Bridge {fit.positions['input']['name']} -> {fit.positions['output']['name']} (rank "
        f"{fit.rank}, {fit.prototypes} prototypes, {fit.initialisation} init)",
        head.predict_proba(bridged).argmax(1), fit.trainable_parameters)
    return rows
