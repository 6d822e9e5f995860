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
from dataclasses import dataclass

from biomoe_edge.commands.weights import PUBLISHED_CHECKPOINT_URL, add_weights_arguments
from biomoe_edge.export.cache import open_cached_engine as open_demo_engine

HELP = ("run emulated wearables (Bumble), the gateway and a live console view; --duration S for a bounded run; "
        "--checkpoint Tiny-BioMoE.pth or --random-weights")

log = logging.getLogger("biomoe_edge.demo")
#: Emulated wearables one demo runs (each is a Bumble device on one virtual controller, streaming in this process).
MAX_DEMO_DEVICES = 64

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
                        help="serve this head (train-head --out) or bridge (bridge fit --out): the wearables then play "
                             "SIMULATED labelled sessions of held-out simulated subjects, and the report scores the "
                             "live predictions")
    parser.add_argument("--fallback", action="append", default=[], metavar="BRIDGE_DIR",
                        help="with --head: a bridge fitted for that head, standing in while the head's own wearable "
                             "is missing; each subject then also wears the bridge's modality (repeatable)")
    parser.add_argument("--switch-off", default=None, metavar="MODALITY@S",
                        help="switch the wearables carrying MODALITY off S seconds into the run (a battery dying), "
                             "e.g. ecg@20: with --fallback, the bridge takes over")
    parser.add_argument("--subjects", type=int, default=None, metavar="N",
                        help="people wearing the wearables: without --head, the emulated biomoe-edge boards are shared "
                             "out among N subjects named subject-1, subject-2, ... (default: one subject per wearable; "
                             "their recordings and datasets keep these names); with --head, N simulated subjects, each "
                             "wearing the head's wearables (default 1)")
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
    parser.add_argument("--web", default=None, metavar="HOST:PORT",
                        help="serve the live page (/), Prometheus metrics (/metrics) and /healthz here, e.g. "
                             "127.0.0.1:8765 (off loopback a token is required: $BIOMOE_WEB_TOKEN)")




def parse_modalities(text: str) -> tuple[str, ...]:
    """``--modalities``: names as the model knows them; "ppg" is accepted for bvp (as ``inspect-signal`` does)."""
    from biomoe_edge.vocabulary import Modality

    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    return tuple(Modality.parse(m).value for m in names)


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


def demo_subjects(names, subjects: int | None = None) -> dict[str, list[str]]:
    """Subject name -> the native wearables that subject wears: ``names`` shared out in order among ``subjects``
    people (``subject-1``, ...; default one per wearable), so that a recording of the demo is a dataset of
    distinct subjects, as cross-validation by subject needs."""
    count = len(names) if subjects is None else subjects
    if not 1 <= count <= max(1, len(names)):
        raise ValueError(f"--subjects must be between 1 and the number of wearables ({len(names)}), got {count}")
    n = len(names)
    return {f"subject-{i + 1}": list(names[i * n // count:(i + 1) * n // count]) for i in range(count)}


def demo_config(names, *, modalities, representations, window_s, hop_s, max_batch, profile_devices=(), sinks=(),
                security="none", head=None, plan=None, subjects: int | None = None, fallback=()):
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
        "subjects": [{"name": subject, "devices": worn} for subject, worn in demo_subjects(names, subjects).items()],
        "engine": {"max_batch": max_batch, "deadline_ms": 100, "max_queue": 4 * max_batch},
        "transport": {"backoff_min_s": 0.2, "backoff_max_s": 2.0, "connect_timeout_s": 10.0},
    }), sinks=tuple(sinks))


def prediction_report(gateway, predictions, sessions, origins) -> dict:
    """``predictions`` (count, per class, latency from the newest input sample's arrival, windows given up by
    reason) and ``live_accuracy`` (against the simulated labels) of a ``--head`` run."""
    import collections

    from biomoe_edge.commands.demo_head import live_accuracy
    from biomoe_edge.timing import percentiles_ms

    classes = gateway.pipeline.served_classes()
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


