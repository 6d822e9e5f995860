"""The gateway's TOML configuration, validated into dataclasses.

Every error is a :class:`ConfigError` (a ``ValueError``) whose message starts with the path of the
offending key, e.g. ``sinks[1].port: expected an integer, got "abc"``. Unknown keys are refused by name
(a typo must not silently fall back to a default). Relative paths are resolved against the file's folder.
See ``examples/gateway.toml`` for every key with its meaning.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import pathlib
import re
from dataclasses import dataclass, field

from biomoe_edge.config import TomlError, load_toml
from biomoe_edge.firmware_bridge.profiles.registry import NAMES as PROFILE_NAMES
from biomoe_edge.firmware_bridge.profiles.registry import Profile, profile_spec
from biomoe_edge.runtime.pipeline import ModalitySettings, PipelineSettings
from biomoe_edge.runtime.transport.allow_list import normalize_address
from biomoe_edge.runtime.transport.security import SECURITY_LEVELS, default_security, state_directory
from biomoe_edge.vocabulary import (MIN_RENDER_SAMPLES, REPRESENTATIONS, InputType, Modality, SecurityLevel, WindowSpec,
                                   model_rate_hz)

log = logging.getLogger(__name__)

#: Windows of a device whose measurements come about once a second, time-stamped on arrival (Heart Rate, PLX:
#: ``ProfileSpec.arrival_timed``) must hold a few measurements and hop by at least one.
ONCE_A_SECOND_MIN_WINDOW_S = 4.0
ONCE_A_SECOND_MIN_HOP_S = 1.0
ENGINE_KINDS = ("auto", "tensorrt", "onnxruntime", "pytorch")
PRECISIONS = ("fp32", "fp16", "int8")
SINK_KINDS = ("jsonl", "npz", "lsl", "mqtt", "recording")
#: Longest segment of a recording sink: what a crash may lose (docs/recordings.md).
MAX_RECORDING_SEGMENT_S = 60.0
#: Shortest: each segment is a file written, fsynced and renamed; 1e-9 s kept the writer thread busy.
MIN_RECORDING_SEGMENT_S = 0.1

# Physically meaningful ranges of the numbers a configuration holds (an out-of-range value is refused by name:
# a hop of a microsecond would run the event loop flat out, a size of 1e308 bytes overflows).
WINDOW_LENGTH_S = (0.5, 600.0)  # half a second .. ten minutes of signal
WINDOW_HOP_S = (0.05, 600.0)  # at most 20 windows a second per stream
DEADLINE_MS = (0.0, 1e9)  # 1e9: "only full batches" (benchmarks)
ENGINE_MAX_QUEUE = (1, 1 << 20)
CONNECT_TIMEOUT_S = (1.0, 600.0)
BACKOFF_S = (0.01, 3600.0)
FILE_MAX_MB = (0.01, 1 << 16)  # 10 kB .. 64 GB per file
FILE_MAX_AGE_S = (1.0, 7 * 86400.0)
FILE_FLUSH_S = (0.01, 600.0)
MQTT_MAX_QUEUE = (1, 1_000_000)
MQTT_KEEPALIVE_S = (5, 3600)
MQTT_CLOSE_TIMEOUT_S = (0.0, 600.0)
MQTT_OUTBOX_MAX_MB = (0.0, 1 << 20)  # 0: no outbox .. 1 TB
MQTT_OUTBOX_RATE = (1.0, 100_000.0)  # records a second of backlog after a reconnect
LSL_MAX_BUFFERED_S = (1, 3600)
#: File-name prefixes of file sinks: a plain name, never a path (``../../escaped`` would leave the directory).
PREFIX_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type, out of range, or unknown."""

    def __init__(self, key_path: str, message: str, *, source=None):
        self.key_path = key_path
        self.reason = message
        self.source = source
        text = f"{key_path}: {message}" if key_path else message
        super().__init__(f"{source}: {text}" if source is not None else text)


# -- dataclasses ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeviceConfig:
    """One allow-listed wearable: matched by ``address`` when given, else by advertised ``name``."""

    name: str | None = None
    address: str | None = None
    #: The wearable's profile (``firmware_bridge.profiles.registry``; its name is taken too).
    profile: Profile = Profile.NATIVE
    #: Modalities to use. Native devices: empty means every stream the device describes. Standard profiles:
    #: the modalities to start and window, resolved at load (empty gives the profile's default).
    modalities: tuple[str, ...] = ()
    #: "none", "encrypted" or "bonded" (``runtime.transport.security``): the device's own key, else
    #: ``[transport] security``, else the profile's default (bonded for native devices, none for standard profiles).
    security: SecurityLevel | None = None

    def __post_init__(self):
        object.__setattr__(self, "profile", Profile.parse(self.profile))
        object.__setattr__(self, "security", default_security(self.profile) if self.security is None
                           else SecurityLevel.parse(self.security))

    @property
    def label(self) -> str:
        return self.name or self.address or "?"


#: A modality's windows and representations: the pipeline's own settings type.
ModalityConfig = ModalitySettings


@dataclass(frozen=True)
class EngineConfig:
    kind: str = "auto"
    path: pathlib.Path | None = None
    precision: str = "fp32"
    max_batch: int = 16
    #: A partly filled batch runs once its oldest job has waited this long.
    deadline_s: float = 0.05
    #: Bound of the scheduler's queue of (window, representation) jobs; the oldest are dropped beyond it.
    max_queue: int = 256
    #: Where the PyTorch engine runs: "cpu", "cuda" or "cuda:N" (TensorRT and ONNX Runtime choose for themselves).
    device: str = "cpu"
    #: Seeded random weights instead of ``path`` (PyTorch): only when asked for; every record then says so.
    random_weights: bool = False


