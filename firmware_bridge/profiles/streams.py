"""Market profiles as streams: notification bytes -> SampleBlocks, like StreamReassembler gives for native packets.

Each class has the reassembler's shape: ``.description`` (a StreamDescription), ``.push(data, arrival_time_s)
-> list[SampleBlock]``, ``.flush()``, ``.stats`` (ReassemblyStats, same identities). Bytes that do not parse
are counted as rejected (``stats.rejected_reasons`` names the error), never raised, so one bad notification
cannot stop a gateway.

- ``PmdStream``: Polar PMD ECG / PPG / ACC frames. Device time is the frame timestamp (the last sample's,
  ns since 2000-01-01); samples lie 1/sample_rate apart before it. A frame whose first sample comes later
  than one period after the previous frame's last is a gap: its samples are counted lost and reported in
  ``samples_lost_before``. A frame not newer than the previous one is a duplicate (same timestamp) or late.
  Device time maps to gateway time through a ClockMapper (drift, jitter, jumps) as for native streams;
  ``device_times_us`` of its blocks count from the stream's first frame. PMD frames carry no sequence number:
  ``packets_lost`` is estimated as the lost samples over the size of the frame after the gap; a gap in device
  time longer than the time that passed at the gateway (plus ``LEAP_TOLERANCE_S``) is a clock leap
  (``clock_jumps``), not lost samples.
- ``HeartRateStream``: one sample (bpm) per Heart Rate Measurement, at its arrival time (the profile carries
  no device time); RR intervals are kept in ``rr_intervals_s`` (the last ``rr_history`` of them).
- ``PlxStream``: two channels (SpO2 %, pulse rate bpm) per PLX Continuous Measurement, at arrival time; a
  value no oximeter can measure (SpO2 outside 0..100 %, pulse rate outside 0..350 bpm; NaN passes) is
  rejected as "implausible value"; a reading whose Measurement Status says "unavailable" or "invalid", or whose
  Device and Sensor Status reports a malfunction or a sensor off the user or disconnected, is delivered as NaN.

Heart Rate and PLX carry neither sequence numbers nor device time: a silence of more than 1.5 nominal periods
between two measurements is counted as a gap of ``round(silence * nominal_rate_hz) - 1`` lost measurements
(``gaps``, ``packets_lost``, ``samples_lost``), an estimate that arrival jitter above half a period can skew.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..clock import ClockMapper
from ..description import StreamDescription
from ..exc import PacketError
from ..reassembly import ReassemblyStats, SampleBlock
from . import heart_rate, polar_pmd, pulse_oximeter

_PMD_MODALITY = {
    polar_pmd.MeasurementType.ECG: ("ecg", "uV"),
    polar_pmd.MeasurementType.PPG: ("bvp", ""),
    polar_pmd.MeasurementType.ACC: ("acc", "mG"),
}


class _ProfileStream:
    """Shared counting for the profile streams."""

    #: True: samples carry device time (placed by sample count downstream); False: timed on arrival.
    device_timed = True

    def __init__(self, description: StreamDescription):
        self.description = description
        self.stats = ReassemblyStats()
        self._count = 0  # blocks delivered, as a 16-bit first_sequence

    def _reject(self, reason: str, samples: int = 0) -> list[SampleBlock]:
        self.stats.packets_received += 1
        self.stats.samples_received += samples
        self.stats.packets_rejected += 1
        self.stats.samples_rejected += samples
        self.stats.rejected_reasons[reason] = self.stats.rejected_reasons.get(reason, 0) + 1
        return []

    def _block(self, samples: np.ndarray, gateway_times_s, device_times_us, lost_before: int = 0) -> SampleBlock:
        n = samples.shape[0]
        self.stats.packets_received += 1
        self.stats.samples_received += n
        self.stats.packets_delivered += 1
        self.stats.samples_delivered += n
        block = SampleBlock(
            stream_id=self.description.stream_id,
            first_sequence=self._count % 65536,
            samples=np.asarray(samples, dtype=np.float64).reshape(n, -1),
            gateway_times_s=np.asarray(gateway_times_s, dtype=np.float64).reshape(n),
            device_times_us=np.asarray(device_times_us, dtype=np.float64).reshape(n),
            samples_lost_before=lost_before,
        )
        self._count += 1
        return block

    def flush(self) -> list[SampleBlock]:
        return []  # nothing is held: notifications of these profiles are delivered as they come


class PmdStream(_ProfileStream):
    """One Polar PMD measurement (ECG, PPG or ACC) as a stream; see the module docstring."""

    def __init__(self, measurement_type, sample_rate_hz: float, *, stream_id: int = 0, factor: float = 1.0,
                 channels: int | None = None, resolution: int | None = None, modality: str | None = None,
                 units: str | None = None, clock: ClockMapper | None = None):
        self.measurement_type = int(measurement_type)
        default_modality, default_units = _PMD_MODALITY.get(self.measurement_type, ("pmd", ""))
        default_channels = {0: 1, 1: 4, 2: 3}.get(self.measurement_type, channels or 1)
        super().__init__(
            StreamDescription(
                stream_id=stream_id,
                modality=modality or default_modality,
                sample_rate_hz=float(sample_rate_hz),
                channels=channels or default_channels,
                sample_format="int24",  # nominal: PMD values are integers of up to 24 bits before the factor
                scale=float(factor),
                offset=0.0,
                units=default_units if units is None else units,
            )
        )
        self.factor = float(factor)
        self.channels = channels
        self.resolution = resolution
        self.clock = clock if clock is not None else ClockMapper()
        self._period_ns = 1e9 / float(sample_rate_hz)
        self._last_ns: int | None = None  # timestamp of the last delivered sample
        self._origin_ns: int | None = None  # first frame's timestamp: device_times_us count from it
        self._last_arrival_s: float | None = None  # arrival of the last delivered frame
        self._restarting = False

    #: The device clock stepping back more than this is a restart (reboot, re-sync), not late data; leaping
    #: forward more than RESTART_LEAP_S is a re-sync, not an outage whose samples were lost.
    RESTART_STEP_BACK_S = 5.0
    RESTART_LEAP_S = 3600.0
    #: A gap in device time longer than the time that passed between the two frames' arrivals plus this is a
    #: clock leap (counted in ``clock_jumps``, the mapping re-anchored), not an outage whose samples were lost.
    LEAP_TOLERANCE_S = 2.0

    def _is_restart(self, timestamp_ns: int, n_samples: int) -> bool:
        first_ns = timestamp_ns - (n_samples - 1) * self._period_ns
        step_s = (first_ns - self._last_ns) / 1e9
        return step_s < -self.RESTART_STEP_BACK_S or step_s > self.RESTART_LEAP_S

    def push(self, data, arrival_time_s: float) -> list[SampleBlock]:
        try:
            frame = polar_pmd.parse_data_frame(data, channels=self.channels, resolution=self.resolution,
                                               factor=self.factor)
        except PacketError as error:
            return self._reject(type(error).__name__)
        n = frame.samples.shape[0]
        if frame.measurement_type != self.measurement_type:
            return self._reject(f"measurement type {frame.measurement_type} (expected {self.measurement_type})", n)
        if frame.samples.shape[1] != self.description.channels:
            return self._reject(f"{frame.samples.shape[1]} channels (described {self.description.channels})", n)
        if not math.isfinite(arrival_time_s):
            return self._reject("non-finite arrival time", n)
        if self._last_ns is not None and self._is_restart(frame.timestamp_ns, n):
            # The sensor rebooted or re-synced its clock: start the timeline afresh from this frame rather than
            # calling every later frame "late" (a step back) or counting a leap as billions of lost samples.
            self.stats.restarts += 1
            self._last_ns = self._origin_ns = None
            self._restarting = True
        lost = 0
        if self._last_ns is not None:
            if frame.timestamp_ns == self._last_ns:
                self.stats.packets_received += 1
                self.stats.samples_received += n
                self.stats.packets_duplicated += 1
                self.stats.samples_duplicated += n
                return []
            if frame.timestamp_ns < self._last_ns:
                self.stats.packets_received += 1
                self.stats.samples_received += n
                self.stats.packets_late += 1
                self.stats.samples_late += n
                return []
            first_ns = frame.timestamp_ns - (n - 1) * self._period_ns
            lost = max(0, round((first_ns - self._last_ns) / self._period_ns) - 1)
            if lost and lost * self._period_ns / 1e9 > arrival_time_s - self._last_arrival_s + self.LEAP_TOLERANCE_S:
                # More device time passed than gateway time: the clock leapt (a re-sync), no sample was lost.
                self.stats.clock_jumps += 1
                lost = 0
                self._restarting = True  # re-anchor the mapping on this frame, below
            if lost:
                self.stats.gaps += 1
                self.stats.samples_lost += lost
                self.stats.packets_lost += max(1, round(lost / n))
        if self._origin_ns is None:
            self._origin_ns = frame.timestamp_ns
        # Microseconds since the stream's first frame: small numbers keep float64 at sub-ns resolution.
        last_us = (frame.timestamp_ns - self._origin_ns) / 1000.0
        device_us = last_us - self._period_ns / 1000.0 * np.arange(n - 1, -1, -1)
        if self._restarting:
            self.clock.reanchor(last_us, arrival_time_s)
            self._restarting = False
        elif self.clock.observe(last_us, arrival_time_s):
            self.stats.clock_jumps += 1
        self._last_ns = frame.timestamp_ns
        self._last_arrival_s = arrival_time_s
        return [self._block(frame.samples, self.clock.to_gateway(device_us), device_us, lost)]


class _ArrivalTimedStream(_ProfileStream):
    """A profile of one measurement per notification, time-stamped on arrival; estimates losses from silences."""

    #: A silence longer than this many nominal periods is a gap (lost measurements), not jitter.
    GAP_PERIODS = 1.5
    device_timed = False

    def __init__(self, description: StreamDescription):
        super().__init__(description)
        self._last_arrival_s: float | None = None

    def _note_arrival(self, arrival_time_s: float) -> None:
        rate = self.description.sample_rate_hz
        if self._last_arrival_s is not None and math.isfinite(arrival_time_s):
            silence_s = arrival_time_s - self._last_arrival_s
            missing = round(silence_s * rate) - 1
            if silence_s > self.GAP_PERIODS / rate and missing > 0:
                self.stats.gaps += 1
                self.stats.packets_lost += missing
                self.stats.samples_lost += missing
        if math.isfinite(arrival_time_s):
            self._last_arrival_s = arrival_time_s


class HeartRateStream(_ArrivalTimedStream):
    """Heart Rate Measurement notifications as a 1-channel bpm stream at arrival time."""

    def __init__(self, *, stream_id: int = 0, nominal_rate_hz: float = 1.0, rr_history: int = 4096):
        super().__init__(StreamDescription(stream_id, "hr", nominal_rate_hz, 1, "int16", 1.0, 0.0, "bpm"))
        self.rr_intervals_s: collections.deque = collections.deque(maxlen=rr_history)
        self.contact: bool | None = None

    def push(self, data, arrival_time_s: float) -> list[SampleBlock]:
        try:
            measurement = heart_rate.parse_measurement(data)
        except PacketError as error:
            return self._reject(type(error).__name__)
        self.rr_intervals_s.extend(measurement.rr_intervals_s)
        self.contact = measurement.contact
        self._note_arrival(arrival_time_s)
        return [self._block(np.array([[measurement.bpm]]), [arrival_time_s], [np.nan])]


class PlxStream(_ArrivalTimedStream):
    """PLX Continuous Measurement notifications as a 2-channel (SpO2 %, pulse rate) stream at arrival time."""

    #: Largest plausible SpO2 (%) and pulse rate (bpm); beyond (or below 0) a measurement is rejected.
    PLAUSIBLE_MAX = np.array([100.0, 350.0])
    #: Measurement Status bits that say the values are no measurement: Measurement Unavailable (bit 13) and
    #: Invalid Measurement Detected (bit 15). Such a reading is delivered as NaN (the ingest counts it "invalid").
    INVALID_MEASUREMENT_STATUS = 0x2000 | 0x8000
    #: Device and Sensor Status bits likewise: Equipment Malfunction Detected (bit 1), Sensor Unconnected to
    #: User (bit 11), Sensor Malfunctioning (bit 14), Sensor Disconnected (bit 15).
    INVALID_SENSOR_STATUS = 0x0002 | 0x0800 | 0x4000 | 0x8000

    def __init__(self, *, stream_id: int = 0, nominal_rate_hz: float = 1.0):
        super().__init__(StreamDescription(stream_id, "spo2", nominal_rate_hz, 2, "float32", 1.0, 0.0, "%, bpm"))

    def push(self, data, arrival_time_s: float) -> list[SampleBlock]:
        try:
            measurement = pulse_oximeter.parse_continuous(data)
        except PacketError as error:
            return self._reject(type(error).__name__)
        values = np.array([[measurement.spo2, measurement.pulse_rate]])
        if (measurement.status or 0) & self.INVALID_MEASUREMENT_STATUS or \
                (measurement.sensor_status or 0) & self.INVALID_SENSOR_STATUS:
            values[:] = np.nan  # the oximeter says so itself: a reading, but not a measurement
        # NaN (the sensor's "no reading") passes on, to be counted as invalid; a number no oximeter can measure
        # means the bytes were not a measurement (the profile has no checksum to tell).
        if not (np.isnan(values) | ((values >= 0) & (values <= self.PLAUSIBLE_MAX))).all():
            return self._reject("implausible value", 1)
        self._note_arrival(arrival_time_s)
        return [self._block(values, [arrival_time_s], [np.nan])]


# -- what a standard-profile device delivers, stream by stream -----------------------------------------------------

@dataclass(frozen=True)
class StreamRoute:
    """One stream of a standard-profile device and where its samples go: the registry's stream factories give one
    per stream, the gateway routes each notification to the route whose ``key`` the profile's ``stream_key`` reads."""

    key: int
    #: push(data, arrival_time_s) -> [SampleBlock], flush(), stats, description, device_timed
    stream: object
    #: The model modality its windows are; None: none of the model's (its samples are counted as dropped).
    modality: str | None
    #: Block samples (n, channels) -> the (n, 1) signal the ingest windows; None: as they come.
    select: Callable[[np.ndarray], np.ndarray] | None = None


