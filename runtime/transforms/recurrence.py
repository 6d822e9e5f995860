"""Recurrence plot, equal to ``pyts.image.RecurrencePlot(dimension, time_delay, threshold, percentage)``."""

from __future__ import annotations

from biomoe_edge.runtime.transforms._backend import array_module, as_float32
from biomoe_edge.runtime.transforms._validation import check_recurrence_params, check_signal


def trajectory_distances(x, dimension: int, time_delay: int):
    """Euclidean distances between the delay-embedded trajectories of ``x`` (..., N): (..., M, M) float32,
    M = N - (dimension - 1) * time_delay."""
    xp = array_module(x)
    n_traj = x.shape[-1] - (dimension - 1) * time_delay
    if dimension == 1:
        return xp.abs(x[..., :, None] - x[..., None, :])
    squared = None
    for d in range(dimension):
        lagged = x[..., d * time_delay : d * time_delay + n_traj]
        diff = lagged[..., :, None] - lagged[..., None, :]
        squared = diff * diff if squared is None else squared + diff * diff
    return xp.sqrt(squared)


def threshold_value(distances, threshold, percentage):
    """The per-plot cut-off for thresholded modes, shaped to broadcast over (..., M, M); None for None."""
    xp = array_module(distances)
    if threshold is None:
        return None
    if threshold == "point":
        # pyts: one percentile over every distance of the plot (linear interpolation), per sample.
        flat = distances.reshape(distances.shape[:-2] + (-1,))
        return xp.percentile(flat, percentage, axis=-1)[..., None, None]
    if threshold == "distance":
        return (percentage / 100 * distances.max(axis=(-2, -1)))[..., None, None]
    return threshold


def recurrence_plot(x, *, dimension=1, time_delay=1, threshold=None, percentage=10):
    """Recurrence plot of ``x`` (..., N): (..., M, M) float32, NumPy or CuPy following ``x``.

    Equals ``pyts.image.RecurrencePlot(dimension, time_delay, threshold, percentage).transform(x)``:
    threshold None gives distances, "point" marks distances below the plot's ``percentage`` percentile,
    "distance" those below ``percentage`` % of its largest distance, a float those below that value.
    Distances are computed in float32, so a pair whose distance lies within float32 rounding of the
    cut-off can fall on the other side than in pyts' float64.
    """
    xp = array_module(x)
    x = as_float32(x, xp)
    check_signal(x)
    dimension, time_delay = check_recurrence_params(x.shape[-1], dimension, time_delay, threshold, percentage)
    distances = trajectory_distances(x, dimension, time_delay)
    cut = threshold_value(distances, threshold, percentage)
    if cut is None:
        return distances
    return (distances < cut).astype(xp.float32)
