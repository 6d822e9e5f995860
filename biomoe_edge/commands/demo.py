"""``biomoe-edge demo``: emulated wearables over Bumble, the gateway, and a live console view of embeddings.

No hardware: each wearable is a Bumble device on an in-process virtual radio serving the native GATT
protocol; the gateway reaches it through the same bleak ``BleakClient`` code it uses on a Jetson (with the
Bumble backend instead of BlueZ). The model is Tiny-BioMoE: ``--checkpoint`` for the published weights, or
``--random-weights`` (deterministic random weights: the embeddings are then meaningless, the plumbing and the
timings are not; the screen and the report say so). One of the two is required.

Engine: ONNX Runtime on an fp32 ONNX file exported once into the cache folder
(``$BIOMOE_EDGE_CACHE_DIR`` or ``~/.cache/biomoe-edge``) and reused: later runs start in about a second,
and ONNX Runtime is the fastest CPU engine here. ``--engine pytorch`` skips the export.

The final screen and the JSON report (``--report``) are built from one snapshot of the gateway's counters,
taken after it closed (:func:`build_report`, :func:`print_final_screen`).
"""

from __future__ import annotations

import json
import logging
import pathlib

from biomoe_edge.commands.export import PUBLISHED_CHECKPOINT_URL, add_weights_arguments

HELP = ("run emulated wearables (Bumble), the gateway and a live console view; --duration S for a bounded run; "
        "--checkpoint Tiny-BioMoE.pth or --random-weights")

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
    add_weights_arguments(parser, required=False)  # --checkpoint | --random-weights [SEED], --strict
    parser.add_argument("--engine", choices=("onnxruntime", "pytorch"), default="onnxruntime",
                        help="inference engine (default onnxruntime, fp32 ONNX exported once to the cache)")
    parser.add_argument("--modalities", default="bvp,eda,resp,ecg",
                        help="streams of each wearable: eda, bvp (or ppg), resp, ecg (default: all four)")
    parser.add_argument("--representations", default="spectrogram_psd",
                        help="images per window, comma-separated (default spectrogram_psd)")
    parser.add_argument("--window", type=float, default=10.0, metavar="S", help="window length in seconds (default 10)")
    parser.add_argument("--hop", type=float, default=1.0, metavar="S", help="window hop in seconds (default 1)")
    parser.add_argument("--profiles", default="", metavar="LIST",
                        help="also emulate one standard-profile wearable of each, comma-separated, PROFILE or "
                             "PROFILE:MODALITY: " + "; ".join(f"{spec.name}: {spec.summary}" for spec in standard_profiles()))
    parser.add_argument("--seed", type=int, default=0, help="seeds the signals and the links' losses")
    parser.add_argument("--head", default=None, metavar="DIR",
                        help="serve this head (train-head --out): the wearables then play SIMULATED labelled sessions "
                             "of held-out simulated subjects, and the report scores the live predictions")
    parser.add_argument("--fallback", action="append", default=[], metavar="BRIDGE_DIR",
                        help="with --head: a bridge fitted for that head, standing in while the head's own wearable "
                             "is missing; each subject then also wears the bridge's modality (repeatable)")
    parser.add_argument("--switch-off", default=None, metavar="MODALITY@S",
                        help="switch the wearables carrying MODALITY off S seconds into the run (a battery dying), "
                             "e.g. ecg@20: with --fallback, the bridge takes over")
    parser.add_argument("--subjects", type=int, default=1, metavar="N",
                        help="with --head: simulated subjects, each wearing the head's wearables (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no live table")
    parser.add_argument("--sinks", default=None, metavar="FILE.toml",
                        help="add the [[sinks]] tables of this TOML file (same keys as gateway.toml) to the demo's "
                             "gateway, e.g. a JSONL folder or an MQTT broker over TLS")
    parser.add_argument("--record", default=None, metavar="DIR",
                        help="record every stream as the gateway receives it into the new folder DIR (crash-safe "
                             "segments; biomoe-edge embed replays it, recording export-edf exports it)")
    parser.add_argument("--embeddings", default=None, metavar="FILE.jsonl",
                        help="also write the live embeddings to FILE.jsonl (one JSON object per line, as the JSONL sink)")
    parser.add_argument("--lsl-markers", default=None, metavar="NAME",
                        help="with --record: record the markers of the LSL stream NAME (string samples)")
    parser.add_argument("--security", choices=("none", "encrypted", "bonded"), default="none",
                        help="link security of the emulated biomoe-edge boards, required by them and by the gateway alike "
                             "(default none; `biomoe-edge run` defaults to bonded): README, 'Security modes'")
    parser.add_argument("--impostor", action="store_true",
                        help="once the first wearable is connected, one more wearable advertises its name with "
                             "another identity, and the first drops its link for a second; the report lists what "
                             "was refused under refused_devices")




