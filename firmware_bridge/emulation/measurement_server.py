"""A Bluetooth SIG profile of one measurement per second (Heart Rate, Pulse Oximeter): the profile's service with
its measurement characteristic (notify), one value per device second, encoded by the profile's own
``emulated_measurement`` from seeded vital signs (``signals.VitalSignsWalk``)."""

from __future__ import annotations

from bumble import gatt

from biomoe_edge.firmware_bridge.emulation.signals import VitalSignsWalk
from biomoe_edge.firmware_bridge.emulation.wearable import EmulatedWearable, StreamCounters, gatt_uuid


class MeasurementWearable(EmulatedWearable):
    """``EmulatedWearable`` options, and ``modalities``: checked against what the profile delivers (the values
    come from the vital signs either way). Scheduled disconnects (``disconnect_at``/``disconnect_every``) apply."""

    def __init__(self, name: str, *, modalities=(), **options) -> None:
        super().__init__(name, **options)
        self.spec.modalities(tuple(modalities))  # ValueError naming what the profile cannot deliver
        self.counters.streams[0] = StreamCounters()  # one "stream": the measurements
        self._vitals = VitalSignsWalk(self.seed)

    def _services(self) -> list[gatt.Service]:
        data = self._data_characteristic_for(self.spec.data_uuid)
        return [gatt.Service(gatt_uuid(self.spec.service_uuid), [data])]

    async def _run(self) -> None:
        next_s = 1.0
        while True:
            self._wake.clear()
            if self._subscribed and self._backlog:
                await self._flush_backlog()
            next_disconnect = self._injector.next_disconnect()
            if next_disconnect is not None and next_disconnect <= next_s:  # disconnect faults, as when streaming
                if await self._sleep_until(next_disconnect):
                    self._injector.disconnect_done(next_disconnect)
                    await self.disconnect()
                continue
            if not await self._sleep_until(next_s):
                continue
            value = self.spec.emulated_measurement(self._vitals.read(next_s))
            self._count_generated(0, 1)
            await self._deliver_or_keep(0, value, 1)
            next_s += 1.0
