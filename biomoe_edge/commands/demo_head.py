"""``biomoe-edge demo --head DIR``: the demo's emulated wearables play SIMULATED labelled sessions of subjects the
head never saw (``biomoe_edge.simulated_sessions``), the gateway serves the head live, and the report scores its
predictions against the simulated labels (live accuracy).

Each simulated subject wears the wearables ``wearables_of`` gives for the head's modalities (a wristband for EDA
and BVP, a chest strap for respiration, a finger oximeter for SpO2), grouped in one ``[[subjects]]`` entry, so a
multimodal head fuses across devices exactly as on a person. Not a command of its own: ``demo`` calls it.
"""

from __future__ import annotations

import collections
import math
import re

from biomoe_edge.vocabulary import InputType

#: A window whose devices disagree on the session time (each emulated wearable starts playing the session when
#: the gateway starts it, a fraction of a second apart) by more than this is not scored near a class change.
SCORING_NOTE = ("SIMULATED sessions (NeuroKit2 physiology differing by class), held-out simulated subjects; "
                "with random or stand-in backbone weights this measures the SDK's path, not Tiny-BioMoE on pain")


def held_out_subjects(manifest: dict, count: int) -> list[int]:
    """Indices of ``count`` simulated subjects the head was not trained on (after the highest ``sim-NN`` in its
    training data; from 1 when it was trained on something else)."""
    # A head names its training subjects under "dataset", a bridge its paired ones under "data".
    trained = [int(m.group(1)) for s in (manifest.get("dataset") or manifest.get("data") or {}).get("subjects", [])
               if (m := re.fullmatch(r"sim-(\d+)", str(s)))]
    first = max(trained) + 1 if trained else 1
    return list(range(first, first + int(count)))


def head_demo_plan(manifest: dict, *, subjects: int, duration_s: float | None, hop_s: float, seed: int,
                   fallbacks=()):
    """(sessions, devices, config dict pieces) for the demo (``manifest``: a head's or a bridge's, whose input is
    the modality its wearables stream): one simulated session per held-out subject, long enough to cover the run
    with one block per class at least (the wearables loop it afterwards). ``fallbacks``: bridge.json manifests of
    the head's fallback bridges: each subject wears their modalities too, drawn as they were fitted."""
    from biomoe_edge.simulated_sessions import CLASSES, simulate_session, wearables_of

    input_types = list(dict.fromkeys(InputType.parse(name) for served in (manifest, *fallbacks)
                                     for name in served["inputs"]))
    modalities = tuple(dict.fromkeys(it.modality.value for it in input_types))
    block_s = 60.0 if duration_s is None else max(20.0, min(60.0, math.ceil(duration_s / len(CLASSES))))
    sessions = [simulate_session(index, modalities=modalities, block_s=block_s, seed=seed)
                for index in held_out_subjects(manifest, subjects)]
    representations: dict[str, list[str]] = collections.defaultdict(list)
    for input_type in input_types:
        representations[input_type.modality.value].append(input_type.representation.value)
    lengths = dict(manifest.get("window_length_s") or {})
    if manifest["kind"] == "bridge" and (manifest.get("data") or {}).get("window_s") is not None:
        lengths = {manifest["inputs"][0]: manifest["data"]["window_s"]}
    for bridge in fallbacks:  # a fallback bridge's windows as long as those it was fitted on
        if (bridge.get("data") or {}).get("window_s") is not None:
            lengths.setdefault(bridge["inputs"][0], float(bridge["data"]["window_s"]))
    tables = {m: {"representations": reps, "hop_s": hop_s,
                  **({"length_s": float(lengths[f"{m}:{reps[0]}"])} if f"{m}:{reps[0]}" in lengths else {})}
              for m, reps in representations.items()}
    devices = {session.subject: wearables_of(session.subject, modalities) for session in sessions}
    return sessions, devices, tables


def session_origin(wearable) -> float | None:
    """Gateway time of sample 0 of the session a wearable plays (its streams start when the gateway starts
    them), or None when it has not started."""
    streams = [s for s in getattr(wearable, "_streams", ()) if getattr(s, "running", False)]
    if not streams:
        return None
    return wearable._loop_time_of(min(s.origin_s for s in streams))


def true_label(session, start_s: float, end_s: float, origins) -> str | None:
    """The simulated label of a prediction's window, from each device's own session time (the session loops);
    None when the devices' windows fall in different classes or straddle a class change."""
    labels = set()
    for origin in origins:
        if origin is None:
            return None
        s = start_s - origin
        shift = math.floor(s / session.duration_s) * session.duration_s
        labels.add(session.label_of(s - shift, end_s - origin - shift))
    return labels.pop() if len(labels) == 1 else None


def live_accuracy(predictions, sessions, origins_by_subject, classes) -> dict:
    """Scores of the live predictions against the simulated labels (windows in one class on every device)."""
    by_subject = {session.subject: session for session in sessions}
    truth, guess = [], []
    unscored: collections.Counter = collections.Counter()
    other_classes = set()
    for record in predictions:
        session = by_subject.get(record.subject)
        label = None if session is None else true_label(
            session, record.window_start_s, record.window_end_s,
            [origins_by_subject.get(record.subject, {}).get(d) for d in record.devices])
        if label is None:
            unscored["class_changes"] += 1  # the window spans two simulated classes (or no session)
            continue
        if label not in classes:
            unscored["not_a_head_class"] += 1  # the simulated class is none the head knows
            other_classes.add(label)
            continue
        truth.append(label)
        guess.append(record.predicted)
    result = {"note": SCORING_NOTE, "windows_scored": len(truth), "windows_not_scored": sum(unscored.values()),
              "not_scored_by_reason": dict(unscored), "head_classes": list(classes),
              "simulated_classes_not_in_head": sorted(other_classes)}
    if not truth:
        return result
    try:
        from biomoe_edge.training.metrics import classification_metrics
    except ImportError as exc:  # scikit-learn is a build-time dependency (the train extra)
        correct = sum(t == g for t, g in zip(truth, guess))
        return {**result, "accuracy": correct / len(truth), "missing": f"balanced accuracy needs scikit-learn ({exc})"}
    return {**result, **classification_metrics(truth, guess, list(classes))}