def demo_onnx_path(checkpoint=None, *, seed: int = 0, strict: bool = False, taps=()) -> pathlib.Path:
    """The cached fp32 ONNX export of the demo's model (``biomoe_edge.export.cache``; exported now if missing,
    which needs torch once). ``checkpoint=None``: random weights drawn from ``seed``. ``taps``: what the served
    bridges read, returned beside the embedding."""
    from biomoe_edge.export.cache import cached_onnx, cached_onnx_path

    path = cached_onnx_path(checkpoint, precision="fp32", seed=seed, taps=taps)
    if path.exists() and path.with_suffix(".json").exists():
        return path
    try:
        import torch  # noqa: F401 - only to say early and plainly what the export needs
    except ImportError as exc:
        raise RuntimeError(f"the demo's first run exports the model to ONNX, which needs PyTorch ({exc}): "
                           "pip install torch==2.13.0 'biomoe-edge[export]', or use --engine pytorch") from None
    from biomoe_edge.commands.export import load_model

    model = load_model(checkpoint, None if checkpoint else seed, strict=strict, log=log)
    return cached_onnx(checkpoint, precision="fp32", seed=seed, model=model, taps=taps)


def open_demo_engine(kind: str, checkpoint=None, *, max_batch: int = 16, seed: int = 0, strict: bool = False,
                     taps=()):
    """The demo's engine: ``checkpoint`` (a Tiny-BioMoE .pth), or random weights drawn from ``seed`` when it is
    None (the command only passes None for ``--random-weights``). ``taps``: feature taps the ONNX graph returns
    (served bridges read them; the PyTorch engine returns any)."""
    from biomoe_edge.runtime.engines import open_engine

    if kind == "pytorch":
        if checkpoint is None:
            return open_engine("pytorch", None, random_weights=True, max_batch=max_batch, seed=seed)
        return open_engine("pytorch", checkpoint, max_batch=max_batch, strict=strict)
    return open_engine("onnxruntime", demo_onnx_path(checkpoint, seed=seed, strict=strict, taps=taps),
                       max_batch=max_batch)


def parse_modalities(text: str) -> tuple[str, ...]:
    """``--modalities``: names as the model knows them; "ppg" is accepted for bvp (as ``inspect-signal`` does)."""
    from biomoe_edge.vocabulary import Modality

    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    return tuple(Modality.parse("bvp" if m == "ppg" else m).value for m in names)


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


