#!/usr/bin/env python3
"""An upstream consumer of the gateway's MQTT records: subscribes with a persistent session (QoS 1, so the broker
keeps what arrives while the consumer is away), drops duplicates by ``record_id`` (QoS 1 and the gateway's replayed
outbox both produce them: docs/records.md) and writes Parquet files of embedding and prediction records.

    python examples/mqtt_consumer.py --host broker.example --out build/uplink [--topic 'biomoe/#'] [--duration 60]

Needs paho-mqtt and pyarrow (``pip install 'biomoe-edge[mqtt,recordings]'``). The ids already written (read back
from OUT at start) are not written again, so a restarted consumer keeps the files free of duplicates. A message
is acknowledged to the broker only once its record is in a Parquet file (paho's ``manual_ack``): a consumer killed
before writing gets the records again from the broker.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import queue
import time


def seen_ids(out: pathlib.Path) -> set[str]:
    import pyarrow.parquet as pq

    ids: set[str] = set()
    for path in sorted(out.glob("*.parquet")):
        ids.update(pq.read_table(path, columns=["record_id"]).column("record_id").to_pylist())
    return ids


def write_part(out: pathlib.Path, kind: str, rows: list[dict]) -> pathlib.Path:
    """One Parquet file of ``rows`` (JSON records of one kind), written under a temporary name and renamed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows)
    path = out / f"{kind}-{time.strftime('%Y%m%dT%H%M%S')}-{time.monotonic_ns()}.parquet"
    partial = path.with_suffix(".partial")
    pq.write_table(table, partial)
    partial.rename(path)
    return path


def main(argv=None) -> int:
    import paho.mqtt.client as mqtt

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--topic", default="biomoe/#")
    parser.add_argument("--client-id", default="biomoe-consumer", help="the persistent session's name (keep it stable)")
    parser.add_argument("--out", required=True, help="folder of Parquet files")
    parser.add_argument("--flush-every", type=int, default=500, help="records per Parquet file (or --flush-s)")
    parser.add_argument("--flush-s", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=None, help="stop after S seconds (default: Ctrl-C)")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seen = seen_ids(out)
    inbox: queue.Queue = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id, clean_session=False,
                         manual_ack=True)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(args.topic, qos=1)
    client.on_message = lambda c, u, message: inbox.put((message.mid, message.qos, message.payload))
    client.connect(args.host, args.port)
    client.loop_start()
    pending: dict[str, list[dict]] = {"embedding": [], "prediction": []}
    unacked: list[tuple[int, int]] = []  # (mid, qos) of records waiting for their Parquet file
    duplicates = 0
    last_flush = time.monotonic()
    stop_at = None if args.duration is None else time.monotonic() + args.duration

    def flush():
        for kind, rows in pending.items():
            if rows:
                print(f"wrote {len(rows)} {kind} records to {write_part(out, kind, rows)}")
                rows.clear()
        for mid, qos in unacked:  # on disk now: the broker may forget them
            client.ack(mid, qos)
        unacked.clear()

    try:
        while stop_at is None or time.monotonic() < stop_at:
            try:
                mid, qos, payload = inbox.get(timeout=0.5)
            except queue.Empty:
                mid = None
            if mid is not None:
                record = json.loads(payload)
                unacked.append((mid, qos))
                if record["record_id"] in seen:
                    duplicates += 1
                else:
                    seen.add(record["record_id"])
                    pending.setdefault(record["record"], []).append(record)
            if sum(map(len, pending.values())) >= args.flush_every or time.monotonic() - last_flush >= args.flush_s:
                flush()
                last_flush = time.monotonic()
    except KeyboardInterrupt:
        pass
    finally:
        flush()
        client.loop_stop()
        client.disconnect()
    print(f"{len(seen)} unique records; {duplicates} duplicates dropped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
