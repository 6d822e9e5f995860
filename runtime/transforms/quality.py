"""Window quality: typed errors and documented flags, so no NaN image is ever passed on silently.

Problems (``WINDOW_PROBLEMS``; ``check_window`` returns those that apply, in this order; the ingest's own window
flags are ``runtime.ingest.QUALITY_FLAGS``):

- ``"nonfinite"``: a NaN or ±Inf sample. Always an error for rendering (``SignalQualityError``).
- ``"flat"``: peak-to-peak below ``flat_tolerance`` times the signal's magnitude (or exactly 0).
  Rendering still works (every map is then constant, drawn as its lowest colour), but nothing can be read from it.
- ``"saturated"``: at least ``saturation_fraction`` of the samples sit on the window's min or max value
  (clipping at an ADC rail), or outside the given ``limits``.
- ``"wrong_length"``: ``expected_samples`` was given and differs.
- ``"wrong_rate"``: ``expected_fs`` was given and ``fs`` differs by more than 0.1 %.
"""

from __future__ import annotations

from biomoe_edge.runtime.transforms._backend import array_module

WINDOW_PROBLEMS = ("nonfinite", "flat", "saturated", "wrong_length", "wrong_rate")


class SignalQualityError(ValueError):
    """A window that cannot be turned into an image; ``problem`` is one of ``WINDOW_PROBLEMS``."""

    def __init__(self, problem: str, message: str):
        super().__init__(message)
        self.problem = problem


def check_window(
    x,
    fs,
    *,
    expected_fs=None,
    expected_samples=None,
    limits=None,
    flat_tolerance: float = 1e-6,
    saturation_fraction: float = 0.05,
    strict: bool = False,
) -> tuple[str, ...]:
    """Quality flags of one window ``x`` (N,) or a batch (..., N) (a flag applies if any window has it).

    With ``strict=True`` the first flag raises ``SignalQualityError`` naming the problem instead.
    Works on NumPy and CuPy arrays (a few scalars come back to the host).
    """
    xp = array_module(x)
    x = xp.asarray(x)
    flags = []
    if x.ndim < 1 or x.shape[-1] == 0:
        raise SignalQualityError("wrong_length", f"window has no samples (shape {tuple(x.shape)})")
    finite = xp.isfinite(x)
    n_bad = int(x.size - int(finite.sum()))
    if n_bad:
        flags.append("nonfinite")
        messages = {"nonfinite": f"{n_bad} non-finite sample(s) (NaN/Inf) in the window"}
    else:
        messages = {}
        lo, hi = x.min(axis=-1), x.max(axis=-1)
        span = hi - lo
        magnitude = xp.maximum(xp.abs(hi), xp.abs(lo))
        if bool(xp.any(span <= flat_tolerance * magnitude)) or bool(xp.any(span == 0)):
            flags.append("flat")
            messages["flat"] = "flat line: the window's peak-to-peak amplitude is (near) zero"
        else:
            at_rail = xp.maximum((x == lo[..., None]).mean(axis=-1), (x == hi[..., None]).mean(axis=-1))
            over = None
            if limits is not None:
                over = ((x <= limits[0]) | (x >= limits[1])).mean(axis=-1)
            worst = float(at_rail.max()) if over is None else max(float(at_rail.max()), float(over.max()))
            if worst >= saturation_fraction:
                flags.append("saturated")
                messages["saturated"] = f"saturated: {worst:.0%} of the samples sit on a rail (clipping)"
    if expected_samples is not None and x.shape[-1] != expected_samples:
        flags.append("wrong_length")
        messages["wrong_length"] = f"window has {x.shape[-1]} samples, expected {expected_samples}"
    if expected_fs is not None and abs(float(fs) - float(expected_fs)) > 1e-3 * float(expected_fs):
        flags.append("wrong_rate")
        messages["wrong_rate"] = f"sample rate {fs} Hz, expected {expected_fs} Hz"
    if strict and flags:
        raise SignalQualityError(flags[0], messages[flags[0]])
    return tuple(flags)


def require_finite(x, what: str = "window"):
    """Raise ``SignalQualityError('nonfinite')`` if ``x`` holds NaN or Inf (one device-side reduction)."""
    xp = array_module(x)
    if not bool(xp.isfinite(x).all()):
        n_bad = int(x.size - int(xp.isfinite(x).sum()))
        raise SignalQualityError("nonfinite", f"{what} holds {n_bad} non-finite sample(s) (NaN/Inf); no image made")
