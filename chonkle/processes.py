"""Worker processes for engines whose calls hold the GIL (wasmer).

The pool is started once per process and reused, so only the first call pays for starting
workers. Each worker receives the pipeline pickled (specs and digests: it fetches modules
from the cache and compiles them, or loads them from the compiled-code cache) once per
pipeline.

Moving chunks between processes costs as much as decoding them, so when the decoded size is
known (the pipeline's first step is ``bytes`` with a shape, as for COG tiles and Zarr chunks)
each batch's chunks go to its worker in a shared-memory file and the worker writes the arrays
straight into another: only offsets travel through pipes. Otherwise, or when there is no
room for those files, chunks and results are pickled.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import itertools
import math
import mmap
import multiprocessing
import os
import pickle
import signal
import sys
import tempfile
import time
import types
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

import numpy as np

from chonkle.errors import ChonkleError, CodecError, SpecError
from chonkle.pools import GrowingPool

if TYPE_CHECKING:
    from chonkle.pipeline import Pipeline

Gather = Callable[[Callable[[int, int], Future], int], list[Any]]


def run(pipeline: Pipeline, direction: str, items: list[Any], workers: int,
        batches: list[tuple[int, int]], gather: Gather) -> list[Any]:
    """``pipeline.<direction>`` of every item on the pool's processes, in order.

    ``gather(submit, in_flight)`` runs the batches, at most `in_flight` at once:
    ``submit(start, stop)`` hands one to the pool. When the call may use every process of the
    pool, all batches are handed over at once, so a worker finds its next batch waiting (the
    pool's own threads deliver them, and they wait for the GIL; waiting for a batch to finish
    before sending the next left workers idle for milliseconds each time).
    """
    try:
        blob = pickle.dumps(pipeline)
    except Exception as exc:  # a codec object that cannot be pickled
        raise SpecError(f"the pipeline cannot be sent to worker processes ({exc}); decode "
                        "with workers=1, or on an engine that runs in threads (wasmtime)"
                        ) from None
    key = hashlib.sha256(blob).hexdigest()
    layout = decoded_layout(pipeline) if direction == "decode" else None
    with POOL.use(workers) as (executor, size):
        in_flight = len(batches) if size <= workers else workers
        try:
            shared = _SharedFiles.for_items(items, layout) if layout is not None else None
            if shared is None:
                return gather(lambda start, stop: executor.submit(
                    _batch, key, blob, direction, items[start:stop], start), in_flight)
            with shared:
                gather(shared.submitter(lambda task: executor.submit(
                    _batch_shared, key, blob, task), batches), in_flight)
                return shared.results()
        except BrokenProcessPool as exc:
            POOL.forget(executor)
            raise CodecError(f"a worker process died during {direction} "
                             f"({type(exc).__name__}); the pool is replaced on the next call"
                             ) from exc
        except OSError as exc:  # shared memory or temporary files ran out
            raise CodecError(f"cannot hand chunks to worker processes: {exc.strerror or exc}"
                             ) from exc


def decoded_layout(pipeline: Pipeline) -> tuple[tuple[int, ...], np.dtype] | None:
    """The shape and dtype every decoded chunk has, when the pipeline says (``bytes``)."""
    from chonkle.codecs import Bytes

    first = pipeline.codecs[0] if pipeline.codecs else None
    if isinstance(first, Bytes) and first.shape is not None:
        return first.shape, first.native_dtype
    return None


# ---- shared memory --------------------------------------------------------------------------

def _shared_folder(needed: int) -> str | None:
    """Where the batches' files go: RAM-backed when the system has room there (Linux's
    /dev/shm, often small in containers), else the temporary folder; None when neither has
    room for `needed` bytes (the chunks then travel pickled)."""
    for folder in ("/dev/shm", tempfile.gettempdir()):
        try:
            info = os.statvfs(folder)
        except OSError:
            continue
        if os.access(folder, os.W_OK) and info.f_bavail * info.f_frsize > needed * 1.2:
            return folder
    return None


class _SharedFiles:
    """For each batch, its chunks in one file and room for its decoded arrays in another (one
    pair per batch: workers writing one shared file contend on it in the kernel); all 0600,
    removed when the call ends whatever happens (the arrays returned keep theirs mapped)."""

    def __init__(self, items: list[Any], layout: tuple[tuple[int, ...], np.dtype],
                 folder: str) -> None:
        self.items = items
        self.shape, self.dtype = layout
        self.item_bytes = math.prod(self.shape) * self.dtype.itemsize
        self.folder = folder
        self._paths: list[str] = []
        self._outputs: list[tuple[int, str, int]] = []  # (start, path, items) of each batch

    @classmethod
    def for_items(cls, items: list[Any], layout: tuple[tuple[int, ...], np.dtype]
                  ) -> _SharedFiles | None:
        """Files for these items, or None when no folder has room for them."""
        needed = sum(memoryview(i).nbytes for i in items) + math.prod(layout[0]) * layout[
            1].itemsize * len(items)
        folder = _shared_folder(needed)
        return None if folder is None else cls(items, layout, folder)

    def _file(self, role: str) -> tuple[str, Any]:
        fd, path = tempfile.mkstemp(prefix=f"chonkle-{role}-", dir=self.folder)
        self._paths.append(path)
        return path, os.fdopen(fd, "r+b")

    def task(self, start: int, stop: int) -> tuple:
        """Write chunks `start` to `stop` (so a batch can start while the next is written)."""
        inputs, file = self._file("in")
        spans, written = [], 0
        with file:
            for item in self.items[start:stop]:
                view = item if isinstance(item, bytes) else memoryview(item).cast("B")
                file.write(view)
                spans.append((written, len(view)))
                written += len(view)
        outputs, file = self._file("out")
        with file:
            # Sized, not filled: the worker's writes allocate the pages, in parallel (they are
            # writes, not stores into a mapping, so a full disk is an error, not a SIGBUS).
            file.truncate(self.item_bytes * (stop - start))
        self._outputs.append((start, outputs, stop - start))
        return (inputs, spans, outputs, self.item_bytes, self.dtype.str, self.shape, start)

    def submitter(self, send: Callable[[tuple], Future], batches: list[tuple[int, int]]
                  ) -> Callable[[int, int], Future]:
        """``submit(start, stop)`` for `gather`: sends a batch's task, then writes the files of
        the batch that follows, while the workers are busy, so it is ready when one is free."""
        following = dict(itertools.pairwise(batches))
        prepared: dict[tuple[int, int], tuple] = {}

        def submit(start: int, stop: int) -> Future:
            task = prepared.pop((start, stop), None) or self.task(start, stop)
            future = send(task)
            upcoming = following.get((start, stop))
            if upcoming is not None and upcoming not in prepared:
                prepared[upcoming] = self.task(*upcoming)
            return future

        return submit

    def results(self) -> list[np.ndarray]:
        """The decoded arrays, without copying: views of private (copy-on-write) mappings of
        the files the workers wrote, which stay mapped as long as an array needs them."""
        arrays: list[np.ndarray] = []
        for _, path, count in sorted(self._outputs):
            if self.item_bytes == 0:
                arrays += [np.empty(self.shape, self.dtype) for _ in range(count)]
                continue
            with open(path, "rb") as file:
                mapping = mmap.mmap(file.fileno(), self.item_bytes * count,
                                    access=mmap.ACCESS_COPY)
            arrays += list(np.frombuffer(mapping, dtype=self.dtype).reshape(count, *self.shape))
        return arrays

    def __enter__(self) -> _SharedFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        for path in self._paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


# ---- the pool ---------------------------------------------------------------------------------

# One pool for the process (chonkle.pools): the workers keep their compiled modules between
# calls.
POOL: GrowingPool[ProcessPoolExecutor] = GrowingPool(lambda size: _start(size),
                                                     lambda: os.cpu_count() or 1)
atexit.register(POOL.shutdown)


def _start(size: int) -> ProcessPoolExecutor:
    """Start `size` worker processes ("spawn": forking a process that runs engine threads is
    not safe), all at once, without the user's main module.

    A "spawn" child imports the parent's main script, so a script without an
    ``if __name__ == "__main__":`` guard would start workers recursively. Workers need only
    chonkle (the pipeline is pickled with chonkle's and numcodecs' classes), so while they
    start, the main module is a stand-in with no file to import; they are all started inside
    that moment (each kept busy until all have started). Workers ignore SIGINT: Ctrl-C is the
    caller's to handle, and must not break the pool.
    """
    executor = ProcessPoolExecutor(size, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=signal.signal,
                                   initargs=(signal.SIGINT, signal.SIG_IGN))
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        started = [executor.submit(_started, size) for _ in range(size)]
        for future in started:
            future.result()
    finally:
        sys.modules["__main__"] = main
    return executor


def _started(size: int) -> int:
    """In a worker, while the pool starts: busy a moment, so every task gets its own process."""
    time.sleep(0.2)
    return os.getpid()


# ---- in the workers ---------------------------------------------------------------------------

_pipelines: dict[str, Pipeline] = {}


def _pipeline(key: str, blob: bytes) -> Pipeline:
    """Unpickled (and its modules compiled) once per pipeline in each worker."""
    pipeline = _pipelines.get(key)
    if pipeline is None:
        if len(_pipelines) > 16:
            _pipelines.clear()
        try:
            pipeline = pickle.loads(blob)  # from our own parent process
        except Exception as exc:  # a codec class the worker cannot import (the user's main)
            raise CodecError(f"a worker process cannot rebuild the pipeline ({exc}); decode "
                             "with workers=1, or on an engine that runs in threads") from None
        _pipelines[key] = pipeline
    return pipeline


def _batch(key: str, blob: bytes, direction: str, items: list[Any], start: int) -> list[Any]:
    method = getattr(_pipeline(key, blob), direction)
    results = []
    for offset, item in enumerate(items):
        try:
            results.append(method(item))
        except ChonkleError as exc:
            exc.chunk = start + offset if exc.chunk is None else exc.chunk
            raise
    return results


def _batch_shared(key: str, blob: bytes, task: tuple) -> None:
    """Decode a batch from its input file into its output file.

    Both files are read and written with system calls, not mapped: every first touch of a
    mapped page is a page fault, and on virtual machines faults cost microseconds each, which
    made a worker ~25% slower per chunk than the same decode in the calling process.
    """
    inputs, spans, outputs, item_bytes, dtype, shape, start = task
    decode = _pipeline(key, blob).decode
    source = _read_into_scratch(inputs, sum(length for _, length in spans))
    with open(outputs, "r+b", buffering=0) as out:
        for offset, (position, length) in enumerate(spans):
            index = start + offset
            try:
                array = decode(source[position:position + length])
            except ChonkleError as exc:
                exc.chunk = index if exc.chunk is None else exc.chunk
                raise
            if array.dtype != np.dtype(dtype) or array.shape != tuple(shape):
                raise CodecError(f"decoded an array of shape {list(array.shape)} and dtype "
                                 f"{array.dtype}, not {list(shape)} {np.dtype(dtype)}",
                                 chunk=index)
            _write_at(out, np.ascontiguousarray(array), offset * item_bytes)
            del array  # it may be a view of the scratch buffer, which the next batch reuses


# A worker's input buffer, reused from batch to batch (its pages stay mapped); a batch larger
# than SCRATCH_KEPT gets a buffer of its own, dropped afterwards.
SCRATCH_KEPT = 64 * 2**20
_scratch = np.empty(0, np.uint8)


def _read_into_scratch(path: str, size: int) -> memoryview:
    global _scratch
    if size > _scratch.size:
        buffer = np.empty(size, np.uint8)
        if size <= SCRATCH_KEPT:
            _scratch = buffer
    else:
        buffer = _scratch
    view = memoryview(buffer)[:size]
    with open(path, "rb", buffering=0) as file:  # read(2) straight into the buffer
        done = 0
        while done < size:
            got = file.readinto(view[done:])
            if not got:
                raise CodecError(f"a batch's input file ended after {done} of {size} bytes")
            done += got
    return view


def _write_at(file: Any, array: np.ndarray, position: int) -> None:
    data = memoryview(array.reshape(-1).view(np.uint8))  # any dtype, empty arrays too
    file.seek(position)
    while data:
        data = data[file.write(data):]
