"""Jetson power and clocks: nvpmodel modes by name, jetson_clocks, tegrastats parsing and energy sampling.

Standard library only, so it runs on a bare board install (``benchmarks/latency.py`` uses the sampler there;
the gateway itself does not import it):

- :func:`parse_tegrastats_line` turns one line of ``tegrastats`` output into a :class:`TegraStats`. It reads the
  formats of L4T r32 (``VDD_IN 3177/3177``), r35/r36 (``VDD_IN 4824mW/4824mW``) and r38 (Thor) alike.
- :class:`TegrastatsSampler` runs ``tegrastats --interval N`` in the background, timestamps every line with
  ``time.monotonic()`` as it arrives, and integrates module power over any span (:meth:`energy_j`).
- :func:`energy_per_embedding_j` divides that energy by the number of embeddings produced in the span.
- nvpmodel modes are looked up by NAME in ``/etc/nvpmodel.conf`` (IDs differ between modules and releases:
  MAXN is ID 0 on AGX Orin, MAXN_SUPER is ID 2 on Orin Nano Super), never by a hard-coded number.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import threading
import time

__all__ = [
    "CpuCore",
    "RailPower",
    "TegraStats",
    "parse_tegrastats_line",
    "total_power_mw",
    "integrate_energy_j",
    "energy_per_embedding_j",
    "TegrastatsSampler",
    "NvpModel",
    "parse_nvpmodel_conf",
    "parse_nvpmodel_query",
    "nvpmodel_query",
    "nvpmodel_mode_id",
    "nvpmodel_set_command",
    "nvpmodel_set",
    "jetson_clocks",
]

NVPMODEL_CONF = "/etc/nvpmodel.conf"

#: Rails that measure the whole module input; when one is present it *is* the total.
#: VDD_IN: Orin Nano / Orin NX / Xavier NX / TX2; POM_5V_IN: the original Jetson Nano.
TOTAL_INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
#: Rails never added into a sum: unconnected INA3221 channels; AGX Orin's DRAM rail, which is fed from
#: VIN_SYS_5V0 and would be counted twice; Thor's VIN, the carrier board's input, which contains the module rails.
NOT_SUMMED_RAILS = frozenset({"NC", "VDDQ_VDD2_1V8AO", "VIN"})


# --------------------------------------------------------------------------------------------- tegrastats


@dataclasses.dataclass(frozen=True)
class CpuCore:
    """One core in ``CPU [..]``: load in percent and frequency in MHz; ``online`` False for ``off``."""

    online: bool
    load_pct: int | None = None
    freq_mhz: int | None = None


@dataclasses.dataclass(frozen=True)
class RailPower:
    """One power rail: the instantaneous reading and tegrastats' running average since it started, in mW."""

    current_mw: float
    average_mw: float


@dataclasses.dataclass(frozen=True)
class TegraStats:
    """One parsed tegrastats line. Fields tegrastats did not print are None / empty."""

    timestamp: str | None
    ram_used_mb: int | None
    ram_total_mb: int | None
    swap_used_mb: int | None
    swap_total_mb: int | None
    cpu: tuple[CpuCore, ...]
    gr3d_pct: int | None
    gr3d_freq_mhz: tuple[int, ...]
    temperatures_c: dict[str, float]
    rails: dict[str, RailPower]

    def total_power_mw(self) -> float:
        """Module power in mW: see :func:`total_power_mw`."""
        return total_power_mw(self.rails)


_TIMESTAMP = re.compile(r"^(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB\b")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB\b")
_CPU = re.compile(r"\bCPU \[([^\]]*)\](?:@(\d+))?")
_CORE = re.compile(r"^(\d+)%(?:@(\d+))?$")
# GR3D_FREQ 63%@[621] (r36), 0%@[0,0] (AGX Orin: two GPCs), @[0,0,0] (Thor), 0%@114 (r32), 45% (no freq)
_GR3D = re.compile(r"\bGR3D_FREQ (?:(\d+)%)?(?:@\[?([\d,]+)\]?)?")
# name@value C; r36.4+ may print cpu@47.9C/48.3C (current/peak): the first value is taken. Negative values
# (CV0@-256C) are how tegrastats reports a powered-off sensor.
_TEMP = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")
# NAME cur/avg with optional mW units and an optional third value; a trailing unit such as MB or kB rules a
# token out (RAM 775/7620MB is memory, not a rail).
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+(?:\.\d+)?)(?:mW)?/(\d+(?:\.\d+)?)(?:mW)?(?:/\d+(?:\.\d+)?(?:mW)?)?(?![\w/])")
_NOT_RAILS = frozenset({"RAM", "SWAP", "IRAM", "LFB"})