@dataclass(frozen=True)
class TransportConfig:
    adapter: str | None = None
    connect_timeout_s: float = 20.0
    backoff_min_s: float = 1.0
    backoff_max_s: float = 60.0
    #: The security level of devices that name none (None: each profile's default).
    security: SecurityLevel | None = None

    def __post_init__(self):
        if self.security is not None:
            object.__setattr__(self, "security", SecurityLevel.parse(self.security))
    #: Where the names pinned to bonded identities are kept (None: ``biomoe-edge run`` uses $STATE_DIRECTORY, else
    #: ~/.local/state/biomoe-edge; a Gateway built in code keeps them in memory).
    state_dir: pathlib.Path | None = None


@dataclass(frozen=True)
class WebConfig:
    """``[web]``: the operators' listener (``runtime.web``): ``/metrics``, ``/healthz`` and the live page."""

    host: str = "127.0.0.1"
    port: int = 8765
    #: A file holding the token (mode 0600 enforced); else the environment variable ``BIOMOE_WEB_TOKEN``. Required
    #: when ``host`` is not a loopback address.
    token_file: pathlib.Path | None = None
    tls_cert: pathlib.Path | None = None
    tls_key: pathlib.Path | None = None
    #: ``/healthz`` is 503 when no device has been connected for longer than this (seconds).
    no_device_s: float = 60.0
    #: ``/healthz`` is 503 when windows wait for the engine and no batch finished for this long (seconds).
    engine_stall_s: float = 30.0

    @property
    def listen(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str, key_path: str = "web.listen") -> tuple[str, int]:
    """``"HOST:PORT"`` (``"[::1]:8765"`` for IPv6) -> (host, port); a ConfigError names ``key_path`` otherwise."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([A-Za-z0-9.-]{1,253}):(\d{1,5})", str(text))
    if match is None:
        raise ConfigError(key_path, f"expected \"HOST:PORT\" (e.g. \"127.0.0.1:8765\"), got {_show(text)}")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise ConfigError(key_path, f"port must be 0..65535, got {port}")
    return host, port


@dataclass(frozen=True)
class SinkConfig:
    kind: str
    #: Keyword arguments of the sink's constructor, validated per kind.
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SubjectConfig:
    """One person and the wearables they wear (``[[subjects]]``): heads fuse these devices' windows, which the
    ingest cuts on one grid per subject so that they end at the same gateway times."""

    name: str
    #: Device labels (``DeviceConfig.label``: the name, else the address).
    devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class HeadConfig:
    """A task head to serve (``[[heads]]``): a folder written by ``biomoe-edge train-head``, or a bridge folder
    written by ``biomoe-edge bridge fit`` (``kind`` "bridge", told by its bridge.json; docs/bridge.md)."""

    path: pathlib.Path
    #: Windows of two inputs whose ends are closer than this are one window time (seconds).
    tolerance_s: float = 0.25
    #: How long (gateway seconds) a window time waits for its missing inputs before it is counted and dropped.
    deadline_s: float = 5.0
    #: Subjects the head serves (empty: all, including devices in no subject, each its own subject).
    subjects: tuple[str, ...] = ()
    #: "head" (head.json) or "bridge" (bridge.json: runs on the engine's taps of the new modality's windows; no
    #: fusion, so ``tolerance_s`` and ``deadline_s`` do not apply).
    kind: str = "head"
    #: Bridge folders fitted for this head, in order of preference: while the head's own input is missing past
    #: ``deadline_s``, the first whose input is present answers for it (``runtime.heads.fallback``).
    fallback: tuple[pathlib.Path, ...] = ()


@dataclass(frozen=True)
class GatewayConfig:
    devices: tuple[DeviceConfig, ...] = ()
    windows: ModalityConfig = field(default_factory=ModalityConfig)
    #: Per-modality overrides of ``windows``.
    modalities: dict = field(default_factory=dict)
    engine: EngineConfig = field(default_factory=EngineConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    sinks: tuple[SinkConfig, ...] = ()
    source: pathlib.Path | None = None
    subjects: tuple[SubjectConfig, ...] = ()
    heads: tuple[HeadConfig, ...] = ()
    #: ``[web]`` (None: no listener unless ``--web`` gives one).
    web: WebConfig | None = None

    def modality(self, modality: str) -> ModalityConfig:
        """Window and representations of ``modality`` (its override, else the defaults)."""
        return self.modalities.get(Modality.parse(modality).value, self.windows)

    def subject_of(self, device: str) -> str:
        """The subject wearing ``device`` (``[[subjects]]``), or the device itself when it is in none."""
        for subject in self.subjects:
            if device in subject.devices:
                return subject.name
        return device

    def pipeline_settings(self) -> PipelineSettings:
        """What the pipeline reads of this configuration."""
        subjects: dict[str, str] = {}
        for subject in self.subjects:
            for device in subject.devices:
                subjects.setdefault(device, subject.name)
        return PipelineSettings(max_batch=self.engine.max_batch, deadline_s=self.engine.deadline_s,
                                max_queue=self.engine.max_queue, windows=self.windows, modalities=dict(self.modalities),
                                subjects=subjects, heads=tuple(self.heads))


# -- typed readers that name the key --------------------------------------------------------------------

def _show(value) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = repr(value) if not isinstance(value, (dict, list)) else f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


class _Table:
    """A TOML table being read: remembers which keys were used, refuses the rest by name."""

    def __init__(self, data, path: str):
        if not isinstance(data, dict):
            raise ConfigError(path, f"expected a table, got {_type_name(data)} {_show(data)}")
        self.data, self.path, self.used = data, path, set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def raw(self, name: str, default=None):
        self.used.add(name)
        return self.data.get(name, default)

    def has(self, name: str) -> bool:
        return name in self.data

    def string(self, name, default=None, *, choices=None):
        value = self.raw(name, default)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ConfigError(self.key(name), f"expected a string, got {_show(value)}")
        if choices is not None and value not in choices:
            raise ConfigError(self.key(name), f"expected one of {', '.join(choices)}, got {_show(value)}")
        return value

    def integer(self, name, default=None, *, minimum=None, maximum=None):
        value = self.raw(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.key(name), f"expected an integer, got {_show(value)}")
        self._range(name, value, minimum, maximum)
        return value

    def number(self, name, default=None, *, minimum=None, maximum=None, positive=False):
        value = self.raw(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(self.key(name), f"expected a number, got {_show(value)}")
        if not math.isfinite(value):
            raise ConfigError(self.key(name), f"expected a finite number, got {_show(value)}")
        if positive and not value > 0:
            raise ConfigError(self.key(name), f"expected a positive number, got {_show(value)}")
        self._range(name, value, minimum, maximum)
        return float(value)

    def boolean(self, name, default=None):
        value = self.raw(name, default)
        if value is not None and not isinstance(value, bool):
            raise ConfigError(self.key(name), f"expected true or false, got {_show(value)}")
        return value

    def strings(self, name, default=()):
        value = self.raw(name, default)
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(self.key(name), f"expected an array of strings, got {_show(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(f"{self.key(name)}[{i}]", f"expected a string, got {_show(item)}")
        return tuple(value)

    def path_value(self, name, base: pathlib.Path | None):
        value = self.string(name)
        if value is None:
            return None
        path = pathlib.Path(value).expanduser()
        return path if path.is_absolute() or base is None else base / path

    def table(self, name) -> _Table:
        return _Table(self.raw(name, {}), self.key(name))

    def array_of_tables(self, name) -> list[_Table]:
        value = self.raw(name, [])
        if not isinstance(value, list):
            raise ConfigError(self.key(name), f"expected an array of tables ([[{name}]]), got {_show(value)}")
        return [_Table(item, f"{self.key(name)}[{i}]") for i, item in enumerate(value)]

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            allowed = ", ".join(sorted(self.used))
            raise ConfigError(self.key(unknown[0]), f"unknown key {_show(unknown[0])} (allowed here: {allowed})")

    def _range(self, name, value, minimum, maximum):
        if minimum is not None and value < minimum:
            raise ConfigError(self.key(name), f"expected at least {minimum}, got {_show(value)}")
        if maximum is not None and value > maximum:
            raise ConfigError(self.key(name), f"expected at most {maximum}, got {_show(value)}")


# -- sections ---------------------------------------------------------------------------------------------

def _modality_name(value: str, key_path: str) -> str:
    try:
        return Modality.parse(value).value
    except ValueError as exc:
        raise ConfigError(key_path, str(exc)) from None


def _representations(table: _Table, default) -> tuple[str, ...]:
    names = table.strings("representations", default)
    if not names:
        raise ConfigError(table.key("representations"), "expected at least one representation")
    for i, name in enumerate(names):
        if name not in REPRESENTATIONS:
            raise ConfigError(f"{table.key('representations')}[{i}]",
                              f"unknown representation {_show(name)}; expected one of: {', '.join(REPRESENTATIONS)}")
    return names


def _window_section(table: _Table, default: ModalityConfig) -> ModalityConfig:
    length = table.number("length_s", default.window.length_s, minimum=WINDOW_LENGTH_S[0], maximum=WINDOW_LENGTH_S[1])
    hop = table.number("hop_s", default.window.hop_s, minimum=WINDOW_HOP_S[0], maximum=WINDOW_HOP_S[1])
    if hop > length:
        raise ConfigError(table.key("hop_s"), f"hop_s ({hop}) must not exceed length_s ({length}): samples would be skipped")
    representations = _representations(table, default.representations)
    table.finish()
    return ModalityConfig(WindowSpec(length, hop), representations)


def _device(table: _Table, default_security: str | None = None) -> DeviceConfig:
    name = table.string("name")
    address = table.string("address")
    if name is None and address is None:
        raise ConfigError(table.path, "a device needs a name or an address (the allow-list never matches 'anything')")
    profile = table.string("profile", Profile.NATIVE.value, choices=PROFILE_NAMES)
    security = table.string("security", default_security, choices=SECURITY_LEVELS)
    if address is not None:
        try:
            address = normalize_address(address)
        except ValueError as exc:
            raise ConfigError(table.key("address"), str(exc)) from None
    modalities = tuple(_modality_name(m, f"{table.key('modalities')}[{i}]")
                       for i, m in enumerate(table.strings("modalities", ())))
    modalities = _profile_modalities(profile, modalities, table.key("modalities"))
    table.finish()
    return DeviceConfig(name=name, address=address, profile=profile, modalities=modalities, security=security)


def _profile_modalities(profile: str, modalities: tuple[str, ...], key_path: str) -> tuple[str, ...]:
    """The modalities a device of ``profile`` is asked for, checked against what the profile can deliver."""
    spec = profile_spec(profile)
    for i, modality in enumerate(modalities):
        reason = spec.refusal(modality)
        if reason is not None:
            raise ConfigError(f"{key_path}[{i}]", reason)
    try:
        return spec.modalities(modalities)
    except ValueError as exc:
        raise ConfigError(key_path, str(exc)) from None


def _check_renderable_windows(devices, windows: ModalityConfig, modalities: dict) -> None:
    """Every window a device's modality is cut into must hold enough samples at the model rate to be rendered
    (EDA at 8 Hz, SpO2 at 4 Hz: a short window would fail on every window, warm-up first)."""
    for modality in dict.fromkeys(m for device in devices for m in device.modalities):
        spec = modalities.get(modality, windows).window
        shortest_s = MIN_RENDER_SAMPLES / model_rate_hz(modality)
        if spec.length_s < shortest_s:
            section = f"modalities.{modality}" if modality in modalities else "windows"
            raise ConfigError(f"{section}.length_s", f"{modality} windows of {spec.length_s:g} s hold fewer than "
                              f"{MIN_RENDER_SAMPLES} samples at its model rate ({model_rate_hz(modality):g} Hz), too "
                              f"few to render; use at least {shortest_s:g} s")


def _check_once_a_second_windows(devices, windows: ModalityConfig, modalities: dict) -> None:
    """Windows of SpO2 from a pulse oximeter (one measurement a second) must hold a few of them and must not hop
    by less than one, or every window repeats the last (the key named is the one that set the value)."""
    for device in devices:
        if not profile_spec(device.profile).arrival_timed:
            continue
        for modality in device.modalities:
            spec = modalities.get(modality, windows).window
            section = f"modalities.{modality}" if modality in modalities else "windows"
            if spec.length_s < ONCE_A_SECOND_MIN_WINDOW_S:
                raise ConfigError(f"{section}.length_s", f"{modality} windows of {spec.length_s:g} s hold fewer than "
                                  f"{ONCE_A_SECOND_MIN_WINDOW_S:g} measurements of a {device.profile} device (about "
                                  f"one a second, {device.label}); use at least {ONCE_A_SECOND_MIN_WINDOW_S:g} s")
            if spec.hop_s < ONCE_A_SECOND_MIN_HOP_S:
                raise ConfigError(f"{section}.hop_s", f"a {device.profile} device ({device.label}) measures about once "
                                  f"a second: a hop of {spec.hop_s:g} s repeats windows; use at least "
                                  f"{ONCE_A_SECOND_MIN_HOP_S:g} s")


def _engine(table: _Table, base) -> EngineConfig:
    default = EngineConfig()
    config = EngineConfig(
        kind=table.string("kind", default.kind, choices=ENGINE_KINDS),
        path=table.path_value("path", base),
        precision=table.string("precision", default.precision, choices=PRECISIONS),
        max_batch=table.integer("max_batch", default.max_batch, minimum=1, maximum=1024),
        deadline_s=table.number("deadline_ms", default.deadline_s * 1e3, minimum=DEADLINE_MS[0],
                                maximum=DEADLINE_MS[1]) / 1e3,
        max_queue=table.integer("max_queue", default.max_queue, minimum=ENGINE_MAX_QUEUE[0],
                                maximum=ENGINE_MAX_QUEUE[1]),
        device=table.string("device", default.device),
        random_weights=table.boolean("random_weights", default.random_weights),
    )
    if config.random_weights and config.path is not None:
        raise ConfigError(table.key("random_weights"), "random weights and engine.path exclude each other: remove one")
    if config.random_weights and config.kind not in ("auto", "pytorch"):
        raise ConfigError(table.key("random_weights"), f"random weights run on the pytorch engine (kind \"pytorch\" "
                          f"or \"auto\"), not {config.kind!r}")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", config.device):
        raise ConfigError(table.key("device"), f'expected "cpu", "cuda" or "cuda:N", got {_show(config.device)}')
    if config.kind == "pytorch" and config.precision == "int8":
        raise ConfigError(table.key("precision"), "the PyTorch engine runs fp32 or fp16; int8 needs an INT8 ONNX "
                          "(kind onnxruntime) or TensorRT engine")
    table.finish()
    return config


def _transport(table: _Table, base=None) -> TransportConfig:
    default = TransportConfig()
    config = TransportConfig(
        security=table.string("security", choices=SECURITY_LEVELS),
        state_dir=table.path_value("state_dir", base),
        adapter=table.string("adapter"),
        connect_timeout_s=table.number("connect_timeout_s", default.connect_timeout_s, minimum=CONNECT_TIMEOUT_S[0],
                                       maximum=CONNECT_TIMEOUT_S[1]),
        backoff_min_s=table.number("backoff_min_s", default.backoff_min_s, minimum=BACKOFF_S[0], maximum=BACKOFF_S[1]),
        backoff_max_s=table.number("backoff_max_s", default.backoff_max_s, minimum=BACKOFF_S[0], maximum=BACKOFF_S[1]),
    )
    if config.backoff_max_s < config.backoff_min_s:
        raise ConfigError(table.key("backoff_max_s"), "must be at least backoff_min_s")
    table.finish()
    return config


def _directory_and_prefix(table: _Table, base, options: dict, named: str, directory_is: str, prefix: str) -> None:
    """``directory`` (required, relative to the config file) and ``prefix`` (a plain name for what is ``named``
    there: a file or a folder) of a sink that writes files."""
    directory = table.path_value("directory", base)
    if directory is None:
        raise ConfigError(table.key("directory"), f"missing: {directory_is}")
    options["directory"] = directory
    options["prefix"] = table.string("prefix", prefix)
    if not re.fullmatch(PREFIX_PATTERN, options["prefix"]):
        raise ConfigError(table.key("prefix"), f"expected a plain {named}-name prefix (letters, digits, '.', '_', "
                          f"'-'; at most 64; no path), got {_show(options['prefix'])}")


def _sink(table: _Table, base) -> SinkConfig:
    kind = table.string("kind", choices=SINK_KINDS)
    if kind is None:
        raise ConfigError(table.key("kind"), f"missing; expected one of {', '.join(SINK_KINDS)}")
    options: dict = {}
    if kind in ("jsonl", "npz"):
        _directory_and_prefix(table, base, options, "file", "the folder the files are written to", "embeddings")
        max_mb = table.number("max_mb", 64, minimum=FILE_MAX_MB[0], maximum=FILE_MAX_MB[1])
        options["max_bytes"] = int(max_mb * (1 << 20))
        options["max_age_s"] = table.number("max_age_s", 3600, minimum=FILE_MAX_AGE_S[0], maximum=FILE_MAX_AGE_S[1])
        options["flush_s"] = table.number("flush_s", 1.0, minimum=FILE_FLUSH_S[0], maximum=FILE_FLUSH_S[1])
        options["file_mode"] = _file_mode(table, "file_mode", 0o640)
    elif kind == "lsl":
        options["stream_prefix"] = table.string("stream_prefix", "biomoe")
        if not re.fullmatch(r"[\x21-\x7e]{1,64}", options["stream_prefix"]):
            raise ConfigError(table.key("stream_prefix"), f"expected 1 to 64 printable ASCII characters, got "
                              f"{_show(options['stream_prefix'])}")
        options["max_buffered_s"] = table.integer("max_buffered_s", 360, minimum=LSL_MAX_BUFFERED_S[0],
                                                  maximum=LSL_MAX_BUFFERED_S[1])
    elif kind == "recording":
        # One recording folder per gateway run, inside ``directory`` (runtime.recording, docs/recordings.md).
        _directory_and_prefix(table, base, options, "folder",
                              "the folder recordings are written to (one per run)", "recording")
        options["segment_s"] = table.number("segment_s", 2.0, minimum=MIN_RECORDING_SEGMENT_S,
                                            maximum=MAX_RECORDING_SEGMENT_S)
        options["lsl_markers"] = table.string("lsl_markers")
    elif kind == "mqtt":
        _mqtt_options(table, base, options)
    table.finish()
    return SinkConfig(kind, options)


def _check_sink_names(sinks: tuple[SinkConfig, ...]) -> None:
    """Two sinks of one kind writing the same prefix into the same folder would take each other's files (their
    recovery, their rotation), and two MQTT sinks sharing an outbox would each send, and delete on acknowledgement,
    the other's records: refused, naming both."""
    outboxes: dict[pathlib.Path, int] = {}
    for i, sink in enumerate(sinks):
        outbox = sink.options.get("outbox_dir") if sink.kind == "mqtt" else None
        if outbox is None:
            continue
        outbox = pathlib.Path(outbox).resolve()
        if outbox in outboxes:
            raise ConfigError(f"sinks[{i}].outbox_dir", f"sinks[{outboxes[outbox]}] already keeps its outbox in "
                              f"{outbox}; give each MQTT sink its own outbox_dir")
        outboxes[outbox] = i
    seen: dict[tuple, int] = {}
    for i, sink in enumerate(sinks):
        if "directory" not in sink.options or "prefix" not in sink.options:
            continue
        key = (sink.kind, pathlib.Path(sink.options["directory"]).resolve(), sink.options["prefix"])
        if key in seen:
            raise ConfigError(f"sinks[{i}].prefix", f"sinks[{seen[key]}] already writes {sink.kind} files with prefix "
                              f"{_show(key[2])} into {key[1]}; give each sink its own directory or prefix")
        seen[key] = i


