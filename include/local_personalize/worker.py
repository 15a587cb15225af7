"""Background threads that move resources through their statuses, so callers really poll.

Two lanes: quick status transitions (a dataset group becoming ACTIVE) never wait behind long jobs
(imports, training, batch inference), which run one at a time, as on a small account. The quick lane
has several threads so resources created together become ACTIVE together, as on AWS.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)
QUICK_THREADS = 4


class Worker:
    def __init__(self, transition_delay: float = 0.0):
        self.transition_delay = transition_delay
        self.stopping = threading.Event()
        self._lanes = {"quick": queue.Queue(), "jobs": queue.Queue()}
        self._threads = [
            threading.Thread(target=self._run, args=(lane,), name=f"personalize-{lane}-{n}", daemon=True)
            for lane, threads in (("quick", QUICK_THREADS), ("jobs", 1))
            for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, task: Callable[[], None], *, job: bool = False) -> None:
        self._lanes["jobs" if job else "quick"].put(task)

    @contextmanager
    def held(self, timeout: float = 300.0) -> Iterator[None]:
        """No task submitted inside the block starts before it exits (a resource stays CREATE PENDING).

        For tests that look at a resource mid-flight: without it they race the worker, and lose on a
        loaded machine. Every lane thread gets a task that waits for the block's end; queues are FIFO,
        so anything submitted later waits behind them. `timeout` bounds a forgotten hold.
        """
        release = threading.Event()
        for lane, threads in (("quick", QUICK_THREADS), ("jobs", 1)):
            for _ in range(threads):
                self._lanes[lane].put(lambda: release.wait(timeout))
        try:
            yield
        finally:
            release.set()

    def pause(self) -> None:
        """The configurable delay between status transitions; returns early on shutdown."""
        if self.transition_delay > 0:
            self.stopping.wait(self.transition_delay)

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        for thread in self._threads:
            self._lanes["quick" if "-quick-" in thread.name else "jobs"].put(None)
        for thread in self._threads:
            thread.join(timeout)

    def _run(self, lane: str) -> None:
        tasks = self._lanes[lane]
        while not self.stopping.is_set():
            task = tasks.get()
            if task is None or self.stopping.is_set():
                return
            try:
                task()
            except Exception:  # a failed task must never kill the lane; the task records its own status
                log.exception("background task failed")
