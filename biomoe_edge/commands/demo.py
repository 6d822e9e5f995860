"""``biomoe-edge demo``: emulated wearables over Bumble, the gateway, and a live table of embeddings.

No hardware: each wearable is a Bumble device on an in-process virtual radio serving the native GATT
protocol; the gateway reaches it through the same bleak ``BleakClient`` code it uses on a Jetson (with the
Bumble backend instead of BlueZ). The model is Tiny-BioMoE: ``--checkpoint`` for the published weights,
otherwise deterministic random weights (a warning says so: the embeddings are then meaningless, the
plumbing and the timings are not).

Engine: ONNX Runtime on an fp32 ONNX file exported once into the cache folder
(``$BIOMOE_EDGE_CACHE_DIR`` or ``~/.cache/biomoe-edge``) and reused: later runs start in about a second,
and ONNX Runtime is the fastest CPU engine here. ``--engine pytorch`` skips the export.
"""

from __future__ import annotations

import collections
import json
import logging
import pathlib

HELP = "run emulated wearables (Bumble), the gateway and a live console view; --duration S for a bounded run"

log = logging.getLogger("biomoe_edge.demo")

#: The exact fields of a stream entry in the report.
STREAM_FIELDS = ("device", "modality", "packets_received", "packets_lost", "samples_received", "samples_windowed",
                 "samples_pending", "samples_dropped")


def add_arguments(parser) -> None:
    from biomoe_edge.firmware_bridge.profiles.registry import standard_profiles

    parser.add_argument("--duration", type=float, default=None, metavar="S",
                        help="run S seconds, then stop and print the report (default: until Ctrl-C); try 60")
    parser.add_argument("--devices", type=int, default=2, metavar="N", help="emulated wearables (default 2)")
    parser.add_argument("--loss", type=float, default=0.0, metavar="P",
                        help="fraction of packets each link drops, 0..1 (default 0)")
    parser.add_argument("--report", default=None, metavar="FILE", help="write the JSON report here at the end")
    parser.add_argument("--checkpoint", default=None, help="Tiny-BioMoE .pth (default: random weights, with a warning)")
    parser.add_argument("--engine", choices=("onnxruntime", "pytorch"), default="onnxruntime",
                        help="inference engine (default onnxruntime, fp32 ONNX exported once to the cache)")
    parser.add_argument("--modalities", default="bvp,eda,resp,ecg", help="streams of each wearable (default: all four)")
    parser.add_argument("--representations", default="spectrogram_psd",
                        help="images per window, comma-separated (default spectrogram_psd)")
    parser.add_argument("--window", type=float, default=10.0, metavar="S", help="window length in seconds (default 10)")
    parser.add_argument("--hop", type=float, default=1.0, metavar="S", help="window hop in seconds (default 1)")
    parser.add_argument("--profiles", default="", metavar="LIST",
                        help="also emulate one standard-profile wearable of each, comma-separated, PROFILE or "
                             "PROFILE:MODALITY: " + "; ".join(f"{spec.name}: {spec.summary}" for spec in standard_profiles()))
    parser.add_argument("--seed", type=int, default=0, help="seeds the signals and the links' losses")
    parser.add_argument("--quiet", action="store_true", help="no live table")
    parser.add_argument("--sinks", default=None, metavar="FILE.toml",
                        help="add the [[sinks]] tables of this TOML file (same keys as gateway.toml) to the demo's "
                             "gateway, e.g. a JSONL folder or an MQTT broker over TLS")




def demo_onnx_path(checkpoint=None) -> pathlib.Path:
    """The cached fp32 ONNX export of the demo's model (exported now if missing; needs torch once)."""
    from biomoe_edge.export.cache import cached_onnx

    try:
        return cached_onnx(checkpoint, precision="fp32")
    except RuntimeError as exc:
        raise RuntimeError(f"the demo's first run exports the model: {exc}; or use --engine pytorch") from None


def open_demo_engine(kind: str, checkpoint=None, *, max_batch: int = 16):
    from biomoe_edge.runtime.engines import open_engine

    if checkpoint is None:
        print("biomoe-edge demo: no --checkpoint: Tiny-BioMoE with RANDOM weights; embeddings are meaningless "
              "(the pipeline, counters and timings are real)")
    if kind == "pytorch":
        return open_engine("pytorch", checkpoint, max_batch=max_batch)
    return open_engine("onnxruntime", demo_onnx_path(checkpoint), max_batch=max_batch)


