"""Bridges standing in for a head while its own input is missing (``[[heads]] fallback = "BRIDGE_DIR"`` or a list).

A subject's head reads ECG; the chest strap's battery dies, the PPG watch is still on. A bridge fitted for that head
(its bridge.json names the head's sha256) turns the PPG windows into the head's predictions. For every window of
the bridge's input this stage holds the bridged prediction until the head has had its chance:

- the head predicts that window time (within the head's ``tolerance_s``): the bridged one is dropped (counted
  ``head_served``); the head's own input is there;
- the head's ``deadline_s`` passes without it (its device disconnected, its stream silent, its window withheld):
  the bridged one is emitted (``via_bridge: true``; ``head`` names the bridge, and under ``fallback_for`` the head
  it stands in for). With several fallback bridges, the first in the list that has the window speaks; the others'
  are dropped (``other_bridge_served``).

A window time is answered by one path only: a head prediction for a window time that a bridge already answered
(the head's input came back later than the deadline) is dropped and counted (``head_late_after_bridge``). Which
path answers a subject's newest window time is logged when it changes and counted (``transitions``). Held predictions are released when
the next batch is settled (the bridge's own modality keeps batches coming), so a stand-in prediction comes about
``deadline_s`` after its window; those still held when the gateway closes are counted (``pending_at_close``).
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field, replace

from .bridge import BridgeStage

log = logging.getLogger(__name__)

#: Window times per subject remembered as answered (by the head or a bridge), to keep one path per window time.
ANSWERED_MEMORY = 256
HEAD = "head"


@dataclass
class _Held:
    prediction: object  # PredictionRecord of the bridge
    bridge_rank: int  # position of its bridge in the head's fallback list
    opened_at: float


@dataclass
class _Standby:
    """One head with its fallback bridges."""

    head: object
    bridges: list
    tolerance_s: float
    deadline_s: float
    held: dict = field(default_factory=lambda: collections.defaultdict(list))  # subject -> [_Held]
    #: subject -> recent window end times answered by the head / by a bridge
    by_head: dict = field(default_factory=lambda: collections.defaultdict(
        lambda: collections.deque(maxlen=ANSWERED_MEMORY)))
    by_bridge: dict = field(default_factory=lambda: collections.defaultdict(
        lambda: collections.deque(maxlen=ANSWERED_MEMORY)))
    source: dict = field(default_factory=dict)  # subject -> HEAD or the bridge path answering now
    newest: dict = field(default_factory=dict)  # subject -> end time of the newest window time answered
    counts: collections.Counter = field(default_factory=collections.Counter)


def _near(times, end_s: float, tolerance_s: float) -> bool:
    return any(abs(t - end_s) <= tolerance_s for t in times)


class FallbackStage:
    """Holds fallback bridges' predictions per head and subject, and lets one path answer each window time; no I/O.

    ``standbys``: (head, [bridges], tolerance_s, deadline_s, subjects) per head that has fallbacks, ``head`` the
    loaded head the fusion stage serves, ``bridges`` loaded bridges fitted for it (in order of preference).
    ``subjects``: device -> subject (``[[subjects]]``)."""

    def __init__(self, standbys, *, subjects=None, clock=time.monotonic):
        self.clock = clock
        self.standbys: list[_Standby] = []
        bridges, bridge_subjects = [], []
        for head, head_bridges, tolerance_s, deadline_s, served in standbys:
            self.standbys.append(_Standby(head, list(head_bridges), float(tolerance_s), float(deadline_s)))
            bridges.extend(head_bridges)
            bridge_subjects.extend([served] * len(head_bridges))
        #: runs the fallback bridges on the engine's taps, as bridges served on their own are run
        self.bridge_stage = BridgeStage(bridges, subjects=subjects, bridge_subjects=bridge_subjects, clock=clock)

    @property
    def taps(self) -> tuple[str, ...]:
        return self.bridge_stage.taps

    def run(self, jobs, taps: dict, model: dict) -> None:
        """Run every fallback bridge on the batch's windows of its input and hold the predictions."""
        self.hold(self.predict(jobs, taps, model))

    def predict(self, jobs, taps: dict, model: dict) -> list:
        """The fallback bridges' predictions of the batch's windows of their input (nothing held yet: the graphs
        run here, outside whatever lock guards :meth:`hold` and :meth:`settle`)."""
        return self.bridge_stage.run(jobs, taps, model)

    def hold(self, predictions) -> None:
        """Hold the fallback bridges' ``predictions`` (:meth:`predict`) until their heads have had their chance."""
        now = self.clock()
        by_path: dict = collections.defaultdict(list)
        for prediction in predictions:
            by_path[prediction.head["path"]].append(prediction)
        for standby in self.standbys:
            for rank, bridge in enumerate(standby.bridges):
                for prediction in by_path.get(str(bridge.path), ()):
                    standby.held[prediction.subject].append(_Held(prediction, rank, now))

    def settle(self, head_predictions) -> list:
        """The predictions to emit now: ``head_predictions`` (the fusion stage's, of this batch) less those of
        window times a bridge already answered, and the held bridged predictions whose head did not answer by its
        deadline."""
        now = self.clock()
        out = []
        standby_of = {s.head.identity["path"]: s for s in self.standbys}
        for prediction in head_predictions:
            standby = standby_of.get(prediction.head.get("path")) if not prediction.via_bridge else None
            if standby is None:
                out.append(prediction)
                continue
            subject, end_s = prediction.subject, prediction.window_end_s
            if _near(standby.by_bridge[subject], end_s, standby.tolerance_s):
                standby.counts["head_late_after_bridge"] += 1
                continue
            standby.by_head[subject].append(end_s)
            self._answered_by(standby, subject, HEAD, end_s)
            standby.counts["head"] += 1
            out.append(prediction)
        for standby in self.standbys:
            for subject, held in standby.held.items():
                keep = []
                for item in sorted(held, key=lambda h: (h.prediction.window_end_s, h.bridge_rank)):
                    end_s = item.prediction.window_end_s
                    if _near(standby.by_head[subject], end_s, standby.tolerance_s):
                        standby.counts["head_served"] += 1
                    elif _near(standby.by_bridge[subject], end_s, standby.tolerance_s):
                        standby.counts["other_bridge_served"] += 1
                    elif now - item.opened_at >= standby.deadline_s:
                        standby.by_bridge[subject].append(end_s)
                        bridge = standby.bridges[item.bridge_rank]
                        self._answered_by(standby, subject, str(bridge.path), end_s)
                        standby.counts["via_bridge"] += 1
                        out.append(replace(item.prediction, emitted_time_s=now,
                                           head={**item.prediction.head, "fallback_for": standby.head.identity}))
                    else:
                        keep.append(item)
                held[:] = keep
        return out

    def _answered_by(self, standby: _Standby, subject: str, source: str, end_s: float) -> None:
        # The path of the newest window time is the one answering now (a held window released after a newer one
        # the head answered does not switch back).
        if end_s < standby.newest.get(subject, float("-inf")):
            return
        standby.newest[subject] = end_s
        previous = standby.source.get(subject)
        if previous == source:
            return
        standby.source[subject] = source
        if previous is not None:
            standby.counts["transitions"] += 1
        log.warning("head %s, subject %s: predictions now from %s", standby.head.path, subject,
                    "the head's own input" if source == HEAD else f"the fallback bridge {source}")

    def seconds_until_deadline(self, now: float | None = None) -> float | None:
        now = self.clock() if now is None else now
        opened = [item.opened_at + s.deadline_s for s in self.standbys for held in s.held.values() for item in held]
        return max(0.0, min(opened) - now) if opened else None

    def close(self) -> int:
        """Count (``pending_at_close``) and drop what is still held; how many."""
        dropped = 0
        for standby in self.standbys:
            for held in standby.held.values():
                standby.counts["pending_at_close"] += len(held)
                dropped += len(held)
                held.clear()
        return dropped

    def stats(self) -> list[dict]:
        """One entry per head with fallbacks (``kind`` "fallback"): which path answers each subject now, and the
        counts above; the bridges' own figures (failures, latency) under ``bridges``."""
        bridge_stats = {entry["head"]: entry for entry in self.bridge_stage.stats()}
        return [{
            "head": str(standby.head.path),
            "kind": "fallback",
            "fallback": [str(b.path) for b in standby.bridges],
            "answering": {subject: source for subject, source in standby.source.items()},
            "predictions": standby.counts["via_bridge"],
            "predictions_via_bridge": standby.counts["via_bridge"],
            "predictions_by_head": standby.counts["head"],
            "transitions": standby.counts["transitions"],
            "windows_dropped": {k: v for k, v in standby.counts.items()
                        if k in ("head_served", "other_bridge_served", "head_late_after_bridge", "pending_at_close")},
            "held": sum(len(h) for h in standby.held.values()),
            "bridges": [bridge_stats[str(b.path)] for b in standby.bridges],
        } for standby in self.standbys]