def _file_mode(table: _Table, name: str, default: int) -> int:
    """Permissions of written files: an integer (TOML ``0o640``) or an octal string ("0640"); owner read+write
    required, nothing for others to write, no set-id bits."""
    value = table.raw(name, default)
    if isinstance(value, str) and re.fullmatch(r"0?o?[0-7]{3,4}", value):
        value = int(value.replace("o", ""), 8)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(table.key(name), f'expected a file mode such as 0o640 or "0640", got {_show(value)}')
    if value & ~0o777 or value & 0o600 != 0o600 or value & 0o002:
        raise ConfigError(table.key(name), f"expected a mode the owner can read and write and others cannot write "
                          f"(e.g. 0o640), got {oct(value) if value >= 0 else value}")
    return value


def _mqtt_options(table: _Table, base, options: dict) -> None:
    from biomoe_edge.runtime.sinks.topics import EMBEDDING_TOPIC_FIELDS, PREDICTION_TOPIC_FIELDS, check_topic_template

    options["host"] = table.string("host", "localhost")
    if not options["host"] or len(options["host"]) > 253 or any(c.isspace() or c == "\0" for c in options["host"]):
        raise ConfigError(table.key("host"), f"expected a host name or address, got {_show(options['host'])}")
    options["port"] = table.integer("port", 1883, minimum=1, maximum=65535)
    for key, default, fields in (("topic", "biomoe/{device}/{modality}/{representation}", EMBEDDING_TOPIC_FIELDS),
                                 ("prediction_topic", "biomoe/{subject}/prediction", PREDICTION_TOPIC_FIELDS),
                                 ("status_topic", "biomoe/status", ())):
        options[key] = table.string(key, default)
        try:
            check_topic_template(options[key], fields)
        except ValueError as exc:
            raise ConfigError(table.key(key), str(exc)) from None
    options["qos"] = table.integer("qos", 1, minimum=0, maximum=2)
    options["client_id"] = table.string("client_id", "")
    if len(options["client_id"]) > 128:
        raise ConfigError(table.key("client_id"), "longer than 128 characters")
    options["keepalive_s"] = table.integer("keepalive_s", 30, minimum=MQTT_KEEPALIVE_S[0], maximum=MQTT_KEEPALIVE_S[1])
    options["max_queue"] = table.integer("max_queue", 10000, minimum=MQTT_MAX_QUEUE[0], maximum=MQTT_MAX_QUEUE[1])
    options["close_timeout_s"] = table.number("close_timeout_s", 2.0, minimum=MQTT_CLOSE_TIMEOUT_S[0],
                                              maximum=MQTT_CLOSE_TIMEOUT_S[1])
    # Store and forward (runtime.sinks.outbox): `run` puts it under the state directory unless told otherwise;
    # outbox_max_mb = 0 turns it off.
    options["outbox_dir"] = table.path_value("outbox_dir", base)
    options["outbox_max_mb"] = table.number("outbox_max_mb", 256.0, minimum=MQTT_OUTBOX_MAX_MB[0],
                                            maximum=MQTT_OUTBOX_MAX_MB[1])
    options["outbox_rate"] = table.number("outbox_rate", 100.0, minimum=MQTT_OUTBOX_RATE[0],
                                          maximum=MQTT_OUTBOX_RATE[1])
    if options["outbox_dir"] is not None and options["outbox_max_mb"] > 0 and options["qos"] == 0:
        raise ConfigError(table.key("qos"), "an outbox (outbox_dir) needs qos 1 or 2: QoS 0 is never acknowledged")
    options["username"] = table.string("username")
    # The password: from a file (preferred: mode 0600/0640) or an environment variable; in the TOML only if
    # nothing else will do (the TOML is then a secret too).
    secrets = [k for k in ("password", "password_file", "password_env") if table.has(k)]
    if len(secrets) > 1:
        raise ConfigError(table.key(secrets[1]), f"give one of password, password_file, password_env, not "
                          f"{' and '.join(secrets)}")
    options["password"] = table.string("password")
    options["password_file"] = table.path_value("password_file", base)
    options["password_env"] = table.string("password_env")
    if options["password_env"] is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", options["password_env"]):
        raise ConfigError(table.key("password_env"), f"expected an environment variable name, got "
                          f"{_show(options['password_env'])}")
    if secrets and options["username"] is None:
        raise ConfigError(table.key(secrets[0]), "a password needs a username")
    options["tls_ca_file"] = table.path_value("tls_ca_file", base)
    options["tls_cert_file"] = table.path_value("tls_cert_file", base)
    options["tls_key_file"] = table.path_value("tls_key_file", base)
    options["tls_verify_hostname"] = table.boolean("tls_verify_hostname", True)
    if options["tls_ca_file"] is None:
        for key in ("tls_cert_file", "tls_key_file"):
            if options[key] is not None:
                raise ConfigError(table.key(key), "TLS needs tls_ca_file (the CA that signed the broker's certificate)")
        if table.has("tls_verify_hostname"):
            raise ConfigError(table.key("tls_verify_hostname"), "only meaningful with tls_ca_file")
    if options["tls_key_file"] is not None and options["tls_cert_file"] is None:
        raise ConfigError(table.key("tls_key_file"), "a client key needs its certificate (tls_cert_file)")