@dataclass(frozen=True)
class DemoSettings:
    """What a demo run does (``run_demo``); the command line fills it from its options."""

    duration_s: float | None
    #: Generic native wearables (none with ``head``: the head's simulated subjects wear theirs).
    devices: int = 1
    #: Fraction of notifications each link loses.
    loss: float = 0.0
    modalities: tuple = ("bvp", "eda", "resp", "ecg")
    representations: tuple = ("spectrogram_psd",)
    window_s: float = 10.0
    hop_s: float = 1.0
    seed: int = 0
    #: No live table.
    quiet: bool = False
    #: More ``EmulatedWearable`` options (faults: garbage, disconnect_at, buffer_packets...).
    wearable_options: dict | None = None
    #: (profile, modalities) pairs (``parse_profiles``): one standard-profile wearable each.
    profiles: tuple = ()
    #: ``SinkConfig``s the gateway writes to as well (``--sinks FILE.toml``).
    sinks: tuple = ()
    #: More entries for the report's ``settings`` (the command's weights options).
    extra_settings: dict | None = None
    #: Lines the live view keeps on screen.
    notices: tuple = ()
    #: A new folder to record the gateway's input into (``runtime.recording``); ``lsl_markers``: an LSL marker
    #: stream recorded too; ``segment_s``: the recording's segment length.
    record: str | None = None
    lsl_markers: str | None = None
    segment_s: float = 2.0
    #: A JSONL file of the live embedding records.
    embeddings: str | None = None
    #: Of the native wearables (their boards require it, the gateway runs at it).
    security: str = "none"
    #: See ``stage_impostor`` (appended last to the wearables). With ``security`` other than none or an impostor,
    #: the report's ``refused_devices`` lists the devices the gateway refused (name, address, reason, attempts).
    impostor: bool = False
    #: A head or bridge folder to serve; the wearables are then ``head_subjects`` simulated subjects'
    #: (``demo_head``) instead of ``devices`` generic ones, and the report gains ``predictions`` and
    #: ``live_accuracy``.
    head: str | None = None
    head_subjects: int = 1
    #: Without ``head``: how many people wear the generic wearables (``demo_subjects``; None: one each).
    subjects: int | None = None
    #: A ``WebConfig`` (``--web``): the page, /metrics and /healthz are served while the gateway runs
    #: (``result["web_url"]``).
    web: object = None
    #: Bridge folders standing in for ``head`` while its own input is missing (``[[heads]] fallback``); the
    #: simulated subjects wear their modalities too.
    fallback: tuple = ()
    #: (modality, seconds): the wearables carrying that modality are switched off that far into the run
    #: (``parse_switch_off``; a battery dying).
    switch_off: tuple | None = None


