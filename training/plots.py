"""Pictures a researcher looks at rather than reads, written beside the JSON they illustrate: a dataset's
embeddings in two dimensions (by label and by subject), a bridge fit's position scores and fit curve. Matplotlib
and scikit-learn only (the train and viz extras); no torch, so ``embed`` draws without it.

Every picture says in its title when the weights were random: then it shows the pipeline, not the model."""

from __future__ import annotations

import pathlib

import numpy as np

UNLABELLED = "(unlabelled)"
#: Most points drawn in a projection (a random subset beyond; the projection is fitted on all of them).
MAX_POINTS = 5000


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display on a gateway or in CI)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a gateway or in CI
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path) -> pathlib.Path:
    """``figure`` laid out, written to ``path`` (its folder made) and closed; returns the path."""
    figure.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    pyplot().close(figure)
    return path


def _scatter_by(ax, points: np.ndarray, groups, title: str) -> None:
    names = sorted({str(g) for g in groups} - {UNLABELLED})
    groups = np.asarray([str(g) for g in groups], dtype=object)
    colours = pyplot().get_cmap("tab10" if len(names) <= 10 else "tab20")
    for colour, name in [("lightgrey", UNLABELLED)] + [(colours(i % colours.N), n) for i, n in enumerate(names)]:
        mask = groups == name
        if mask.any():
            ax.scatter(points[mask, 0], points[mask, 1], s=8, alpha=0.7, color=colour,
                       label=f"{name} ({int(mask.sum())})")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=7, markerscale=2, loc="best")


def write_embedding_projection_png(frame, path, *, title: str = "") -> pathlib.Path | None:
    """The dataset's embeddings (``load_dataset``'s DataFrame) projected to 2-D with scikit-learn's PCA, one
    panel per input (modality:representation), coloured by label (unlabelled windows grey) and by subject.
    None when there are fewer than 3 rows (nothing to project)."""
    from sklearn.decomposition import PCA

    if len(frame) < 3:
        return None
    plt = pyplot()
    inputs = sorted(set(frame["modality"].astype(str) + ":" + frame["representation"].astype(str)))
    figure, axes = plt.subplots(len(inputs), 2, figsize=(10, 4.2 * len(inputs)), squeeze=False, dpi=110)
    rng = np.random.default_rng(0)
    for row, name in zip(axes, inputs):
        modality, representation = name.split(":")
        rows = frame[(frame["modality"].astype(str) == modality) & (frame["representation"] == representation)]
        embeddings = np.stack(rows["embedding"].to_numpy()).astype(np.float64)
        if len(rows) < 3:
            for ax in row:
                ax.set_axis_off()
            row[0].set_title(f"{name}: {len(rows)} windows, too few to project", fontsize=9)
            continue
        pca = PCA(n_components=2, random_state=0).fit(embeddings)
        points = pca.transform(embeddings)
        keep = np.sort(rng.choice(len(points), MAX_POINTS, replace=False)) if len(points) > MAX_POINTS else \
            np.arange(len(points))
        explained = ", ".join(f"{v:.0%}" for v in pca.explained_variance_ratio_)
        labels = rows["label"].to_numpy(dtype=object)
        _scatter_by(row[0], points[keep], [UNLABELLED if v is None or v != v else v for v in labels[keep]],
                    f"{name} by label (PCA, variance explained {explained})")
        _scatter_by(row[1], points[keep], rows["subject"].to_numpy(dtype=object)[keep], f"{name} by subject")
    random_weights = "random_weights" in frame and bool(frame["random_weights"].any())
    caveat = "RANDOM weights: the embeddings are meaningless; this shows the pipeline" if random_weights else ""
    figure.suptitle("; ".join(part for part in (title, caveat) if part), fontsize=10)
    return save_figure(figure, path)


def write_bridge_fit_png(positions: dict, curve: list, path, *, title: str = "") -> pathlib.Path:
    """A bridge fit in three panels: the probe macro F1 of each candidate input position (the chosen one
    highlighted), the linear CKA of each old-model entry point, and the fit curve (training and held-out loss per
    epoch). ``positions`` and ``curve`` as bridge.json holds them."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=110)
    inputs = positions.get("input_candidates", [])
    chosen_input = positions.get("input", {}).get("name")
    names = [c["name"] for c in inputs]
    axes[0].barh(names, [c["probe_macro_f1"] for c in inputs],
                 xerr=[c.get("probe_macro_f1_fold_std") or 0.0 for c in inputs],
                 color=["tab:orange" if n == chosen_input else "tab:blue" for n in names])
    axes[0].set_xlim(0, 1.05)
    axes[0].set_xlabel("probe macro F1 on the old head's pseudo-labels")
    axes[0].set_title(f"input positions (chosen: {chosen_input})", fontsize=9)
    entries = positions.get("entry_point_cka", [])
    chosen_entries = set(positions.get("output", {}).get("entry_points", []))
    axes[1].barh([e["name"] for e in entries], [e["cka"] for e in entries],
                 color=["tab:orange" if e["name"] in chosen_entries else "tab:blue" for e in entries])
    axes[1].set_xlim(0, 1.05)
    axes[1].set_xlabel("linear CKA with the chosen input's features")
    axes[1].set_title(f"old-model entry points (chosen: {positions.get('output', {}).get('name')})", fontsize=9)
    epochs = [point["epoch"] for point in curve]
    axes[2].plot(epochs, [point["train_loss"] for point in curve], marker="o", label="training")
    held = [point.get("held_out_loss") for point in curve]
    if any(v is not None for v in held):
        axes[2].plot(epochs, [np.nan if v is None else v for v in held], marker="o", label="held out")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("loss")
    axes[2].set_title("fit curve", fontsize=9)
    axes[2].legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)
