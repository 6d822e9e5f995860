"""Replay of the gateway's own recordings through the same Pipeline: the same windows (grid, flags, withheld ones),
the same accounting and the same embeddings as live, including packet loss, reordering and garbage."""

import numpy as np
import pytest
from recording_helpers import ProjectionEngine, description, lossy, packets, record_gateway_run

from biomoe_edge.runtime.recording import Replay, open_recording


def _key(record):
    return record.device, record.modality, record.representation, record.window_start_s


def _assert_replay_equals_live(gateway, records, folder):
    recording = open_recording(folder)
    replay = Replay(recording, ProjectionEngine())
    replayed = list(replay.records())
    live = {_key(r): r for r in records}
    offline = {_key(r): r for r in replayed}
    assert len(live) == len(records) and len(offline) == len(replayed)  # one record per window and representation
    assert set(offline) == set(live)
    for key, record in live.items():
        again = offline[key]
        assert again.window_end_s == record.window_end_s
        assert again.quality == record.quality
        # The projection engine is a float32 matrix product: batches of another size sum in another order.
        scale = float(np.abs(record.embedding).max())
        np.testing.assert_allclose(again.embedding, record.embedding, rtol=0, atol=1e-5 * scale)
    # The ingest saw the same pushes: every counter of every stream is the live one (windows emitted, withheld and
    # flagged by reason, samples windowed, pending and dropped by reason, samples lost).
    live_accounts = {str(k): a.as_dict() for k, a in gateway.pipeline.ingest.accounts().items()}
    replay_accounts = {str(k): a.as_dict() for k, a in replay.pipeline.ingest.accounts().items()}
    assert replay_accounts == live_accounts
    assert replay.stats()["windows_withheld"] == {f"{d}/{m}": n for (d, m), n in gateway.pipeline.windows_withheld.items()}
    return recording, live_accounts


def test_replay_of_a_clean_recording_gives_the_live_records(tmp_path):
    gateway, records, folder = record_gateway_run(tmp_path, packets(30.0))
    recording, accounts = _assert_replay_equals_live(gateway, records, folder)
    assert recording.complete and len(recording.segments) >= 1
    assert len(records) >= 4 * 9  # 2 streams x 2 representations x (10 s windows every 2 s over 30 s)
    assert {r.quality for r in records} == {()}


def test_replay_with_loss_reordering_and_garbage_gives_the_live_windows_and_flags(tmp_path):
    items = lossy(packets(40.0, seed=4), 0.25, seed=1)

    def garbage(gateway, arrival, stream_id, seq):
        if seq % 23 == 0:
            gateway.feed("wrist-1", b"\x00\x01\x02", arrival)

    gateway, records, folder = record_gateway_run(tmp_path, items, extra=garbage)
    assert gateway.stats()["garbage"]["wrist-1"]  # counted live; never recorded (it never reached the ingest)
    recording, accounts = _assert_replay_equals_live(gateway, records, folder)
    flagged = sum(sum(a["windows_flagged"].values()) for a in accounts.values())
    withheld = sum(a["windows_withheld"] for a in accounts.values())
    lost = sum(sum(a["samples_lost"].values()) for a in accounts.values())
    assert flagged > 0 and withheld > 0, "25 % loss must flag some windows for gaps (else this test proves little)"
    assert lost > 0
    # The loss is in the recording as events, sample for sample.
    gap_events = [e for e in recording.events if e.kind == "gap"]
    assert gap_events
    assert sum(e.detail["samples_lost"] for e in gap_events) == sum(
        s["samples_lost"] for s in gateway.stats()["streams"])


def test_replay_can_override_windows_and_representations(tmp_path):
    from biomoe_edge.runtime.recording import replay_config

    _, records, folder = record_gateway_run(tmp_path, packets(30.0))
    recording = open_recording(folder)
    config = replay_config(recording, representations=["recurrence"], window_s=5.0, hop_s=5.0)
    replayed = list(Replay(recording, ProjectionEngine(), config).records())
    assert {r.representation for r in replayed} == {"recurrence"}
    assert all(r.window_end_s - r.window_start_s == pytest.approx(5.0) for r in replayed)
    starts = sorted({r.window_start_s for r in replayed if r.modality == "bvp"})
    assert np.allclose(np.diff(starts), 5.0)


def test_windows_without_an_engine_are_the_ones_the_engine_gets(tmp_path):
    _, records, folder = record_gateway_run(tmp_path, packets(30.0))
    windows = list(Replay(open_recording(folder), None).windows())
    assert {(w.device, w.modality, w.start_s) for w in windows} == {(r.device, r.modality, r.window_start_s)
                                                                   for r in records}
    assert all(w.samples.shape[0] == 1 and np.isfinite(w.samples).all() for w in windows)


def test_a_failing_observer_is_counted_and_never_stops_the_data_path():

    from biomoe_edge.runtime.gateway_config import parse_config
    from biomoe_edge.runtime.pipeline import Pipeline

    class Broken:
        def on_block(self, *args):
            raise OSError("disk gone")

    seen = []

    class Watching:
        def on_stream(self, device, modality, description):
            seen.append(("stream", device, modality, description["sample_rate_hz"], description["channels"]))

        def on_block(self, device, modality, samples, times, arrival, lost_before):
            seen.append(("block", device, modality, len(times)))

    pipeline = Pipeline(parse_config({"windows": {"length_s": 4.0, "hop_s": 1.0}}), ProjectionEngine())
    pipeline.add_device("wrist-1", description())
    pipeline.add_observer(Broken())
    pipeline.add_observer(Watching())  # announced the streams added before it
    for arrival, _, _, data in packets(6.0):
        pipeline.handle_notification("wrist-1", data, arrival)
    assert pipeline.observer_errors == {"on_block:OSError": sum(1 for s in seen if s[0] == "block")}
    assert seen[:2] == [("stream", "wrist-1", "bvp", 64.0, 1), ("stream", "wrist-1", "eda", 32.0, 1)]
    assert sum(s[3] for s in seen if s[0] == "block") == sum(
        a.samples_received for a in pipeline.ingest.accounts().values())
    assert pipeline.ingest.windows_ready == 0 and len(pipeline.scheduler) > 0  # windows still went on
