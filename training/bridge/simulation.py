"""Simulated paired sessions (ECG and PPG of one simulated physiology) and a stand-in old head, for tests,
benchmarks and trying the bridge without hardware. Everything here is SIMULATED.

One subject's heart beats once; both sensors see those beats. A session walks through three arousal states
(``rest``, ``moderate``, ``high``) in blocks of one to two and a half minutes; a state sets the heart rate (on
top of the subject's own resting rate), the respiratory sinus arrhythmia, the breathing rate, the pulse arrival
time and the PPG amplitude (vasoconstriction). From the one beat train:

- ECG (a Polar H10's 130 Hz): P, Q, R, S and T waves as Gaussians around each R peak (the morphology model of
  ECGSYN, McSharry et al. 2003, placed at given beats; QT stretched with sqrt(RR)), plus NeuroKit2's noise,
  baseline drift and mains interference (``nk.signal_distort``);
- PPG (a Verity Sense's 55 Hz): NeuroKit2's phenomenological pulse (onset, systolic peak, dicrotic notch,
  diastolic peak per beat, joined by Akima interpolation, as ``nk.ppg_simulate`` draws it) starting one pulse
  arrival time after each R peak, with respiratory baseline and amplitude modulation and NeuroKit2's noise.

:func:`write_simulated_recording` and :func:`write_state_labels` write such sessions as a gateway recording and its
labels; :func:`write_head` trains an old head on simulated windows with the SDK's own ``train_head``.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import warnings
from dataclasses import dataclass

import numpy as np

from .data import PairedWindows, pair_streams

STATES = ("rest", "moderate", "high")
#: per state: heart-rate offset (bpm), RSA depth (fraction of RR), breathing rate (Hz), pulse arrival time (s),
#: PPG amplitude (relative)
STATE_PHYSIOLOGY = {
    "rest": (0.0, 0.06, 0.25, 0.26, 1.0),
    "moderate": (14.0, 0.035, 0.32, 0.23, 0.8),
    "high": (28.0, 0.015, 0.40, 0.20, 0.6),
}
ECG_FS = 130.0  # Polar H10
PPG_FS = 55.0  # Polar Verity Sense
#: ECG waves: (offset from R in s at RR = 1 s, width s, amplitude mV); offsets after R scale with sqrt(RR)
ECG_WAVES = (("P", -0.17, 0.025, 0.15), ("Q", -0.03, 0.009, -0.12), ("R", 0.0, 0.011, 1.0),
             ("S", 0.032, 0.011, -0.25), ("T", 0.28, 0.05, 0.30))


@dataclass
class SimulatedStreams:
    """Two streams of one simulated subject, in gateway seconds from ``start_s``, and the state schedule."""

    subject: str
    ecg_times: np.ndarray
    ecg: np.ndarray
    ppg_times: np.ndarray
    ppg: np.ndarray
    r_peaks_s: np.ndarray
    state_starts_s: np.ndarray
    states: tuple[str, ...]

    def state_at(self, t: np.ndarray) -> np.ndarray:
        index = np.searchsorted(self.state_starts_s, t, side="right") - 1
        return np.asarray(self.states, dtype=object)[np.clip(index, 0, len(self.states) - 1)]


def _schedule(rng, duration_s: float, start_s: float, states=STATES) -> tuple[np.ndarray, tuple[str, ...]]:
    starts, names, t = [], [], start_s
    order = []
    while t < start_s + duration_s:
        if not order:
            order = list(rng.permutation(states))
        starts.append(t)
        names.append(str(order.pop()))
        t += rng.uniform(60.0, 150.0)
    return np.asarray(starts), tuple(names)


def simulate_streams(seed: int, duration_s: float = 1800.0, *, start_s: float = 0.0, subject: str | None = None,
                     states=STATES) -> SimulatedStreams:
    """One subject's paired ECG and PPG streams (SIMULATED), deterministic in ``seed``."""
    import neurokit2 as nk

    rng = np.random.default_rng(seed)
    subject = subject or f"sim{seed:03d}"
    resting_bpm = rng.uniform(58.0, 74.0)
    t_amplitude = rng.uniform(0.2, 0.4)
    ppg_shape = rng.normal(0.0, 0.01, 3)
    state_starts, state_names = _schedule(rng, duration_s, start_s, states)
    state_index = {s: i for i, s in enumerate(STATES)}
    table = np.asarray([STATE_PHYSIOLOGY[s] for s in STATES])

    # Heart rate and the other state parameters on a 10 Hz grid, eased between states (tau 8 s)
    grid = start_s + np.arange(0.0, duration_s + 5.0, 0.1)
    which = np.searchsorted(state_starts, grid, side="right") - 1
    targets = table[[state_index[state_names[max(i, 0)]] for i in which]]
    params = np.empty_like(targets)
    params[0] = targets[0]
    alpha = 0.1 / 8.0
    for i in range(1, len(grid)):
        params[i] = params[i - 1] + alpha * (targets[i] - params[i - 1])
    drift_bpm = 2.0 * np.sin(2 * np.pi * grid / rng.uniform(200, 400))

    # One beat train for both sensors: RR from the heart rate, breathing (RSA) and beat-to-beat noise
    beats, t = [], start_s - 1.5 + rng.uniform(0.0, 0.8)  # beats from before the first sample: no flat start
    phase = 0.0
    while t < start_s + duration_s + 1.0:
        i = min(max(int((t - start_s) / 0.1), 0), len(grid) - 1)
        offset, rsa, breath_hz, _, _ = params[i]
        phase = 2 * np.pi * breath_hz * (t - start_s)
        rr = 60.0 / (resting_bpm + offset + drift_bpm[i]) * (1.0 + rsa * np.sin(phase) + 0.01 * rng.standard_normal())
        beats.append(t)
        t += rr
    beats = np.asarray(beats)
    rr = np.diff(beats, append=beats[-1] + (beats[-1] - beats[-2]))

    ecg_times = start_s + np.arange(int(duration_s * ECG_FS)) / ECG_FS
    ecg = np.zeros_like(ecg_times)
    for r_time, interval in zip(beats, rr):
        lo, hi = np.searchsorted(ecg_times, [r_time - 0.3, r_time + 0.6 * np.sqrt(interval) + 0.2])
        local = ecg_times[lo:hi] - r_time
        for name, offset, width, amplitude in ECG_WAVES:
            if name == "T":
                amplitude, offset = t_amplitude, offset * np.sqrt(interval)
            elif offset > 0:
                offset = offset * np.sqrt(interval)
            ecg[lo:hi] += amplitude * np.exp(-0.5 * ((local - offset) / width) ** 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ecg = nk.signal_distort(ecg, sampling_rate=int(ECG_FS), noise_amplitude=0.02, noise_frequency=[5, 30],
                                powerline_amplitude=0.01, powerline_frequency=50, random_state=seed, silent=True)
    ecg = ecg + 0.05 * np.sin(2 * np.pi * 0.2 * (ecg_times - start_s) + rng.uniform(0, 2 * np.pi))

    # PPG: NeuroKit2's pulse landmarks one pulse arrival time after each R peak
    ppg_times = start_s + np.arange(int(duration_s * PPG_FS)) / PPG_FS
    i = np.clip(((beats - start_s) / 0.1).astype(int), 0, len(grid) - 1)
    arrival, amplitude = params[i, 3], params[i, 4]
    onset = beats + arrival
    y_onset = rng.normal(0.0, 0.05, len(beats))
    x_sys = onset + (0.175 + ppg_shape[0]) * rr
    y_sys = y_onset + amplitude * rng.normal(1.5, 0.08, len(beats))
    x_notch = onset + (0.40 + ppg_shape[1]) * rr
    y_notch = y_sys * rng.normal(0.49, 0.01, len(beats))
    x_dia = onset + (0.45 + ppg_shape[2]) * rr
    y_dia = y_sys * rng.normal(0.51, 0.01, len(beats))
    x_all = np.stack((onset, x_sys, x_notch, x_dia), axis=1).reshape(-1)
    y_all = np.stack((y_onset, y_sys, y_notch, y_dia), axis=1).reshape(-1)
    order = np.argsort(x_all, kind="mergesort")
    x_all, y_all = x_all[order], y_all[order]
    keep = np.concatenate(([True], np.diff(x_all) > 1e-3))
    ppg = nk.signal_interpolate(x_all[keep], y_all[keep], x_new=ppg_times, method="akima")
    ppg = np.where(np.isnan(ppg), np.nanmean(ppg), ppg)
    breath = np.interp(ppg_times, grid, np.cumsum(2 * np.pi * params[:, 2] * 0.1))
    ppg = ppg * (1.0 + 0.1 * np.sin(breath)) + 0.15 * np.sin(breath + 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ppg = nk.signal_distort(ppg, sampling_rate=int(PPG_FS), noise_amplitude=0.03, noise_frequency=[3, 10],
                                random_state=seed + 1, silent=True)
    # raw PPG sits on an ADC offset, as a Verity Sense's photodiodes do
    return SimulatedStreams(subject, ecg_times, ecg.astype(np.float32), ppg_times,
                            (500.0 + 40.0 * ppg).astype(np.float32), beats, state_starts, state_names)


def simulate_paired_session(seed: int, duration_s: float = 1800.0, *, window_s: float = 10.0, hop_s: float = 1.0,
                            start_s: float = 0.0, states=STATES) -> PairedWindows:
    """Paired ECG (old) and PPG (``bvp``, new) windows of one simulated subject, at their model rates, each labelled
    with the state at its middle (SIMULATED)."""
    streams = simulate_streams(seed, duration_s, start_s=start_s, states=states)
    paired = pair_streams(streams.ecg_times, streams.ecg, ECG_FS, streams.ppg_times, streams.ppg, PPG_FS,
                          old_modality="ecg", new_modality="bvp", window_s=window_s, hop_s=hop_s,
                          subject=streams.subject)
    paired.label = streams.state_at(paired.start_s + window_s / 2)
    return paired


def write_simulated_recording(directory, subjects, *, window_s: float = 10.0, hop_s: float = 1.0,
                              representations=("spectrogram_psd",), t0: float = 1000.0) -> pathlib.Path:
    """An SDK recording folder (``runtime.recording.RecordingWriter``) of SIMULATED paired sessions: per
    :class:`SimulatedStreams` in ``subjects``, a chest strap ``h10-<subject>`` streaming its ECG at 130 Hz in frames
    of 73 samples and a ``verity-<subject>`` streaming its PPG at 55 Hz in frames of 28 (the Polar frame sizes),
    pushed in arrival order, shifted to gateway time ``t0``; windows and subjects in the settings, as the gateway
    records them. Returns the folder."""
    from biomoe_edge.runtime.recording import RecordingWriter

    directory = pathlib.Path(directory)
    windows = {"length_s": window_s, "hop_s": hop_s, "representations": list(representations)}
    devices = {}
    pushes = []  # (arrival, device, modality, values, times)
    for sim in subjects:
        for device, modality, times, values, frame in ((f"h10-{sim.subject}", "ecg", sim.ecg_times, sim.ecg, 73),
                                                       (f"verity-{sim.subject}", "bvp", sim.ppg_times, sim.ppg, 28)):
            devices[device] = (sim.subject, modality, ECG_FS if modality == "ecg" else PPG_FS)
            for a in range(0, len(times), frame):
                stamp = times[a:a + frame] + t0
                pushes.append((float(stamp[-1]) + 0.03, device, modality, values[a:a + frame], stamp))
    pushes.sort(key=lambda push: push[0])
    settings = {"subjects": {device: who for device, (who, _, _) in devices.items()},
                "windows": {"ecg": windows, "bvp": windows}, "simulated": True}
    with RecordingWriter(directory, settings, register=False) as writer:
        for device, (_, modality, fs) in devices.items():
            writer.add_stream(device, modality, {"sample_rate_hz": fs, "channels": 1, "profile": "simulated",
                                                 "units": "mV" if modality == "ecg" else "au"})
        for arrival, device, modality, values, stamp in pushes:
            writer.write_block(device, modality, values, stamp, arrival_time_s=arrival, lost_before=0)
    return directory


def write_state_labels(path, subjects, *, t0: float = 1000.0) -> pathlib.Path:
    """The simulated states of ``subjects`` as a labels CSV (``subject,start_s,end_s,label``, gateway time as in
    :func:`write_simulated_recording`), as ``embed --labels`` and ``bridge evaluate --labels`` take it."""
    path = pathlib.Path(path)
    lines = ["subject,start_s,end_s,label"]
    for sim in subjects:
        ends = list(sim.state_starts_s[1:]) + [sim.ecg_times[-1] + 1.0 / ECG_FS]
        for start, end, state in zip(sim.state_starts_s, ends, sim.states):
            lines.append(f"{sim.subject},{start + t0:.3f},{end + t0:.3f},{state}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_head(directory, embeddings: np.ndarray, labels, *, inputs: str, backbone: dict, subjects, window_end_s,
               window_s: float = 10.0, classes=None, cv="none", classifier: str = "elu-linear", seed: int = 0) -> dict:
    """A head folder trained by the SDK's own ``train_head`` (what ``biomoe-edge train-head`` runs) on ``embeddings``
    (N, 192) of SIMULATED windows of ``inputs`` (``"modality:representation"``) with their ``labels``, ``subjects``
    and ``window_end_s``, made by the weights ``backbone`` names (``backbone_identity``). The dataset is built in
    memory in the documented columns; its name in head.json says it was simulated. Returns the manifest."""
    import pandas as pd

    from biomoe_edge.training.classifiers import HeadOptions
    from biomoe_edge.training.head_training import train_head

    from biomoe_edge.vocabulary import InputType

    input_type = InputType.parse(inputs)
    modality, representation = input_type.modality.value, input_type.representation.value
    ends = np.asarray(window_end_s, dtype=np.float64)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    subjects = [str(who) for who in subjects]
    frame = pd.DataFrame({
        "subject": subjects, "device": [f"{who}-{modality}" for who in subjects], "modality": modality,
        "representation": representation, "window_start_s": ends - window_s, "window_end_s": ends,
        "quality": [[] for _ in subjects], "label": pd.Series(list(labels), dtype=object),
        "embedding": list(embeddings), "model_sha256": None, "checkpoint_sha256": backbone.get("checkpoint_sha256"),
        "precision": backbone.get("precision"), "random_weights": bool(backbone.get("random_weights")),
        "seed": backbone.get("seed"), "engine": "pytorch"})
    digest = hashlib.sha256(embeddings.tobytes() + json.dumps([str(v) for v in labels]).encode()).hexdigest()
    return train_head(f"simulated {inputs} windows", [inputs], directory, frame=frame, dataset_sha256=digest,
                      classes=None if classes is None else list(classes), cv=cv,
                      options=HeadOptions(classifier=classifier, seed=seed))