def demo_config(names, *, modalities, representations, window_s, hop_s, max_batch, profile_devices=(), sinks=(),
                security="none", head=None, plan=None, fallback=()):
    """``profile_devices``: (name, profile, modalities) of standard-profile wearables beside the native ones;
    ``sinks``: ``SinkConfig``s added to the gateway (``load_demo_sinks``); ``security``: of the native ones.
    ``head``/``plan``: a head to serve and its simulated subjects (``demo_head.head_demo_plan``), whose wearables
    replace the native ones."""
    import dataclasses

    from biomoe_edge.firmware_bridge.profiles.registry import Profile
    from biomoe_edge.runtime.gateway_config import parse_config

    if head is not None:
        _, subject_devices, tables = plan
        return dataclasses.replace(parse_config({
            "windows": {"length_s": window_s, "hop_s": hop_s, "representations": list(representations)},
            "modalities": tables,
            "devices": [{"name": name, "profile": Profile.NATIVE.value, "modalities": list(mods), "security": security}
                        for worn in subject_devices.values() for name, mods in worn.items()]
                       + [{"name": name, "profile": profile, "modalities": list(mods)}
                          for name, profile, mods in profile_devices],
            "subjects": [{"name": subject, "devices": list(worn)} for subject, worn in subject_devices.items()],
            "heads": [{"path": str(head), **({"fallback": [str(b) for b in fallback]} if fallback else {})}],
            "engine": {"max_batch": max_batch, "deadline_ms": 100, "max_queue": 4 * max_batch},
            "transport": {"backoff_min_s": 0.2, "backoff_max_s": 2.0, "connect_timeout_s": 10.0},
        }), sinks=tuple(sinks))
    return dataclasses.replace(parse_config({
        "windows": {"length_s": window_s, "hop_s": hop_s, "representations": list(representations)},
        "devices": [{"name": name, "profile": Profile.NATIVE.value, "modalities": list(modalities),
                     "security": security} for name in names]
                   + [{"name": name, "profile": profile, "modalities": list(mods)} for name, profile, mods in profile_devices],
        "engine": {"max_batch": max_batch, "deadline_ms": 100, "max_queue": 4 * max_batch},
        "transport": {"backoff_min_s": 0.2, "backoff_max_s": 2.0, "connect_timeout_s": 10.0},
    }), sinks=tuple(sinks))


def prediction_report(gateway, predictions, sessions, origins) -> dict:
    """``predictions`` (count, per class, latency from the newest input sample's arrival, windows given up by
    reason) and ``live_accuracy`` (against the simulated labels) of a ``--head`` run."""
    import collections

    from biomoe_edge.commands.demo_head import live_accuracy
    from biomoe_edge.runtime.gateway import percentiles_ms

    classes = gateway.pipeline.fusion.states[0].head.classes
    return {
        "predictions": {
            "count": len(predictions),
            "per_class": dict(collections.Counter(p.predicted for p in predictions)),
            "via_bridge": sum(bool(p.via_bridge) for p in predictions),
            "latency_ms": percentiles_ms(p.latency_s for p in predictions),
            "heads": gateway.stats()["heads"],
        },
        "live_accuracy": live_accuracy(predictions, sessions, origins, classes),
    }


def build_report(stats: dict, entries: list[dict], *, duration_s: float, settings: dict, model: dict | None,
                 warnings: list[dict], engine: dict | None = None) -> dict:
    """The demo's JSON report, from one snapshot (``GatewayConsole.snapshot()`` after the gateway closed).

    ``embedding_dim``, ``embeddings``, ``latency_ms`` {p50, p95, p99} (rounded to 0.1 ms) and ``streams`` (each
    with ``STREAM_FIELDS`` and its ``embeddings``), then ``duration_s``, ``settings`` (every option of the run),
    ``model`` (identity: ``random_weights``, ``seed``, ``sha256``...), ``engine``, ``drop_reasons``,
    ``not_embedded`` and ``warnings``."""
    from biomoe_edge.runtime.console import gateway_summary

    summary = gateway_summary(stats, entries, duration_s=duration_s, model=model, engine=engine, warnings=warnings)
    head = {k: summary[k] for k in ("embedding_dim", "embeddings", "latency_ms", "streams", "duration_s")}
    return {**head, "settings": settings, **{k: v for k, v in summary.items() if k not in head}}


def settings_line(settings: dict) -> str:
    """The final screen's line of settings (the report's ``settings``, in words)."""
    weights = (f"checkpoint {settings['checkpoint']}" if settings["checkpoint"]
               else f"random weights (seed {settings['random_weights_seed']})")
    duration = "until Ctrl-C" if settings["duration_s"] is None else f"{settings['duration_s']:g} s"
    profiles = f", profiles {','.join(settings['profiles'])}" if settings["profiles"] else ""
    return (f"settings: wearables {settings['devices']}{profiles}, loss {settings['loss']:g}, modalities "
            f"{','.join(settings['modalities'])}, {','.join(settings['representations'])}, windows "
            f"{settings['window_s']:g} s every {settings['hop_s']:g} s, engine {settings['engine']} "
            f"(max batch {settings['max_batch']}), {weights}, seed {settings['seed']}, duration {duration}")


