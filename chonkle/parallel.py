"""Decoding and encoding many chunks on every core.

An engine that runs Wasm without the GIL (it says so with ``parallel_threads``; wasmtime does)
gets a thread pool: each thread has its own instances, so chunks decode in parallel and
nothing is copied. An engine that holds the GIL (wasmer) gets worker processes
(chonkle.processes).

Results come back in input order. The first failure is raised with the index of its chunk,
and the work not yet started is cancelled.
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

if TYPE_CHECKING:
    from chonkle.pipeline import Pipeline

# Batches per worker: enough to balance uneven chunks, few enough to keep overheads small.
BATCHES_PER_WORKER = {"threads": 2, "processes": 2}


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def uses_threads(pipeline: Pipeline) -> bool:
    """Can this pipeline's Wasm steps run in parallel threads (their engines release the GIL)?"""
    from chonkle.engine.registry import get_runtime
    from chonkle.engine.wasm_codec import WasmCodec

    return all(getattr(get_runtime(codec.runtime), "parallel_threads", False)
               for codec in pipeline.codecs if isinstance(codec, WasmCodec))


def run_many(pipeline: Pipeline, direction: str, items: Sequence[Any], workers: int | None,
             progress: bool | None) -> list[Any]:
    """``pipeline.<direction>`` of every item, in order, on `workers` workers."""
    items = list(items)
    if workers is None:
        workers = available_cores()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SpecError(f"workers must be a positive integer or None, not {workers!r}")
    workers = min(workers, max(1, len(items)))
    with progress_bars.bar(len(items), f"{direction} chunks", unit="chunk",
                           progress=progress) as shown:
        if workers == 1:
            return _serial(pipeline, direction, items, shown.update)
        mode = "threads" if uses_threads(pipeline) else "processes"
        batches = _batches(len(items), workers * BATCHES_PER_WORKER[mode])
        if mode == "threads":
            executor = _thread_pool(workers)
            method = getattr(pipeline, direction)
            futures = [executor.submit(_batch, method, items, start, stop)
                       for start, stop in batches]
            return _gather(futures, batches, len(items), shown.update)
        return processes.run(pipeline, direction, items, workers, batches,
                             lambda futures: _gather(futures, batches, len(items),
                                                     shown.update))


_thread_pools: dict[int, ThreadPoolExecutor] = {}
_thread_pools_lock = threading.Lock()


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    """A pool of `workers` threads, kept for the next call: each thread keeps its Wasm
    instances, so a call does not pay for instantiating modules again."""
    with _thread_pools_lock:
        pool = _thread_pools.get(workers)
        if pool is None:
            pool = _thread_pools[workers] = ThreadPoolExecutor(
                workers, thread_name_prefix=f"chonkle-{workers}")
        return pool


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


def _batch(method: Callable[[Any], Any], items: list[Any], start: int, stop: int) -> list[Any]:
    results = []
    for index in range(start, stop):
        try:
            results.append(method(items[index]))
        except ChonkleError as exc:
            raise _at(exc, index) from exc
    return results


def _gather(futures: list[Future], batches: list[tuple[int, int]], count: int,
            advance: Callable[[int], object]) -> list[Any]:
    """Collect batches as they finish; on the first failure cancel what has not started."""
    results: list[Any] = [None] * count
    where = dict(zip(futures, batches, strict=True))
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when="FIRST_COMPLETED")
        for future in done:
            error = future.exception()
            if error is not None:
                for other in pending:
                    other.cancel()
                raise error
            start, stop = where[future]
            batch = future.result()
            if batch is not None:  # None: the results went into shared memory
                results[start:stop] = batch
            advance(stop - start)
    return results


def _at(error: ChonkleError, index: int) -> ChonkleError:
    """The same error, naming the chunk it happened on."""
    if error.chunk is None:
        error.chunk = index
    return error
