"""Paired windows: the same stretch of time seen by the old modality (the head's) and the new one (the wearable's).

A bridge is fitted on unlabelled paired sessions: a subject wears both sensors, and each window time gives one
old-modality window and one new-modality window. :class:`PairedWindows` holds them as plain arrays at their
model rates; :func:`pair_streams` cuts them from two recorded streams by gateway time; :func:`held_out_split`
sets aside the part the fit never trains on.
"""

from __future__ import annotations

import hashlib
import math
import pathlib
import warnings
from dataclasses import dataclass

import numpy as np

from biomoe_edge.vocabulary import Modality

from .exc import PairingError


@dataclass
class PairedWindows:
    """N paired windows. ``old`` (N, n_old) at ``old_fs`` Hz and ``new`` (N, n_new) at ``new_fs`` Hz cover the same
    times ``start_s``..``end_s`` (gateway seconds) of ``subject``. ``label`` (N,) is optional: bridge fitting never
    reads it; evaluation and the oracle baseline do. ``session`` (N,): the recording session each window comes from
    (default: its subject); times are comparable within a session only."""

    old_modality: str
    new_modality: str
    old_fs: float
    new_fs: float
    old: np.ndarray
    new: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    subject: np.ndarray
    label: np.ndarray | None = None
    session: np.ndarray | None = None

    def __post_init__(self):
        self.old_modality = Modality.parse(self.old_modality).value
        self.new_modality = Modality.parse(self.new_modality).value
        self.old = np.ascontiguousarray(self.old, dtype=np.float32)
        self.new = np.ascontiguousarray(self.new, dtype=np.float32)
        self.start_s = np.asarray(self.start_s, dtype=np.float64).reshape(-1)
        self.end_s = np.asarray(self.end_s, dtype=np.float64).reshape(-1)
        n = len(self.start_s)
        self.subject = np.asarray(self.subject if np.ndim(self.subject) else [self.subject] * n, dtype=object)
        if self.label is not None:
            self.label = np.asarray(self.label, dtype=object)
        self.session = self.subject.copy() if self.session is None else np.asarray(
            self.session if np.ndim(self.session) else [self.session] * n, dtype=object)
        for name in ("old", "new"):
            array = getattr(self, name)
            if array.ndim != 2 or array.shape[0] != n:
                raise PairingError(f"{name} windows must be ({n}, samples) like start_s, got shape {array.shape}")
            if not np.isfinite(array).all():
                raise PairingError(f"{name} ({getattr(self, name + '_modality')}) windows contain NaN or infinite "
                                   "samples")
        for name in ("end_s", "subject", "session") + (("label",) if self.label is not None else ()):
            if len(getattr(self, name)) != n:
                raise PairingError(f"{name} has {len(getattr(self, name))} entries for {n} windows")
        if n == 0:
            raise PairingError("no paired windows")
        for name in ("old_fs", "new_fs"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise PairingError(f"{name} must be a positive sample rate, got {value!r}")
            setattr(self, name, value)
        old_s, new_s = self.old.shape[1] / self.old_fs, self.new.shape[1] / self.new_fs
        if abs(old_s - new_s) > max(1.0 / self.old_fs, 1.0 / self.new_fs):
            raise PairingError(f"{self.old_modality} windows last {old_s:g} s but {self.new_modality} windows "
                               f"{new_s:g} s: paired windows must cover the same time")

    def __len__(self) -> int:
        return len(self.start_s)

    @property
    def window_s(self) -> float:
        return self.old.shape[1] / self.old_fs

    def subset(self, index) -> PairedWindows:
        index = np.asarray(index)
        return PairedWindows(self.old_modality, self.new_modality, self.old_fs, self.new_fs, self.old[index],
                             self.new[index], self.start_s[index], self.end_s[index], self.subject[index],
                             None if self.label is None else self.label[index], self.session[index])

    def sha256(self) -> str:
        """Content hash of the windows, their rates, modalities, times and subjects (not the labels, which
        fitting never reads)."""
        digest = hashlib.sha256()
        digest.update(f"{self.old_modality}@{self.old_fs!r}|{self.new_modality}@{self.new_fs!r}".encode())
        for array in (self.old, self.new, self.start_s, self.end_s):
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update("\x1f".join(map(str, self.subject)).encode())
        return digest.hexdigest()

    @staticmethod
    def concatenate(parts) -> PairedWindows:
        parts = list(parts)
        if not parts:
            raise PairingError("no paired windows")
        first = parts[0]
        for part in parts[1:]:
            same = (part.old_modality, part.new_modality, part.old_fs, part.new_fs, part.old.shape[1],
                    part.new.shape[1])
            if same != (first.old_modality, first.new_modality, first.old_fs, first.new_fs, first.old.shape[1],
                        first.new.shape[1]):
                raise PairingError("paired sessions differ in modality, rate or window length: "
                                   f"{same} vs {(first.old_modality, first.new_modality, first.old_fs, first.new_fs)}")
        labels = None if any(p.label is None for p in parts) else np.concatenate([p.label for p in parts])
        return PairedWindows(first.old_modality, first.new_modality, first.old_fs, first.new_fs,
                             np.concatenate([p.old for p in parts]), np.concatenate([p.new for p in parts]),
                             np.concatenate([p.start_s for p in parts]), np.concatenate([p.end_s for p in parts]),
                             np.concatenate([p.subject for p in parts]), labels,
                             np.concatenate([p.session for p in parts]))


def _as_stream(times, samples, what: str) -> tuple[np.ndarray, np.ndarray]:
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim == 2:
        samples = samples[:, 0]  # the wearables' modalities are single-channel: the first channel, as the gateway
    if samples.shape != times.shape or len(times) < 2:
        raise PairingError(f"{what} stream: {len(times)} times for samples of shape {np.shape(samples)} (need at "
                           "least 2 samples, one time each)")
    if not np.all(np.diff(times) > 0):
        raise PairingError(f"{what} stream: gateway times are not increasing")
    return times, samples


def pair_streams(old_times, old_samples, old_fs: float, new_times, new_samples, new_fs: float, *,
                 old_modality: str, new_modality: str, window_s: float = 10.0, hop_s: float = 1.0,
                 subject: str = "", min_coverage: float = 0.9) -> PairedWindows:
    """Paired windows from two recorded streams of one subject: ``*_times`` (n,) gateway seconds, ``*_samples``
    (n,) or (n, channels) at the stream's device rate ``*_fs``. Windows of ``window_s`` every ``hop_s`` are cut
    where both streams overlap and resampled to each modality's model rate as the gateway does
    (``runtime.ingest.resample.resample_window``). A window where either stream holds less than ``min_coverage``
    of its samples (a gap) is left out and counted in a warning.

    Raises PairingError when the streams do not overlap for one window (not a paired session)."""
    from biomoe_edge.runtime.ingest.resample import model_rate_hz, resample_window

    old_modality, new_modality = Modality.parse(old_modality).value, Modality.parse(new_modality).value
    old_t, old_x = _as_stream(old_times, old_samples, old_modality)
    new_t, new_x = _as_stream(new_times, new_samples, new_modality)
    if not (window_s > 0 and 0 < hop_s):
        raise PairingError(f"window_s and hop_s must be positive, got {window_s!r} and {hop_s!r}")
    begin = max(old_t[0], new_t[0])
    end = min(old_t[-1] + 1.0 / old_fs, new_t[-1] + 1.0 / new_fs)
    if end - begin < window_s:
        overlap = max(0.0, end - begin)
        raise PairingError(
            f"subject {subject!r}: {old_modality} covers {old_t[0]:.1f}..{old_t[-1]:.1f} s and {new_modality} covers "
            f"{new_t[0]:.1f}..{new_t[-1]:.1f} s (gateway time): they overlap for {overlap:.1f} s, less than one "
            f"{window_s:g} s window. A paired session needs both sensors worn at the same time")
    for name, t in ((old_modality, old_t), (new_modality, new_t)):
        outside = (t < begin).sum() + (t >= end).sum()
        if outside > 0.1 * len(t):
            warnings.warn(f"subject {subject!r}: {outside} of {len(t)} {name} samples lie outside the time both "
                          f"modalities cover ({begin:.1f}..{end:.1f} s) and are not paired", stacklevel=2)
    starts = begin + hop_s * np.arange(int(math.floor((end - begin - window_s) / hop_s + 1e-9)) + 1)
    rates = {old_modality: model_rate_hz(old_modality), new_modality: model_rate_hz(new_modality)}
    kept, olds, news, gaps = [], [], [], 0
    for start in starts:
        cut = []
        for t, x, fs, modality in ((old_t, old_x, old_fs, old_modality), (new_t, new_x, new_fs, new_modality)):
            lo, hi = np.searchsorted(t, [start, start + window_s])
            expected = window_s * fs
            if hi - lo < min_coverage * expected:
                break
            model_fs = rates[modality]
            cut.append(resample_window(x[None, lo:hi], fs, model_fs, int(round(window_s * model_fs)))[0])
        if len(cut) < 2:
            gaps += 1
            continue
        kept.append(start)
        olds.append(cut[0])
        news.append(cut[1])
    if gaps:
        warnings.warn(f"subject {subject!r}: {gaps} of {len(starts)} paired windows left out for gaps (less than "
                      f"{min_coverage:.0%} of their samples in one modality)", stacklevel=2)
    if not kept:
        raise PairingError(f"subject {subject!r}: every paired window has a gap in one modality")
    kept = np.asarray(kept)
    return PairedWindows(old_modality, new_modality, rates[old_modality], rates[new_modality], np.stack(olds),
                         np.stack(news), kept, kept + window_s, np.full(len(kept), subject, dtype=object))


@dataclass(frozen=True)
class Split:
    """Indices of the windows the fit trains on and of those it holds out, and each window's time block (the
    probe's cross-validation groups); ``held_out_blocks`` names the held-out blocks ("SESSION 60-120 s")."""

    train: np.ndarray
    held_out: np.ndarray
    blocks: np.ndarray
    held_out_blocks: tuple = ()
    #: How many blocks the paired set has, over all sessions.
    block_count: int = 0


def held_out_split(paired: PairedWindows, *, fraction: float = 0.2, block_s: float = 60.0) -> Split:
    """Hold out every k-th ``block_s`` block of the whole paired set (k = round(1 / fraction)). Each session is cut
    into blocks from its first window; the blocks are counted on from one session to the next, so six two-minute
    sessions (twelve blocks) are held out from as one twelve-minute session is. Training windows that overlap a
    held-out window of their session in time are dropped, so no sample is both trained on and held out."""
    if not 0 < fraction < 1:
        raise PairingError(f"held-out fraction must be in (0, 1), got {fraction!r}")
    every = max(2, int(round(1.0 / fraction)))
    n = len(paired)
    blocks = np.empty(n, dtype=object)
    in_order = []  # (session, block) over the whole set, session after session
    for session in dict.fromkeys(paired.session):
        rows = np.flatnonzero(paired.session == session)
        block = np.floor((paired.start_s[rows] - paired.start_s[rows].min()) / block_s).astype(int)
        blocks[rows] = [f"{session}#{b}" for b in block]
        in_order += [(session, int(b)) for b in sorted(set(block.tolist()))]
    chosen = [(session, b) for i, (session, b) in enumerate(in_order) if i % every == every - 1]
    held = np.isin(blocks, [f"{session}#{b}" for session, b in chosen])
    train = ~held
    for session in dict.fromkeys(paired.session):
        rows = paired.session == session
        held_rows = np.flatnonzero(rows & held)
        if not len(held_rows):
            continue
        for i in np.flatnonzero(rows & train):
            overlaps = (paired.start_s[held_rows] < paired.end_s[i]) & (paired.end_s[held_rows] > paired.start_s[i])
            if overlaps.any():
                train[i] = False
    names = tuple(f"{session} {b * block_s:g}-{(b + 1) * block_s:g} s" for session, b in chosen)
    return Split(np.flatnonzero(train), np.flatnonzero(held), blocks, names, len(in_order))


def _replay_windows(path, mapping, modalities, *, window_s, hop_s, subject):
    """(source, config, {modality: {subject: [Window]}}) of one recording or file: the windows the gateway's own
    ``Pipeline`` cuts from it (``runtime.recording.Replay``: live equals offline; windows withheld for quality are
    not among them, as live)."""
    from biomoe_edge.runtime.recording.replay import Replay, replay_config
    from biomoe_edge.runtime.recording.sources import open_source

    source = open_source(path, channel_map=mapping)
    present = {modality for _, modality in source.streams}
    missing = [m for m in modalities if m not in present]
    if missing:
        found = ", ".join(f"{d}/{m}" for d, m in source.streams) or "none"
        raise PairingError(f"{path}: no {' or '.join(missing)} stream (it has: {found})")
    config = replay_config(source, window_s=window_s, hop_s=hop_s)
    found: dict = {m: {} for m in modalities}
    for window in Replay(source, None, config).windows():
        if window.modality in found:
            found[window.modality].setdefault(source.subject_of(window.device, subject), []).append(window)
    return source, config, found


def _span(windows) -> str:
    return f"{windows[0].start_s:.1f}..{windows[-1].end_s:.1f} s" if windows else "no windows"


def load_paired_windows(paths, mapping, old: str, new: str, *, window_s: float | None = None,
                        hop_s: float | None = None, subject: str | None = None) -> PairedWindows:
    """Paired windows of modality ``old`` and ``new`` from recordings: the SDK's recording folders, or EDF/CSV
    files with a channel ``mapping`` (``"ECG:ecg,PPG:bvp"``), as ``biomoe-edge embed`` takes them.

    This is the bridge's single point of contact with stored recordings. Each input is replayed through the
    gateway's own pipeline (``runtime.recording.Replay``), so the windows are the ones the gateway cuts live (its
    grid, resampling, gap handling; windows withheld for quality are left out); window length and hop are the
    recording's own unless given. Per subject (``subject`` overrides the recorded ones), each new-modality window is
    paired with the old-modality window whose end lies nearest, within half a hop (two devices keep their own
    window grids, as the gateway's fusion matches them by window time). Raises PairingError when an input lacks a
    modality or its two modalities never overlap in time."""
    old, new = Modality.parse(old).value, Modality.parse(new).value
    parts = []
    for path in paths:
        _, config, found = _replay_windows(path, mapping, (old, new), window_s=window_s, hop_s=hop_s, subject=subject)
        old_spec, new_spec = config.modality(old).window, config.modality(new).window
        if abs(old_spec.length_s - new_spec.length_s) > 1e-9:
            raise PairingError(f"{path}: {old} windows last {old_spec.length_s:g} s but {new} windows "
                               f"{new_spec.length_s:g} s; pass one window length for both")
        tolerance = new_spec.hop_s / 2 + 1e-6
        pairs_in_path = 0
        spans = []
        for who in sorted(set(found[old]) | set(found[new])):
            olds, news = found[old].get(who, []), found[new].get(who, [])
            spans.append(f"subject {who!r}: {old} {_span(olds)}, {new} {_span(news)}")
            if not olds or not news:
                continue
            old_ends = np.asarray([w.end_s for w in olds])
            rows = []
            for window in news:
                nearest = int(np.argmin(np.abs(old_ends - window.end_s)))
                if abs(old_ends[nearest] - window.end_s) <= tolerance:
                    rows.append((olds[nearest], window))
            unpaired = len(news) - len(rows)
            if unpaired and rows:
                warnings.warn(f"{path}: subject {who!r}: {unpaired} of {len(news)} {new} windows have no {old} "
                              "window within half a hop and are not paired", stacklevel=2)
            if not rows:
                continue
            pairs_in_path += len(rows)
            parts.append(PairedWindows(
                old, new, rows[0][0].fs, rows[0][1].fs, np.stack([o.samples[0] for o, _ in rows]),
                np.stack([n.samples[0] for _, n in rows]), [n.start_s for _, n in rows],
                [n.end_s for _, n in rows], np.full(len(rows), who, dtype=object),
                session=np.full(len(rows), f"{pathlib.Path(path).name}:{who}", dtype=object)))
        if pairs_in_path == 0:
            raise PairingError(f"{path}: no {old} window pairs with a {new} window of the same subject and time "
                               f"({'; '.join(spans)}): the two modalities do not overlap in time. A paired session "
                               "needs both sensors worn at the same time, by the same subject")
    return PairedWindows.concatenate(parts)


def load_labelled_windows(paths, mapping, modality: str, labels, *, window_s: float | None = None,
                          hop_s: float | None = None, subject: str | None = None):
    """Windows of ``modality`` from recordings (as :func:`load_paired_windows` reads them) with their labels from
    ``labels`` (a CSV ``subject,start_s,end_s,label[,device]`` or an EDF+ file, as ``embed --labels`` takes it; the
    window is labelled only when one label covers it whole). Returns (windows (N, n), fs, labels (N,), unlabelled
    counts by reason); unlabelled windows are left out. Raises PairingError when no window is labelled."""
    from biomoe_edge.runtime.recording.labels import WindowLabeller, fit_labels_to_inputs, input_spans, read_labels
    from biomoe_edge.runtime.recording.sources import open_source

    modality = Modality.parse(modality).value
    spans = input_spans([open_source(path, channel_map=mapping) for path in paths], subject=subject)
    labeller = WindowLabeller(fit_labels_to_inputs(read_labels(labels, subject=subject), spans,
                                                   labels_name=str(labels)))
    windows, names, fs = [], [], None
    for path in paths:
        _, _, found = _replay_windows(path, mapping, (modality,), window_s=window_s, hop_s=hop_s, subject=subject)
        for who, items in found[modality].items():
            for window in items:
                label = labeller.label(who, window.device, window.start_s, window.end_s)
                if label is not None:
                    windows.append(window.samples[0])
                    names.append(label)
                    fs = window.fs
    if not windows:
        raise PairingError(f"no {modality} window of {', '.join(map(str, paths))} is labelled by {labels} "
                           f"(unlabelled: {dict(labeller.unlabelled)})")
    return np.stack(windows), float(fs), np.asarray(names, dtype=object), dict(labeller.unlabelled)