def print_final_screen(report: dict, *, out=None, report_path=None, notices=()) -> None:
    """The closing screen, drawn from the report itself: what the screen says, the JSON says."""
    from biomoe_edge.runtime.console import make_console, summary_view

    footer = [f"report written to {report_path}"] if report_path else []
    make_console(out).print(summary_view(report, title="biomoe-edge demo", settings_line=settings_line(
        report["settings"]), notices=notices, footer=footer))


async def run_demo(*, duration_s, devices: int, loss: float, engine, modalities=("bvp", "eda", "resp", "ecg"),
                   representations=("spectrogram_psd",), window_s: float = 10.0, hop_s: float = 1.0, seed: int = 0,
                   quiet: bool = False, out=None, result: dict | None = None, wearable_options: dict | None = None,
                   profiles=(), sinks=(), settings: dict | None = None, notices=(), record=None, embeddings=None,
                   lsl_markers: str | None = None, segment_s: float = 2.0, security: str = "none",
                   impostor: bool = False, head=None, head_subjects: int = 1, fallback=(), switch_off=None):
    """Run the demo; return ``(report, gateway, wearables)`` (the wearables' counters for checks).
    A cancellation (Ctrl-C under ``asyncio.run``) ends the run like ``duration_s`` does.

    ``result`` (a dict) receives the report too, so it survives a Ctrl-C that ends ``asyncio.run``.
    ``wearable_options``: more ``EmulatedWearable`` options (faults: garbage, disconnect_at, buffer_packets...).
    ``profiles``: (profile, modalities) pairs (``parse_profiles``): one standard-profile wearable each.
    ``sinks``: ``SinkConfig``s the gateway writes to as well (``--sinks FILE.toml``).
    ``settings``: more entries for the report's ``settings`` (the command's weights options); ``notices``: lines
    the live view keeps on screen. ``record``: a new folder to record the gateway's input into
    (``runtime.recording``; ``lsl_markers``: an LSL marker stream recorded too). ``embeddings``: a JSONL file of the
    live embedding records. ``security``: of the native wearables (their boards require it, the gateway runs at it);
    ``impostor``: see ``stage_impostor`` (appended last to the wearables). With either, the report's
    ``refused_devices`` lists the devices the gateway refused (name, address, reason, attempts). ``head``: a head
    folder to serve; the wearables are then ``head_subjects`` simulated subjects' (``demo_head``) instead of
    ``devices`` generic ones, and the report gains ``predictions`` and ``live_accuracy``. ``fallback``: bridge
    folders standing in for the head (``[[heads]] fallback``; the subjects wear their modality too);
    ``switch_off``: (modality, seconds): the wearables carrying it are switched off that far into the run."""
    import asyncio

    from biomoe_edge.firmware_bridge.emulation import VirtualBleNetwork
    from biomoe_edge.firmware_bridge.profiles.registry import profile_spec
    from biomoe_edge.identity import model_identity
    from biomoe_edge.runtime.console import GatewayConsole, model_line
    from biomoe_edge.runtime.gateway import Gateway
    from biomoe_edge.runtime.transport.backend import TransportBackend

    plan = None
    if head is not None:
        from biomoe_edge.commands import demo_head
        from biomoe_edge.runtime.heads import read_head_manifest

        from biomoe_edge.runtime.heads.bridge import read_bridge_manifest

        plan = demo_head.head_demo_plan(read_head_manifest(head), subjects=head_subjects, duration_s=duration_s,
                                        hop_s=hop_s, seed=seed,
                                        fallbacks=[read_bridge_manifest(b) for b in fallback])
        devices = 0
    names = [f"biomoe-demo-{i + 1}" for i in range(devices)]
    profile_devices = [(f"demo-{profile_spec(p).device_names.get(tuple(m), p)}-{i + 1}", p, tuple(m))
                       for i, (p, m) in enumerate(profiles)]
    max_batch = min(16, engine.max_batch)
    config = demo_config(names, modalities=modalities, representations=representations, window_s=window_s,
                         hop_s=hop_s, max_batch=max_batch, profile_devices=profile_devices, sinks=sinks,
                         security=security, head=head, plan=plan, fallback=fallback)
    if record is not None:
        config = with_recording(config, record, lsl_markers=lsl_markers, segment_s=segment_s)
    model = model_identity(engine.identity)
    run_settings = {"duration_s": duration_s, "devices": devices, "profiles": [p for _, p, _ in profile_devices],
                    "loss": loss, "modalities": list(modalities), "representations": list(representations),
                    "window_s": window_s, "hop_s": hop_s, "seed": seed, "engine": engine.identity.get("kind"),
                    "max_batch": max_batch, "sinks": [sink.kind for sink in sinks], "security": security,
                    "impostor": impostor, **(settings or {})}
    run_settings.setdefault("checkpoint", model["source"] if not model["random_weights"] else None)
    run_settings.setdefault("random_weights_seed", model["seed"])
    async with VirtualBleNetwork() as network:
        wearables = [await network.add_wearable(name, loss=loss, seed=seed * 1000 + i, modalities=tuple(modalities),
                                                security=security, **(wearable_options or {}))
                     for i, name in enumerate(names)]
        subject_wearables = {}  # subject -> {device: wearable} (--head)
        for session in plan[0] if plan else ():
            for name, mods in plan[1][session.subject].items():
                subject_wearables.setdefault(session.subject, {})[name] = await network.add_wearable(
                    name, loss=loss, seed=seed * 1000 + len(wearables), modalities=mods, security=security,
                    signals=session.recording(mods), **(wearable_options or {}))
                wearables.append(subject_wearables[session.subject][name])
        for i, (name, profile, mods) in enumerate(profile_devices):
            wearables.append(await network.add_wearable(
                name, profile=profile, modalities=mods, loss=loss,
                seed=seed * 1000 + devices + i, **(wearable_options or {})))
        backend = TransportBackend.bumble(await network.central())
        gateway = Gateway(config, engine=engine, backend=backend)
        predictions, origins = [], {}
        gateway.on_prediction(predictions.append)
        console = GatewayConsole(gateway, out=out, quiet=quiet, model_line=model_line(model, engine.identity),
                                 notices=notices)
        if embeddings is not None:
            from biomoe_edge.runtime.recording.live import EmbeddingsFile
            from biomoe_edge.runtime.sinks import GuardedSink

            gateway.sinks.append(GuardedSink(EmbeddingsFile(embeddings)))
        staging = switching = None
        try:
            with console:
                async with gateway:
                    if impostor:
                        staging = asyncio.ensure_future(stage_impostor(network, gateway, wearables, modalities,
                                                                       security, seed=seed * 1000 + 999))
                    if switch_off is not None:
                        carried = {name: tuple(modalities) for name in names}
                        carried.update({name: mods for worn in (plan[1].values() if plan else ()) for name, mods
                                        in worn.items()})
                        switching = asyncio.ensure_future(switch_wearables_off(wearables, carried, *switch_off))
                    try:
                        await console.run(duration_s)
                    except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels this task; stop cleanly, report
                        log.info("interrupted: stopping the wearables and the gateway")
                    finally:
                        for task in (staging, switching):
                            if task is not None:
                                task.cancel()
                                await asyncio.gather(task, return_exceptions=True)
                        # Where each subject's session started on each wearable (before stopping them), to score.
                        origins = {subject: {name: demo_head.session_origin(w) for name, w in worn.items()}
                                   for subject, worn in subject_wearables.items()} if plan else {}
                        # Wearables first: the gateway then takes every notification already sent before it stops.
                        for wearable in wearables:
                            await wearable.stop()
        finally:
            if gateway.pipeline is not None:
                # One snapshot, after the gateway closed: the final screen is drawn from this report.
                stats, entries = console.snapshot()
                report = build_report(stats, entries, duration_s=console.elapsed_s(), settings=run_settings,
                                      model=model, engine=dict(gateway.pipeline.engine_identity),
                                      warnings=console.warnings.items())
                if security != "none" or impostor:  # the refusals of a run with link security or an impostor
                    report["refused_devices"] = [{k: entry[k] for k in ("name", "address", "reason", "attempts")}
                                                 for entry in gateway.refused_devices()]
                if plan:
                    report.update(prediction_report(gateway, predictions, plan[0], origins))
                if result is not None:
                    result["report"], result["stats"] = report, stats
    return report, gateway, wearables


