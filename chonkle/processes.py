"""Worker processes for engines whose calls hold the GIL (wasmer).

The pool is started once per process (with "spawn": forking a process that runs engine
threads is not safe) and reused, so only the first call pays for starting workers. Each
worker receives the pipeline pickled (specs and digests: it fetches modules from the cache and
compiles them, or loads them from the compiled-code cache) once per pipeline.

Moving chunks between processes costs as much as decoding them, so when the decoded size is
known (the pipeline's first step is ``bytes`` with a shape, as for COG tiles and Zarr chunks)
the chunks go to the workers in one shared-memory file and the workers write the arrays
straight into another: only offsets travel through pipes. Otherwise chunks and results are
pickled.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import math
import mmap
import multiprocessing
import os
import pickle
import sys
import tempfile
import threading
import types
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chonkle.errors import ChonkleError, CodecError

if TYPE_CHECKING:
    from chonkle.pipeline import Pipeline

Gather = Callable[[list[Future]], list[Any]]


def run(pipeline: Pipeline, direction: str, items: list[Any], workers: int,
        batches: list[tuple[int, int]], gather: Gather) -> list[Any]:
    """``pipeline.<direction>`` of every item on the pool's processes, in order."""
    executor = _pool(workers)
    blob = pickle.dumps(pipeline)
    key = hashlib.sha256(blob).hexdigest()
    layout = decoded_layout(pipeline) if direction == "decode" else None
    try:
        if layout is None:
            with _without_main():  # submitting is when the pool starts processes
                futures = [executor.submit(_batch, key, blob, direction, items[start:stop],
                                           start) for start, stop in batches]
            return gather(futures)
        with _SharedFiles(items, layout) as shared:
            with _without_main():  # each batch is handed over as soon as it is written
                futures = [executor.submit(_batch_shared, key, blob, shared.task(start, stop))
                           for start, stop in batches]
            gather(futures)
            return shared.results()
    except BrokenProcessPool as exc:
        _forget(workers)
        raise CodecError(f"a worker process died during {direction} ({type(exc).__name__}); "
                         "the pool is replaced on the next call") from exc


def decoded_layout(pipeline: Pipeline) -> tuple[tuple[int, ...], np.dtype] | None:
    """The shape and dtype every decoded chunk has, when the pipeline says (``bytes``)."""
    from chonkle.codecs import Bytes

    first = pipeline.codecs[0] if pipeline.codecs else None
    if isinstance(first, Bytes) and first.shape is not None:
        return first.shape, first.native_dtype
    return None


# ---- shared memory --------------------------------------------------------------------------

def _shared_folder() -> str | None:
    """RAM-backed when the system has it (Linux's /dev/shm), else the temporary folder."""
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


class _SharedFiles:
    """For each batch, its chunks in one file and room for its decoded arrays in another (one
    pair per batch: workers writing one shared file contend on it in the kernel); all 0600,
    removed when the call ends whatever happens (the arrays returned keep theirs mapped)."""

    def __init__(self, items: list[Any], layout: tuple[tuple[int, ...], np.dtype]) -> None:
        self.items = items
        self.shape, self.dtype = layout
        self.item_bytes = math.prod(self.shape) * self.dtype.itemsize
        self._paths: list[str] = []
        self._outputs: list[tuple[str, int]] = []  # (path, items) of each batch

    def _file(self, role: str) -> tuple[str, Any]:
        fd, path = tempfile.mkstemp(prefix=f"chonkle-{role}-", dir=_shared_folder())
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
            file.truncate(self.item_bytes * (stop - start))
        self._outputs.append((outputs, stop - start))
        return (inputs, spans, outputs, self.item_bytes, self.dtype.str, self.shape, start)

    def results(self) -> list[np.ndarray]:
        """The decoded arrays, without copying: views of private (copy-on-write) mappings of
        the files the workers wrote, which stay mapped as long as an array needs them."""
        arrays: list[np.ndarray] = []
        for path, count in self._outputs:
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

_pools: dict[int, ProcessPoolExecutor] = {}
_pools_lock = threading.Lock()
_main_lock = threading.Lock()


def _pool(workers: int) -> ProcessPoolExecutor:
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = _pools[workers] = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"))
        return pool


def _forget(workers: int) -> None:
    with _pools_lock:
        pool = _pools.pop(workers, None)
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


@atexit.register
def _shutdown() -> None:
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        with contextlib.suppress(Exception):
            pool.shutdown(wait=False, cancel_futures=True)


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


# ---- in the workers ---------------------------------------------------------------------------

_pipelines: dict[str, Pipeline] = {}


def _pipeline(key: str, blob: bytes) -> Pipeline:
    """Unpickled (and its modules compiled) once per pipeline in each worker."""
    pipeline = _pipelines.get(key)
    if pipeline is None:
        if len(_pipelines) > 16:
            _pipelines.clear()
        pipeline = _pipelines[key] = pickle.loads(blob)  # from our own parent process
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
    inputs, spans, outputs, item_bytes, dtype, shape, start = task
    decode = _pipeline(key, blob).decode
    with _mapped(inputs, mmap.ACCESS_READ) as source, _mapped(outputs, mmap.ACCESS_WRITE) as out:
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
            np.frombuffer(out, dtype=dtype, count=array.size,
                          offset=offset * item_bytes).reshape(shape)[...] = array
            del array  # it may be a view of the input mapping, which is closed next


@contextlib.contextmanager
def _mapped(path: str, access: int) -> Iterator[memoryview]:
    with open(path, "r+b" if access == mmap.ACCESS_WRITE else "rb") as file:
        size = Path(path).stat().st_size
        mapping = mmap.mmap(file.fileno(), size, access=access) if size else None
        view = memoryview(mapping) if mapping is not None else memoryview(b"")
        try:
            yield view
        finally:
            # An error's traceback may still hold views of the mapping: then it is closed
            # when they are collected.
            with contextlib.suppress(BufferError):
                view.release()
                if mapping is not None:
                    mapping.close()
