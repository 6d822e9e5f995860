"""``biomoe-edge inspect-signal FILE --modality bvp --out window.png``: one window's six pictures, side by side.

FILE is a recording folder or an EDF/EDF+/BDF file (one stream, drawn whole above the pictures with its gaps and
markers), a CSV, a 1-D ``.npy``, or ``heartpy:data.csv`` (``data2.csv``, ``data3.csv``): the real PPG recordings
HeartPy ships, with their sample rates. ``--annotate`` adds, under each bare 224x224 image the model sees, the
same map drawn for people: time and frequency axes in seconds and hertz, and a colour bar with the values'
units (dB/Hz, radians, wavelet magnitude), from the very maps the images are made of.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

HELP = ("draw one window of a recorded signal (a recording folder, EDF/BDF, CSV, .npy or heartpy:data.csv) in the six "
        "representations the model sees")

HEARTPY_PREFIX = "heartpy:"


def add_arguments(parser) -> None:
    parser.add_argument("file", help="a recording folder (biomoe-edge demo/run --record), an EDF/EDF+/BDF file, a CSV "
                                     "(one numeric column, or the last column), .npy (1-D), or heartpy:data.csv (also "
                                     "data2.csv, data3.csv: real PPG recordings that ship with HeartPy)")
    parser.add_argument("--modality", required=True, help="eda, bvp (ppg), resp, spo2 or ecg")
    parser.add_argument("--fs", type=float, default=None,
                        help="sample rate of FILE in Hz (default: a HeartPy recording's own, else the modality's model "
                             "rate)")
    parser.add_argument("--start", type=float, default=0.0,
                        help="window start in seconds from the signal's first sample (default 0)")
    parser.add_argument("--seconds", type=float, default=10.0, help="window length in seconds (default 10)")
    parser.add_argument("--annotate", action="store_true",
                        help="under each image, the same map with time / frequency axes and a colour bar")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("window.png"), help="PNG to write")
    parser.add_argument("--device", default=None,
                        help="a recording's device to draw (default: the only one that streams --modality)")
    parser.add_argument("--channel", default=None,
                        help="an EDF/BDF file's channel to draw (default: the one labelled like --modality)")


def load_signal(path: pathlib.Path):
    """1-D float64 samples from a .npy file or a CSV (a header row is skipped; the last column is used)."""
    import numpy as np

    if not path.is_file():
        raise OSError(f"no such file: {path}")
    if path.suffix.lower() == ".npy":
        data = np.load(path, allow_pickle=False)
    else:
        data = np.genfromtxt(path, delimiter=",", dtype=np.float64)
        if data.ndim == 2:
            data = data[:, -1]
        data = data[~np.isnan(data)] if data.size and np.isnan(data[0]) else data  # header row -> NaN
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 1:
        raise ValueError(f"{path}: expected one channel (1-D), got shape {data.shape}")
    return data


def load_source(source: str):
    """``(samples, sample rate or None, display name)`` of FILE or ``heartpy:NAME``."""
    if source.startswith(HEARTPY_PREFIX):
        from biomoe_edge.runtime.transforms.signals import real_ppg

        signal, fs = real_ppg(source[len(HEARTPY_PREFIX):])
        return signal, fs, source
    path = pathlib.Path(source)
    return load_signal(path), None, path.name


@dataclass
class RecordedSignal:
    """One stream of a recording folder or EDF file: times in seconds from its first sample (``t0``: that
    sample's time in the file's own time base, gateway time for a recording), samples, and the markers
    ``(time from the first sample, label)`` and gaps ``(from, to)`` to draw."""

    name: str
    times: np.ndarray
    values: np.ndarray
    fs: float
    t0: float
    markers: list
    gaps: list


def is_recorded(source: str) -> bool:
    path = pathlib.Path(source)
    return path.is_dir() or path.suffix.lower() in (".edf", ".bdf")


def load_recorded(source: str, modality: str, *, device: str | None = None, channel: str | None = None):
    """The ``modality`` stream of a recording folder (``device``: which, when several stream it) or the channel of
    an EDF/BDF file (``channel``: default the one labelled like the modality), as a :class:`RecordedSignal`."""
    import numpy as np

    from biomoe_edge.runtime.recording.sources import open_source
    from biomoe_edge.vocabulary import Modality

    modality = Modality.parse(modality).value
    path = pathlib.Path(source)
    if path.is_dir():
        recording = open_source(path)
        devices = sorted(d for d, m in recording.streams if m == modality)
        if device is None and len(devices) != 1:
            streams = ", ".join(f"{d}/{m}" for d, m in recording.streams) or "none"
            problem = f"several devices stream {modality}: choose one with --device" if devices else \
                f"no device streams {modality}"
            raise ValueError(f"{path}: {problem} (its streams: {streams})")
        device = device or devices[0]
        if (device, modality) not in recording.streams:
            raise ValueError(f"{path}: no stream {device}/{modality}; its streams: "
                             + ", ".join(f"{d}/{m}" for d, m in recording.streams))
        times, samples = recording.stream(device, modality)
        fs = float(recording.streams[(device, modality)].description["sample_rate_hz"])
        markers = [(m.time_s, m.label) for m in recording.markers if m.device in (None, device)]
        name = f"{path.name} {device}"
    else:
        from biomoe_edge.runtime.recording.edf import edf_signal_labels, read_edf_annotations

        labels = edf_signal_labels(path)
        if channel is None:  # the SDK's exports label channels "ECG", or "ECG 1", "ECG 2" for several devices
            matching = [label for label in labels if _channel_modality(label) == modality]
            if len(matching) != 1:
                raise ValueError(f"{path}: choose the channel to draw with --channel; its channels: "
                                 f"{', '.join(labels)}")
            channel = matching[0]
        recording = open_source(path, channel_map=[(channel, modality, None)])
        ((key, info),) = recording.streams.items()
        times, samples = recording.stream(*key)
        fs = float(info.description["sample_rate_hz"])
        from biomoe_edge.runtime.recording.labels import is_label_annotation

        markers = [(onset, text) for onset, _, text in read_edf_annotations(path) if is_label_annotation(text)]
        name = f"{path.name} {channel}"
    if not len(times):
        raise ValueError(f"{path}: the {modality} stream holds no samples")
    t0 = float(times[0])
    steps = np.diff(times)
    gaps = [(float(times[i] - t0), float(times[i + 1] - t0)) for i in np.flatnonzero(steps > 1.5 / fs)]
    return RecordedSignal(name, times - t0, np.asarray(samples, dtype=np.float64).reshape(len(times), -1)[:, 0], fs,
                          t0, [(t - t0, label) for t, label in markers], gaps)


def _channel_modality(label: str) -> str | None:
    """The modality an EDF channel label names by its first word ("ECG 2" -> "ecg"), else None."""
    from biomoe_edge.vocabulary import Modality

    try:
        return Modality.parse(label.split()[0]).value if label.split() else None
    except ValueError:
        return None


def draw_overview(ax, signal: RecordedSignal, start_s: float, seconds: float) -> None:
    """The whole stream, its markers (dashed lines, labelled) and gaps (shaded), the drawn window highlighted."""
    ax.plot(signal.times, signal.values, color="black", linewidth=0.5)
    for a, b in signal.gaps:
        ax.axvspan(a, b, color="red", alpha=0.25, linewidth=0)
    for t, label in signal.markers:
        ax.axvline(t, color="tab:blue", linestyle="--", linewidth=0.8)
        ax.annotate(label, (t, 1.0), xycoords=("data", "axes fraction"), fontsize=8, color="tab:blue",
                    va="top", ha="left", rotation=90)
    ax.axvspan(start_s, start_s + seconds, color="gold", alpha=0.35, linewidth=0)
    ax.set_xlabel(f"seconds from the first sample (time {signal.t0:.3f} s in the file's time base)")
    ax.set_title(f"{signal.name}: the whole stream; window highlighted, gaps red"
                 + (", markers dashed" if signal.markers else ""), fontsize=10)


#: What each map's colour means, for the colour bar.
COLOUR_UNITS = {
    "spectrogram_psd": "power spectral density (dB, normalised units\u00b2/Hz)",
    "spectrogram_angle": "phase angle (rad)",
    "spectrogram_phase": "phase, unwrapped along frequency (rad)",
    "scalogram": "|CWT| (Morlet), normalised signal units",
    "recurrence": "recurrent (1) or not (0)",
}


def map_axes(name: str, n_samples: int, fs: float, params: dict):
    """``(x edges, y edges, x label, y label)`` of a representation's map for a window of ``n_samples`` at ``fs``:
    spectrogram bins at their segment centres and FFT frequencies (as ``scipy.signal.spectrogram`` reports
    them), scalogram rows at their wavelet centre frequencies, recurrence plots on time both ways."""
    import numpy as np
    import pywt

    if name.startswith("spectrogram"):
        spec = params["spectrogram"]
        step = spec["nperseg"] - spec["noverlap"]
        segments = 1 + (n_samples - spec["nperseg"]) // step
        times = (spec["nperseg"] / 2 + step * np.arange(segments)) / fs
        freqs = np.fft.rfftfreq(spec["nfft"], 1 / fs)
        return times, freqs, "time (s)", "frequency (Hz)"
    if name == "scalogram":
        scales = np.asarray(params["scalogram"]["scales"])
        freqs = pywt.scale2frequency(params["scalogram"]["wavelet"], scales) * fs
        return np.arange(n_samples) / fs, freqs, "time (s)", "frequency (Hz)"
    if name == "recurrence":
        r = params["recurrence"]
        m = n_samples - (r["dimension"] - 1) * r["time_delay"]
        return np.arange(m) / fs, np.arange(m) / fs, "time (s)", "time (s)"
    raise ValueError(f"{name!r} has no 2-D map")


def draw_annotated(ax, name: str, window, fs: float, modality: str, *, start_s: float = 0.0):
    """Draw ``name``'s map of ``window`` (the preprocessed samples at ``fs``) on ``ax`` with axes and a colour
    bar; returns the drawn artist. The values are those the model's image is coloured from."""
    import matplotlib.pyplot as plt
    import numpy as np

    from biomoe_edge.runtime.transforms.defaults import representation_params
    from biomoe_edge.runtime.transforms.render import COLORMAPS, representation_map

    window = np.asarray(window, dtype=np.float64)
    if name == "waveform":
        (line,) = ax.plot(start_s + np.arange(window.size) / fs, window, color="black", linewidth=0.8)
        ax.set_xlabel("time (s)")
        ax.set_ylabel(f"{modality}, normalised")
        ax.set_title("waveform", fontsize=10)
        return line
    params = representation_params(fs, window.size, modality)
    maps, vmin, vmax = representation_map(window[None, :], fs, name, params)
    x, y, xlabel, ylabel = map_axes(name, window.size, fs, params)
    mesh = ax.pcolormesh(start_s + x, (start_s + y) if name == "recurrence" else y, np.asarray(maps[0]),
                         cmap=COLORMAPS[name], vmin=float(vmin[0]), vmax=float(vmax[0]), shading="nearest")
    if name == "scalogram":  # wavelet centre frequencies are geometrically spaced
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(name, fontsize=10)
    bar = plt.colorbar(mesh, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label(COLOUR_UNITS[name], fontsize=8)
    return mesh


def run(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from biomoe_edge.runtime.transforms import check_window, modality_defaults, preprocess, render
    from biomoe_edge.vocabulary import REPRESENTATIONS

    defaults = modality_defaults(args.modality)
    recorded = None
    if is_recorded(args.file):
        recorded = load_recorded(args.file, defaults.modality, device=args.device, channel=args.channel)
        signal, file_fs, name = recorded.values, recorded.fs, recorded.name
    else:
        signal, file_fs, name = load_source(args.file)
    fs = args.fs if args.fs is not None else file_fs if file_fs is not None else defaults.model_fs
    if not fs > 0 or not args.seconds > 0 or args.start < 0:
        raise ValueError("--fs and --seconds must be positive and --start non-negative")
    first, count = int(round(args.start * fs)), int(round(args.seconds * fs))
    if recorded is not None:  # placed by time: a gap inside the window is not silently closed up
        import numpy as np

        first = int(np.searchsorted(recorded.times, args.start - 0.5 / fs))
        inside = [(a, b) for a, b in recorded.gaps if a < args.start + args.seconds and b > args.start]
        if inside:
            gap = f"{inside[0][0]:.3f} to {inside[0][1]:.3f} s"
            raise ValueError(f"{args.file}: samples are missing from {gap}, inside the window {args.start:g}-"
                             f"{args.start + args.seconds:g} s: choose another --start")
    if first + count > signal.size:
        raise ValueError(
            f"{args.file} holds {signal.size / fs:.1f} s at {fs:g} Hz; a {args.seconds} s window from "
            f"{args.start} s does not fit"
        )
    raw = signal[first : first + count]
    flags = check_window(raw, fs)
    window, model_fs = preprocess(raw, fs, defaults.modality)
    images = render(window, model_fs, REPRESENTATIONS, modality=defaults.modality)

    rows = (2 if args.annotate else 1) + (recorded is not None)
    fig, axes = plt.subplots(rows, len(REPRESENTATIONS), figsize=(3.6 * len(REPRESENTATIONS), 3.4 * rows + 0.4),
                             squeeze=False)
    if recorded is not None:  # the first row: the whole stream across all columns
        grid = axes[0, 0].get_gridspec()
        for ax in axes[0]:
            ax.remove()
        draw_overview(fig.add_subplot(grid[0, :]), recorded, args.start, args.seconds)
        axes = axes[1:]
    for ax, rep, image in zip(axes[0], REPRESENTATIONS, images):
        ax.imshow(image.transpose(1, 2, 0))
        ax.set_title(f"{rep} (model input)" if args.annotate else rep, fontsize=10)
        ax.set_axis_off()
    if args.annotate:
        for ax, rep in zip(axes[1], REPRESENTATIONS):
            draw_annotated(ax, rep, window, model_fs, defaults.modality, start_s=args.start)
    quality = ", ".join(flags) if flags else "no quality flags"
    fig.suptitle(
        f"{name}: {defaults.modality}, {args.start:g}-{args.start + args.seconds:g} s at {fs:g} Hz "
        f"-> {model_fs:g} Hz ({quality})",
        fontsize=11,
    )
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0
