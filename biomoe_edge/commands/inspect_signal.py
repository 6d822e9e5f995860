"""``biomoe-edge inspect-signal FILE --modality bvp --out window.png``: one window's six pictures, side by side."""

from __future__ import annotations

import pathlib

HELP = "draw one window of a recorded signal (CSV or .npy) in the six representations the model sees"


def add_arguments(parser) -> None:
    parser.add_argument("file", type=pathlib.Path, help="CSV (one numeric column, or the last column) or .npy (1-D)")
    parser.add_argument("--modality", required=True, help="eda, bvp (ppg), resp, spo2 or ecg")
    parser.add_argument("--fs", type=float, default=None, help="sample rate of FILE in Hz (default: the modality's model rate)")
    parser.add_argument("--start", type=float, default=0.0, help="window start in seconds (default 0)")
    parser.add_argument("--seconds", type=float, default=10.0, help="window length in seconds (default 10)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("window.png"), help="PNG to write")


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


def run(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from biomoe_edge.runtime.transforms import check_window, modality_defaults, preprocess, render
    from biomoe_edge.vocabulary import REPRESENTATIONS

    defaults = modality_defaults(args.modality)
    fs = defaults.model_fs if args.fs is None else args.fs
    if not fs > 0 or not args.seconds > 0 or args.start < 0:
        raise ValueError("--fs and --seconds must be positive and --start non-negative")
    signal = load_signal(args.file)
    first, count = int(round(args.start * fs)), int(round(args.seconds * fs))
    if first + count > signal.size:
        raise ValueError(
            f"{args.file} holds {signal.size / fs:.1f} s at {fs} Hz; a {args.seconds} s window from "
            f"{args.start} s does not fit"
        )
    raw = signal[first : first + count]
    flags = check_window(raw, fs)
    window, model_fs = preprocess(raw, fs, defaults.modality)
    images = render(window, model_fs, REPRESENTATIONS, modality=defaults.modality)

    fig, axes = plt.subplots(1, len(REPRESENTATIONS), figsize=(3 * len(REPRESENTATIONS), 3.4))
    for ax, name, image in zip(axes, REPRESENTATIONS, images):
        ax.imshow(image.transpose(1, 2, 0))
        ax.set_title(name, fontsize=10)
        ax.set_axis_off()
    quality = ", ".join(flags) if flags else "no quality flags"
    fig.suptitle(
        f"{args.file.name}: {defaults.modality}, {args.start:g}-{args.start + args.seconds:g} s at {fs:g} Hz "
        f"-> {model_fs:g} Hz ({quality})",
        fontsize=11,
    )
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0