def _subjects(root: _Table, devices) -> tuple[SubjectConfig, ...]:
    """``[[subjects]]``: name and devices (by name or address of a ``[[devices]]`` entry; any names when the
    configuration lists no devices, as a program feeding the gateway itself does)."""
    labels = {}
    for device in devices:
        for ident in filter(None, (device.name, device.address)):
            labels[ident] = device.label
    subjects, worn_by, names = [], {}, set()
    for table in root.array_of_tables("subjects"):
        name = table.string("name")
        if not name:
            raise ConfigError(table.key("name"), "missing: every subject needs a name (it names its predictions)")
        if name in names:
            raise ConfigError(table.key("name"), f"subject {_show(name)} is listed twice")
        names.add(name)
        worn = []
        for i, ident in enumerate(table.strings("devices", ())):
            key = f"{table.key('devices')}[{i}]"
            if devices:
                try:
                    label = labels.get(ident) or labels.get(normalize_address(ident))
                except ValueError:
                    label = None
                if label is None:
                    raise ConfigError(key, f"{_show(ident)} is not a device of [[devices]] (by name or address); "
                                      f"listed: {', '.join(sorted(labels)) or 'none'}")
            else:
                label = ident
            if label in worn_by:
                raise ConfigError(key, f"device {_show(label)} is already worn by subject {_show(worn_by[label])}")
            worn_by[label] = name
            worn.append(label)
        if not worn:
            raise ConfigError(table.key("devices"), "expected at least one device")
        table.finish()
        subjects.append(SubjectConfig(name, tuple(worn)))
    return tuple(subjects)