def one_stream(data) -> int:
    """The stream key of a profile with one stream (one characteristic, one measurement): always 0."""
    return 0


def photodiode_mean(samples: np.ndarray) -> np.ndarray:
    """Polar PPG (PPG0, PPG1, PPG2, ambient) -> BVP: the mean of the three photodiodes (ambient left out)."""
    return samples[:, :3].mean(axis=1, keepdims=True)


def spo2_channel(samples: np.ndarray) -> np.ndarray:
    """PLX (SpO2 %, pulse rate bpm) -> SpO2: the pulse rate is not a model modality (and is the pulse the
    waveform modalities already carry); windowing it along would let a steady pulse flag SpO2 windows flat."""
    return samples[:, :1]


def pmd_streams(modalities) -> list[StreamRoute]:
    """A Polar device's streams: one PmdStream per modality (``polar_pmd.SENSORS``), keyed by measurement type."""
    routes = []
    for modality in modalities:
        sensor = polar_pmd.SENSORS[modality]
        key = int(sensor.measurement_type)
        stream = PmdStream(sensor.measurement_type, sensor.sample_rate_hz, stream_id=key)
        # One channel for the ingest either way: ECG has one, PPG's photodiodes are averaged.
        routes.append(StreamRoute(key, stream, modality, photodiode_mean if sensor.channels > 1 else None))
    return routes


def plx_streams(modalities) -> list[StreamRoute]:
    """A pulse oximeter's one stream: SpO2 (the pulse rate channel left out)."""
    return [StreamRoute(0, PlxStream(), "spo2", spo2_channel)]


def heart_rate_streams(modalities) -> list[StreamRoute]:
    """A chest strap's one stream: bpm, none of the model's modalities."""
    return [StreamRoute(0, HeartRateStream(), None)]


__all__ = ["PmdStream", "HeartRateStream", "PlxStream", "StreamRoute", "one_stream", "photodiode_mean", "spo2_channel",
           "pmd_streams", "plx_streams", "heart_rate_streams"]