async def run_demo(settings: DemoSettings | None = None, *, engine, out=None, result: dict | None = None,
                   **fields):
    """Run the demo of ``settings`` (a :class:`DemoSettings`, or its fields as keywords) on ``engine``; return
    ``(report, gateway, wearables)`` (the wearables' counters for checks). A cancellation (Ctrl-C under
    ``asyncio.run``) ends the run like ``duration_s`` does. ``out``: the live view's stream. ``result`` (a dict)
    receives the report too, so it survives a Ctrl-C that ends ``asyncio.run``."""
    s = settings if settings is not None else DemoSettings(**fields)
    import asyncio

    from biomoe_edge.firmware_bridge.emulation import VirtualBleNetwork
    from biomoe_edge.firmware_bridge.profiles.registry import profile_spec
    from biomoe_edge.identity import model_identity
    from biomoe_edge.runtime.console import GatewayConsole, model_line
    from biomoe_edge.runtime.gateway import Gateway
    from biomoe_edge.runtime.transport.backend import TransportBackend

    devices = 0 if s.head is not None else s.devices
    plan = None
    if s.head is not None:
        from biomoe_edge.commands import demo_head
        from biomoe_edge.runtime.heads.bridge import read_bridge_manifest
        from biomoe_edge.runtime.heads.serving import read_served_folder_manifest

        plan = demo_head.head_demo_plan(read_served_folder_manifest(s.head), subjects=s.head_subjects,
                                        duration_s=s.duration_s, hop_s=s.hop_s, seed=s.seed,
                                        fallbacks=[read_bridge_manifest(b) for b in s.fallback])
    names = [f"biomoe-demo-{i + 1}" for i in range(devices)]
    profile_devices = [(f"demo-{profile_spec(p).device_names.get(tuple(m), p)}-{i + 1}", p, tuple(m))
                       for i, (p, m) in enumerate(s.profiles)]
    max_batch = min(16, engine.max_batch)
    config = demo_config(names, modalities=s.modalities, representations=s.representations, window_s=s.window_s,
                         hop_s=s.hop_s, max_batch=max_batch, profile_devices=profile_devices, sinks=s.sinks,
                         security=s.security, head=s.head, plan=plan, subjects=s.subjects, fallback=s.fallback)
    if s.record is not None:
        config = with_recording(config, s.record, lsl_markers=s.lsl_markers, segment_s=s.segment_s)
    model = model_identity(engine.identity)
    worn = sum(len(w) for w in plan[1].values()) if plan else devices  # --head: the simulated subjects' wearables
    run_settings = {"duration_s": s.duration_s, "devices": worn, "profiles": [p for _, p, _ in profile_devices],
                    "loss": s.loss, "modalities": list(s.modalities), "representations": list(s.representations),
                    "window_s": s.window_s, "hop_s": s.hop_s, "seed": s.seed, "engine": engine.identity.get("kind"),
                    "max_batch": max_batch, "sinks": [sink.kind for sink in s.sinks], "security": s.security,
                    "impostor": s.impostor, **(s.extra_settings or {})}
    if plan:  # --head: the head's modalities, representations and window length, not the options' defaults
        tables = plan[2]
        lengths = {float(t.get("length_s", s.window_s)) for t in tables.values()}
        run_settings.update(modalities=list(tables), representations=list(dict.fromkeys(
            r for t in tables.values() for r in t["representations"])),
            window_s=lengths.pop() if len(lengths) == 1 else s.window_s)
    run_settings.setdefault("checkpoint", model["source"] if not model["random_weights"] else None)
    run_settings.setdefault("random_weights_seed", model["seed"])
    async with VirtualBleNetwork() as network:
        wearables = [await network.add_wearable(name, loss=s.loss, seed=s.seed * 1000 + i, modalities=tuple(s.modalities),
                                                security=s.security, **(s.wearable_options or {}))
                     for i, name in enumerate(names)]
        subject_wearables = {}  # subject -> {device: wearable} (--head)
        for session in plan[0] if plan else ():
            for name, mods in plan[1][session.subject].items():
                subject_wearables.setdefault(session.subject, {})[name] = await network.add_wearable(
                    name, loss=s.loss, seed=s.seed * 1000 + len(wearables), modalities=mods, security=s.security,
                    signals=session.recording(mods), **(s.wearable_options or {}))
                wearables.append(subject_wearables[session.subject][name])
        for i, (name, profile, mods) in enumerate(profile_devices):
            wearables.append(await network.add_wearable(
                name, profile=profile, modalities=mods, loss=s.loss,
                seed=s.seed * 1000 + devices + i, **(s.wearable_options or {})))
        backend = TransportBackend.bumble(await network.central())
        gateway = Gateway(config, engine=engine, backend=backend)
        predictions, origins, timeline = [], {}, []
        gateway.on_prediction(predictions.append)
        console = GatewayConsole(gateway, out=out, quiet=s.quiet, model_line=model_line(model, engine.identity),
                                 notices=s.notices)
        if s.embeddings is not None:
            from biomoe_edge.runtime.recording.live import EmbeddingsFile
            from biomoe_edge.runtime.sinks import GuardedSink

            # Isolated like the configured sinks: a full disk fails this file, not the demo.
            gateway.sinks.append(GuardedSink.start(lambda: EmbeddingsFile(s.embeddings), kind=EmbeddingsFile.name,
                                                   path=str(s.embeddings)))
        staging = switching = None
        try:
            with console:
                async with gateway, serve_web(gateway, s.web, console) as server:
                    if result is not None and server is not None:
                        result["web_url"] = server.url
                    if s.impostor:
                        staging = asyncio.ensure_future(stage_impostor(network, gateway, wearables, s.modalities,
                                                                       s.security, seed=s.seed * 1000 + 999))
                    if s.switch_off is not None:
                        carried = {name: tuple(s.modalities) for name in names}
                        carried.update({name: mods for worn in (plan[1].values() if plan else ()) for name, mods
                                        in worn.items()})
                        switching = asyncio.ensure_future(switch_wearables_off(wearables, carried, *s.switch_off))
                    try:
                        await console.run(s.duration_s, on_tick=lambda: timeline.append(timeline_point(console)))
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
                if s.security != "none" or s.impostor:  # the refusals of a run with link security or an impostor
                    report["refused_devices"] = [{k: entry[k] for k in ("name", "address", "reason", "attempts")}
                                                 for entry in gateway.refused_devices()]
                if plan:
                    report.update(prediction_report(gateway, predictions, plan[0], origins))
                report["timeline"] = timeline
                if result is not None:
                    result["report"], result["stats"] = report, stats
    return report, gateway, wearables


