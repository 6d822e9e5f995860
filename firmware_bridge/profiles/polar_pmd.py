"""Polar Measurement Data (PMD): data frames and the control-point commands that start and stop streams.

The format follows Polar's own decoder in polarofficial/polar-ble-sdk (Android library,
``sources/Android/android-communications/library/src/main/java/com/polar/androidcommunications/api/ble/
model/gatt/client/pmd/``): ``PmdDataFrame.kt`` (frame header), ``BlePMDClient.kt`` (``parseDeltaFramesAll``,
``parseDeltaFrame``: delta compression), ``model/EcgData.kt``, ``model/PpgData.kt``, ``model/AccData.kt``
(per-type layouts), ``PmdControlPointCommand.kt``, ``PmdControlPointResponse.kt``, ``PmdSetting.kt``.

Data frame (PMD data characteristic, notify)::

    u8   measurement type (0 ECG, 1 PPG, 2 ACC, 3 PPI, 5 GYRO, 6 MAG, ...)
    u64  timestamp, ns since 2000-01-01T00:00:00 (Polar's epoch), of the LAST sample in the frame
    u8   frame type: bit 7 = delta-compressed, bits 0-6 = type number
    ...  content

Raw frames are consecutive samples of ``channels`` little-endian signed values of ceil(resolution/8) bytes.
Compressed frames start with one reference sample (``channels`` values of ceil(resolution/8) bytes, signed),
followed by blocks ``u8 delta_bits, u8 sample_count, ceil(delta_bits*sample_count*channels/8) bytes`` of
bit-packed signed deltas, least significant bit first, channel-minor; each sample is the previous plus its
delta.

Control point (write, responses by indication)::

    command:   u8 op (1 get settings, 2 start, 3 stop), u8 measurement type, [settings TLVs]
    setting:   u8 type (0 sample rate, 1 resolution, 2 range, 3 range milliunit, 4 channels, 5 factor),
               u8 count, count values of 2, 2, 2, 4, 1, 4 bytes respectively (factor: float32)
    response:  u8 0xF0, u8 op, u8 measurement type, u8 status (0 success), u8 more, [parameters]
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

import numpy as np

from ..exc import LengthMismatchError, ProfileError, TruncatedPacketError
from ..packet import as_bytes

PMD_SERVICE_UUID = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
PMD_CONTROL_POINT_UUID = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"
PMD_DATA_UUID = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"

#: 2000-01-01T00:00:00Z in ns since the Unix epoch: add it to ``timestamp_ns`` for Unix time.
POLAR_EPOCH_UNIX_NS = 946_684_800 * 1_000_000_000
FRAME_HEADER_SIZE = 10
_COMPRESSED_BIT = 0x80
CONTROL_RESPONSE_CODE = 0xF0


class MeasurementType(enum.IntEnum):
    ECG = 0
    PPG = 1
    ACC = 2
    PPI = 3
    GYRO = 5
    MAGNETOMETER = 6
    SDK_MODE = 9
    LOCATION = 10
    PRESSURE = 11
    TEMPERATURE = 12


class ControlOp(enum.IntEnum):
    GET_MEASUREMENT_SETTINGS = 1
    REQUEST_MEASUREMENT_START = 2
    STOP_MEASUREMENT = 3
    GET_SDK_MODE_SETTINGS = 4
    GET_MEASUREMENT_STATUS = 5


class SettingType(enum.IntEnum):
    SAMPLE_RATE = 0
    RESOLUTION = 1
    RANGE = 2
    RANGE_MILLIUNIT = 3
    CHANNELS = 4
    FACTOR = 5


_SETTING_SIZE = {
    SettingType.SAMPLE_RATE: 2,
    SettingType.RESOLUTION: 2,
    SettingType.RANGE: 2,
    SettingType.RANGE_MILLIUNIT: 4,
    SettingType.CHANNELS: 1,
    SettingType.FACTOR: 4,
}

class ResponseStatus(enum.IntEnum):
    """PmdControlPointResponse.PmdControlPointResponseCode."""

    SUCCESS = 0
    ERROR_INVALID_OP_CODE = 1
    ERROR_INVALID_MEASUREMENT_TYPE = 2
    ERROR_NOT_SUPPORTED = 3
    ERROR_INVALID_LENGTH = 4
    ERROR_INVALID_PARAMETER = 5
    ERROR_ALREADY_IN_STATE = 6
    ERROR_INVALID_RESOLUTION = 7
    ERROR_INVALID_SAMPLE_RATE = 8
    ERROR_INVALID_RANGE = 9
    ERROR_INVALID_MTU = 10
    ERROR_INVALID_NUMBER_OF_CHANNELS = 11
    ERROR_INVALID_STATE = 12
    ERROR_DEVICE_IN_CHARGER = 13
    ERROR_DISK_FULL = 14


# (measurement type, compressed, frame type) -> (channels, resolution in bits), as Polar's parsers fix them.
_LAYOUTS = {
    (MeasurementType.ECG, False, 0): (1, 24),  # EcgData.dataFromRawType0: 3-byte signed uV
    (MeasurementType.PPG, False, 0): (4, 24),  # PpgData raw type 0: PPG0, PPG1, PPG2, ambient
    (MeasurementType.PPG, True, 0): (4, 24),  # PpgData compressed type 0 (Verity Sense)
    (MeasurementType.ACC, False, 0): (3, 8),  # AccData.dataFromRawType0
    (MeasurementType.ACC, False, 1): (3, 16),  # AccData.dataFromRawType1
    (MeasurementType.ACC, False, 2): (3, 24),  # AccData.dataFromRawType2
    (MeasurementType.ACC, True, 0): (3, 16),  # AccData.dataFromCompressedType0 (values in G: factor*1000 -> mG)
    (MeasurementType.ACC, True, 1): (3, 16),  # AccData.dataFromCompressedType1 (H10 ACC, mG)
}


@dataclass(frozen=True, eq=False)
class PmdDataFrame:
    """One decoded PMD data frame. ``samples`` = raw values * factor, float64 (n, channels)."""

    measurement_type: int
    timestamp_ns: int  # of the last sample, ns since 2000-01-01 (POLAR_EPOCH_UNIX_NS for Unix time)
    frame_type: int
    compressed: bool
    samples: np.ndarray
    raw: np.ndarray  # int64 (n, channels), before the factor


def _signed_le(data: bytes, count: int, width: int) -> np.ndarray:
    """``count`` little-endian two's-complement integers of ``width`` bytes (1..4) -> int64."""
    byte_matrix = np.frombuffer(data, dtype=np.uint8, count=count * width).reshape(count, width).astype(np.int64)
    values = (byte_matrix << (8 * np.arange(width, dtype=np.int64))).sum(axis=1)
    sign = np.int64(1) << (8 * width - 1)
    return values - ((values & sign) << 1)


