"""Ready windows -> engine batches under a latency deadline, with a bounded queue.

One job is one (window, representation) pair, i.e. one image for the engine. A batch is released when it
is full (``max_batch`` jobs) or when its oldest job has waited ``deadline_s``. The queue holds at most
``max_queue`` jobs: when the engine falls behind, the OLDEST jobs are dropped and counted (reason
``"scheduler_overflow"``), so memory and queueing delay stay bounded. With ``max_age_s`` set, jobs older
than that are dropped as ``"stale"`` instead of being run late.

The samples of a dropped window stay counted as windowed in ingest's accounting (they did enter a window);
the window is counted here, in ``SchedulerStats.windows_dropped``. Clock-agnostic: every call takes ``now``
(any monotonic clock, in seconds); ``wait_batch`` is the asyncio wrapper.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

from biomoe_edge.vocabulary import check_representations

from .ingest import StreamKey, Window

logger = logging.getLogger("biomoe_edge.runtime.scheduler")

#: Why the scheduler dropped a job.
SCHEDULER_DROP_REASONS: dict[str, str] = {
    "scheduler_overflow": "the queue held max_queue jobs when a new one came; the oldest job was dropped",
    "stale": "the job had waited longer than max_age_s when a batch was formed",
}


class _WindowTicket:
    """Shared by the jobs of one submitted window, so a window is counted as dropped once."""

    __slots__ = ("dropped",)

    def __init__(self):
        self.dropped = False


@dataclass(frozen=True, eq=False)
class Job:
    """One image to compute: ``window`` rendered as ``representation``; ``submitted_s`` on the caller's clock."""

    window: Window
    representation: str
    submitted_s: float
    _ticket: _WindowTicket = field(repr=False, default_factory=_WindowTicket)

    @property
    def key(self) -> StreamKey:
        return self.window.key


@dataclass(frozen=True)
class SchedulerStats:
    """Counters; ``jobs_submitted == jobs_batched + jobs_queued + sum of jobs_dropped`` always."""

    jobs_submitted: int
    jobs_batched: int
    jobs_queued: int
    batches: int
    jobs_dropped: dict[StreamKey, dict[str, int]]
    windows_dropped: dict[StreamKey, dict[str, int]]

    def total_jobs_dropped(self) -> int:
        return sum(sum(reasons.values()) for reasons in self.jobs_dropped.values())