def parse_tegrastats_line(line: str) -> TegraStats:
    """Parse one tegrastats line; ValueError when the line holds neither memory nor power figures."""
    text = line.strip()
    ram = _RAM.search(text)
    rails: dict[str, RailPower] = {}
    for name, current, average in _RAIL.findall(text):
        if name not in _NOT_RAILS:
            rails[name] = RailPower(float(current), float(average))
    if ram is None and not rails:
        raise ValueError(f"not a tegrastats line (no RAM and no power rails): {text[:120]!r}")
    swap = _SWAP.search(text)
    stamp = _TIMESTAMP.match(text)
    gr3d = _GR3D.search(text)
    return TegraStats(
        timestamp=stamp.group(1) if stamp else None,
        ram_used_mb=int(ram.group(1)) if ram else None,
        ram_total_mb=int(ram.group(2)) if ram else None,
        swap_used_mb=int(swap.group(1)) if swap else None,
        swap_total_mb=int(swap.group(2)) if swap else None,
        cpu=_parse_cpu(text),
        gr3d_pct=int(gr3d.group(1)) if gr3d and gr3d.group(1) else None,
        gr3d_freq_mhz=tuple(int(f) for f in gr3d.group(2).split(",") if f) if gr3d and gr3d.group(2) else (),
        temperatures_c={name: float(value) for name, value in _TEMP.findall(text)},
        rails=rails,
    )


def _parse_cpu(text: str) -> tuple[CpuCore, ...]:
    match = _CPU.search(text)
    if match is None:
        return ()
    shared_freq = int(match.group(2)) if match.group(2) else None  # r28 style: CPU [12%,off,..]@1734
    cores = []
    for token in match.group(1).split(","):
        token = token.strip()
        core = _CORE.match(token)
        if core is None:  # "off": the core is powered down
            cores.append(CpuCore(online=False))
            continue
        freq = int(core.group(2)) if core.group(2) else shared_freq
        cores.append(CpuCore(online=True, load_pct=int(core.group(1)), freq_mhz=freq))
    return tuple(cores)


def total_power_mw(rails: dict[str, RailPower]) -> float:
    """Module power in mW from one sample's rails (instantaneous values).

    VDD_IN (or POM_5V_IN on the original Nano) measures the module input and is used alone when present. Boards
    without an input rail (AGX Orin: VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0; Thor: VDD_GPU, VDD_CPU_SOC_MSS,
    VIN_SYS_5V0; AGX Xavier: GPU, CPU, SOC, CV, VDDRQ, SYS5V) report the sum of their rails, leaving out
    unconnected channels and VDDQ_VDD2_1V8AO, which VIN_SYS_5V0 already feeds. The carrier board is never
    included: tegrastats does not measure it.
    """
    for name in TOTAL_INPUT_RAILS:
        if name in rails:
            return rails[name].current_mw
    if not rails:
        raise ValueError("no power rails in this tegrastats sample (tegrastats may need root to read the INA3221)")
    return sum(rail.current_mw for name, rail in rails.items() if name not in NOT_SUMMED_RAILS)


def integrate_energy_j(samples, t0: float, t1: float) -> float:
    """Energy in joules over [t0, t1] from ``samples`` = [(time_s, power_w), ...] sorted by time.

    Power is interpolated linearly between samples (trapezoid rule) and held constant before the first and
    after the last sample. ValueError when the span is empty or reversed, or when there is no sample.
    """
    if not t1 > t0:
        raise ValueError(f"empty time span: t0={t0} t1={t1}")
    points = [(float(t), float(p)) for t, p in samples]
    if not points:
        raise ValueError("no power samples: was the sampler running during the span?")
    if any(b[0] < a[0] for a, b in zip(points, points[1:])):
        raise ValueError("power samples are not sorted by time")

    def power_at(t: float) -> float:
        if t <= points[0][0]:
            return points[0][1]
        if t >= points[-1][0]:
            return points[-1][1]
        for (ta, pa), (tb, pb) in zip(points, points[1:]):
            if ta <= t <= tb:
                return pa if tb == ta else pa + (pb - pa) * (t - ta) / (tb - ta)
        raise AssertionError("unreachable")

    knots = [t0] + [t for t, _ in points if t0 < t < t1] + [t1]
    return sum((tb - ta) * (power_at(ta) + power_at(tb)) / 2.0 for ta, tb in zip(knots, knots[1:]))


