"""A Polar PMD server: a Polar H10-like strap streaming ECG, or with ``modalities`` ("bvp",) a Verity Sense-like
armband streaming PPG, as raw PMD frames (``polar_pmd.encode_data_frame``) on the PMD data characteristic,
started and stopped through the PMD control point (answers by indication, ``polar_pmd.encode_control_response``)."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
from bumble import gatt
from bumble.device import Connection

from biomoe_edge.firmware_bridge.description import StreamDescription
from biomoe_edge.firmware_bridge.emulation.signals import SignalSource, simulated_signals
from biomoe_edge.firmware_bridge.emulation.streaming import StreamingWearable, _Stream
from biomoe_edge.firmware_bridge.packet import ATT_NOTIFY_OVERHEAD, SampleFormat
from biomoe_edge.firmware_bridge.profiles import polar_pmd

logger = logging.getLogger(__name__)

#: Counts of the PPG ambient channel (constant: the emulated room is dark and steady).
PPG_AMBIENT = -2000
#: 2026-01-01 in Polar's 2000-01-01 epoch: where the strap's clock starts (plus the wearable's clock start).
CLOCK_BASE_NS = 820_454_400 * 10**9
#: Bytes of one sample value in a raw frame (signed 24-bit).
VALUE_BYTES = 3


class PmdWearable(StreamingWearable):
    """One PMD measurement (``polar_pmd.SENSORS[modality]``): ECG in uV from a signal in mV (signed 24-bit), or PPG
    counts spanning the signal on three photodiodes with a constant ambient channel. ``EmulatedWearable`` and
    ``StreamingWearable`` options."""

    def __init__(self, name: str, *, modalities=("ecg",), **options) -> None:
        modalities = tuple(modalities)
        if len(modalities) != 1 or modalities[0] not in polar_pmd.SENSORS:
            raise ValueError(f"the {options.get('profile')} profile streams ECG (an H10) or PPG (a Verity Sense); "
                             f"modalities must be ('ecg',) or ('bvp',), got {modalities!r}")
        self.sensor = polar_pmd.SENSORS[modalities[0]]
        self._control_point: gatt.Characteristic | None = None
        super().__init__(name, modalities=modalities, **options)

    def _signal_sources(self, signals, modalities, recording_rate_hz) -> list[SignalSource]:
        if isinstance(signals, str) and signals == "simulated":  # at the sensor's own rate
            return simulated_signals(list(modalities), seed=self.seed, rates_hz={modalities[0]: self.sensor.sample_rate_hz})
        return super()._signal_sources(signals, modalities, recording_rate_hz)

    def _describe(self, stream_id: int, source: SignalSource) -> StreamDescription:
        if self.sensor.measurement_type == polar_pmd.MeasurementType.ECG:  # signed 24-bit uV; the signal, mV
            scale, offset = 1e-3, 0.0
        else:  # signed 24-bit counts spanning the signal
            scale, offset = source.quantisation(SampleFormat.INT24)
        return StreamDescription(stream_id, source.modality, source.sample_rate_hz, source.channels,
                                 SampleFormat.INT24, scale, offset, source.units)

    def pmd_features(self) -> bytes:
        """The PMD control point's read value: the measurement this device offers."""
        return polar_pmd.features_value([self.sensor.measurement_type])

    def _fit(self, stream: _Stream, mtu: int) -> int:
        return (mtu - ATT_NOTIFY_OVERHEAD - polar_pmd.FRAME_HEADER_SIZE) // (VALUE_BYTES * self.sensor.channels)

    def _payload(self, stream: _Stream, raw, count: int) -> bytes:
        d = stream.description
        last_sample_s = stream.origin_s + (stream.index + count - 1) / d.sample_rate_hz
        timestamp_ns = CLOCK_BASE_NS + self.clock_start_us * 1000 + round(last_sample_s * 1e9)
        values = np.asarray(raw[:, 0], dtype=np.int64)[:, None]
        if self.sensor.channels > 1:  # PPG0..PPG2 carry the signal, the last channel the ambient light
            values = np.hstack([np.repeat(values, self.sensor.channels - 1, axis=1),
                                np.full_like(values, PPG_AMBIENT)])
        return polar_pmd.encode_data_frame(self.sensor.measurement_type, timestamp_ns, values)

    # GATT server
    def _services(self) -> list[gatt.Service]:
        props = gatt.Characteristic.Properties
        data = self._data_characteristic_for(polar_pmd.PMD_DATA_UUID)
        self._control_point = gatt.Characteristic(
            polar_pmd.PMD_CONTROL_POINT_UUID,
            props.READ | props.WRITE | props.INDICATE,
            gatt.Characteristic.READABLE | gatt.Characteristic.WRITEABLE,
            gatt.CharacteristicValue(read=lambda connection: self.pmd_features(), write=self._on_control),
        )
        return [gatt.Service(polar_pmd.PMD_SERVICE_UUID, [self._control_point, data])]

    def _on_control(self, connection: Connection, value: bytes) -> None:
        """A control-point write: start or stop the measurement; the answer comes as an indication."""
        op = value[0] if value else 0
        measurement = value[1] if len(value) > 1 else 0xFF
        status = polar_pmd.ResponseStatus
        if op not in (polar_pmd.ControlOp.REQUEST_MEASUREMENT_START, polar_pmd.ControlOp.STOP_MEASUREMENT):
            answer = status.ERROR_INVALID_OP_CODE
        elif measurement != self.sensor.measurement_type:
            answer = status.ERROR_NOT_SUPPORTED
        elif op == polar_pmd.ControlOp.REQUEST_MEASUREMENT_START and self._streams[0].running:
            answer = status.ERROR_ALREADY_IN_STATE
        else:
            answer = status.SUCCESS
            if op == polar_pmd.ControlOp.REQUEST_MEASUREMENT_START:
                self._start_streams([0])
            else:
                self._streams[0].running = False
            self._wake.set()
        response = polar_pmd.encode_control_response(op, measurement, answer)
        asyncio.get_running_loop().create_task(self._indicate(connection, response))

    async def _indicate(self, connection: Connection, response: bytes) -> None:
        try:
            await self.device.indicate_subscriber(connection, self._control_point, response)
        except Exception as exc:  # noqa: BLE001 - the central left before reading the answer
            logger.debug("%s: PMD control response not delivered: %r", self.name, exc)
