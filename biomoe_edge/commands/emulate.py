"""``biomoe-edge emulate``: an emulated BLE wearable on Bumble.

In-process (default) the wearable and a gateway-side connection (``runtime.transport`` over the Bumble bleak
backend) share a virtual link, and the command prints what arrives each second: packets, samples, the
losses the gateway counts from sequence numbers, and at the end what the wearable sent and dropped on
purpose. With ``--transport SPEC`` the same wearable runs on a real HCI controller (e.g. ``usb:0``,
``hci-socket:0``) for a phone or a gateway to connect to (docs/ble.md).
"""

from __future__ import annotations

import argparse

from biomoe_edge.firmware_bridge.emulation.signals import DEFAULT_MODALITIES as NATIVE_MODALITIES
from biomoe_edge.firmware_bridge.profiles.registry import NAMES as PROFILE_NAMES
from biomoe_edge.firmware_bridge.profiles.registry import PROFILES, Emulation, Profile, profile_spec
from biomoe_edge.runtime.transport.security import SECURITY_LEVELS, default_security

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
        default=Profile.NATIVE.value,
        choices=PROFILE_NAMES,
        help="GATT profile served: " + "; ".join(f"{spec.name}: {spec.summary}" for spec in PROFILES.values()),
    )
    parser.add_argument(
        "--signals", default="simulated", help="'simulated' (NeuroKit2) or a CSV file whose header names the modalities"
    )
    parser.add_argument("--recording-rate", type=_positive, default=None, help="sample rate (Hz) of a CSV recording")
    parser.add_argument("--name", default="biomoe-wear-1", help="advertised name")
    parser.add_argument("--address", default=None, help="static random address (default F0:00:00:00:00:01)")
    parser.add_argument("--modalities", default=None,
                        help=f"comma-separated streams, in stream-id order (default: {','.join(NATIVE_MODALITIES)} for "
                             f"{Profile.NATIVE}, the profile's default for the others)")
    parser.add_argument("--duration", type=_positive, default=None, help="seconds of wall time to run (default: 10 in-process, until Ctrl-C on a transport)")
    parser.add_argument("--speed", type=_positive, default=1.0, help="device seconds per wall second")
    parser.add_argument("--loss", type=_probability, default=0.0, help="probability of dropping a data packet")
    parser.add_argument("--reorder", type=_probability, default=0.0, help="probability of sending a packet after the next")
    parser.add_argument("--garbage", type=_probability, default=0.0, help="probability of an extra non-packet notification")
    parser.add_argument("--drift-ppm", type=float, default=0.0, help="device clock error in parts per million")
    parser.add_argument("--disconnect-every", type=_positive, default=None, help="peripheral disconnects every S device seconds")
    parser.add_argument("--seed", type=int, default=0, help="seeds faults, clock and sequence starts, simulated signals")
    parser.add_argument("--security", choices=SECURITY_LEVELS, default=None,
                        help="what the board requires of a link before it serves its data, and what the in-process "
                             "gateway side asks for: none, encrypted or bonded (LE Secure Connections, Just Works; "
                             f"default: the profile's, bonded for {Profile.NATIVE} boards, none for the standard profiles)")
    parser.add_argument("--transport", default=None, help="Bumble HCI transport spec (usb:0, hci-socket:0, serial:...)")


def run(args) -> int:
    import asyncio

    spec = profile_spec(args.profile)
    if args.modalities is None:
        modalities = NATIVE_MODALITIES if spec.describes_itself else spec.default_modalities
    else:
        modalities = tuple(m.strip().lower() for m in args.modalities.split(",") if m.strip())
        if not modalities and spec.describes_itself:
            raise ValueError("--modalities is empty")
    modalities = spec.modalities(modalities)  # ValueError naming what the profile cannot deliver
    options = dict(address=args.address, profile=args.profile, modalities=modalities, seed=args.seed, speed=args.speed,
                   loss=args.loss, reorder=args.reorder, garbage=args.garbage, drift_ppm=args.drift_ppm,
                   disconnect_every=args.disconnect_every,
                   security=args.security if args.security is not None else default_security(args.profile).value)
    if spec.emulation is not Emulation.MEASUREMENT_PER_SECOND:  # the profiles that stream sampled signals
        options.update(signals=args.signals, recording_rate_hz=args.recording_rate)
    if args.transport:
        return asyncio.run(_on_transport(args, options))
    return asyncio.run(_in_process(args, options, 10.0 if args.duration is None else args.duration))


