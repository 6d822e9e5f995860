"""``biomoe-edge emulate``: an emulated BLE wearable on Bumble.

In-process (default) the wearable and a gateway-side connection (``runtime.transport`` over the Bumble bleak
backend) share a virtual link, and the command prints what arrives each second: packets, samples, the
losses the gateway counts from sequence numbers, and at the end what the wearable sent and dropped on
purpose. With ``--transport SPEC`` the same wearable runs on a real HCI controller (e.g. ``usb:0``,
``hci-socket:0``) for a phone or a gateway to connect to (docs/ble.md).
"""

from __future__ import annotations

import argparse

HELP = "Run an emulated BLE wearable (Bumble): in-process with a printed stream, or on a real HCI controller."


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        default="native",
        choices=["native", "heart_rate", "pulse_oximeter", "polar_pmd"],
        help="GATT profile served: native (PROTOCOL.md), heart_rate / pulse_oximeter (SIG services), "
        "polar_pmd (H10-like PMD ECG)",
    )
    parser.add_argument(
        "--signals", default="simulated", help="'simulated' (NeuroKit2) or a CSV file whose header names the modalities"
    )
    parser.add_argument("--recording-rate", type=_positive, default=None, help="sample rate (Hz) of a CSV recording")
    parser.add_argument("--name", default="biomoe-wear-1", help="advertised name")
    parser.add_argument("--address", default=None, help="static random address (default F0:00:00:00:00:01)")
    parser.add_argument("--modalities", default="bvp,eda,resp,ecg", help="comma-separated streams, in stream-id order")
    parser.add_argument("--duration", type=_positive, default=None, help="seconds of wall time to run (default: 10 in-process, until Ctrl-C on a transport)")
    parser.add_argument("--speed", type=_positive, default=1.0, help="device seconds per wall second")
    parser.add_argument("--loss", type=_probability, default=0.0, help="probability of dropping a data packet")
    parser.add_argument("--reorder", type=_probability, default=0.0, help="probability of sending a packet after the next")
    parser.add_argument("--garbage", type=_probability, default=0.0, help="probability of an extra non-packet notification")
    parser.add_argument("--drift-ppm", type=float, default=0.0, help="device clock error in parts per million")
    parser.add_argument("--disconnect-every", type=_positive, default=None, help="peripheral disconnects every S device seconds")
    parser.add_argument("--seed", type=int, default=0, help="seeds faults, clock and sequence starts, simulated signals")
    parser.add_argument("--transport", default=None, help="Bumble HCI transport spec (usb:0, hci-socket:0, serial:...)")


def run(args) -> int:
    import asyncio

    modalities = tuple(m.strip().lower() for m in args.modalities.split(",") if m.strip())
    if args.profile == "polar_pmd":
        modalities = ("ecg",)
    if not modalities:
        raise ValueError("--modalities is empty")
    options = dict(
        address=args.address,
        profile=args.profile,
        signals=args.signals,
        recording_rate_hz=args.recording_rate,
        modalities=modalities,
        loss=args.loss,
        reorder=args.reorder,
        garbage=args.garbage,
        drift_ppm=args.drift_ppm,
        speed=args.speed,
        seed=args.seed,
        disconnect_every=args.disconnect_every,
    )
    if args.transport:
        return asyncio.run(_on_transport(args, options))
    return asyncio.run(_in_process(args, options, 10.0 if args.duration is None else args.duration))


async def _on_transport(args, options) -> int:
    import asyncio

    from biomoe_edge.firmware_bridge.emulation import EmulatedWearable

    wearable = EmulatedWearable(args.name, **options)
    await wearable.start(args.transport)
    print(f"{args.name} ({wearable.address}) advertising on {args.transport}; Ctrl-C to stop", flush=True)
    try:
        elapsed = 0.0
        while args.duration is None or elapsed < args.duration:
            await asyncio.sleep(1.0)
            elapsed += 1.0
            c = wearable.counters
            print(
                f"t={elapsed:6.1f} s connected={wearable.connected} sent={c.total('packets_sent')} "
                f"dropped={c.total('packets_dropped')} unsent={c.total('packets_unsent')} disconnects={c.disconnects_injected}",
                flush=True,
            )
    finally:
        await wearable.stop()
    return 0


