"""Every error of recordings, imports, labels and replay: one module, each a ``ValueError`` whose message names the
file and the line, field or key that was wrong (the command line prints it as one line)."""

from __future__ import annotations


class RecordingError(ValueError):
    """A recording folder is not one, is truncated, or holds something its format does not allow."""


class SignalFileError(ValueError):
    """An EDF/EDF+ or CSV file cannot be imported as the channel map says (missing channel, wrong rate...)."""


class LabelError(ValueError):
    """A label file is malformed: bad header, a number that is not one, reversed or overlapping intervals."""


class ModelMismatchError(ValueError):
    """The engine's model is not the one a recording was made with (its embeddings would not be comparable)."""