def _unpack_deltas(block: bytes, delta_bits: int, count: int) -> np.ndarray:
    """``count`` signed ``delta_bits``-bit values, LSB-first bit packing (BlePMDClient.parseDeltaFrame).

    Two's complement at every width; Polar's mask (``Int.MAX_VALUE shl (bitWidth - 1)``) agrees for 2..32 bits
    and would read a 1-bit delta of 1 as 2^31 - 1, which we take for the bug it is (1 -> -1)."""
    bits = np.unpackbits(np.frombuffer(block, dtype=np.uint8), bitorder="little")[: count * delta_bits]
    weights = np.int64(1) << np.arange(delta_bits, dtype=np.int64)
    values = bits.reshape(count, delta_bits).astype(np.int64) @ weights
    sign = np.int64(1) << (delta_bits - 1)
    return values - ((values & sign) << 1)


def _decode_compressed(content: bytes, channels: int, resolution: int) -> np.ndarray:
    width = (resolution + 7) // 8
    reference_size = channels * width
    if len(content) < reference_size:
        raise TruncatedPacketError(
            f"compressed PMD frame has {len(content)} content bytes, fewer than its {reference_size}-byte reference sample"
        )
    reference = _signed_le(content[:reference_size], channels, width)
    # parseDeltaFrameRefSamples: any bit at or above the resolution's sign bit set -> all of them set.
    sign_and_above = np.int64(-1) << (resolution - 1)
    reference = np.where(reference & sign_and_above, reference | sign_and_above, reference)
    rows = [reference[None, :]]
    offset = reference_size
    while offset < len(content):
        if offset + 2 > len(content):
            raise TruncatedPacketError(f"compressed PMD frame ends inside a delta block header at byte {offset}")
        delta_bits, sample_count = content[offset], content[offset + 1]
        offset += 2
        if not 1 <= delta_bits <= 32:
            raise ProfileError(f"compressed PMD frame: delta size {delta_bits} bits (expected 1..32)")
        if sample_count == 0:
            raise ProfileError(f"compressed PMD frame: delta block of 0 samples at byte {offset - 2}")
        size = (delta_bits * sample_count * channels + 7) // 8
        if offset + size > len(content):
            raise TruncatedPacketError(
                f"compressed PMD frame: delta block of {sample_count} x {channels} x {delta_bits} bits needs {size} "
                f"bytes, {len(content) - offset} left"
            )
        deltas = _unpack_deltas(content[offset : offset + size], delta_bits, sample_count * channels)
        rows.append(deltas.reshape(sample_count, channels))
        offset += size
    return np.cumsum(np.concatenate(rows, axis=0), axis=0)


