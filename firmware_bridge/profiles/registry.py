"""Every wearable profile the SDK speaks, one record each: what the gateway, its configuration, the transport, the
emulator and the command line know about a profile, and the one place they look it up.

``Profile`` names the profiles (as bleak names its backends); ``PROFILES[profile]`` is its :class:`ProfileSpec`:
GATT service and characteristics, start and stop commands, the model modalities it can deliver, the stream
factory (notification bytes -> ``SampleBlock``\\ s with gateway time) and what the emulator serves.

Adding a standard-profile wearable: a module beside this one with its decoder, encoder and (if the shared
``streams`` classes do not fit) its stream class, then one entry in ``PROFILES`` below.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .. import gatt as native_gatt
from . import heart_rate, polar_pmd, pulse_oximeter, streams


class Profile(str, enum.Enum):
    """The profiles, by the name configuration files and the command line use."""

    NATIVE = "native"
    HEART_RATE = "heart_rate"
    PULSE_OXIMETER = "pulse_oximeter"
    POLAR_PMD = "polar_pmd"

    def __str__(self) -> str:  # the name, on Python 3.10 and 3.12 alike
        return self.value

    @classmethod
    def parse(cls, value) -> Profile:
        """A Profile or its name; ValueError naming the valid ones."""
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value))
        except ValueError:
            raise ValueError(f"unknown profile {value!r}; expected one of: {', '.join(NAMES)}") from None


#: The profile names, in the order help texts and errors list them.
NAMES: tuple[str, ...] = tuple(p.value for p in Profile)


class Emulation(enum.Enum):
    """How the emulator serves a profile (``firmware_bridge.emulation`` has one server per kind)."""

    NATIVE_PACKETS = "native packets"  # PROTOCOL.md: description, control, data packets from signals
    MEASUREMENT_PER_SECOND = "one measurement per second"  # ``emulated_measurement(vitals)`` once a device second
    PMD_FRAMES = "PMD frames"  # Polar PMD: frames of sampled signal, started through the control point


@dataclass(frozen=True)
class ProfileSpec:
    """What the SDK knows about one profile. Fields a profile does not use keep their defaults."""

    profile: Profile
    #: One line for help texts.
    summary: str
    service_uuid: str
    #: The characteristic whose notifications carry the data.
    data_uuid: str
    #: Model modalities a device of this profile can deliver; None: it describes its own streams (native).
    deliverable: tuple[str, ...] | None
    #: What an empty ``modalities`` in the configuration means.
    default_modalities: tuple[str, ...] = ()
    #: A control point written to start and stop measurements (answers by indication); None: none to write.
    control_uuid: str | None = None
    #: modalities -> the streams a device delivers (``streams.StreamRoute``), for standard profiles.
    open_streams: Callable[[tuple[str, ...]], list] | None = None
    #: notification bytes -> the ``StreamRoute.key`` of the stream it belongs to (PacketError if it cannot say).
    stream_key: Callable[[bytes], int] = streams.one_stream
    #: Why a notification of a stream the gateway did not start is counted as garbage.
    unrouted_reason: str = "stream_not_started"
    #: modalities -> control-point commands that start them, written in order after subscribing.
    start_commands: Callable[[tuple[str, ...]], tuple[bytes, ...]] = lambda modalities: ()
    #: a start command -> the command that stops it (written when the gateway stops).
    stop_command: Callable[[bytes], bytes] | None = None
    #: the device's answer to a start command -> why it refused (None: started). PacketError if not an answer.
    start_refusal: Callable[[bytes], str | None] | None = None
    #: One measurement per notification, about once a second, time-stamped on arrival: windows of such a
    #: device must hold a few measurements and hop by at least one (``gateway_config``).
    arrival_timed: bool = False
    emulation: Emulation = Emulation.MEASUREMENT_PER_SECOND
    #: Emulation.MEASUREMENT_PER_SECOND: vitals (``bpm``, ``rr_intervals_s``, ``spo2``) -> the notified value.
    emulated_measurement: Callable[[object], bytes] | None = None
    #: modalities -> what such a device is called (the demo's device names).
    device_names: Mapping[tuple[str, ...], str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.profile.value

    @property
    def describes_itself(self) -> bool:
        """True for devices whose streams come from their own description (native), not from the profile."""
        return self.deliverable is None

    def refusal(self, modality: str) -> str | None:
        """Why a device of this profile cannot deliver ``modality``, or None when it can."""
        if self.deliverable is None or modality in self.deliverable:
            return None
        can = (f"only {', '.join(self.deliverable)}" if self.deliverable else
               "no model modality (bpm and RR intervals; its samples are counted as dropped, not_a_model_modality): "
               "leave modalities out")
        return f"a {self.name} device cannot deliver {modality!r}; it delivers {can}"

    def modalities(self, requested=()) -> tuple[str, ...]:
        """The modalities a device is asked for (``requested``, else the default); ValueError naming any it
        cannot deliver. Native devices: ``requested`` as given (empty: every stream it describes)."""
        requested = tuple(requested)
        if self.deliverable is None:
            return requested
        for modality in requested:
            reason = self.refusal(modality)
            if reason is not None:
                raise ValueError(reason)
        if len(set(requested)) != len(requested):
            raise ValueError(f"lists a modality twice: {list(requested)}")
        return requested or self.default_modalities


PROFILES: dict[Profile, ProfileSpec] = {
    Profile.NATIVE: ProfileSpec(
        Profile.NATIVE,
        summary="the native protocol (PROTOCOL.md): the device describes its streams; packets with sequence numbers",
        service_uuid=native_gatt.SERVICE_UUID,
        data_uuid=native_gatt.DATA_CHAR_UUID,
        control_uuid=native_gatt.CONTROL_CHAR_UUID,
        deliverable=None,
        emulation=Emulation.NATIVE_PACKETS,
    ),
    Profile.HEART_RATE: ProfileSpec(
        Profile.HEART_RATE,
        summary="Bluetooth SIG Heart Rate: bpm and RR intervals about once a second (no model modality: counted)",
        service_uuid=heart_rate.HEART_RATE_SERVICE_UUID,
        data_uuid=heart_rate.HEART_RATE_MEASUREMENT_UUID,
        deliverable=(),
        open_streams=streams.heart_rate_streams,
        arrival_timed=True,
        emulated_measurement=heart_rate.emulated_measurement,
        device_names={(): "hr-strap"},
    ),
    Profile.PULSE_OXIMETER: ProfileSpec(
        Profile.PULSE_OXIMETER,
        summary="Bluetooth SIG Pulse Oximeter: SpO2 (and pulse rate) about once a second",
        service_uuid=pulse_oximeter.PULSE_OXIMETER_SERVICE_UUID,
        data_uuid=pulse_oximeter.PLX_CONTINUOUS_MEASUREMENT_UUID,
        deliverable=("spo2",),
        default_modalities=("spo2",),
        open_streams=streams.plx_streams,
        arrival_timed=True,
        emulated_measurement=pulse_oximeter.emulated_measurement,
        device_names={("spo2",): "oximeter"},
    ),
    Profile.POLAR_PMD: ProfileSpec(
        Profile.POLAR_PMD,
        summary="Polar Measurement Data: ECG (H10, 130 Hz) or PPG as BVP (Verity Sense, 55 Hz); an empty "
                "modalities list starts ECG, since a Polar device refuses to start a measurement it does not have",
        service_uuid=polar_pmd.PMD_SERVICE_UUID,
        data_uuid=polar_pmd.PMD_DATA_UUID,
        control_uuid=polar_pmd.PMD_CONTROL_POINT_UUID,
        deliverable=tuple(polar_pmd.SENSORS),
        default_modalities=("ecg",),
        open_streams=streams.pmd_streams,
        stream_key=polar_pmd.frame_measurement_type,
        unrouted_reason="pmd_measurement_not_started",
        start_commands=polar_pmd.start_commands,
        stop_command=polar_pmd.stop_command_for,
        start_refusal=polar_pmd.start_refusal,
        emulation=Emulation.PMD_FRAMES,
        device_names={("ecg",): "h10", ("bvp",): "sense"},
    ),
}


def profile_spec(profile) -> ProfileSpec:
    """The record of ``profile`` (a Profile or its name); ValueError naming the valid ones."""
    return PROFILES[Profile.parse(profile)]


def standard_profiles() -> tuple[ProfileSpec, ...]:
    """The profiles whose streams come from the profile, not from a device description."""
    return tuple(spec for spec in PROFILES.values() if not spec.describes_itself)


__all__ = ["Profile", "NAMES", "Emulation", "ProfileSpec", "PROFILES", "profile_spec", "standard_profiles"]
