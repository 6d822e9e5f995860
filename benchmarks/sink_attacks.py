"""The sink attacks, rerun with figures: a full disk (a real 256 kB tmpfs; needs root), kill -9 of a
writer, two sinks whose prefixes share a start (``emb``, ``emb-x``) in one folder, reading a large NPZ file back,
an MQTT broker frozen (SIGSTOP) and one killed (SIGKILL) while records flow (a real Mosquitto on loopback).

    sudo python benchmarks/sink_attacks.py          # or without sudo: the disk-full part is skipped, with the reason

Each line says what was offered, what the sink counted, what could be read back or was delivered, and what was
counted lost and why.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np


def _records(n: int, seed: int = 0):
    from biomoe_edge.runtime.records import EmbeddingRecord

    rng = np.random.default_rng(seed)
    return [EmbeddingRecord(device="wearable-1", modality="bvp", representation="scalogram", window_start_s=float(i),
                            window_end_s=i + 10.0, embedding=rng.standard_normal(192).astype(np.float32),
                            model={"sha256": "ab" * 32}, engine={"kind": "onnxruntime"}) for i in range(n)]


def _readable(directory: pathlib.Path, suffix: str) -> int:
    from biomoe_edge.runtime.sinks import read_jsonl_records, read_npz_records

    read = read_jsonl_records if suffix == ".jsonl" else read_npz_records
    return sum(len(read(p)) for p in directory.glob(f"*{suffix}"))


def disk_full() -> None:
    from biomoe_edge.runtime.sinks import GuardedSink, JsonlSink, NpzSink

    for sink_class in (JsonlSink, NpzSink):
        with tempfile.TemporaryDirectory() as tmp:
            disk = pathlib.Path(tmp) / "disk"
            disk.mkdir()
            result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                print(f"disk full: skipped (cannot mount a tmpfs: {result.stderr.strip()})")
                return
            try:
                out = disk / "out"
                sink = sink_class(out, max_bytes=24_000, max_age_s=None)
                guarded = GuardedSink(sink)
                stat = os.statvfs(disk)
                filler = disk / "filler"
                filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 40_000))
                records = _records(120)
                for i in range(0, 80, 4):
                    guarded.write(records[i:i + 4])
                full = {"counted_written": guarded.records_written, "lost": dict(sink.records_lost),
                        "empty_finalised": sum(p.stat().st_size == 0 for p in out.glob(f"*{sink.suffix}"))}
                filler.unlink()
                for i in range(80, 120, 4):
                    guarded.write(records[i:i + 4])
                sink.close()
                print(f"disk full, {sink.name}: 80 offered on a full 256 kB tmpfs -> {full['counted_written']} counted "
                      f"written, lost {full['lost']}, {full['empty_finalised']} empty finalised files; after space "
                      f"returned 40 more offered; total counted written {guarded.records_written}, readable "
                      f"{_readable(out, sink.suffix)}, partial files left {len(list(out.glob('*.partial')))}")
            finally:
                subprocess.run(["umount", "-l", str(disk)], capture_output=True)


WRITER = textwrap.dedent("""
    import pathlib, sys
    import numpy as np
    from biomoe_edge.runtime.records import EmbeddingRecord
    from biomoe_edge.runtime.sinks import JsonlSink, NpzSink
    sink = {cls}(pathlib.Path({out!r}), prefix={prefix!r}, max_age_s=3600)
    rng = np.random.default_rng(0)
    n = 0
    while True:
        batch = [EmbeddingRecord("w", "bvp", "scalogram", float(n + i), n + i + 10.0,
                                 rng.standard_normal(192).astype(np.float32)) for i in range(4)]
        sink.write(batch)
        n += 4
        print(n, flush=True)