async def switch_wearables_off(wearables, carried: dict, modality: str, after_s: float) -> None:
    """``after_s`` seconds from now, switch off (stop for good, as a dead battery does) every wearable streaming
    ``modality`` (``carried``: name -> its modalities); the gateway finds them gone and, where a fallback bridge is
    configured, the bridge stands in."""
    import asyncio

    await asyncio.sleep(after_s)
    for wearable in [w for w in wearables if modality in carried.get(w.name, ())]:
        log.warning("switching %s off (%s), %g s into the run", wearable.name, modality, after_s)
        await wearable.stop()


def parse_switch_off(text: str) -> tuple[str, float]:
    """``--switch-off ecg@20`` -> ("ecg", 20.0); ValueError naming what is wrong."""
    modality, sep, seconds = text.partition("@")
    try:
        value = float(seconds)
    except ValueError:
        value = -1.0
    if not sep or value < 0:
        raise ValueError(f"--switch-off {text!r}: expected MODALITY@SECONDS, e.g. ecg@20")
    return parse_modalities(modality)[0], value


async def stage_impostor(network, gateway, wearables: list, modalities, security: str, *, seed: int) -> None:
    """The attack of issue 13: once the gateway has the first wearable, one more wearable advertises its name with
    another identity (and another firmware version, so another description), and the first drops its link for a
    second, so the gateway looks for it again while the impostor advertises. At ``bonded`` the impostor is refused
    before any connection; at ``none`` nothing tells it apart but its description. Appended to ``wearables``."""
    import asyncio

    genuine = wearables[0]
    connection = gateway._manager.connections[genuine.name]
    while connection.stats.connects == 0:
        await asyncio.sleep(0.05)
    impostor = await network.add_wearable(genuine.name, seed=seed, modalities=tuple(modalities), security=security,
                                          firmware_version="impostor-1.0")
    wearables.append(impostor)
    log.info("impostor advertising %r from %s (the genuine one is %s)", genuine.name, impostor.address, genuine.address)
    genuine.reconnect_delay_s = 1.0 * genuine.speed  # one second off the air
    await genuine.disconnect()