def parse_data_frame(data, *, channels: int | None = None, resolution: int | None = None, factor: float = 1.0):
    """Decode one PMD data notification.

    ``channels`` and ``resolution`` (bits) default to what Polar's parsers use for the frame's measurement
    type and frame type (ECG raw 0, PPG raw/compressed 0, ACC raw 0-2 and compressed 0-1); pass them to read
    other layouts. ``factor`` multiplies the raw values (the FACTOR setting the start response returns).
    """
    data = as_bytes(data, "PMD data frame")
    if len(data) < FRAME_HEADER_SIZE:
        raise TruncatedPacketError(f"PMD data frame is {len(data)} bytes, shorter than its {FRAME_HEADER_SIZE}-byte header")
    measurement_type = data[0]
    (timestamp_ns,) = struct.unpack_from("<Q", data, 1)
    frame_type = data[9] & 0x7F
    compressed = bool(data[9] & _COMPRESSED_BIT)
    content = data[FRAME_HEADER_SIZE:]
    if channels is None or resolution is None:
        try:
            default_channels, default_resolution = _LAYOUTS[(MeasurementType(measurement_type), compressed, frame_type)]
        except (KeyError, ValueError):
            kind = "compressed" if compressed else "raw"
            raise ProfileError(
                f"PMD measurement type {measurement_type} {kind} frame type {frame_type}: no known layout; "
                "pass channels= and resolution="
            ) from None
        channels = default_channels if channels is None else channels
        resolution = default_resolution if resolution is None else resolution
    if not 1 <= int(channels) <= 64 or not 1 <= int(resolution) <= 32:
        raise ProfileError(f"PMD layout of {channels} channels x {resolution} bits is out of range (1..64 x 1..32)")
    channels, resolution = int(channels), int(resolution)
    if not content:
        raise TruncatedPacketError("PMD data frame has a header but no samples")
    if compressed:
        raw = _decode_compressed(content, channels, resolution)
    else:
        width = (resolution + 7) // 8
        sample_size = channels * width
        if len(content) % sample_size:
            raise LengthMismatchError(
                f"raw PMD frame has {len(content)} content bytes, not a whole number of {sample_size}-byte samples"
            )
        raw = _signed_le(content, len(content) // width, width).reshape(-1, channels)
    return PmdDataFrame(
        measurement_type=measurement_type,
        timestamp_ns=timestamp_ns,
        frame_type=frame_type,
        compressed=compressed,
        samples=raw.astype(np.float64) * float(factor),
        raw=raw,
    )


def encode_data_frame(measurement_type, timestamp_ns: int, raw, *, resolution: int = 24) -> bytes:
    """A raw (uncompressed, frame type 0) PMD data frame: the header, then each sample's ``channels`` values as
    signed little-endian integers of ceil(resolution/8) bytes. ``raw`` is (n, channels) integers;
    ``timestamp_ns`` is the last sample's, since 2000-01-01. ``parse_data_frame`` reads it back."""
    raw = np.asarray(raw)
    if raw.ndim != 2 or raw.shape[0] < 1 or not np.issubdtype(raw.dtype, np.integer):
        raise ValueError(f"PMD samples must be (n, channels) integers with n >= 1, got {raw.dtype} {raw.shape}")
    if not 1 <= resolution <= 32:
        raise ValueError(f"PMD resolution must be 1..32 bits, got {resolution!r}")
    width = (resolution + 7) // 8
    values = raw.astype(np.int64).ravel()
    if values.min() < -(1 << (8 * width - 1)) or values.max() >= 1 << (8 * width - 1):
        raise ValueError(f"PMD samples do not fit {width}-byte signed values")
    unsigned = values & ((1 << (8 * width)) - 1)
    body = ((unsigned[:, None] >> (8 * np.arange(width))) & 0xFF).astype(np.uint8)
    header = struct.pack("<BQB", _measurement(measurement_type), int(timestamp_ns), 0)
    return header + body.tobytes()


def frame_measurement_type(data) -> int:
    """The measurement type of a PMD data notification (its first byte): which stream it belongs to."""
    data = as_bytes(data, "PMD data frame")
    if not data:
        raise TruncatedPacketError("empty PMD notification")
    return data[0]


def sample_timestamps_ns(frame: PmdDataFrame, *, previous_timestamp_ns: int | None = None,
                         sample_rate_hz: float | None = None) -> np.ndarray:
    """Per-sample timestamps: the last sample at the frame's timestamp, earlier ones spaced evenly back from it,
    by the interval since the previous frame (as PmdTimeStampUtils does) or else by 1/sample_rate_hz."""
    n = frame.samples.shape[0]
    if previous_timestamp_ns is not None and previous_timestamp_ns < frame.timestamp_ns:
        step = (frame.timestamp_ns - previous_timestamp_ns) / n
    elif sample_rate_hz:
        step = 1e9 / float(sample_rate_hz)
    else:
        raise ValueError("need previous_timestamp_ns (earlier than this frame) or sample_rate_hz")
    return frame.timestamp_ns - step * np.arange(n - 1, -1, -1, dtype=np.float64)


# -- control point -----------------------------------------------------------------------------------------
def _measurement(measurement_type) -> int:
    value = int(measurement_type)
    if not 0 <= value <= 0x3F:
        raise ValueError(f"PMD measurement type must be 0..63, got {measurement_type!r}")
    return value


def request_settings_command(measurement_type) -> bytes:
    """GET_MEASUREMENT_SETTINGS: the device answers with the settings it offers (parse_control_response)."""
    return bytes([ControlOp.GET_MEASUREMENT_SETTINGS, _measurement(measurement_type)])


def start_measurement_command(measurement_type, settings: dict) -> bytes:
    """REQUEST_MEASUREMENT_START with one value per setting, in the order given (PmdSetting.serializeSelected)."""
    out = bytearray([ControlOp.REQUEST_MEASUREMENT_START, _measurement(measurement_type)])
    for key, value in settings.items():
        setting = SettingType[key.upper()] if isinstance(key, str) else SettingType(key)
        if setting is SettingType.FACTOR:
            raise ValueError("FACTOR is reported by the device, not requested")
        size = _SETTING_SIZE[setting]
        if not 0 <= int(value) < 1 << (8 * size):
            raise ValueError(f"{setting.name} value {value!r} does not fit {size} bytes")
        out += bytes([setting, 1]) + int(value).to_bytes(size, "little")
    return bytes(out)


def stop_measurement_command(measurement_type) -> bytes:
    return bytes([ControlOp.STOP_MEASUREMENT, _measurement(measurement_type)])


@dataclass(frozen=True)
class PmdControlCommand:
    """A control-point write, as the device reads it: op code, measurement type, settings TLVs."""

    op_code: int
    measurement_type: int
    settings: dict


def parse_control_command(data) -> PmdControlCommand:
    """Decode a control-point write (the device's side of start_measurement_command and its kin)."""
    data = as_bytes(data, "PMD control command")
    if len(data) < 2:
        raise TruncatedPacketError(f"PMD control command is {len(data)} bytes; needs an op code and a measurement type")
    return PmdControlCommand(op_code=data[0], measurement_type=data[1], settings=parse_settings(data[2:]))


def encode_control_response(op_code: int, measurement_type: int, status: int = ResponseStatus.SUCCESS, *,
                            more: bool = False, parameters: bytes = b"") -> bytes:
    """A control-point indication (PmdControlPointResponse), as ``parse_control_response`` reads it."""
    for name, value in (("op code", op_code), ("measurement type", measurement_type), ("status", status)):
        if not 0 <= int(value) <= 0xFF:
            raise ValueError(f"PMD control response {name} must be a byte, got {value!r}")
    return bytes([CONTROL_RESPONSE_CODE, int(op_code), int(measurement_type), int(status), int(bool(more))]) + bytes(parameters)


#: The first byte of the control point's read value; then a bitmap of the measurements the device offers (bit n:
#: measurement type n, for ECG 0 to MAGNETOMETER 6) and a byte for the later types, left 0 here.
FEATURES_READ_CODE = 0x0F


def features_value(measurement_types) -> bytes:
    """The control point's read value of a device offering ``measurement_types`` (0..7)."""
    bitmap = 0
    for measurement_type in measurement_types:
        if not 0 <= int(measurement_type) <= 7:
            raise ValueError(f"features_value covers measurement types 0..7, got {measurement_type!r}")
        bitmap |= 1 << int(measurement_type)
    return bytes([FEATURES_READ_CODE, bitmap, 0x00])


def start_h10_ecg_command(sample_rate_hz: int = 130, resolution: int = 14) -> bytes:
    """Polar H10 ECG: 130 Hz, 14-bit -> 02 00 00 01 82 00 01 01 0E 00 (Polar's documented example)."""
    return start_measurement_command(
        MeasurementType.ECG, {SettingType.SAMPLE_RATE: sample_rate_hz, SettingType.RESOLUTION: resolution}
    )


def start_verity_ppg_command(sample_rate_hz: int = 55, resolution: int = 22, channels: int = 4) -> bytes:
    """Polar Verity Sense PPG: 55 Hz, 22-bit, 4 channels (3 PPG + ambient), what the sensor offers by default.

    In SDK mode (start_measurement_command(MeasurementType.SDK_MODE, {}) first) it offers more rates;
    fsmeraldi/bleakheart's examples/verity_ppg_sdk.py starts PPG there with SAMPLE_RATE=176, CHANNELS=4,
    RESOLUTION=22. Ask the device (request_settings_command) for the values it accepts.
    """
    return start_measurement_command(
        MeasurementType.PPG,
        {SettingType.SAMPLE_RATE: sample_rate_hz, SettingType.RESOLUTION: resolution, SettingType.CHANNELS: channels},
    )


@dataclass(frozen=True)
class PmdSensor:
    """A PMD measurement the gateway starts for one model modality, as a Polar device offers it by default."""

    measurement_type: MeasurementType
    sample_rate_hz: float
    channels: int
    start_command: bytes


#: What the gateway starts on a Polar device, by model modality. ECG as the H10 streams it (130 Hz, 14-bit, uV);
#: PPG as BVP, as the Verity Sense offers it by default (55 Hz, 22-bit, 3 photodiodes + ambient). Frames of any
#: other measurement (ACC, ...) are never started.
SENSORS = {
    "ecg": PmdSensor(MeasurementType.ECG, 130.0, 1, start_h10_ecg_command(130)),
    "bvp": PmdSensor(MeasurementType.PPG, 55.0, 4, start_verity_ppg_command(55)),
}


def start_commands(modalities) -> tuple[bytes, ...]:
    """The control-point start commands for a Polar device asked for ``modalities`` (keys of ``SENSORS``)."""
    return tuple(SENSORS[m].start_command for m in modalities)


def stop_command_for(start_command: bytes) -> bytes:
    """The command that stops what ``start_command`` started."""
    return stop_measurement_command(start_command[1])


def start_refusal(response) -> str | None:
    """Why the device's answer to a start command refuses it (its status name), or None when it started (or
    already ran). PacketError when the answer is not a control response."""
    answer = parse_control_response(response)
    if answer.ok or answer.status == ResponseStatus.ERROR_ALREADY_IN_STATE:
        return None
    return answer.status_name


@dataclass(frozen=True)
class PmdControlResponse:
    op_code: int
    measurement_type: int
    status: int
    more: bool
    parameters: bytes

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def status_name(self) -> str:
        try:
            return ResponseStatus(self.status).name
        except ValueError:
            return f"UNKNOWN_{self.status}"

    @property
    def settings(self) -> dict:
        """Parameters read as settings TLVs (for GET_MEASUREMENT_SETTINGS and start responses)."""
        return parse_settings(self.parameters)


def parse_control_response(data) -> PmdControlResponse:
    """Decode a control-point indication (PmdControlPointResponse)."""
    data = as_bytes(data, "PMD control response")
    if len(data) < 4:
        raise TruncatedPacketError(f"PMD control response is {len(data)} bytes; needs at least 4")
    if data[0] != CONTROL_RESPONSE_CODE:
        raise ProfileError(f"PMD control response starts with 0x{data[0]:02X}, expected 0xF0")
    status = data[3]
    more = status == 0 and len(data) > 4 and data[4] != 0
    parameters = data[5:] if status == 0 else b""
    return PmdControlResponse(op_code=data[1], measurement_type=data[2], status=status, more=more, parameters=parameters)


def parse_settings(data) -> dict:
    """Settings TLVs -> {SettingType: tuple of values}: signed integers, FACTOR values as float32."""
    data = as_bytes(data, "PMD settings")
    settings: dict = {}
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise TruncatedPacketError(f"PMD settings end inside a setting header at byte {offset}")
        try:
            setting = SettingType(data[offset])
        except ValueError:
            raise ProfileError(f"unknown PMD setting type {data[offset]} at byte {offset}") from None
        count = data[offset + 1]
        offset += 2
        size = _SETTING_SIZE[setting]
        if offset + count * size > len(data):
            raise TruncatedPacketError(f"PMD setting {setting.name} announces {count} values; the data ends first")
        chunk = data[offset : offset + count * size]
        if setting is SettingType.FACTOR:
            values = struct.unpack(f"<{count}f", chunk)
        else:
            # Signed, as PmdSetting.parsePmdSettingsData reads them (a RANGE_MILLIUNIT of FF FF FF FF is -1).
            values = tuple(
                int.from_bytes(chunk[i : i + size], "little", signed=True) for i in range(0, len(chunk), size)
            )
        settings[setting] = values
        offset += count * size
    return settings


__all__ = [
    "PMD_SERVICE_UUID",
    "PMD_CONTROL_POINT_UUID",
    "PMD_DATA_UUID",
    "POLAR_EPOCH_UNIX_NS",
    "MeasurementType",
    "ControlOp",
    "SettingType",
    "ResponseStatus",
    "PmdDataFrame",
    "parse_data_frame",
    "encode_data_frame",
    "frame_measurement_type",
    "sample_timestamps_ns",
    "request_settings_command",
    "start_measurement_command",
    "stop_measurement_command",
    "start_h10_ecg_command",
    "start_verity_ppg_command",
    "PmdControlCommand",
    "parse_control_command",
    "encode_control_response",
    "features_value",
    "PmdSensor",
    "SENSORS",
    "start_commands",
    "stop_command_for",
    "start_refusal",
    "PmdControlResponse",
    "parse_control_response",
    "parse_settings",
]