class BatchScheduler:
    """Bounded FIFO of jobs from all devices, modalities and representations, released in engine batches."""

    def __init__(self, max_batch: int, deadline_s: float, max_queue: int, *, max_age_s: float | None = None):
        if not (isinstance(max_batch, int) and max_batch >= 1):
            raise ValueError(f"max_batch must be a positive integer, got {max_batch!r}")
        if not (isinstance(max_queue, int) and max_queue >= max_batch):
            raise ValueError(f"max_queue must be an integer >= max_batch ({max_batch}), got {max_queue!r}")
        if not (math.isfinite(deadline_s) and deadline_s >= 0):
            raise ValueError(f"deadline_s must be >= 0 seconds, got {deadline_s!r}")
        if max_age_s is not None and not max_age_s > deadline_s:
            raise ValueError(f"max_age_s must exceed deadline_s ({deadline_s}), got {max_age_s!r}")
        self.max_batch = max_batch
        self.deadline_s = float(deadline_s)
        self.max_queue = max_queue
        self.max_age_s = max_age_s
        self._queue: collections.deque[Job] = collections.deque()
        self._submitted = 0
        self._batched = 0
        self._batches = 0
        self._jobs_dropped: dict[StreamKey, collections.Counter] = collections.defaultdict(collections.Counter)
        self._windows_dropped: dict[StreamKey, collections.Counter] = collections.defaultdict(collections.Counter)
        self._logged: set[str] = set()
        self._wakeup: asyncio.Event | None = None
        self._wakeup_loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def submit(self, window: Window, representations, now: float) -> int:
        """Queue one job per representation of ``window``; returns how many jobs were queued.

        A withheld window is refused (ValueError): it must not be run. If the queue is full, the oldest
        jobs make room and are counted as dropped ("scheduler_overflow").
        """
        if window.withheld:
            raise ValueError(f"{window.key}: window {window.index} is withheld ({', '.join(window.quality)}); do not submit it")
        representations = check_representations(representations)
        ticket = _WindowTicket()
        for representation in representations:
            if len(self._queue) >= self.max_queue:
                self._drop(self._queue.popleft(), "scheduler_overflow")
            self._queue.append(Job(window, representation, float(now), ticket))
        self._submitted += len(representations)
        if self._wakeup is not None:
            self._wakeup.set()
        return len(representations)

    def seconds_until_ready(self, now: float) -> float | None:
        """0 if a batch is due now, the wait until the oldest job's deadline, or None when empty."""
        if not self._queue:
            return None
        if len(self._queue) >= self.max_batch:
            return 0.0
        return max(0.0, self._queue[0].submitted_s + self.deadline_s - now)

    def next_batch(self, now: float) -> list[Job]:
        """Up to ``max_batch`` jobs, oldest first, if a batch is due (full, or the oldest waited
        ``deadline_s``); otherwise an empty list."""
        self._drop_stale(now)
        if self.seconds_until_ready(now) != 0.0:
            return []
        return self._take()

    def flush(self, now: float) -> list[Job]:
        """The next batch regardless of the deadline (at shutdown); empty when nothing is queued."""
        self._drop_stale(now)
        return self._take()

    async def wait_batch(self, clock: Callable[[], float] = time.monotonic) -> list[Job]:
        """Await the next due batch (asyncio); ``submit`` from the same loop wakes it early. Not thread-safe:
        call ``submit`` and this from the event loop's thread."""
        loop = asyncio.get_running_loop()
        if self._wakeup is None or self._wakeup_loop is not loop:  # an Event belongs to one loop
            self._wakeup, self._wakeup_loop = asyncio.Event(), loop
        while True:
            now = clock()
            batch = self.next_batch(now)
            if batch:
                return batch
            self._wakeup.clear()
            wait = self.seconds_until_ready(now)
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass

    def stats(self) -> SchedulerStats:
        return SchedulerStats(
            jobs_submitted=self._submitted,
            jobs_batched=self._batched,
            jobs_queued=len(self._queue),
            batches=self._batches,
            jobs_dropped={key: dict(c) for key, c in self._jobs_dropped.items()},
            windows_dropped={key: dict(c) for key, c in self._windows_dropped.items()},
        )

    def _take(self) -> list[Job]:
        count = min(self.max_batch, len(self._queue))
        batch = [self._queue.popleft() for _ in range(count)]
        if batch:
            self._batched += count
            self._batches += 1
        return batch

    def _drop_stale(self, now: float) -> None:
        if self.max_age_s is None:
            return
        while self._queue and now - self._queue[0].submitted_s > self.max_age_s:
            self._drop(self._queue.popleft(), "stale")

    def _drop(self, job: Job, reason: str) -> None:
        self._jobs_dropped[job.key][reason] += 1
        if not job._ticket.dropped:
            job._ticket.dropped = True
            self._windows_dropped[job.key][reason] += 1
        if reason not in self._logged:
            self._logged.add(reason)
            logger.warning("%s: %s: %s (logged once; further ones are counted)", job.key, reason, SCHEDULER_DROP_REASONS[reason])


def group_for_render(jobs: list[Job]) -> dict[tuple[str, float], dict[str, list[Job]]]:
    """Jobs grouped by signal, (modality, fs), then by representation, batch order kept inside each group: the
    windows of one signal group are preprocessed once, then each representation is one
    ``transforms.render(windows, fs, (representation,), modality=modality)`` call."""
    groups: dict[tuple[str, float], dict[str, list[Job]]] = {}
    for job in jobs:
        by_representation = groups.setdefault((job.window.modality, job.window.fs), {})
        by_representation.setdefault(job.representation, []).append(job)
    return groups
