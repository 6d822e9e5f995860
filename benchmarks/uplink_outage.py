#!/usr/bin/env python3
"""Does the MQTT uplink lose anything in a broker outage? A measured run, not a test.

    python benchmarks/uplink_outage.py                       # 60 s demo, broker away from 20 s to 40 s
    python benchmarks/uplink_outage.py --duration 240 --outage-start 20 --outage 180

It starts a Mosquitto broker (persistence on), a subscriber with a persistent session (QoS 1), and
``biomoe-edge demo --random-weights`` (emulated wearables, random weights: the records are meaningless, their
delivery is what is measured) with two sinks: MQTT with its disk outbox, and the ``--embeddings`` JSONL file of the
same run. ``--outage-start`` seconds after the first embedding the broker is stopped (SIGTERM: a broker that keeps its
sessions, as one cut off by the network does), and started again ``--outage`` seconds later. The demo's /metrics is
scraped every 0.5 s for the outbox's size. At the end: records written to the JSONL file, unique record_ids delivered
to the subscriber, missing ones, duplicates, outbox peak, and catch-up time (broker back to outbox empty).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, workdir: pathlib.Path):
        self.port = free_port()
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
                               f"persistence true\npersistence_location {workdir}/\n")
        self.log = workdir / "broker.log"
        self.process = None

    def start(self):
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen([binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=open(self.log, "ab"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(10)


def metric(base: str, name: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = urllib.request.urlopen(base + "metrics", timeout=2).read().decode()
    except OSError:
        return None
    values = [s.value for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]
    return sum(values) if values else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--outage-start", type=float, default=20.0, help="seconds after the first embedding")
    parser.add_argument("--outage", type=float, default=20.0, help="seconds the broker is away")
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--json", default=None, metavar="FILE")
    args = parser.parse_args(argv)
    import paho.mqtt.client as mqtt

    work = pathlib.Path(tempfile.mkdtemp(prefix="biomoe-outage-"))
    broker = Broker(work)
    broker.start()
    received: list[str] = []
    first_seen: dict[str, float] = {}  # record_id -> time.monotonic() it first arrived (one clock with the gateway's)

    def on_message(client, userdata, message):
        record_id = json.loads(message.payload)["record_id"]
        received.append(record_id)
        first_seen.setdefault(record_id, time.monotonic())

    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="outage-subscriber", clean_session=False)
    subscribed = threading.Event()
    subscriber.on_connect = lambda c, u, f, rc, p: c.subscribe("biomoe/#", qos=1)
    subscriber.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
    subscriber.on_message = on_message
    subscriber.reconnect_delay_set(0.1, 0.5)
    subscriber.connect("127.0.0.1", broker.port)
    subscriber.loop_start()
    assert subscribed.wait(5)
    sinks = work / "sinks.toml"
    sinks.write_text(f'[[sinks]]\nkind = "mqtt"\nhost = "127.0.0.1"\nport = {broker.port}\nqos = 1\n'
                     f'outbox_dir = "{work / "outbox"}"\n')
    embeddings = work / "embeddings.jsonl"
    web_port = free_port()
    base = f"http://127.0.0.1:{web_port}/"
    demo = subprocess.Popen([sys.executable, "-m", "biomoe_edge", "demo", "--random-weights", "--quiet",
                             "--devices", str(args.devices), "--duration", str(args.duration), "--sinks", str(sinks),
                             "--embeddings", str(embeddings), "--web", f"127.0.0.1:{web_port}",
                             "--report", str(work / "report.json")],
                            stdout=open(work / "demo.log", "w"), stderr=subprocess.STDOUT)
    peak = 0.0
    outbox_samples = []

    def wait_first_embedding():
        while not metric(base, "biomoe_edge_embeddings_total"):
            if demo.poll() is not None:
                raise SystemExit(f"the demo ended early; see {work / 'demo.log'}")
            time.sleep(0.2)

    wait_first_embedding()
    t0 = time.monotonic()
    stopped_at = restarted_at = caught_up_at = None
    while demo.poll() is None:
        now = time.monotonic() - t0
        held = metric(base, "biomoe_edge_sink_outbox_records")
        if held is not None:
            peak = max(peak, held)
            outbox_samples.append((round(now, 1), held))
            if restarted_at is not None and caught_up_at is None and held == 0:
                caught_up_at = now
        if stopped_at is None and now >= args.outage_start:
            broker.stop()
            stopped_at = now
            print(f"{now:.1f} s: broker stopped", file=sys.stderr)
        if stopped_at is not None and restarted_at is None and now >= stopped_at + args.outage:
            broker.start()
            restarted_at = now
            restarted_monotonic = time.monotonic()
            print(f"{now:.1f} s: broker started again", file=sys.stderr)
        time.sleep(0.5)
    if restarted_at is None:
        broker.start()
        restarted_at = time.monotonic() - t0
    lines = [json.loads(line) for line in embeddings.read_text().splitlines() if line.strip()]
    written = [line["record_id"] for line in lines]
    deadline = time.monotonic() + 60
    while not set(written) <= set(received) and time.monotonic() < deadline:
        time.sleep(0.2)
    subscriber.loop_stop()
    broker.stop()
    # The backlog: records made before the broker came back (emitted_time_s is the gateway's time.monotonic(), the
    # same clock as this process's on Linux). Catch-up: from the broker's restart to the last of them delivered.
    backlog = [line["record_id"] for line in lines if line["emitted_time_s"] < restarted_monotonic
               and line["emitted_time_s"] >= restarted_monotonic - (restarted_at - stopped_at)]
    delivered = [first_seen[i] for i in backlog if i in first_seen]
    result = {
        "duration_s": args.duration, "outage_s": args.outage, "outage_started_s": stopped_at,
        "records_written_jsonl": len(written), "unique_delivered": len(set(received)),
        "missing": len(set(written) - set(received)), "duplicates": len(received) - len(set(received)),
        "outbox_peak_records": peak, "records_made_during_outage": len(backlog),
        "catch_up_s": max(delivered) - restarted_monotonic if delivered else None,
        "outbox_empty_after_restart_s": None if caught_up_at is None else caught_up_at - restarted_at,
        "outbox_records_over_time": outbox_samples[::4],
        "note": "simulated wearables, random weights; broker stopped with SIGTERM (keeps its sessions) and restarted",
    }
    print(json.dumps(result, indent=2))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["missing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
