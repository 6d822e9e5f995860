"""The words every part of biomoe-edge shares: modalities, representations, stream and window specs."""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: Side of the square RGB image the model reads (PIL ``Resize((224, 224))`` in the authors' pipeline).
IMAGE_SIZE = 224
#: One image as the model reads it: RGB channels first.
IMAGE_SHAPE = (3, IMAGE_SIZE, IMAGE_SIZE)
#: The fewest samples (at the model rate) a window may hold and still be rendered into an image.
MIN_RENDER_SAMPLES = 16
#: Tiny-BioMoE's embedding: two 96-D encoder embeddings, concatenated.
EMBEDDING_DIM = 192

class Representation(str, enum.Enum):
    """How a window becomes an image (``REPRESENTATIONS`` holds their names, in the same order)."""

    SPECTROGRAM_PSD = "spectrogram_psd"
    SPECTROGRAM_ANGLE = "spectrogram_angle"
    SPECTROGRAM_PHASE = "spectrogram_phase"
    SCALOGRAM = "scalogram"
    RECURRENCE = "recurrence"
    WAVEFORM = "waveform"

    @classmethod
    def parse(cls, value: str | Representation) -> Representation:
        """Accept a Representation or its name; raise ValueError naming the valid ones."""
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).strip())
        except ValueError:
            raise ValueError(f"unknown representation {value!r}; expected one of: "
                             + ", ".join(REPRESENTATIONS)) from None


#: Image representations of a signal window, in this order wherever an order is needed.
REPRESENTATIONS: tuple[str, ...] = tuple(r.value for r in Representation)

#: Other names users give a modality: PPG is how wearables' makers name blood volume pulse.
MODALITY_ALIASES: dict[str, str] = {"ppg": "bvp"}


class Modality(str, enum.Enum):
    """Biosignal modalities a wearable streams."""

    EDA = "eda"  # electrodermal activity
    BVP = "bvp"  # blood volume pulse (PPG)
    RESP = "resp"  # respiration
    SPO2 = "spo2"  # peripheral oxygen saturation
    ECG = "ecg"  # electrocardiogram

    @classmethod
    def parse(cls, value: str | Modality) -> Modality:
        """Accept a Modality, its name in any case or an alias (``MODALITY_ALIASES``: "ppg" is bvp); raise
        ValueError naming the valid ones. Every parser of a modality name calls this, so one set of names holds
        everywhere (--modalities, --map, --new, --inputs, configuration, manifests)."""
        if isinstance(value, cls):
            return value
        name = str(value).strip().lower()
        try:
            return cls(MODALITY_ALIASES.get(name, name))
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            aliases = ", ".join(f"{alias} for {name}" for alias, name in MODALITY_ALIASES.items())
            raise ValueError(f"unknown modality {value!r}; expected one of: {valid} ({aliases})") from None


#: Other names of a modality, accepted wherever one is parsed (``Modality.parse``) and stored as the modality.
MODALITY_ALIASES: dict[str, str] = {"ppg": Modality.BVP.value}


class SecurityLevel(str, enum.Enum):
    """Link security levels of the protocol (PROTOCOL.md, section 11), in its order (the C reference's 0, 1, 2): what
    a native board requires of a link, and what the gateway brings a device's link to."""

    NONE = "none"  # open: protocol version 1 as first published
    ENCRYPTED = "encrypted"  # an encrypted link (any pairing)
    BONDED = "bonded"  # an encrypted link whose key comes from an LE Secure Connections bond

    def __str__(self) -> str:  # the name, on Python 3.10 and 3.12 alike
        return self.value

    @classmethod
    def parse(cls, value) -> SecurityLevel:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown security level {value!r}; expected one of: "
                             f"{', '.join(level.value for level in cls)}") from None


#: The rate (Hz) each modality's windows are resampled to before they become images: the ingest emits windows at
#: it and every representation's parameters assume it (``runtime/transforms/defaults.py`` gives the reasons).
MODEL_RATES_HZ: dict[str, float] = {
    Modality.BVP.value: 64.0,
    Modality.ECG.value: 100.0,
    Modality.RESP.value: 16.0,
    Modality.EDA.value: 8.0,
    Modality.SPO2.value: 4.0,
}


def model_rate_hz(modality: str | Modality) -> float:
    """The model rate of ``modality`` (a ``Modality`` or its name; ValueError naming the valid ones)."""
    return MODEL_RATES_HZ[Modality.parse(modality).value]


def check_representations(names) -> tuple[str, ...]:
    """Return ``names`` as a tuple, or raise ValueError naming the first unknown one."""
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    if not names:
        raise ValueError("no representation given; expected some of: " + ", ".join(REPRESENTATIONS))
    for name in names:
        if name not in REPRESENTATIONS:
            raise ValueError(f"unknown representation {name!r}; expected one of: " + ", ".join(REPRESENTATIONS))
    return names


@dataclass(frozen=True)
class InputType:
    """What a head or bridge reads: one modality's windows drawn as one representation; written
    ``"modality:representation"`` (``"ecg:spectrogram_psd"``) in manifests, configuration and the command line."""

    modality: Modality
    representation: Representation

    def __post_init__(self):
        object.__setattr__(self, "modality", Modality.parse(self.modality))
        object.__setattr__(self, "representation", Representation.parse(self.representation))

    @classmethod
    def parse(cls, text: str | InputType) -> InputType:
        """``"ecg:spectrogram_psd"`` (modality in any case or an alias) -> InputType; ValueError naming the text
        and the valid names."""
        if isinstance(text, cls):
            return text
        modality, sep, representation = str(text).partition(":")
        if not sep:
            raise ValueError(f"input {text!r} is not MODALITY:REPRESENTATION (e.g. ecg:spectrogram_psd)")
        try:
            return cls(Modality.parse(modality), Representation.parse(representation))
        except ValueError as exc:
            raise ValueError(f"input {text!r}: {exc}") from None

    def __str__(self) -> str:
        return f"{self.modality.value}:{self.representation.value}"


@dataclass(frozen=True)
class StreamSpec:
    """One signal stream of one device, as the device describes it."""

    device: str
    modality: Modality
    sample_rate_hz: float
    channels: int = 1
    units: str = ""

    def __post_init__(self):
        object.__setattr__(self, "modality", Modality.parse(self.modality))
        if not self.sample_rate_hz > 0:
            raise ValueError(f"sample_rate_hz must be positive, got {self.sample_rate_hz!r}")
        if self.channels < 1:
            raise ValueError(f"channels must be at least 1, got {self.channels!r}")


@dataclass(frozen=True)
class WindowSpec:
    """Sliding windows over a stream: ``length_s`` long, a new one every ``hop_s``."""

    length_s: float = 10.0
    hop_s: float = 1.0

    def __post_init__(self):
        if not self.length_s > 0:
            raise ValueError(f"window length_s must be positive, got {self.length_s!r}")
        if not 0 < self.hop_s:
            raise ValueError(f"window hop_s must be positive, got {self.hop_s!r}")