def with_recording(config, directory, *, lsl_markers=None, segment_s: float = 2.0):
    """``config`` plus a recording sink writing into ``directory`` itself (not one folder per run)."""
    import dataclasses

    from biomoe_edge.runtime.gateway_config import SinkConfig

    sink = SinkConfig("recording", {"directory": pathlib.Path(directory), "per_run": False, "segment_s": segment_s,
                                    "lsl_markers": lsl_markers})
    return dataclasses.replace(config, sinks=tuple(config.sinks) + (sink,))


def run(args) -> int:
    import asyncio

    from biomoe_edge.vocabulary import check_representations

    if args.devices < 1:
        raise ValueError(f"--devices must be at least 1, got {args.devices}")
    if not 0.0 <= args.loss <= 1.0:
        raise ValueError(f"--loss must be a fraction in [0, 1], got {args.loss}")
    if args.duration is not None and args.duration <= 0:
        raise ValueError(f"--duration must be positive, got {args.duration}")
    if args.head is not None and args.subjects < 1:
        raise ValueError(f"--subjects must be at least 1, got {args.subjects}")
    if args.fallback and args.head is None:
        raise ValueError("--fallback stands in for a head: give --head DIR too")
    switch_off = parse_switch_off(args.switch_off) if args.switch_off else None
    fallback_taps = ()
    if args.fallback:
        from biomoe_edge.runtime.heads.bridge import read_bridge_manifest

        fallback_taps = tuple(dict.fromkeys(read_bridge_manifest(b)["tap"] for b in args.fallback))
    if args.checkpoint is None and args.random_weights is None:
        raise ValueError(f"choose the weights: --checkpoint Tiny-BioMoE.pth (the published weights, 89 MB: "
                         f"{PUBLISHED_CHECKPOINT_URL}), or --random-weights (meaningless embeddings; the plumbing, "
                         "counters and timings are real, and every output says random weights)")
    modalities = parse_modalities(args.modalities)
    representations = check_representations([r.strip() for r in args.representations.split(",") if r.strip()])
    profiles = parse_profiles(args.profiles)
    sinks = load_demo_sinks(args.sinks) if args.sinks else ()
    seed = args.random_weights or 0
    if args.lsl_markers and not args.record:
        raise ValueError("--lsl-markers records markers into a recording: give --record DIR too")
    if args.record and (pathlib.Path(args.record) / "recording.json").exists():
        raise ValueError(f"--record {args.record}: already holds a recording; record into a new folder")
    notices = []
    if args.engine == "onnxruntime":
        from biomoe_edge.export.cache import cached_onnx_path

        cached = cached_onnx_path(args.checkpoint, precision="fp32", seed=seed, taps=fallback_taps)
        if not cached.exists():
            notices.append(f"first run: exported the model to ONNX, cached at {cached}")
    if args.record:
        notices.append(f"recording the gateway's input into {args.record}")
    engine = open_demo_engine(args.engine, args.checkpoint, seed=seed, strict=args.strict, taps=fallback_taps)
    result: dict = {}
    try:
        asyncio.run(run_demo(
            duration_s=args.duration, devices=args.devices, loss=args.loss, engine=engine, modalities=modalities,
            representations=representations, window_s=args.window, hop_s=args.hop, seed=args.seed, quiet=args.quiet,
            result=result, profiles=profiles, sinks=sinks, notices=notices, head=args.head, head_subjects=args.subjects,
            settings={"checkpoint": str(args.checkpoint) if args.checkpoint else None,
                      "random_weights_seed": None if args.checkpoint else seed, "strict": args.strict},
            record=args.record, embeddings=args.embeddings, lsl_markers=args.lsl_markers, security=args.security,
            impostor=args.impostor, fallback=tuple(args.fallback), switch_off=switch_off))
    except KeyboardInterrupt:  # Ctrl-C: the gateway closed cleanly; report what ran
        if "report" not in result:
            return 130
    finally:
        engine.close()
    report = result["report"]
    if args.report:
        pathlib.Path(args.report).write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    print_final_screen(report, report_path=args.report, notices=notices)
    if args.record:
        print(f"recorded into {args.record} (biomoe-edge embed {args.record} --out DATASET replays it)")
    if args.embeddings:
        print(f"live embeddings written to {args.embeddings}")
    for entry in report.get("refused_devices", ()):
        print(f"refused: {entry['name']} at {entry['address']}: {entry['reason']} ({entry['attempts']} times)")
    if "predictions" in report:
        print(predictions_line(report))
    return 0


def predictions_line(report: dict) -> str:
    """The ``--head`` run in a few lines: predictions, latency, windows given up and why, live accuracy."""
    p, score = report["predictions"], report["live_accuracy"]
    lat = p["latency_ms"]
    latency = "" if lat["p50"] is None else f", latency p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms"
    dropped = ", ".join(f"{reason} {n}" for h in p["heads"] for reason, n in sorted(h["windows_dropped"].items()))
    bridged = f" ({p['via_bridge']} through a fallback bridge)" if p.get("via_bridge") else ""
    lines = [f"{p['count']} predictions{bridged} {p['per_class']}{latency}; window times given up: "
             f"{dropped or 'none'}"]
    if score.get("windows_scored"):
        lines.append(f"live accuracy on {score['windows_scored']} scored windows: {score['accuracy']:.1%}"
                     + (f", balanced {score['balanced_accuracy']:.1%}" if "balanced_accuracy" in score else "")
                     + f" ({score['windows_not_scored']} not scored: class changes)")
    else:
        lines.append("live accuracy: no window scored yet (the run was shorter than a window, or no prediction)")
    lines.append(score["note"])
    return "\n".join(lines)