async def _on_transport(args, options) -> int:
    import asyncio

    from biomoe_edge.firmware_bridge.emulation import EmulatedWearable

    wearable = EmulatedWearable(args.name, **options)
    await wearable.start(args.transport)
    print(f"{args.name} ({wearable.address}) advertising on {args.transport}, link security {options['security']}; "
          f"Ctrl-C to stop", flush=True)
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

    spec = profile_spec(args.profile)
    reassemblers: dict[int, StreamReassembler] = {}
    market = None if spec.describes_itself else _ProfileCount(spec, options["modalities"])
    rejected = 0
    connection: DeviceConnection | None = None

    def on_packet(device: str, payload: bytes, arrival_s: float) -> None:
        nonlocal rejected
        try:
            if not spec.describes_itself:
                market.add(payload, arrival_s * args.speed)  # device time runs ``speed`` times faster
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
        if state == "connected":
            link = connection.link
            print(f"[{device}] link security {connection.security.value}: " + (
                "nothing asked of the link" if link is None else
                f"encrypted={link.encrypted} bonded={link.bonded} paired_now={link.paired_now} "
                f"identity={link.identity_address}"), flush=True)

    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable(args.name, **options)
        connection = DeviceConnection(
            DeviceTarget(name=args.name, profile=args.profile, security=options["security"]),
            on_packet=on_packet,
            on_state=on_state,
            backend=TransportBackend.bumble(await network.central()),
            scan_timeout_s=2.0,
            start_commands=spec.start_commands(options["modalities"]),
        )
        await connection.start()
        elapsed = 0.0
        while elapsed < duration_s:
            step = min(1.0, duration_s - elapsed)
            await asyncio.sleep(step)
            elapsed += step
            lines = [market.line()] if not spec.describes_itself else [_stream_line(r) for r in reassemblers.values()]
            print(f"t={elapsed:5.1f} s  " + "  ".join(lines), flush=True)
        await connection.stop()
        for reassembler in reassemblers.values():
            reassembler.flush()
        c = wearable.counters
        print(
            f"wearable {args.name}: generated {c.total('packets_generated')} packets, sent {c.total('packets_sent')}, "
            f"dropped on purpose {c.total('packets_dropped')}, unsent (no subscriber) {c.total('packets_unsent')}, "
            f"lost in flight as a link dropped {c.total('packets_lost_in_flight')}, reordered {c.total('packets_reordered')}, garbage {c.garbage_sent}, peripheral disconnects {c.disconnects_injected}, "
            f"pairings {c.pairings}, pairings refused {c.pairings_refused}"
        )
        if spec.describes_itself:
            received = sum(r.stats.packets_received for r in reassemblers.values())
            lost = sum(r.stats.packets_lost for r in reassemblers.values())
            print(f"gateway: received {received} packets, counted {lost} lost, {rejected} rejected (not packets)")
        else:
            print(f"gateway: received {market.count} notifications ({market.line()}), {rejected} rejected")
    return 0


def _stream_line(reassembler) -> str:
    s, d = reassembler.stats, reassembler.stream
    return f"{d.modality}: {s.samples_received} samples, {s.packets_received} pkts, {s.packets_lost} lost"


class _ProfileCount:
    """What arrives from a standard-profile device, through the profile's own streams (the registry's)."""

    def __init__(self, spec, modalities) -> None:
        self.spec = spec
        self.routes = {route.key: route for route in spec.open_streams(modalities)}
        self.count = 0
        self.samples = 0
        self.last = None

    def add(self, payload: bytes, arrival_s: float) -> None:
        """Count one notification; PacketError when the profile cannot read it."""
        from biomoe_edge.firmware_bridge.exc import PacketError

        route = self.routes.get(self.spec.stream_key(payload))
        if route is None:
            raise PacketError("a notification of a stream that was not started")
        stream = route.stream
        rejected = stream.stats.packets_rejected
        blocks = stream.push(payload, arrival_s)
        if stream.stats.packets_rejected > rejected:
            raise PacketError(str(stream.stats.rejected_reasons))
        self.count += 1
        for block in blocks:
            self.samples += block.samples.shape[0]
            units = stream.description.units.split(", ")
            values = block.samples[-1]
            self.last = ", ".join(f"{v:g} {u}".strip() for v, u in zip(values, units + [""] * len(values)))

    def line(self) -> str:
        return f"{self.spec.name}: {self.count} notifications, {self.samples} samples, last {self.last}"
