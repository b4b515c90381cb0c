"""Decoding and encoding many chunks on every core.

An engine that runs Wasm without the GIL (it says so with ``parallel_threads``; wasmtime does)
gets threads: each thread has its own instances, so chunks decode in parallel and nothing is
copied. An engine that holds the GIL (wasmer) gets worker processes (chonkle.processes).

One pool of each kind is kept per process and reused (threads keep their Wasm instances,
processes their compiled modules); a call uses at most `workers` of them, by never having more
batches in flight. Results come back in input order. The first failure is raised with the
index of its chunk; no batch is handed out after it (a worker process may finish the one
queued for it, whose result is dropped), and batches running in threads stop at their next
chunk (also on Ctrl-C).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from chonkle import processes
from chonkle import progress as progress_bars
from chonkle.errors import ChonkleError, SpecError
from chonkle.pools import GrowingPool

if TYPE_CHECKING:
    from chonkle.pipeline import Pipeline

# Batches per worker: enough to balance uneven chunks, few enough to keep overheads small.
BATCHES_PER_WORKER = 2

Submit = Callable[[int, int], Future]


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def uses_threads(pipeline: Pipeline) -> bool:
    """Can this pipeline's Wasm steps run in parallel threads (their engines release the GIL)?"""
    from chonkle.engine.registry import get_runtime
    from chonkle.pipeline import wasm_steps

    return all(getattr(get_runtime(codec.runtime), "parallel_threads", False)
               for codec in wasm_steps(pipeline))


def run_many(pipeline: Pipeline, direction: str, items: Sequence[Any], workers: int | None,
             progress: bool | None) -> list[Any]:
    """``pipeline.<direction>`` of every item, in order, on `workers` workers."""
    items = list(items)
    if workers is None:
        workers = available_cores()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SpecError(f"workers must be a positive integer or None, not {workers!r}")
    if not (progress is None or isinstance(progress, bool)):
        raise SpecError(f"progress must be True, False or None, not {progress!r}")
    workers = min(workers, max(1, len(items)))
    with progress_bars.bar(len(items), f"{direction} chunks", unit="chunk",
                           progress=progress) as shown:
        if workers == 1:
            return _serial(pipeline, direction, items, shown.update)
        batches = _batches(len(items), workers * BATCHES_PER_WORKER)
        if not uses_threads(pipeline):
            return processes.run(pipeline, direction, items, workers, batches,
                                 lambda submit, in_flight: gather(submit, batches, in_flight,
                                                                  len(items), shown.update))
        method, stop = getattr(pipeline, direction), threading.Event()
        with THREADS.use(workers) as (pool, size):
            # A call that may use the whole pool hands it every batch at once (a thread then
            # finds its next batch waiting); otherwise at most `workers` are out at a time.
            in_flight = len(batches) if size <= workers else workers
            def submit(start: int, end: int) -> Future:
                return pool.submit(_batch, method, items, start, end, stop)

            try:
                return gather(submit, batches, in_flight, len(items), shown.update)
            finally:
                stop.set()  # after a failure or Ctrl-C, running batches stop at their next chunk


def gather(submit: Submit, batches: list[tuple[int, int]], in_flight: int, count: int,
           advance: Callable[[int], object]) -> list[Any]:
    """Run every batch through `submit`, at most `in_flight` at once, and collect them in
    order. On the first failure (or Ctrl-C) nothing more is submitted and what is queued is
    cancelled."""
    results: list[Any] = [None] * count
    waiting = iter(batches)
    running: dict[Future, tuple[int, int]] = {}
    try:
        for start, stop in waiting:
            running[submit(start, stop)] = (start, stop)
            if len(running) == in_flight:
                break
        while running:
            done, _ = wait(running, return_when="FIRST_COMPLETED")
            for future in done:
                start, stop = running.pop(future)
                batch = future.result()  # raises the batch's failure
                if batch is not None:  # None: the results went into shared memory
                    results[start:stop] = batch
                advance(stop - start)
                following = next(waiting, None)
                if following is not None:
                    running[submit(*following)] = following
    except BaseException:
        for future in running:
            future.cancel()
        raise
    return results


# One pool of threads for the process (chonkle.pools): each thread keeps its Wasm instances,
# so a call does not pay for instantiating modules again.
THREADS: GrowingPool[ThreadPoolExecutor] = GrowingPool(
    lambda size: ThreadPoolExecutor(size, thread_name_prefix="chonkle"), available_cores)


def _serial(pipeline: Pipeline, direction: str, items: list[Any],
            advance: Callable[[int], object]) -> list[Any]:
    method, results = getattr(pipeline, direction), []
    for index, item in enumerate(items):
        try:
            results.append(method(item))
        except ChonkleError as exc:
            raise _at(exc, index) from exc
        advance(1)
    return results


def _batches(count: int, pieces: int) -> list[tuple[int, int]]:
    size = max(1, -(-count // pieces))
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def _batch(method: Callable[[Any], Any], items: list[Any], start: int, stop: int,
           cancelled: threading.Event) -> list[Any] | None:
    results = []
    for index in range(start, stop):
        if cancelled.is_set():
            return None  # the call has already failed or been interrupted
        try:
            results.append(method(items[index]))
        except ChonkleError as exc:
            raise _at(exc, index) from exc
    return results


def _at(error: ChonkleError, index: int) -> ChonkleError:
    """The same error, naming the chunk it happened on."""
    if error.chunk is None:
        error.chunk = index
    return error
