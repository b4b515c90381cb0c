"""Decoding and encoding many chunks on every core.

An engine that runs Wasm without the GIL (it says so with ``parallel_threads``; wasmtime does)
gets a thread pool: each thread has its own instances, so chunks decode in parallel and
nothing is copied. An engine that holds the GIL (wasmer) gets worker processes, which receive
the pipeline pickled (its specs and digests: each worker fetches modules from the cache and
compiles them, or loads them from the compiled-code cache) and chunks in batches. The pool of
processes is kept for the next call, so only the first call pays for starting them.

Results come back in input order. The first failure is raised with the index of its chunk,
and the work not yet started is cancelled.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import multiprocessing
import os
import pickle
import sys
import threading
import types
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from chonkle import progress as progress_bars
from chonkle.errors import ChonkleError, CodecError, SpecError

if TYPE_CHECKING:
    from chonkle.pipeline import Pipeline

# Batches per worker: enough to balance uneven chunks, few enough to keep overheads small.
BATCHES_PER_WORKER = {"threads": 4, "processes": 2}


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
            with ThreadPoolExecutor(workers, thread_name_prefix="chonkle") as executor:
                method = getattr(pipeline, direction)
                futures = [executor.submit(_batch, method, items, start, stop)
                           for start, stop in batches]
                return _gather(executor, futures, batches, len(items), shown.update)
        executor = _process_pool(workers)
        blob = pickle.dumps(pipeline)
        key = hashlib.sha256(blob).hexdigest()
        try:
            with _without_main():  # submitting is when the pool starts processes
                futures = [executor.submit(_process_batch, key, blob, direction,
                                           items[start:stop], start) for start, stop in batches]
            return _gather(executor, futures, batches, len(items), shown.update)
        except BrokenProcessPool as exc:
            _forget_pool(workers)
            raise CodecError(f"a worker process died during {direction} "
                             f"({type(exc).__name__}); the pool is replaced on the next "
                             "call") from exc


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


def _gather(executor: Executor, futures: list[Future], batches: list[tuple[int, int]],
            count: int, advance: Callable[[int], object]) -> list[Any]:
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
            results[start:stop] = future.result()
            advance(stop - start)
    return results


def _at(error: ChonkleError, index: int) -> ChonkleError:
    """The same error, naming the chunk it happened on."""
    if error.chunk is None:
        error.chunk = index
    return error


# ---- worker processes ---------------------------------------------------------------------

_pools: dict[int, ProcessPoolExecutor] = {}
_pools_lock = threading.Lock()


def _process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of `workers` processes, started once per process and reused. Started with
    "spawn": forking a process that runs engine threads (the epoch ticker) is not safe."""
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = _pools[workers] = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"))
        return pool


@contextlib.contextmanager
def _without_main() -> Iterator[None]:
    """Start worker processes without the user's main module.

    A "spawn" child imports the parent's main script, so a script without an
    ``if __name__ == "__main__":`` guard would start workers recursively and break the pool.
    Workers need only chonkle (the pipeline is pickled with chonkle's and numcodecs' classes),
    so while they start, the main module is a stand-in with no file to import.
    """
    with _main_lock:
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = main


_main_lock = threading.Lock()


def _forget_pool(workers: int) -> None:
    with _pools_lock:
        pool = _pools.pop(workers, None)
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


@atexit.register
def _shutdown_pools() -> None:
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        with contextlib.suppress(Exception):
            pool.shutdown(wait=False, cancel_futures=True)


_worker_pipelines: dict[str, Pipeline] = {}


def _process_batch(key: str, blob: bytes, direction: str, items: list[Any],
                   start: int) -> list[Any]:
    """In a worker: the pipeline is unpickled (and its modules compiled) once per pipeline."""
    pipeline = _worker_pipelines.get(key)
    if pipeline is None:
        if len(_worker_pipelines) > 16:
            _worker_pipelines.clear()
        pipeline = _worker_pipelines[key] = pickle.loads(blob)
    method = getattr(pipeline, direction)
    results = []
    for offset, item in enumerate(items):
        try:
            results.append(method(item))
        except ChonkleError as exc:
            raise _at(exc, start + offset) from None
    return results