async def _in_process(args, options, duration_s: float) -> int:
    import asyncio
    import logging

    # Bumble's virtual controller warns about ACL data that crosses a disconnection on the in-process link.
    logging.getLogger("bumble.controller").setLevel(logging.ERROR)

    from biomoe_edge.firmware_bridge import StreamReassembler, decode_packet
    from biomoe_edge.firmware_bridge.exc import PacketError
    from biomoe_edge.firmware_bridge.emulation import VirtualBleNetwork
    from biomoe_edge.runtime.transport import DeviceConnection, DeviceTarget, TransportBackend

    reassemblers: dict[int, StreamReassembler] = {}
    market = _MarketProfileCount(args.profile)
    rejected = 0
    connection: DeviceConnection | None = None

    def on_packet(device: str, payload: bytes, arrival_s: float) -> None:
        nonlocal rejected
        try:
            if args.profile != "native":
                market.add(payload)
                return
            packet = decode_packet(payload)
        except PacketError:
            rejected += 1
            return
        if packet.stream_id not in reassemblers and connection.description is not None:
            reassemblers[packet.stream_id] = StreamReassembler(connection.description.stream(packet.stream_id))
        if packet.stream_id in reassemblers:
            # Device time runs ``speed`` times faster than ours: scale arrivals so clock mapping sees ~1:1.
            reassemblers[packet.stream_id].push(packet, arrival_s * args.speed)

    def on_state(device: str, state: str, reason: str) -> None:
        print(f"[{device}] {state}: {reason}", flush=True)

    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable(args.name, **options)
        connection = DeviceConnection(
            DeviceTarget(name=args.name, profile=args.profile),
            on_packet=on_packet,
            on_state=on_state,
            backend=TransportBackend.bumble(await network.central()),
            scan_timeout_s=2.0,
        )
        await connection.start()
        elapsed = 0.0
        while elapsed < duration_s:
            step = min(1.0, duration_s - elapsed)
            await asyncio.sleep(step)
            elapsed += step
            lines = [market.line()] if args.profile != "native" else [_stream_line(r) for r in reassemblers.values()]
            print(f"t={elapsed:5.1f} s  " + "  ".join(lines), flush=True)
        await connection.stop()
        for reassembler in reassemblers.values():
            reassembler.flush()
        c = wearable.counters
        print(
            f"wearable {args.name}: generated {c.total('packets_generated')} packets, sent {c.total('packets_sent')}, "
            f"dropped on purpose {c.total('packets_dropped')}, unsent (no subscriber) {c.total('packets_unsent')}, "
            f"reordered {c.total('packets_reordered')}, garbage {c.garbage_sent}, peripheral disconnects {c.disconnects_injected}"
        )
        if args.profile == "native":
            received = sum(r.stats.packets_received for r in reassemblers.values())
            lost = sum(r.stats.packets_lost for r in reassemblers.values())
            print(f"gateway: received {received} packets, counted {lost} lost, {rejected} rejected (not packets)")
        else:
            print(f"gateway: received {market.count} notifications ({market.line()}), {rejected} rejected")
    return 0


def _stream_line(reassembler) -> str:
    s, d = reassembler.stats, reassembler.stream
    return f"{d.modality}: {s.samples_received} samples, {s.packets_received} pkts, {s.packets_lost} lost"


class _MarketProfileCount:
    """What arrives from a standard-profile device, decoded with firmware_bridge.profiles."""

    def __init__(self, profile: str) -> None:
        self.profile = profile
        self.count = 0
        self.samples = 0
        self.last = None

    def add(self, payload: bytes) -> None:
        if self.profile == "heart_rate":
            from biomoe_edge.firmware_bridge.profiles.heart_rate import parse_measurement

            self.last = f"{parse_measurement(payload).bpm} bpm"
        elif self.profile == "pulse_oximeter":
            from biomoe_edge.firmware_bridge.profiles.pulse_oximeter import parse_continuous

            reading = parse_continuous(payload)
            self.last = f"SpO2 {reading.spo2:.1f} %, {reading.pulse_rate:.1f} bpm"
        else:
            from biomoe_edge.firmware_bridge.profiles.polar_pmd import parse_data_frame

            self.samples += parse_data_frame(payload).samples.shape[0]
        self.count += 1

    def line(self) -> str:
        if self.profile == "polar_pmd":
            return f"PMD ECG: {self.count} frames, {self.samples} samples"
        return f"{self.profile}: {self.count} measurements, last {self.last}"