def timeline_point(console) -> dict:
    """One point of the report's ``timeline`` (each console tick): seconds since the start, embeddings so far,
    packets lost and samples dropped so far, and the latency percentiles of the recent embeddings."""
    stats, entries = console.snapshot()
    return {"t_s": round(console.elapsed_s(), 2), "embeddings": int(stats["embeddings"]),
            "packets_lost": sum(int(e["packets_lost"]) for e in entries),
            "samples_dropped": sum(int(n) for e in entries for n in e["samples_dropped"].values()),
            "latency_p50_ms": stats["latency_ms"]["p50"], "latency_p95_ms": stats["latency_ms"]["p95"]}


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
    """The impostor attack: once the gateway has the first wearable, one more wearable advertises its name with
    another identity (and another firmware version, so another description), and the first drops its link for a
    second, so the gateway looks for it again while the impostor advertises. At ``bonded`` the impostor is refused
    before any connection; at ``none`` nothing tells it apart but its description. Appended to ``wearables``."""
    import asyncio

    genuine = wearables[0]
    connection = gateway.connection(genuine.name)
    while connection.stats.connects == 0:
        await asyncio.sleep(0.05)
    impostor = await network.add_wearable(genuine.name, seed=seed, modalities=tuple(modalities), security=security,
                                          firmware_version="impostor-1.0")
    wearables.append(impostor)
    log.info("impostor advertising %r from %s (the genuine one is %s)", genuine.name, impostor.address, genuine.address)
    genuine.reconnect_delay_s = 1.0 * genuine.speed  # one second off the air
    await genuine.disconnect()


