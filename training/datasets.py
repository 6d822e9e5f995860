"""From a dataset of embeddings (one row per window, device, modality and representation) to the fused windows
a head trains on: one row per subject and window time, holding the embeddings of every input the head takes.

The dataset is the DataFrame ``biomoe_edge.dataset.load_dataset`` returns (columns ``subject, device, modality,
representation, window_start_s, window_end_s, quality, label, embedding`` plus the model identity columns
``model_sha256, checkpoint_sha256, precision, random_weights, seed, engine``). Windows of different inputs are
matched per subject by window end time within ``tolerance_s``, as the gateway's fusion stage
(``runtime.heads.fusion``) matches them live. No torch here: ``evaluate-head`` runs without it.

Every way a dataset can be unusable is a :class:`DatasetError` naming the file and what is wrong.
"""

from __future__ import annotations

import collections
import math
import pathlib
from dataclasses import dataclass, field

import numpy as np

from biomoe_edge.dataset import DatasetError, dataset_sha256, load_dataset, write_dataset
from biomoe_edge.identity import backbone_identity
from biomoe_edge.runtime.heads.fusion import DEFAULT_TOLERANCE_S
from biomoe_edge.vocabulary import EMBEDDING_DIM, InputType, Modality

#: The columns every dataset has (the recordings work's ``load_dataset`` contract).
REQUIRED_COLUMNS = ("subject", "device", "modality", "representation", "window_start_s", "window_end_s", "quality",
                    "label", "embedding")
#: Model identity columns (``biomoe_edge.identity``); a dataset without them cannot name its backbone.
MODEL_COLUMNS = ("model_sha256", "checkpoint_sha256", "precision", "random_weights", "seed", "engine")
def parse_inputs(text) -> tuple[str, ...]:
    """``"eda:scalogram,bvp:spectrogram_psd"`` (or a sequence of such strings) -> normalised
    ``("eda:scalogram", "bvp:spectrogram_psd")``; ValueError names a malformed or repeated entry."""
    items = [part.strip() for part in text.split(",")] if isinstance(text, str) else [str(p).strip() for p in text]
    items = [item for item in items if item]
    if not items:
        raise ValueError("no inputs given; expected MODALITY:REPRESENTATION[,...], e.g. eda:scalogram,eda:recurrence")
    out = []
    for item in items:
        name = str(InputType.parse(item))
        if name in out:
            raise ValueError(f"input {name} is given twice")
        out.append(name)
    return tuple(out)


def parse_device_choices(items) -> dict[str, str]:
    """``["ecg:spectrogram_psd=biomoe-demo-1", ...]`` (``--device MOD:REP=DEVICE``, repeatable) -> {input: device};
    ValueError names a malformed or repeated entry."""
    choices: dict[str, str] = {}
    for item in items or ():
        name, equals, device = str(item).partition("=")
        if not equals or not name.strip() or not device.strip():
            raise ValueError(f"--device {item!r}: expected MODALITY:REPRESENTATION=DEVICE, e.g. "
                             "ecg:spectrogram_psd=biomoe-demo-1")
        (name,) = parse_inputs(name)
        if name in choices:
            raise ValueError(f"--device names input {name} twice")
        choices[name] = device.strip()
    return choices


def keep_devices(frame, choices: dict, source="dataset"):
    """``frame`` without the rows of each chosen input (``parse_device_choices``) that come from another device
    than the one chosen for it; DatasetError when the chosen device has no window of that input."""
    if not choices:
        return frame
    _check_required_columns(frame, source)
    modality = np.array([Modality.parse(m).value for m in frame["modality"]], dtype=object)
    drop = np.zeros(len(frame), dtype=bool)
    for name, device in choices.items():
        wanted = InputType.parse(name)
        wanted_modality, representation = wanted.modality.value, wanted.representation.value
        of_input = (modality == wanted_modality) & (frame["representation"] == representation).to_numpy()
        from_device = (frame["device"].astype(str) == device).to_numpy()
        if not (of_input & from_device).any():
            have = sorted(set(frame["device"][of_input].astype(str)))
            raise DatasetError(f"{source}: --device {name}={device}: device {device!r} has no {name} window; "
                               f"devices with {name} windows: {', '.join(have) or 'none'}")
        drop |= of_input & ~from_device
    return frame[~drop]


