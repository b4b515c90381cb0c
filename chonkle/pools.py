"""One executor per process for many-chunk calls, grown when a call asks for more workers.

Workers keep what is costly to make (a thread its Wasm instances, a process its compiled
modules), so the executor outlives calls. A call asking for more workers than it has gets a
bigger one; the old one is shut down once no call uses it any more, so a call running on it
when another grows the pool still finishes (shutting it down at once cancelled that call's
queued batches and refused its next ones).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import Generic, TypeVar

E = TypeVar("E", bound=Executor)


class GrowingPool(Generic[E]):
    def __init__(self, start: Callable[[int], E], fewest: Callable[[], int]) -> None:
        """`start(size)` makes an executor of `size` workers; it has at least `fewest()`."""
        self._start, self._fewest = start, fewest
        self._lock = threading.Lock()
        self._current: E | None = None
        self.size = 0
        self._calls: dict[E, int] = {}  # executor -> calls using it now

    @contextlib.contextmanager
    def use(self, workers: int) -> Iterator[tuple[E, int]]:
        """An executor with at least `workers` workers, and its size, for one call."""
        with self._lock:
            if self._current is None or self.size < workers:
                previous = self._current
                size = max(workers, self._fewest())
                self._current, self.size = self._start(size), size
                if previous is not None and previous not in self._calls:
                    previous.shutdown(wait=False)
            executor, size = self._current, self.size
            self._calls[executor] = self._calls.get(executor, 0) + 1
        try:
            yield executor, size
        finally:
            with self._lock:
                self._calls[executor] -= 1
                retired = not self._calls[executor] and executor is not self._current
                if not self._calls[executor]:
                    del self._calls[executor]
            if retired:
                executor.shutdown(wait=False)

    def forget(self, executor: E) -> None:
        """Drop a broken executor: the next call starts a new one."""
        with self._lock:
            if self._current is executor:
                self._current, self.size = None, 0
        executor.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        """At exit: stop the current executor without waiting for its workers."""
        with self._lock:
            executor = self._current
        if executor is not None:
            with contextlib.suppress(Exception):
                executor.shutdown(wait=False, cancel_futures=True)