def _check_head_fed(key_path: str, kind: str, path, inputs, head_subjects, devices, subjects) -> None:
    """A head or bridge whose input modalities none of the configured devices (of its subjects, when it names
    some) delivers could never predict: refused, naming it, its inputs and the devices. With no [[devices]] (an
    idle gateway, or one fed by ``Gateway.add_device``) there is nothing to check against."""
    if not devices:
        return
    if head_subjects:
        allowed = {d for s in subjects if s.name in head_subjects for d in s.devices}
        devices = [d for d in devices if d.label in allowed]
    delivered = {m for d in devices for m in d.modalities}
    # A native device asked for no modality in particular delivers whatever its description lists.
    anything = any(not d.modalities and profile_spec(d.profile).describes_itself for d in devices)
    unfed = [name for name in inputs if InputType.parse(name).modality.value not in delivered]
    if unfed and not anything:
        listed = "; ".join(f"{d.label}: {', '.join(d.modalities) or 'nothing the model takes'}" for d in devices)
        raise ConfigError(key_path, f"{kind} {path} needs {', '.join(inputs)}, but no configured device "
                          f"{'of its subjects ' if head_subjects else ''}delivers {', '.join(unfed)} "
                          f"(devices: {listed or 'none'}); it could never predict")


def _fallbacks(table: _Table, base, kind: str, head_path, head_manifest: dict, devices, windows: ModalityConfig,
               modalities: dict) -> tuple[pathlib.Path, ...]:
    """``fallback = "BRIDGE_DIR"`` or a list: bridges fitted for this head (bridge.json's ``head.sha256`` is this
    head's graph), whose input a device can feed and the windows are cut for."""
    from biomoe_edge.runtime.heads.bridge import read_bridge_manifest
    from biomoe_edge.runtime.heads.head import HeadError

    if not table.has("fallback"):
        return ()
    value = table.raw("fallback")
    names = table.strings("fallback") if not isinstance(value, str) else (value,)
    if kind != "head":
        raise ConfigError(table.key("fallback"), f"{head_path} is a bridge; only a head has fallback bridges")
    # A native device without listed modalities feeds whatever it describes: then any modality may come.
    fed = None if any(not d.modalities for d in devices) else {m for d in devices for m in d.modalities}
    paths = []
    for i, name in enumerate(names):
        key = f"{table.key('fallback')}" + (f"[{i}]" if not isinstance(value, str) else "")
        path = pathlib.Path(name).expanduser()
        path = path if path.is_absolute() or base is None else base / path
        try:
            bridge = read_bridge_manifest(path)
        except HeadError as exc:
            raise ConfigError(key, str(exc)) from None
        old_head = bridge.get("head") or {}
        if old_head.get("sha256") != head_manifest["sha256"]:
            raise ConfigError(key, f"bridge {path} was fitted for the head {old_head.get('path')} (head.onnx sha256 "
                              f"{str(old_head.get('sha256'))[:16]}...), not for {head_path} (sha256 "
                              f"{head_manifest['sha256'][:16]}...): it cannot stand in for it")
        (new_input,) = bridge["inputs"]
        input_type = InputType.parse(new_input)
        modality, representation = input_type.modality.value, input_type.representation.value
        if modality in {InputType.parse(name).modality.value for name in head_manifest["inputs"]}:
            raise ConfigError(key, f"bridge {path} reads {new_input}, a modality the head {head_path} reads itself: "
                              "a fallback stands in from another wearable's modality")
        if fed is not None and modality not in fed:
            raise ConfigError(key, f"bridge {path} reads {modality}, but no [[devices]] entry feeds {modality} "
                              f"(they feed {', '.join(sorted(fed)) or 'nothing'}): it could never stand in for "
                              f"{head_path}")
        spec = modalities.get(modality, windows)
        section = f"modalities.{modality}" if modality in modalities else "windows"
        if representation not in spec.representations:
            raise ConfigError(f"{section}.representations", f"fallback bridge {path} needs {new_input}, but "
                              f"{representation!r} is not among {modality}'s representations "
                              f"{list(spec.representations)}")
        trained = (bridge.get("data") or {}).get("window_s")
        if trained is not None and abs(float(trained) - spec.window.length_s) > 1e-6:
            raise ConfigError(f"{section}.length_s", f"fallback bridge {path} was fitted on {float(trained):g} s "
                              f"windows of {new_input}; the gateway cuts {spec.window.length_s:g} s ones")
        paths.append(path)
    return tuple(paths)


