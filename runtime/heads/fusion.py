"""The fusion stage: embedding records in, prediction records out, with no I/O (no asyncio, no files).

For every head and every subject, the stage keeps one *slot* per window time: the embeddings of the head's
inputs (``"modality:representation"``, from any of the subject's devices) whose windows end within
``tolerance_s`` of each other. A complete slot runs the head and becomes a
:class:`~biomoe_edge.runtime.records.PredictionRecord`. A slot still incomplete ``deadline_s`` after it opened
(gateway time) emits nothing and is counted by reason, never imputed:

- ``input_withheld``: the ingest withheld a missing input's window for quality (``window_withheld`` told us);
- ``input_missing``: a missing input never came (a wearable dropped out, the engine dropped the job...);
- ``head_failed``: the head raised on the slot's embeddings;
- ``closed``: still waiting when the gateway closed.

The inputs that were missing are counted too (``missing_inputs``). An embedding that arrives for a window time
already resolved is counted (``inputs_late``), as is a second embedding of one input for one slot
(``inputs_duplicate``: two of a subject's wearables measure the same modality).

Subjects: ``subjects`` maps a device to the subject wearing it (``[[subjects]]`` in the gateway TOML); a device
in no subject is a subject of its own (named by the device), so a single-wearable head needs no table.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

from biomoe_edge.runtime.records import EmbeddingRecord, PredictionRecord
from biomoe_edge.timing import percentiles_ms

DROP_REASONS = {
    "input_withheld": "an input's window was withheld for quality (ingest gating), so the window time had no "
                      "complete set of inputs by the deadline",
    "input_missing": "an input's embedding never arrived by the deadline (a wearable dropped out or lags, or the "
                     "engine dropped the job)",
    "head_failed": "the head's graph raised on the window's embeddings",
    "closed": "still waiting for inputs when the gateway closed",
}
#: Windows of two inputs whose ends lie closer than this are one window time, in training (``train-head``,
#: ``evaluate-head``) and serving alike. A subject's devices share one window grid, so their ends differ by clock
#: jitter only; a quarter of the default 1 s hop leaves room for that and stays below half a hop, where a window
#: would start to match its neighbour (docs/heads.md).
DEFAULT_TOLERANCE_S = 0.25
DEFAULT_DEADLINE_S = 5.0
#: Resolved window times remembered per head and subject, to tell a late input from a new window (a minute of
#: window times at a 1 s hop; an input later than that opens a window time that expires as input_missing).
RESOLVED_MEMORY = 64
TIMING_HISTORY = 10_000


def _per_head(value, n: int, name: str) -> list[float]:
    if isinstance(value, (int, float)):
        return [float(value)] * n
    values = [float(v) for v in value]
    if len(values) != n:
        raise ValueError(f"{name}: {len(values)} values for {n} heads")
    return values


@dataclass
class _Slot:
    end_s: float
    opened_at: float
    records: dict = field(default_factory=dict)  # input -> EmbeddingRecord
    withheld: set = field(default_factory=set)  # inputs whose window was withheld


@dataclass
class _HeadState:
    head: object
    #: subjects the head serves (None: every subject)
    subjects: frozenset | None
    #: input name -> position
    positions: dict
    #: modality -> input names of that modality
    by_modality: dict
    tolerance_s: float = DEFAULT_TOLERANCE_S
    deadline_s: float = DEFAULT_DEADLINE_S
    slots: dict = field(default_factory=lambda: collections.defaultdict(list))  # subject -> [_Slot]
    resolved: dict = field(default_factory=lambda: collections.defaultdict(lambda: collections.deque(maxlen=RESOLVED_MEMORY)))
    predictions: int = 0
    dropped: collections.Counter = field(default_factory=collections.Counter)
    missing_inputs: collections.Counter = field(default_factory=collections.Counter)
    #: inputs whose absence was logged (once per input: the counter says how often since)
    warned_missing: set = field(default_factory=set)
    inputs_late: int = 0
    inputs_duplicate: int = 0
    errors: collections.Counter = field(default_factory=collections.Counter)
    #: seconds from the newest input sample's arrival to each prediction
    latencies_s: collections.deque = field(default_factory=lambda: collections.deque(maxlen=TIMING_HISTORY))


class FusionStage:
    """Collects embeddings per head, subject and window time; runs heads on complete sets.

    ``heads``: loaded heads (``runtime.heads.load_head``). ``subjects``: device -> subject. ``tolerance_s``,
    ``deadline_s``: one value for every head, or a sequence with one per head. ``head_subjects``: per head, the
    subjects it serves (None or empty: all). ``clock``: gateway time (deadlines).
    """

    def __init__(self, heads, *, subjects=None, head_subjects=None, tolerance_s=DEFAULT_TOLERANCE_S,
                 deadline_s=DEFAULT_DEADLINE_S, clock=time.monotonic):
        heads = list(heads)
        tolerances = _per_head(tolerance_s, len(heads), "tolerance_s")
        deadlines = _per_head(deadline_s, len(heads), "deadline_s")
        for tolerance, deadline in zip(tolerances, deadlines):
            if not (math.isfinite(tolerance) and tolerance >= 0):
                raise ValueError(f"tolerance_s must be a non-negative number of seconds, got {tolerance!r}")
            if not (math.isfinite(deadline) and deadline > 0):
                raise ValueError(f"deadline_s must be a positive number of seconds, got {deadline!r}")
        self.subjects = dict(subjects or {})
        self.clock = clock
        self.states: list[_HeadState] = []
        head_subjects = list(head_subjects or [])
        for index, head in enumerate(heads):
            served = head_subjects[index] if index < len(head_subjects) else None
            by_modality: dict = collections.defaultdict(list)
            for name, input_type in zip(head.inputs, head.input_types):
                by_modality[input_type.modality.value].append(name)
            self.states.append(_HeadState(head, frozenset(served) if served else None,
                                          {name: i for i, name in enumerate(head.inputs)}, dict(by_modality),
                                          tolerance_s=tolerances[index], deadline_s=deadlines[index]))
        #: seconds per ``add`` call that emitted predictions, divided by their number (head runs included), and
        #: seconds per head run (``benchmarks/heads.py`` reports both)
        self.stage_time_s: collections.deque = collections.deque(maxlen=TIMING_HISTORY)
        self.head_time_s: collections.deque = collections.deque(maxlen=TIMING_HISTORY)

    @property
    def heads(self) -> list:
        """The served heads, in the order they were given."""
        return [state.head for state in self.states]

    def subject_of(self, device: str) -> str:
        return self.subjects.get(device, device)

    # -- input ----------------------------------------------------------------------------------------------
    def add(self, records) -> list[PredictionRecord]:
        """Take embedding records; return the predictions of every window time they completed."""
        t0 = time.perf_counter()
        complete: list[tuple[_HeadState, str, _Slot]] = []
        now = self.clock()
        for record in records:
            if not isinstance(record, EmbeddingRecord):
                continue
            name = f"{record.modality}:{record.representation}"
            subject = self.subject_of(record.device)
            for state in self.states:
                if name not in state.positions or (state.subjects is not None and subject not in state.subjects):
                    continue
                slot = self._slot_for(state, subject, record.window_end_s, name, now)
                if slot is None:
                    continue
                slot.records[name] = record
                if len(slot.records) == len(state.positions):
                    state.slots[subject].remove(slot)
                    state.resolved[subject].append(slot.end_s)
                    complete.append((state, subject, slot))
        predictions = self._run(complete) if complete else []
        if predictions:
            self.stage_time_s.append((time.perf_counter() - t0) / len(predictions))
        return predictions

    def window_withheld(self, device: str, modality: str, window_end_s: float) -> None:
        """The ingest withheld a window of ``device``/``modality`` ending at ``window_end_s``: every input of that
        modality for that window time will not come (the slot is resolved as ``input_withheld`` at its deadline)."""
        subject = self.subject_of(device)
        now = self.clock()
        for state in self.states:
            names = state.by_modality.get(modality)
            if not names or (state.subjects is not None and subject not in state.subjects):
                continue
            for name in names:
                slot = self._slot_for(state, subject, window_end_s, name, now, withheld=True)
                if slot is not None:
                    slot.withheld.add(name)

    def _slot_for(self, state: _HeadState, subject: str, end_s: float, name: str, now: float,
                  withheld: bool = False) -> _Slot | None:
        """The open slot of this window time that still lacks ``name``, a new one, or None (late/duplicate,
        counted)."""
        slots = state.slots[subject]
        best, best_distance, taken = None, math.inf, False
        for slot in slots:
            distance = abs(slot.end_s - end_s)
            if distance > state.tolerance_s:
                continue
            if name in slot.records or name in slot.withheld:
                taken = True
                continue
            if distance < best_distance:
                best, best_distance = slot, distance
        if best is not None:
            return best
        if taken:
            if not withheld:
                state.inputs_duplicate += 1
            return None
        if any(abs(done - end_s) <= state.tolerance_s for done in state.resolved[subject]):
            if not withheld:
                state.inputs_late += 1
            return None
        slot = _Slot(float(end_s), now)
        slots.append(slot)
        return slot

    # -- running heads ----------------------------------------------------------------------------------------
    def _run(self, complete) -> list[PredictionRecord]:
        predictions = []
        by_head: dict[int, list] = collections.defaultdict(list)
        for state, subject, slot in complete:
            by_head[id(state)].append((state, subject, slot))
        for group in by_head.values():
            state = group[0][0]
            head = state.head
            embeddings = [np.stack([slot.records[name].embedding for _, _, slot in group]) for name in head.inputs]
            t0 = time.perf_counter()
            try:
                probabilities = head.predict(embeddings)
            except Exception as exc:  # noqa: BLE001 - a failing head must not stop the gateway
                state.dropped["head_failed"] += len(group)
                state.errors[type(exc).__name__] += 1
                continue
            self.head_time_s.append(time.perf_counter() - t0)
            now = self.clock()
            for (_, subject, slot), row in zip(group, probabilities):
                records = [slot.records[name] for name in head.inputs]
                prediction = PredictionRecord(
                    subject=subject,
                    devices=tuple(dict.fromkeys(r.device for r in records)),
                    window_start_s=float(min(r.window_start_s for r in records)),
                    window_end_s=float(max(r.window_end_s for r in records)),
                    probabilities=row,
                    classes=head.classes,
                    inputs=head.inputs,
                    modalities=tuple(dict.fromkeys(r.modality for r in records)),
                    via_bridge=False,
                    quality=tuple(dict.fromkeys(flag for r in records for flag in r.quality)),
                    head=head.identity,
                    model=dict(records[0].model),
                    arrival_time_s=float(max(r.arrival_time_s for r in records)),
                    emitted_time_s=now,
                )
                if math.isfinite(prediction.latency_s):
                    state.latencies_s.append(prediction.latency_s)
                predictions.append(prediction)
            state.predictions += len(group)
        return predictions

    # -- deadlines ----------------------------------------------------------------------------------------------
    def expire(self, now: float | None = None) -> int:
        """Give up on slots open longer than the deadline (counted by reason); returns how many."""
        now = self.clock() if now is None else now
        expired = 0
        for state in self.states:
            for subject, slots in state.slots.items():
                for slot in [s for s in slots if now - s.opened_at >= state.deadline_s]:
                    slots.remove(slot)
                    self._drop(state, subject, slot, "input_withheld" if slot.withheld else "input_missing")
                    expired += 1
        return expired

    def seconds_until_deadline(self, now: float | None = None) -> float | None:
        """Seconds until the oldest open slot's deadline (0 when overdue), or None when nothing is open."""
        due = [slot.opened_at + state.deadline_s for state in self.states for slots in state.slots.values()
               for slot in slots]
        if not due:
            return None
        now = self.clock() if now is None else now
        return max(0.0, min(due) - now)

    def close(self) -> int:
        """Count every open slot as ``closed``; returns how many."""
        closed = 0
        for state in self.states:
            for subject, slots in state.slots.items():
                for slot in list(slots):
                    self._drop(state, subject, slot, "closed")
                    closed += 1
                slots.clear()
        return closed

    def _drop(self, state: _HeadState, subject: str, slot: _Slot, reason: str) -> None:
        state.dropped[reason] += 1
        state.resolved[subject].append(slot.end_s)
        for name in state.positions:
            if name not in slot.records:
                state.missing_inputs[name] += 1
                if reason == "input_missing" and name not in state.warned_missing:
                    state.warned_missing.add(name)
                    log.warning("head %s: %s of subject %s did not come within %g s of its other inputs; the window "
                                "gives no prediction (counted in missing_inputs[%r]; logged once per input)",
                                state.head.path, name, subject, state.deadline_s, name)

    # -- reports ------------------------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return sum(len(slots) for state in self.states for slots in state.slots.values())

    def stats(self) -> list[dict]:
        """One entry per head: predictions, windows dropped by reason, inputs missing, late and duplicate."""
        return [{
            "head": str(state.head.path),
            "tolerance_s": state.tolerance_s,
            "deadline_s": state.deadline_s,
            "inputs": list(state.head.inputs),
            "predictions": state.predictions,
            "windows_dropped": dict(state.dropped),
            "missing_inputs": dict(state.missing_inputs),
            "inputs_late": state.inputs_late,
            "inputs_duplicate": state.inputs_duplicate,
            "pending": sum(len(slots) for slots in state.slots.values()),
            "errors": dict(state.errors),
            "latency_ms": percentiles_ms(state.latencies_s),
        } for state in self.states]