@dataclass
class FusedWindows:
    """The windows a head sees: ``embeddings`` float32 (n, k, 192) in input order, and per window its
    ``labels`` (str, or None where the dataset has none), ``subjects``, ``window_start_s``/``window_end_s``
    (of the first input), ``devices`` (tuple per window, input order) and ``quality`` (union of flags)."""

    inputs: tuple[str, ...]
    embeddings: np.ndarray
    labels: np.ndarray
    subjects: np.ndarray
    window_start_s: np.ndarray
    window_end_s: np.ndarray
    devices: list
    quality: list
    #: How many windows of the first input found no partner within the tolerance, per missing input.
    incomplete: dict = field(default_factory=dict)
    #: Windows whose inputs carry different labels (left out).
    label_conflicts: int = 0
    #: Window length per input (median of window_end_s - window_start_s), seconds.
    window_length_s: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def labelled(self) -> "FusedWindows":
        """Only the windows with a label."""
        keep = np.array([label is not None for label in self.labels], dtype=bool)
        return self.select(keep)

    def select(self, mask) -> "FusedWindows":
        index = np.flatnonzero(np.asarray(mask))
        return FusedWindows(
            inputs=self.inputs, embeddings=self.embeddings[index], labels=self.labels[index],
            subjects=self.subjects[index], window_start_s=self.window_start_s[index],
            window_end_s=self.window_end_s[index], devices=[self.devices[i] for i in index],
            quality=[self.quality[i] for i in index], incomplete=dict(self.incomplete),
            label_conflicts=self.label_conflicts, window_length_s=dict(self.window_length_s))


def read_dataset(path):
    """``(frame, sha256)`` of the dataset at ``path`` (``biomoe_edge.dataset``'s ``load_dataset`` and
    ``dataset_sha256``); DatasetError naming the path."""
    path = pathlib.Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset")
    try:
        return load_dataset(path), dataset_sha256(path)
    except (ValueError, OSError) as exc:
        raise DatasetError(f"{path}: {exc}") from None


def save_dataset(frame, path, *, metadata: dict | None = None) -> pathlib.Path:
    """Write ``frame`` where :func:`read_dataset` reads it (``biomoe_edge.dataset.write_dataset``)."""
    return pathlib.Path(write_dataset(frame, pathlib.Path(path), metadata=metadata or {}))


def _check_required_columns(frame, source) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(f"{source}: missing column(s) {missing}; a dataset has {list(REQUIRED_COLUMNS)} "
                           "(see biomoe_edge.dataset)")
    if len(frame) == 0:
        raise DatasetError(f"{source}: the dataset is empty (no windows)")


def available_inputs(frame) -> list[str]:
    pairs = frame[["modality", "representation"]].drop_duplicates().itertuples(index=False)
    return sorted(f"{Modality.parse(m).value}:{r}" for m, r in pairs)


def rows_of_inputs(frame, inputs):
    """The rows of ``frame`` that hold one of ``inputs`` (``"modality:representation"``)."""
    names = [f"{Modality.parse(m).value}:{r}" for m, r in zip(frame["modality"], frame["representation"])]
    return frame[np.isin(np.asarray(names, dtype=object), list(inputs))]


def dataset_backbone(frame, source) -> dict:
    """The ``backbone_identity`` of the embeddings in ``frame`` (its rows must all share one)."""
    missing = [c for c in MODEL_COLUMNS if c not in frame.columns and c != "engine"]
    if missing:
        raise DatasetError(f"{source}: missing model identity column(s) {missing}: the dataset cannot say which "
                           "Tiny-BioMoE weights made its embeddings")
    identities = {}
    for row in frame[["checkpoint_sha256", "precision", "random_weights", "seed"]].drop_duplicates().itertuples(
            index=False):
        model = {"checkpoint_sha256": _none_if_nan(row.checkpoint_sha256), "precision": _none_if_nan(row.precision),
                 "random_weights": bool(row.random_weights), "seed": _int_or_none(row.seed)}
        backbone = backbone_identity(model)
        identities[tuple(sorted((k, str(v)) for k, v in backbone.items()))] = backbone
    if len(identities) != 1:
        from biomoe_edge.identity import describe_backbone

        raise DatasetError(f"{source}: its embeddings come from {len(identities)} different backbones ("
                           + "; ".join(describe_backbone(b) for b in identities.values())
                           + "): a head is trained on the embeddings of one")
    return next(iter(identities.values()))