def _heads(root: _Table, base, windows: ModalityConfig, modalities: dict, subjects,
           devices=()) -> tuple[HeadConfig, ...]:
    """``[[heads]]``: each head folder's manifest is read now (not its graph), so that a head the configured
    windows cannot feed is refused with the key that must change."""
    from biomoe_edge.runtime.heads.bridge import is_bridge_folder, read_bridge_manifest
    from biomoe_edge.runtime.heads.head import HeadError, read_head_manifest

    default = HeadConfig(path=pathlib.Path("."))
    heads = []
    for table in root.array_of_tables("heads"):
        path = table.path_value("path", base)
        if path is None:
            raise ConfigError(table.key("path"), "missing: the head folder (biomoe-edge train-head --out DIR)")
        kind = "bridge" if is_bridge_folder(path) else "head"
        try:
            manifest = read_bridge_manifest(path) if kind == "bridge" else read_head_manifest(path)
        except HeadError as exc:
            raise ConfigError(table.key("path"), str(exc)) from None
        head = HeadConfig(
            path=path,
            tolerance_s=table.number("tolerance_s", default.tolerance_s, minimum=0),
            deadline_s=table.number("deadline_s", default.deadline_s, positive=True),
            subjects=table.strings("subjects", ()),
            kind=kind,
            fallback=_fallbacks(table, base, kind, path, manifest, devices, windows, modalities),
        )
        known = {s.name for s in subjects}
        for i, name in enumerate(head.subjects):
            if name not in known:
                raise ConfigError(f"{table.key('subjects')}[{i}]", f"{_show(name)} is not a [[subjects]] name; "
                                  f"listed: {', '.join(sorted(known)) or 'none'}")
        _check_head_fed(table.key("path"), kind, path, manifest["inputs"], head.subjects, devices, subjects)
        for name in manifest["inputs"]:
            input_type = InputType.parse(name)
            modality, representation = input_type.modality.value, input_type.representation.value
            spec = modalities.get(modality, windows)
            section = f"modalities.{modality}" if modality in modalities else "windows"
            if representation not in spec.representations:
                raise ConfigError(f"{section}.representations", f"head {path} needs {name}, but {representation!r} is "
                                  f"not among {modality}'s representations {list(spec.representations)}")
            if kind == "bridge":
                trained = (manifest.get("data") or {}).get("window_s")
            else:
                trained = (manifest.get("window_length_s") or {}).get(name)
            if trained is not None and abs(float(trained) - spec.window.length_s) > 1e-6:
                raise ConfigError(f"{section}.length_s", f"{kind} {path} was trained on {trained:g} s windows of "
                                  f"{name}; the gateway cuts {spec.window.length_s:g} s ones")
            if kind == "head" and head.tolerance_s >= spec.window.hop_s / 2:
                raise ConfigError(table.key("tolerance_s"), f"{head.tolerance_s:g} s would match neighbouring windows "
                                  f"of {modality} (hop {spec.window.hop_s:g} s): keep it below half the hop")
        table.finish()
        heads.append(head)
    return tuple(heads)