def serve_web(gateway, web, console):
    """The web listener (``runtime.web.server``) while the gateway runs, or nothing when ``web`` is None."""
    import contextlib

    if web is None:
        return contextlib.nullcontext()
    from biomoe_edge.runtime.web.server import WebServer

    return WebServer(gateway, web, warnings=console.warnings.items, model_line=console.model_line)


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

    if not 1 <= args.devices <= MAX_DEMO_DEVICES:
        raise ValueError(f"--devices must be from 1 to {MAX_DEMO_DEVICES} (emulated wearables on one virtual "
                         f"controller), got {args.devices}")
    if not 0.0 <= args.loss <= 1.0:
        raise ValueError(f"--loss must be a fraction in [0, 1], got {args.loss}")
    if args.duration is not None and args.duration <= 0:
        raise ValueError(f"--duration must be positive, got {args.duration}")
    if args.subjects is not None and args.subjects < 1:
        raise ValueError(f"--subjects must be at least 1, got {args.subjects}")
    if args.head is None and args.subjects is not None and args.subjects > args.devices:
        raise ValueError(f"--subjects {args.subjects} is more than the --devices {args.devices} wearables to share out")
    if args.fallback and args.head is None:
        raise ValueError("--fallback stands in for a head: give --head DIR too")
    switch_off = parse_switch_off(args.switch_off) if args.switch_off else None
    # The taps the served bridges read (a bridge given as --head, and the fallbacks): the engine returns them.
    bridge_taps = ()
    if args.head is not None:
        from biomoe_edge.runtime.heads.bridge import read_bridge_manifest
        from biomoe_edge.runtime.heads.serving import read_served_folder_manifest

        served = [read_served_folder_manifest(args.head)] + [read_bridge_manifest(b) for b in args.fallback]
        bridge_taps = tuple(dict.fromkeys(m["tap"] for m in served if m["kind"] == "bridge"))
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
    web = None
    if args.web:
        from biomoe_edge.runtime.gateway_config import WebConfig, parse_listen

        host, port = parse_listen(args.web, "--web")
        web = WebConfig(host=host, port=port)
        notices.append(f"web page, /metrics and /healthz at http://{args.web}/")
    if args.engine == "onnxruntime":
        from biomoe_edge.export.cache import cached_onnx_path

        cached = cached_onnx_path(args.checkpoint, precision="fp32", seed=seed, taps=bridge_taps)
        if not cached.exists():
            notices.append(f"first run: exported the model to ONNX, cached at {cached}")
    if args.record:
        notices.append(f"recording the gateway's input into {args.record}")
    engine = open_demo_engine(args.engine, args.checkpoint, seed=seed, strict=args.strict, taps=bridge_taps)
    result: dict = {}
    try:
        asyncio.run(run_demo(DemoSettings(
            duration_s=args.duration, devices=args.devices, loss=args.loss, modalities=modalities,
            representations=representations, window_s=args.window, hop_s=args.hop, seed=args.seed, quiet=args.quiet,
            profiles=tuple(profiles), sinks=tuple(sinks), notices=tuple(notices), head=args.head,
            head_subjects=args.subjects or 1, subjects=None if args.head else args.subjects,
            extra_settings={"checkpoint": str(args.checkpoint) if args.checkpoint else None,
                            "random_weights_seed": None if args.checkpoint else seed, "strict": args.strict},
            record=args.record, embeddings=args.embeddings, lsl_markers=args.lsl_markers, security=args.security,
            impostor=args.impostor, web=web, fallback=tuple(args.fallback), switch_off=switch_off), engine=engine,
            result=result))
    except KeyboardInterrupt:  # Ctrl-C: the gateway closed cleanly; report what ran
        if "report" not in result:
            return 130
    finally:
        engine.close()
    report = result["report"]
    if args.report:
        pathlib.Path(args.report).write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
        try:
            from biomoe_edge.commands.demo_plot import write_timeline_png

            notices.append(f"latency and drops over time drawn in "
                           f"{write_timeline_png(report, pathlib.Path(args.report).with_suffix('.png'))}")
        except ImportError as exc:  # matplotlib: the viz extra
            notices.append(f"no timeline picture: {exc} (pip install 'biomoe-edge[viz]')")
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


#: Why a live prediction of ``demo --head`` was not scored, in words.
NOT_SCORED_WORDS = {"class_changes": "window spans a class change",
                    "not_a_head_class": "simulated class not the head's"}


def predictions_line(report: dict) -> str:
    """The ``--head`` run in a few lines: predictions, latency, windows given up and why, live accuracy."""
    p, score = report["predictions"], report["live_accuracy"]
    lat = p["latency_ms"]
    latency = "" if lat["p50"] is None else f", latency p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms"
    dropped = ", ".join(f"{reason} {n}" for h in p["heads"] for reason, n in sorted(h["windows_dropped"].items()))
    bridged = f" ({p['via_bridge']} through a fallback bridge)" if p.get("via_bridge") else ""
    lines = [f"{p['count']} predictions{bridged} {p['per_class']}{latency}; window times given up: "
             f"{dropped or 'none'}"]
    reasons = score.get("not_scored_by_reason", {})
    why = ", ".join(f"{NOT_SCORED_WORDS.get(reason, reason)} {n}" for reason, n in sorted(reasons.items()))
    if score.get("windows_scored"):
        lines.append(f"live accuracy on {score['windows_scored']} scored windows: {score['accuracy']:.1%}"
                     + (f", balanced {score['balanced_accuracy']:.1%}" if "balanced_accuracy" in score else "")
                     + f" ({score['windows_not_scored']} not scored: {why or 'none'})")
    elif not p["count"]:
        lines.append("live accuracy: no window scored (no prediction yet: the run was shorter than a window)")
    else:
        lines.append(f"live accuracy: no window scored ({why})")
    if reasons.get("not_a_head_class"):
        lines.append(f"the simulated task's classes {score['simulated_classes_not_in_head']} are not among the head's "
                     f"{score['head_classes']}: the demo can score only a head trained on the simulated task "
                     "(examples/simulated_heads.py); the predictions themselves are real")
    lines.append(score["note"])
    return "\n".join(lines)
