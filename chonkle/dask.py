"""Lazy Dask arrays over TIFFs and COGs, decoded by chonkle where the blocks are computed.

``from_tiff`` reads the TIFF's structure once, here, and returns a dask array whose blocks
are tile-aligned windows of several tiles each (about 64 MiB by default, so a graph for a
large COG stays small). A block's task holds only the file's path or URL and the window: on
a worker, the TIFF is opened again (once per worker process) and the window read with
chonkle's pipelines, on the worker's engine, so chonkle and a Wasm engine must be installed
on the workers. Zarr stores with chonkle codecs need nothing from here:
``dask.array.from_zarr`` and ``xarray.open_zarr`` read them as they are.

Needs the ``dask`` extra (``dask[array]``; ``distributed`` for clusters).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from typing import Any

import numpy as np

from chonkle.errors import SourceError, SpecError
from chonkle.formats.tiff import open_tiff

DEFAULT_BLOCK_BYTES = 64 * 2**20


def from_tiff(source: str | os.PathLike[str], level: int = 0, chunks: Any = None, *,
              prefer: str = "wasm", runtime: str | None = None) -> Any:
    """A lazy ``dask.array.Array`` of one level of a TIFF (a path or an ``https://`` URL).

    ``chunks`` is None (tile-aligned blocks of about 64 MiB), a number of bytes per block, or
    the rows and columns of a block (multiples of the tile shape are best: other sizes decode
    tiles twice). The array has tifffile's shape for the level: (rows, columns), (rows,
    columns, samples), or (samples, rows, columns) for separate planes.
    """
    import dask.array as da

    path = os.fspath(source)
    identity = _identity(path)
    tiff = _opened(path, identity, prefer, runtime)
    chosen = tiff.level(level)
    rows, cols = _block_rows_cols(chosen, chunks)
    spatial = _spatial_axes(chosen)
    block_chunks = []
    for axis, size in enumerate(chosen.shape):
        step = rows if axis == spatial[0] else cols if axis == spatial[1] else size
        block_chunks.append(tuple(min(step, size - start) for start in range(0, size, step))
                            or (0,))
    token = hashlib.sha256(repr((path, identity, chosen.index, prefer, rows, cols)).encode())
    return da.map_blocks(_read_block, path, identity, prefer, runtime, chosen.index, spatial,
                         dtype=chosen.dtype, chunks=tuple(block_chunks),
                         meta=np.empty((0,) * len(chosen.shape), chosen.dtype),
                         name=f"chonkle-tiff-{token.hexdigest()[:16]}")


def _identity(path: str) -> tuple:
    """Which version of a local file this is (size, change time, inode); () for a URL. Part
    of the cache key and of the graph's name: a file rewritten in place is read anew."""
    try:
        stat = os.stat(path)
    except OSError:
        return ()
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino)


def _read_block(path: str, identity: tuple, prefer: str, runtime: str | None, level: int,
                spatial: tuple[int, int], block_info: dict | None = None) -> np.ndarray:
    """One block: a window of the level, read on whichever worker runs the task."""
    if _identity(path) != identity:
        raise SourceError(f"{path!r} changed after its dask array was made; make it again")
    location = block_info[None]["array-location"]  # type: ignore[index]
    window = (tuple(location[spatial[0]]), tuple(location[spatial[1]]))
    return _opened(path, identity, prefer, runtime).read(level, window, workers=1,
                                                         progress=False)


@functools.lru_cache(maxsize=32)
def _opened(path: str, identity: tuple, prefer: str, runtime: str | None) -> Any:
    """A TIFF opened once per process and version of the file (its structure is read once,
    not per block)."""
    return open_tiff(path, prefer=prefer, runtime=runtime)  # type: ignore[arg-type]


def _spatial_axes(level: Any) -> tuple[int, int]:
    """The row and column axes of tifffile's arrangement of the level."""
    return (1, 2) if level.planes > 1 else (0, 1)


def _block_rows_cols(level: Any, chunks: Any) -> tuple[int, int]:
    tile_rows, tile_cols = level.tile_shape
    if isinstance(chunks, (tuple, list)):
        if len(chunks) != 2 or not all(isinstance(n, int) and n > 0 for n in chunks):
            raise SpecError("chunks must be None, a number of bytes, or (rows, columns), not "
                            f"{chunks!r}")
        return int(chunks[0]), int(chunks[1])
    target = DEFAULT_BLOCK_BYTES if chunks is None else chunks
    if isinstance(target, bool) or not isinstance(target, int) or target < 1:
        raise SpecError(f"chunks must be None, a number of bytes, or (rows, columns), not "
                        f"{chunks!r}")
    tile_bytes = tile_rows * tile_cols * level.samples * level.planes * level.dtype.itemsize
    tiles = max(1, target // max(1, tile_bytes))
    across = -(-level.width // tile_cols)
    wide = min(across, max(1, math.isqrt(tiles)))  # square-ish blocks of whole tiles
    down = max(1, tiles // wide)
    return min(down * tile_rows, level.height), min(wide * tile_cols, level.width)