def _web(root: _Table, base) -> WebConfig | None:
    if not root.has("web"):
        return None
    table = root.table("web")
    default = WebConfig()
    host, port = parse_listen(table.string("listen", default.listen), table.key("listen"))
    web = WebConfig(host=host, port=port, token_file=table.path_value("token_file", base),
                    tls_cert=table.path_value("tls_cert", base), tls_key=table.path_value("tls_key", base),
                    no_device_s=table.number("no_device_s", default.no_device_s, positive=True, maximum=86400 * 365),
                    engine_stall_s=table.number("engine_stall_s", default.engine_stall_s, positive=True,
                                                maximum=86400 * 365))
    if (web.tls_cert is None) != (web.tls_key is None):
        raise ConfigError(table.key("tls_cert" if web.tls_cert is None else "tls_key"),
                          "give tls_cert and tls_key together")
    table.finish()
    return web


def parse_config(data: dict, *, base_dir=None, source=None) -> GatewayConfig:
    """Validate an already-parsed TOML document (a dict) into a :class:`GatewayConfig`."""
    base = pathlib.Path(base_dir) if base_dir is not None else None
    root = _Table(data, "")
    windows = _window_section(root.table("windows"), ModalityConfig())
    modalities_table = root.table("modalities")
    modalities = {}
    for name in list(modalities_table.data):
        modalities_table.used.add(name)
        modality = _modality_name(name, modalities_table.key(name))
        modalities[modality] = _window_section(modalities_table.table(name), windows)
    transport = _transport(root.table("transport"), base)
    devices = tuple(_device(t, transport.security) for t in root.array_of_tables("devices"))
    seen: dict[str, str] = {}
    for i, device in enumerate(devices):
        for ident in filter(None, (device.address, device.name)):
            if ident in seen:
                raise ConfigError(f"devices[{i}]", f"{_show(ident)} is already listed at {seen[ident]}")
            seen[ident] = f"devices[{i}]"
    _check_once_a_second_windows(devices, windows, modalities)
    _check_renderable_windows(devices, windows, modalities)
    subjects = _subjects(root, devices)
    sinks = tuple(_sink(t, base) for t in root.array_of_tables("sinks"))
    _check_sink_names(sinks)
    config = GatewayConfig(
        devices=devices,
        windows=windows,
        modalities=modalities,
        engine=_engine(root.table("engine"), base),
        transport=transport,
        sinks=sinks,
        source=pathlib.Path(source) if source is not None else None,
        subjects=subjects,
        heads=_heads(root, base, windows, modalities, subjects, devices),
        web=_web(root, base),
    )
    root.finish()
    return config