def _none_if_nan(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _int_or_none(value):
    value = _none_if_nan(value)
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _embedding_matrix(rows, source, name: str) -> np.ndarray:
    """(n, 192) float32 of a column of per-row arrays; DatasetError names the first bad row."""
    out = np.empty((len(rows), EMBEDDING_DIM), dtype=np.float32)
    for i, vector in enumerate(rows["embedding"].to_numpy()):
        vector = None if vector is None else np.asarray(vector, dtype=np.float32)
        if vector is None or vector.shape != (EMBEDDING_DIM,):
            shape = None if vector is None else vector.shape
            raise DatasetError(f"{source}: row {rows.index[i]} ({_describe_row(rows.iloc[i], name)}) has an embedding "
                               f"of shape {shape}, expected ({EMBEDDING_DIM},)")
        out[i] = vector
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise DatasetError(f"{source}: {int(bad.sum())} {name} embedding(s) hold NaN or infinite values (first: row "
                           f"{rows.index[i]}, {_describe_row(rows.iloc[i], name)}); remove or re-embed them")
    return out


def _describe_row(row, name: str) -> str:
    return (f"subject {row['subject']}, device {row['device']}, {name}, window {float(row['window_start_s']):.3f}-"
            f"{float(row['window_end_s']):.3f} s")


def fuse_windows(frame, inputs, *, tolerance_s: float = DEFAULT_TOLERANCE_S, source="dataset") -> FusedWindows:
    """Match the windows of ``inputs`` (``"modality:representation"``, in the head's order) per subject by window
    end time within ``tolerance_s``; return one fused row per window time of the first input that every input
    has. Windows some input lacks are counted in ``incomplete`` (by the missing input), never imputed."""
    inputs = parse_inputs(inputs)
    if not (math.isfinite(tolerance_s) and tolerance_s >= 0):
        raise ValueError(f"tolerance_s must be a non-negative number of seconds, got {tolerance_s!r}")
    _check_required_columns(frame, source)
    frame = frame.assign(modality=[Modality.parse(m).value for m in frame["modality"]])
    have = available_inputs(frame)
    missing = [name for name in inputs if name not in have]
    if missing:
        raise DatasetError(f"{source}: no windows of input(s) {missing}; the dataset has: {', '.join(have)}")

    per_input = {}
    window_length = {}
    for name in inputs:
        input_type = InputType.parse(name)
        rows = frame[(frame["modality"] == input_type.modality.value)
                     & (frame["representation"] == input_type.representation.value)]
        rows = rows.sort_values(["subject", "window_end_s"], kind="stable")
        per_input[name] = (rows, _embedding_matrix(rows, source, name))
        window_length[name] = float(np.median(rows["window_end_s"].to_numpy(float) - rows["window_start_s"].to_numpy(float)))

    first = inputs[0]
    subjects_all = sorted(set(per_input[first][0]["subject"].astype(str)))
    columns = {key: [] for key in ("embeddings", "labels", "subjects", "start", "end", "devices", "quality")}
    incomplete: collections.Counter = collections.Counter()
    conflicts = 0
    for subject in subjects_all:
        matched = []  # per input: (columns of the subject's rows, embeddings, row index per reference window or -1)
        ref, _ = _subject_rows(per_input[first], subject)
        keep = np.ones(len(ref["end"]), dtype=bool)
        for name in inputs:
            rows, emb = _subject_rows(per_input[name], subject)
            _check_unique_times(rows, name, subject, tolerance_s, source)
            if name == first:
                index = np.arange(len(rows["end"]))
            else:
                index = _nearest_within(ref["end"], rows["end"], tolerance_s)
                incomplete[name] += int(np.count_nonzero((index < 0) & keep))
                keep &= index >= 0
            matched.append((rows, emb, index))
        for i in np.flatnonzero(keep):
            picks = [(rows, emb, int(index[i])) for rows, emb, index in matched]
            labels = {rows["label"][j] for rows, _, j in picks}
            if len(labels) > 1:
                conflicts += 1
                continue
            columns["embeddings"].append(np.stack([emb[j] for _, emb, j in picks]))
            columns["labels"].append(labels.pop())
            columns["subjects"].append(subject)
            columns["start"].append(float(ref["start"][i]))
            columns["end"].append(float(ref["end"][i]))
            columns["devices"].append(tuple(rows["device"][j] for rows, _, j in picks))
            columns["quality"].append(tuple(dict.fromkeys(f for rows, _, j in picks for f in rows["quality"][j])))
    n = len(columns["labels"])
    return FusedWindows(
        inputs=inputs,
        embeddings=np.stack(columns["embeddings"]) if n else np.zeros((0, len(inputs), EMBEDDING_DIM), np.float32),
        labels=np.array(columns["labels"], dtype=object),
        subjects=np.array(columns["subjects"], dtype=object),
        window_start_s=np.array(columns["start"], dtype=np.float64),
        window_end_s=np.array(columns["end"], dtype=np.float64),
        devices=columns["devices"], quality=columns["quality"],
        incomplete={k: v for k, v in incomplete.items() if v}, label_conflicts=conflicts,
        window_length_s=window_length)


def _subject_rows(entry, subject):
    """The columns the matching reads, as arrays, for one subject's rows of one input (sorted by end time)."""
    rows, embeddings = entry
    mask = (rows["subject"].astype(str) == subject).to_numpy()
    picked = rows[mask]
    return {
        "start": picked["window_start_s"].to_numpy(float),
        "end": picked["window_end_s"].to_numpy(float),
        "label": [_label(v) for v in picked["label"].to_numpy()],
        "device": [str(v) for v in picked["device"].to_numpy()],
        "quality": [_flags(v) for v in picked["quality"].to_numpy()],
    }, embeddings[mask]


def _check_unique_times(rows, name: str, subject: str, tolerance_s: float, source) -> None:
    """Two windows of one input of one subject at one window time (two wearables measuring the same modality):
    which to take is the user's choice, not a silent one."""
    ends = rows["end"]
    if len(ends) < 2:
        return
    close = np.flatnonzero(np.diff(ends) <= max(tolerance_s, 1e-9))
    if close.size:
        a, b = int(close[0]), int(close[0]) + 1
        raise DatasetError(f"{source}: subject {subject} has two {name} windows ending at {ends[a]:.3f} and "
                           f"{ends[b]:.3f} s (devices {rows['device'][a]}, {rows['device'][b]}), closer than the "
                           f"tolerance ({tolerance_s:g} s): choose one device for this input (train-head --device "
                           f"{name}={rows['device'][a]}), give each device's wearer a subject of their own, or lower "
                           "the tolerance below the hop")


def _nearest_within(reference: np.ndarray, candidates: np.ndarray, tolerance_s: float) -> np.ndarray:
    """For each reference time, the index of the nearest candidate within the tolerance, else -1 (both sorted);
    a candidate goes to at most one reference time (the nearest)."""
    out = np.full(len(reference), -1, dtype=np.int64)
    if len(candidates) == 0 or len(reference) == 0:
        return out
    right = np.clip(np.searchsorted(candidates, reference), 0, len(candidates) - 1)
    left = np.clip(right - 1, 0, len(candidates) - 1)
    pick = np.where(np.abs(candidates[left] - reference) <= np.abs(candidates[right] - reference), left, right)
    distance = np.abs(candidates[pick] - reference)
    ok = distance <= tolerance_s + 1e-9
    best: dict[int, int] = {}
    for i in np.flatnonzero(ok):
        j = int(pick[i])
        if j not in best or distance[i] < distance[best[j]]:
            best[j] = int(i)
    for j, i in best.items():
        out[i] = j
    return out


def _label(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _flags(value) -> tuple[str, ...]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ()
    if isinstance(value, str):
        return tuple(f for f in value.split(",") if f)
    return tuple(str(f) for f in value)


def training_windows(frame, inputs, *, tolerance_s: float = DEFAULT_TOLERANCE_S, source="dataset",
                     classes=None) -> tuple[FusedWindows, tuple[str, ...]]:
    """The labelled fused windows a head trains or is evaluated on, and its classes (sorted labels unless
    ``classes`` is given). DatasetError when nothing is left, or only one class (training, ``classes`` None)."""
    fused = fuse_windows(frame, inputs, tolerance_s=tolerance_s, source=source)
    labelled = fused.labelled()
    if len(labelled) == 0:
        why = (f"; windows without a partner: {fused.incomplete}" if fused.incomplete else "")
        raise DatasetError(f"{source}: no labelled window has every input {list(fused.inputs)}{why}")
    present = sorted(set(labelled.labels))
    if classes is None:
        if len(present) < 2:
            raise DatasetError(f"{source}: only one class ({present[0]!r}) among the {len(labelled)} labelled windows of "
                               f"{list(fused.inputs)}: a classifier needs at least two")
        return labelled, tuple(present)
    unknown = [c for c in present if c not in classes]
    if unknown:
        raise DatasetError(f"{source}: labels {unknown} are not among the classes {list(classes)}")
    return labelled, tuple(classes)