def energy_per_embedding_j(samples, t0: float, t1: float, n_embeddings: int, *, baseline_w: float = 0.0) -> float:
    """Joules per embedding over [t0, t1]: (energy - baseline_w * duration) / n_embeddings.

    ``samples`` is [(time_s, power_w), ...] (``TegrastatsSampler.power_samples()``), or a running or stopped
    :class:`TegrastatsSampler`. ``baseline_w`` subtracts an idle power measured beforehand, for the energy the
    work itself costs; with 0 the figure is the whole module's energy per embedding.
    """
    if n_embeddings <= 0:
        raise ValueError(f"n_embeddings must be positive, got {n_embeddings}")
    if isinstance(samples, TegrastatsSampler):
        energy = samples.energy_j(t0, t1)
    else:
        energy = integrate_energy_j(samples, t0, t1)
    energy -= baseline_w * (t1 - t0)
    return energy / n_embeddings


class TegrastatsSampler:
    """Runs ``tegrastats --interval N`` in the background and keeps (monotonic time, TegraStats) per line.

    Use as a context manager around the work, noting ``time.monotonic()`` before and after::

        with TegrastatsSampler(interval_ms=50) as sampler:
            t0 = time.monotonic(); run(n); t1 = time.monotonic()
        print(energy_per_embedding_j(sampler, t0, t1, n))

    Lines that do not parse are counted in ``unparsed_lines``, never dropped silently. Reading the power rails
    may need root on some images: pass ``command=["sudo", "-n", "tegrastats", ...]`` or run as root.
    """

    def __init__(self, interval_ms: int = 100, *, command: list[str] | None = None, clock=time.monotonic):
        if interval_ms < 1:
            raise ValueError(f"interval_ms must be >= 1, got {interval_ms}")
        self.interval_ms = interval_ms
        self.command = list(command) if command else ["tegrastats", "--interval", str(interval_ms)]
        self._clock = clock
        self._samples: list[tuple[float, TegraStats]] = []
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._stderr_reader: threading.Thread | None = None
        self.unparsed_lines = 0
        #: The last lines tegrastats wrote to stderr (why it stopped, e.g. a permission error), and its exit status.
        self.stderr_lines: list[str] = []
        self.returncode: int | None = None

    def start(self) -> TegrastatsSampler:
        if self._process is not None:
            raise RuntimeError("sampler already started")
        if shutil.which(self.command[0]) is None and not os.path.exists(self.command[0]):
            raise RuntimeError(f"{self.command[0]!r} not found: tegrastats ships with Jetson Linux (L4T) only")
        self._process = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
        )
        self._reader = threading.Thread(target=self._read, args=(self._process,), name="tegrastats-reader", daemon=True)
        self._reader.start()
        self._stderr_reader = threading.Thread(target=self._read_stderr, args=(self._process,), daemon=True)
        self._stderr_reader.start()
        return self

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.add_line(line, self._clock())

    def _read_stderr(self, process: subprocess.Popen) -> None:
        for line in process.stderr:
            with self._lock:
                self.stderr_lines = (self.stderr_lines + [line.rstrip()])[-20:]

    def add_line(self, line: str, t: float) -> None:
        """Record one tegrastats line seen at monotonic time ``t`` (the reader thread calls this)."""
        if not line.strip():
            return
        try:
            stats = parse_tegrastats_line(line)
        except ValueError:
            with self._lock:
                self.unparsed_lines += 1
            return
        with self._lock:
            self._samples.append((t, stats))

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.returncode = process.returncode
        for reader in (self._reader, self._stderr_reader):
            if reader is not None:
                reader.join(timeout=5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> TegrastatsSampler:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def samples(self) -> list[tuple[float, TegraStats]]:
        with self._lock:
            return list(self._samples)

    def power_samples(self) -> list[tuple[float, float]]:
        """[(monotonic time, module power in W)] for :func:`integrate_energy_j`."""
        return [(t, stats.total_power_mw() / 1000.0) for t, stats in self.samples]

    def energy_j(self, t0: float, t1: float) -> float:
        samples = self.power_samples()
        if not samples:
            exited = self._process.poll() if self._process is not None else self.returncode
            raise ValueError(
                f"no power samples from {' '.join(self.command)!r}"
                + (f" (it exited with status {exited})" if exited is not None else "")
                + (": " + " | ".join(self.stderr_lines) if self.stderr_lines else "")
            )
        return integrate_energy_j(samples, t0, t1)

    def mean_power_w(self, t0: float, t1: float) -> float:
        return self.energy_j(t0, t1) / (t1 - t0)


# ----------------------------------------------------------------------------------------------- nvpmodel


@dataclasses.dataclass(frozen=True)
class NvpModel:
    """A power mode of /etc/nvpmodel.conf (``< POWER_MODEL ID=2 NAME=MAXN_SUPER >``)."""

    id: int
    name: str


_POWER_MODEL = re.compile(r"^<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=(\S+)\s*>", re.MULTILINE)
_PM_DEFAULT = re.compile(r"^<\s*PM_CONFIG\s+DEFAULT=(\d+)\s*>", re.MULTILINE)


def parse_nvpmodel_conf(text: str) -> tuple[list[NvpModel], int | None]:
    """(modes in file order, default mode ID or None) from the text of an nvpmodel.conf."""
    modes = [NvpModel(int(mode_id), name) for mode_id, name in _POWER_MODEL.findall(text)]
    default = _PM_DEFAULT.search(text)
    return modes, int(default.group(1)) if default else None


def nvpmodel_mode_id(name: str, conf_text: str) -> int:
    """The ID of the mode called ``name`` (case-insensitive); ValueError listing the modes when absent."""
    modes, _ = parse_nvpmodel_conf(conf_text)
    for mode in modes:
        if mode.name.lower() == name.strip().lower():
            return mode.id
    available = ", ".join(f"{m.name} (ID {m.id})" for m in modes) or "none found"
    raise ValueError(f"no nvpmodel mode named {name!r}; this board has: {available}")


def nvpmodel_set_command(name: str, conf_text: str) -> list[str]:
    """The command that switches to the mode called ``name``: ``nvpmodel -m <its ID>``."""
    return ["nvpmodel", "-m", str(nvpmodel_mode_id(name, conf_text))]


def parse_nvpmodel_query(output: str) -> NvpModel:
    """Parse ``nvpmodel -q``: ``NV Power Mode: MAXN`` then the ID on the next line."""
    match = re.search(r"NV Power Mode:\s*(\S+)\s*\n\s*(\d+)", output)
    if match is None:
        raise ValueError(f"unexpected `nvpmodel -q` output: {output.strip()[:200]!r}")
    return NvpModel(int(match.group(2)), match.group(1))


def _run(command: list[str], *, sudo: bool) -> str:
    full = (["sudo", "-n"] if sudo else []) + command
    if shutil.which(command[0]) is None:
        raise RuntimeError(f"{command[0]!r} not found: it ships with Jetson Linux (L4T) only")
    # stdin closed: nvpmodel asks "reboot now? (YES/NO)" for some switches and must not wait on the caller's stdin.
    result = subprocess.run(full, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(full)} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def nvpmodel_query(*, sudo: bool = False) -> NvpModel:
    """The current power mode (runs ``nvpmodel -q``)."""
    return parse_nvpmodel_query(_run(["nvpmodel", "-q"], sudo=sudo))


def nvpmodel_set(name: str, *, conf_path: str = NVPMODEL_CONF, sudo: bool = True) -> NvpModel:
    """Switch to the power mode called ``name`` (looked up in ``conf_path``) and return the mode now active.

    Some switches (e.g. leaving a mode with fewer CPU cores online) make nvpmodel ask for a reboot; it then
    exits non-zero and this raises RuntimeError with its message.
    """
    with open(conf_path, encoding="utf-8") as f:
        command = nvpmodel_set_command(name, f.read())
    _run(command, sudo=sudo)
    return nvpmodel_query(sudo=sudo)


def jetson_clocks(action: str | None = None, *, store_file: str | None = None, sudo: bool = True) -> str:
    """Run ``jetson_clocks``: action None pins clocks at the mode's maximum; "show", "store", "restore"."""
    if action not in (None, "show", "store", "restore"):
        raise ValueError(f"unknown jetson_clocks action {action!r}; expected show, store or restore")
    command = ["jetson_clocks"] + ([f"--{action}"] if action else [])
    if store_file and action in ("store", "restore"):
        command.append(store_file)
    return _run(command, sudo=sudo)
