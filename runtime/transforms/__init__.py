"""Windows of signal to images: spectrograms, scalograms, recurrence plots, waveforms (NumPy or CuPy).

One code path for both array libraries: every function takes a NumPy or a CuPy array (..., N) and
returns the same kind (CuPy is imported only when given a CuPy array). One module per representation
(``spectrogram``, ``scalogram``, ``recurrence``, ``waveform``), parameter checks apart (``_validation``),
``preprocess`` per modality with ``MODALITY_DEFAULTS``, the fast renderer ``render`` and the matplotlib +
PIL ``reference_render`` that defines the pictures (see docs/transforms.md).
"""

from biomoe_edge.runtime.transforms.defaults import (
    MODALITY_DEFAULTS,
    ModalityDefaults,
    modality_defaults,
    representation_params,
)
from biomoe_edge.runtime.transforms.preprocess import preprocess, robust_normalise
from biomoe_edge.runtime.transforms.quality import WINDOW_PROBLEMS, SignalQualityError, check_window
from biomoe_edge.runtime.transforms.recurrence import recurrence_plot
from biomoe_edge.runtime.transforms.render import render
from biomoe_edge.runtime.transforms.scalogram import scalogram
from biomoe_edge.runtime.transforms.spectrogram import spectrogram
from biomoe_edge.runtime.transforms.waveform import waveform_image


def reference_render(window, fs, representation, *, modality=None):
    """The matplotlib + PIL rendering of one window (3, 224, 224) in [0, 1]; see ``reference.py``.
    Imported on first use so that the gateway never imports matplotlib."""
    from biomoe_edge.runtime.transforms.reference import reference_render as _reference_render

    return _reference_render(window, fs, representation, modality=modality)


__all__ = [
    "MODALITY_DEFAULTS",
    "ModalityDefaults",
    "WINDOW_PROBLEMS",
    "SignalQualityError",
    "check_window",
    "modality_defaults",
    "preprocess",
    "recurrence_plot",
    "reference_render",
    "render",
    "representation_params",
    "robust_normalise",
    "scalogram",
    "spectrogram",
    "waveform_image",
]