def secret_exposures(config: GatewayConfig) -> list[tuple[str, str]]:
    """``(key path, what is wrong)`` for each secret others can read or that travels in clear: an inline
    ``password`` in a TOML file readable by others, a ``password_file`` readable by others, a password sent to a
    broker without TLS."""
    found = []
    for i, sink in enumerate(config.sinks):
        options = sink.options
        if sink.kind != "mqtt":
            continue
        for key, path in (("password", config.source), ("password_file", options.get("password_file"))):
            if options.get(key) is None or path is None:
                continue
            try:
                mode = pathlib.Path(path).stat().st_mode
            except OSError:
                continue  # a missing password_file is an error where the sink reads it
            if mode & 0o004:
                found.append((f"sinks[{i}].{key}", f"the password is in {path}, which every user can read (mode "
                              f"{oct(mode & 0o777)}): chmod o-r {path}, or use password_file/password_env"))
        if any(options.get(k) is not None for k in ("password", "password_file", "password_env")) \
                and options.get("tls_ca_file") is None:
            found.append((f"sinks[{i}].tls_ca_file", f"a password is sent to {options.get('host')}:"
                          f"{options.get('port')} without TLS (anyone on the path reads it): set tls_ca_file"))
    return found


def load_config(path, *, strict: bool = False) -> GatewayConfig:
    """Read and validate a gateway TOML file; ``ConfigError`` names the file and the offending key. A secret others
    can read or that travels without TLS (``secret_exposures``) is logged as a warning, or refused with ``strict``."""
    path = pathlib.Path(path)
    try:
        data = load_toml(path)
    except TomlError as exc:
        raise ConfigError(exc.key or "", exc.reason if exc.line is None else f"line {exc.line}: {exc.reason}",
                          source=path) from None
    try:
        config = parse_config(data, base_dir=path.parent, source=path)
    except ConfigError as exc:
        raise ConfigError(exc.key_path, exc.reason, source=path) from None
    if config.transport.state_dir is None:  # a deployed gateway keeps its pins across restarts
        config = dataclasses.replace(config, transport=dataclasses.replace(config.transport, state_dir=state_directory()))
    for key_path, why in secret_exposures(config):
        if strict:
            raise ConfigError(key_path, why, source=path)
        log.warning("%s: %s: %s (refused with --strict)", path, key_path, why)
    return config


def build_sink(config: SinkConfig):
    """Create the sink a :class:`SinkConfig` describes (pylsl / paho imported only for their kind)."""
    from biomoe_edge.runtime import sinks

    factory = {"jsonl": sinks.JsonlSink, "npz": sinks.NpzSink}.get(config.kind)
    if factory is not None:
        options = dict(config.options)
        return factory(options.pop("directory"), **options)
    if config.kind == "lsl":
        return sinks.LslSink(**config.options)
    if config.kind == "recording":
        # It watches the pipeline, a layer above this one: the Gateway builds it (runtime.recording.sink).
        raise ConfigError("sinks", "a recording sink is built by the Gateway (runtime.recording.sink.build_recording_sink)")
    if config.kind == "mqtt":
        options = dict(config.options)
        return sinks.MqttSink(options.pop("host"), options.pop("port"), **options)
    raise ConfigError("sinks", f"unknown sink kind {config.kind!r}")