""")


def kill_9() -> None:
    from biomoe_edge.runtime.sinks import JsonlSink, NpzSink

    for sink_class in (JsonlSink, NpzSink):
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp) / "out"
            proc = subprocess.Popen([sys.executable, "-c", WRITER.format(cls=sink_class.__name__, out=str(out), prefix="embeddings")],
                                    stdout=subprocess.PIPE, text=True)
            written = 0
            t0 = time.monotonic()
            while time.monotonic() - t0 < 3.0:
                written = int(proc.stdout.readline())
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            for line in proc.stdout:
                written = int(line)
            sink = sink_class(out)
            sink.close()
            got = _readable(out, sink.suffix)
            print(f"kill -9, {sink.name}: {written} records reported written in 3 s (rotation due in an hour); after "
                  f"the next start {got} readable ({sink.recovered_files} file finalised from .partial, "
                  f"{sink.recovery_discarded_bytes} bytes of a cut-off record dropped); lost {max(0, written - got)}")


def _readable_or_zero(paths, read) -> int:
    count = 0
    for path in paths:
        try:
            count += len(read(path))
        except Exception:  # noqa: BLE001 - a file that cannot be read counts as none read
            pass
    return count


def two_prefixes() -> None:
    """Two sinks in one folder, prefixes ``emb`` and ``emb-x``: ``emb`` restarts while ``emb-x`` writes, then
    ``emb-x`` is killed (-9) and restarts. ``emb-x``'s records must all read back."""
    from biomoe_edge.runtime.sinks import JsonlSink, NpzSink, read_jsonl_records, read_npz_records

    for sink_class, read in ((JsonlSink, read_jsonl_records), (NpzSink, read_npz_records)):
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp) / "out"
            proc = subprocess.Popen([sys.executable, "-c", WRITER.format(cls=sink_class.__name__, out=str(out),
                                                                         prefix="emb-x")],
                                    stdout=subprocess.PIPE, text=True)
            written = 0
            t0 = time.monotonic()
            restarted = False
            while time.monotonic() - t0 < 3.0:
                written = int(proc.stdout.readline())
                if not restarted and time.monotonic() - t0 > 1.5:
                    sink_class(out, prefix="emb").close()  # the other sink restarts: its recovery runs
                    restarted = True
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            for line in proc.stdout:
                written = int(line)
            sink_class(out, prefix="emb-x").close()
            got = _readable_or_zero(sorted(out.glob(f"emb-x-*{sink_class.suffix}")), read)
            print(f"two prefixes (emb, emb-x) in one folder, {sink_class.name}: emb restarted while emb-x wrote, emb-x "
                  f"killed (-9) and restarted: {got} of {written} emb-x records readable")


def npz_read() -> None:
    """Reading an NPZ file back: seconds per file of 500, 2,000 and 4,000 records (linear: the ratios follow n)."""
    from biomoe_edge.runtime.sinks import NpzSink, read_npz_records

    seconds = {}
    for n in (500, 2000, 4000):
        with tempfile.TemporaryDirectory() as tmp:
            with NpzSink(tmp, prefix="emb", max_bytes=None, max_age_s=None) as sink:
                sink.write(_records(n))
            path = next(pathlib.Path(tmp).glob("*.npz"))
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                got = len(read_npz_records(path))
                runs.append(time.perf_counter() - t0)
            assert got == n
            seconds[n] = float(np.median(runs))
    print("NPZ read back (median of 3): " + ", ".join(f"{n} records {t * 1e3:.1f} ms" for n, t in seconds.items())
          + f"; 4000/500 time ratio {seconds[4000] / seconds[500]:.1f} (records ratio 8)")


def _broker(workdir: pathlib.Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = workdir / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {os.environ.get('USER', 'root')}\n"
                      f"persistence true\npersistence_location {workdir}/\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, port, [binary, "-c", str(config)]


def mqtt() -> None:
    import paho.mqtt.client as paho

    from biomoe_edge.runtime.sinks import MqttSink

    for attack in ("frozen", "killed"):
        with tempfile.TemporaryDirectory() as tmp:
            proc, port, command = _broker(pathlib.Path(tmp))
            received = set()
            sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="attack-sub", clean_session=False)
            sub.on_connect = lambda c, u, f, rc, p: c.subscribe("biomoe/#", qos=1)
            sub.on_message = lambda c, u, m: received.add(json.loads(m.payload)["window_start_s"])
            sub.reconnect_delay_set(0.1, 0.5)
            sub.connect("127.0.0.1", port)
            sub.loop_start()
            sink = MqttSink("127.0.0.1", port, max_queue=200, keepalive_s=10, reconnect_min_s=0.2, reconnect_max_s=1.0)
            while not sink.connected:
                time.sleep(0.05)
            records = _records(1000, seed=1)
            peak_queued = peak_paho = 0
            for i in range(0, 1000, 10):  # 10 records every 50 ms: 5 s
                if i == 200:
                    os.kill(proc.pid, signal.SIGSTOP if attack == "frozen" else signal.SIGKILL)
                if i == 800:
                    if attack == "frozen":
                        os.kill(proc.pid, signal.SIGCONT)
                    else:
                        proc.wait()
                        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                sink.write(records[i:i + 10])
                peak_queued = max(peak_queued, sink.queued)
                peak_paho = max(peak_paho, len(sink._client._out_messages))
                time.sleep(0.05)
            deadline = time.monotonic() + 20
            while sink.queued and time.monotonic() < deadline:
                time.sleep(0.1)
            sink.close()
            time.sleep(0.5)
            sub.disconnect()
            sub.loop_stop()
            proc.terminate()
            proc.wait()
            s = sink.stats()
            print(f"MQTT broker {attack} for 3 s of a 5 s run: 1000 written, max_queue 200; peak held {peak_queued} "
                  f"(paho's own queue at most {peak_paho}); published {s['published']}, delivered to a subscriber "
                  f"{len(received)}, dropped oldest {s['dropped_offline']}, dropped at close {s['dropped_at_close']}, "
                  f"connections {s['connections']}")


if __name__ == "__main__":
    disk_full()
    kill_9()
    two_prefixes()
    npz_read()
    mqtt()