def parse_profiles(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """``--profiles`` -> [(profile, modalities)]: "polar_pmd:bvp" -> ("polar_pmd", ("bvp",))."""
    from biomoe_edge.firmware_bridge.profiles.registry import profile_spec, standard_profiles

    names = ", ".join(spec.name for spec in standard_profiles())
    out = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        profile, _, modality = item.partition(":")
        try:
            spec = profile_spec(profile)
        except ValueError:
            spec = None
        if spec is None or spec.describes_itself:
            raise ValueError(f"--profiles: unknown profile {profile!r}; expected one of {names}, each optionally "
                             "as PROFILE:MODALITY")
        try:
            out.append((spec.name, spec.modalities((modality,) if modality else ())))
        except ValueError as exc:
            raise ValueError(f"--profiles: {exc}") from None
    return out


def load_demo_sinks(path) -> tuple:
    """The ``[[sinks]]`` tables of a TOML file, validated like gateway.toml's (relative paths from the file's
    folder); its other tables are ignored, so a gateway.toml can be given as it is."""
    from biomoe_edge.config import TomlError, load_toml
    from biomoe_edge.runtime.gateway_config import ConfigError, parse_config

    path = pathlib.Path(path)
    try:
        data = load_toml(path)
    except TomlError as exc:
        raise ConfigError(exc.key or "", exc.reason, source=path) from None
    try:
        sinks = parse_config({"sinks": data.get("sinks", [])}, base_dir=path.parent).sinks
    except ConfigError as exc:
        raise ConfigError(exc.key_path, exc.reason, source=path) from None
    if not sinks:
        raise ConfigError("sinks", "no [[sinks]] table in this file", source=path)
    return sinks


def demo_config(names, *, modalities, representations, window_s, hop_s, max_batch, profile_devices=(), sinks=()):
    """``profile_devices``: (name, profile, modalities) of standard-profile wearables beside the native ones;
    ``sinks``: ``SinkConfig``s added to the gateway (``load_demo_sinks``)."""
    import dataclasses

    from biomoe_edge.firmware_bridge.profiles.registry import Profile
    from biomoe_edge.runtime.gateway_config import parse_config

    return dataclasses.replace(parse_config({
        "windows": {"length_s": window_s, "hop_s": hop_s, "representations": list(representations)},
        "devices": [{"name": name, "profile": Profile.NATIVE.value, "modalities": list(modalities)} for name in names]
                   + [{"name": name, "profile": profile, "modalities": list(mods)} for name, profile, mods in profile_devices],
        "engine": {"max_batch": max_batch, "deadline_ms": 100, "max_queue": 4 * max_batch},
        "transport": {"backoff_min_s": 0.2, "backoff_max_s": 2.0, "connect_timeout_s": 10.0},
    }), sinks=tuple(sinks))


def build_report(gateway) -> dict:
    """The demo's JSON report: exactly embedding_dim, embeddings, latency_ms {p50,p95,p99} and streams."""
    from biomoe_edge.vocabulary import EMBEDDING_DIM

    stats = gateway.stats()
    return {
        "embedding_dim": EMBEDDING_DIM,
        "embeddings": stats["embeddings"],
        "latency_ms": {k: stats["latency_ms"][k] for k in ("p50", "p95", "p99")},
        "streams": [{k: entry[k] for k in STREAM_FIELDS} for entry in stats["streams"]],
    }


async def run_demo(*, duration_s, devices: int, loss: float, engine, modalities=("bvp", "eda", "resp", "ecg"),
                   representations=("spectrogram_psd",), window_s: float = 10.0, hop_s: float = 1.0, seed: int = 0,
                   quiet: bool = False, out=None, result: dict | None = None, wearable_options: dict | None = None,
                   profiles=(), sinks=()):
    """Run the demo; return ``(report, gateway, wearables)`` (the wearables' counters for checks).
    A cancellation (Ctrl-C under ``asyncio.run``) ends the run like ``duration_s`` does.

    ``result`` (a dict) receives the report too, so it survives a Ctrl-C that ends ``asyncio.run``.
    ``wearable_options``: more ``EmulatedWearable`` options (faults: garbage, disconnect_at, buffer_packets...).
    ``profiles``: (profile, modalities) pairs (``parse_profiles``): one standard-profile wearable each.
    ``sinks``: ``SinkConfig``s the gateway writes to as well (``--sinks FILE.toml``)."""
    import asyncio

    from biomoe_edge.firmware_bridge.emulation import VirtualBleNetwork
    from biomoe_edge.firmware_bridge.profiles.registry import profile_spec
    from biomoe_edge.runtime.console import run_with_console
    from biomoe_edge.runtime.gateway import Gateway
    from biomoe_edge.runtime.transport.backend import TransportBackend

    names = [f"biomoe-demo-{i + 1}" for i in range(devices)]
    profile_devices = [(f"demo-{profile_spec(p).device_names.get(tuple(m), p)}-{i + 1}", p, tuple(m))
                       for i, (p, m) in enumerate(profiles)]
    config = demo_config(names, modalities=modalities, representations=representations, window_s=window_s,
                         hop_s=hop_s, max_batch=min(16, engine.max_batch), profile_devices=profile_devices,
                         sinks=sinks)
    async with VirtualBleNetwork() as network:
        wearables = [await network.add_wearable(name, loss=loss, seed=seed * 1000 + i, modalities=tuple(modalities),
                                                **(wearable_options or {}))
                     for i, name in enumerate(names)]
        for i, (name, profile, mods) in enumerate(profile_devices):
            wearables.append(await network.add_wearable(
                name, profile=profile, modalities=mods, loss=loss,
                seed=seed * 1000 + devices + i, **(wearable_options or {})))
        backend = TransportBackend.bumble(await network.central())
        gateway = Gateway(config, engine=engine, backend=backend)
        try:
            async with gateway:
                try:
                    await run_with_console(gateway, duration_s=duration_s, quiet=quiet, out=out)
                except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels this task; stop cleanly, report
                    log.info("interrupted: stopping the wearables and the gateway")
                finally:
                    # Wearables first: the gateway then takes every notification already sent before it stops.
                    for wearable in wearables:
                        await wearable.stop()
        finally:
            if result is not None and gateway.pipeline is not None:
                result["report"] = build_report(gateway)
                result["stats"] = gateway.stats()
    report = build_report(gateway)
    return report, gateway, wearables


def run(args) -> int:
    import asyncio

    from biomoe_edge.vocabulary import Modality, check_representations

    if args.devices < 1:
        raise ValueError(f"--devices must be at least 1, got {args.devices}")
    if not 0.0 <= args.loss <= 1.0:
        raise ValueError(f"--loss must be a fraction in [0, 1], got {args.loss}")
    if args.duration is not None and args.duration <= 0:
        raise ValueError(f"--duration must be positive, got {args.duration}")
    modalities = tuple(Modality.parse(m).value for m in args.modalities.split(",") if m.strip())
    representations = check_representations([r.strip() for r in args.representations.split(",") if r.strip()])
    profiles = parse_profiles(args.profiles)
    sinks = load_demo_sinks(args.sinks) if args.sinks else ()
    engine = open_demo_engine(args.engine, args.checkpoint)
    result: dict = {}
    try:
        asyncio.run(run_demo(
            duration_s=args.duration, devices=args.devices, loss=args.loss, engine=engine, modalities=modalities,
            representations=representations, window_s=args.window, hop_s=args.hop, seed=args.seed, quiet=args.quiet,
            result=result, profiles=profiles, sinks=sinks))
    except KeyboardInterrupt:  # Ctrl-C: the gateway closed cleanly; report what ran
        if "report" not in result:
            return 130
    finally:
        engine.close()
    report = result["report"]
    text = json.dumps(report, indent=2, allow_nan=False)
    if args.report:
        pathlib.Path(args.report).write_text(text + "\n")
    lat = report["latency_ms"]
    latency = ("no embedding yet (the run was shorter than a window)" if lat["p50"] is None else
               f"latency from sample arrival p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, p99 {lat['p99']:.0f} ms")
    print(f"\n{report['embeddings']} embeddings of {report['embedding_dim']} values; {latency}"
          + (f"; report written to {args.report}" if args.report else ""))
    print(windows_not_embedded(result["stats"]))
    return 0


def windows_not_embedded(stats: dict) -> str:
    """One line: what gave no embedding, and why: windows withheld by quality gating; images (window x
    representation) dropped by the scheduler when the engine fell behind, failed to render, or still queued
    at exit."""
    dropped = collections.Counter()
    for reasons in stats["scheduler"]["jobs_dropped"].values():
        dropped.update(reasons)
    images = [f"{reason} {count}" for reason, count in sorted(dropped.items())]
    images += [f"render failed ({reason}) {count}" for reason, count in sorted(stats["jobs_failed"].items())]
    images.append(f"unfinished at exit {stats['jobs_unfinished']}")
    return (f"not embedded: {sum(stats['windows_withheld'].values())} windows withheld for quality; images: "
            + ", ".join(images))
