"""Zarr v2 and v3 arrays, read with pipelines built from their own metadata.

    array = open_zarr_array("store.zarr/temperature")   # the array's folder (or its metadata)
    array.pipeline                  # one chunk's Pipeline (one shard's, if sharded)
    array.read_chunk("c/0/1")       # a chunk's array; the fill chunk if it is not stored
    array.fill_chunk()              # what a chunk that is not stored holds
    array.read()                    # the whole array, as zarr-python reads it
    Pipeline.from_zarr("store.zarr/temperature")   # the pipeline alone

A chunk's pipeline decodes the stored object to an array of the chunk's shape (the shard's,
for a sharded v3 array, its missing inner chunks filled) and data type, C-ordered, in native
byte order. Edge chunks are whole chunks, as Zarr stores them; :meth:`ZarrArray.read` crops.
The metadata -> pipeline mapping is in :mod:`chonkle.formats.zarr_pipeline`; the zarr-python
codec ``chonkle.wasm`` (v3) is :mod:`chonkle.formats.zarr_v3`.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chonkle import settings
from chonkle.errors import CodecError, LimitExceeded, SpecError
from chonkle.formats.zarr_metadata import (
    MAX_DIMENSIONS,
    V2_GROUP_FILE,
    ZarrMetadata,
    metadata_file,
    read_metadata,
    read_regular_file,
)
from chonkle.formats.zarr_pipeline import Prefer, build_pipeline
from chonkle.pipeline import Pipeline

ZarrSource = str | os.PathLike[str] | Mapping[str, Any]
"""An array's folder, its ``.zarray`` or ``zarr.json`` file, or that file's parsed JSON."""
ChunkRef = str | Sequence[int]
"""A chunk by its key (``"c/0/1"``, ``"0.1"``) or its grid index (``(0, 1)``)."""

# Chunks read and decoded together by read(): bounds the encoded bytes held at once.
READ_BATCH = 64


def open_zarr_array(source: ZarrSource, *, prefer: Prefer = "wasm", runtime: str | None = None,
                    allow_codecs: Iterable[str] = ()) -> ZarrArray:
    """Read an array's metadata and build its chunk pipeline.

    ``prefer="wasm"`` (the default) runs zstd, zlib, shuffle and delta on the Wasm codecs
    shipped in chonkle, on ``runtime``; ``"native"`` on numcodecs. numcodecs codecs a store
    names must be data codecs (``pickle`` is refused) unless ``allow_codecs`` names them.
    Malformed metadata, or a codec chonkle cannot build, is a SpecError naming the file.
    """
    metadata = read_metadata(source)
    pipeline = build_pipeline(metadata, prefer=prefer, runtime=runtime,
                              allow_codecs=allow_codecs)
    return ZarrArray(metadata, pipeline)


class ZarrArray:
    """One Zarr array: its shape, data type, fill value, chunk keys and chunk pipeline."""

    def __init__(self, metadata: ZarrMetadata, pipeline: Pipeline) -> None:
        self.metadata = metadata
        self.pipeline = pipeline

    zarr_format = property(lambda self: self.metadata.zarr_format)
    shape = property(lambda self: self.metadata.shape)
    dtype = property(lambda self: self.metadata.dtype)
    chunk_shape = property(lambda self: self.metadata.chunk_shape,
                           doc="A stored object's shape: the shard's, for a sharded array.")
    fill_value = property(lambda self: self.metadata.fill_value)
    grid = property(lambda self: self.metadata.grid, doc="Chunks along each dimension.")
    folder = property(lambda self: self.metadata.folder)

    def chunk_key(self, index: Sequence[int]) -> str:
        """The key (path below the array's folder, ``/``-separated) of the chunk at ``index``."""
        return self.metadata.chunk_key(index)

    def chunk_index(self, key: str) -> tuple[int, ...]:
        """The grid index of the chunk ``key`` names (SpecError if it names none)."""
        return self.metadata.chunk_index(key)

    def fill_chunk(self) -> np.ndarray:
        """What a chunk that is not stored holds: the chunk's shape, full of the fill value
        (its dtype's zero when the metadata's fill value is null, as zarr-python 3 reads)."""
        return np.full(self.chunk_shape, self.fill_value, dtype=self.dtype)

    def chunk_path(self, chunk: ChunkRef) -> Path:
        if self.folder is None:
            raise SpecError("this array's metadata was given as a mapping, so it has no folder "
                            "to read chunks from; decode chunk bytes with its pipeline")
        key = chunk if isinstance(chunk, str) else self.chunk_key(chunk)
        self.chunk_index(key)  # a key of this array, so a path inside its folder
        return self.folder.joinpath(*key.split("/"))

    def read_chunk(self, chunk: ChunkRef) -> np.ndarray:
        """A chunk's array, decoded; the fill chunk if it is not stored."""
        data = self._stored(self.chunk_path(chunk))
        return self.fill_chunk() if data is None else self.decode_chunk(data)

    def decode_chunk(self, data: Any) -> np.ndarray:
        """A stored chunk's bytes, decoded by the array's pipeline."""
        return self.pipeline.decode(data)

    def read(self, workers: int | None = None) -> np.ndarray:
        """The whole array: every stored chunk decoded (on every core, or ``workers``, as
        ``Pipeline.decode_many`` does), the others filled, edges cropped."""
        try:
            out = np.full(self.shape, self.fill_value, dtype=self.dtype)
        except (MemoryError, ValueError) as exc:
            raise LimitExceeded(f"{self.metadata.where}: the array (shape {list(self.shape)}, "
                                f"{self.dtype}) does not fit in memory: {exc}") from None
        indices = iter(itertools.product(*(range(n) for n in self.grid)))
        while batch := list(itertools.islice(indices, READ_BATCH)):
            stored = [(index, self._stored(self.chunk_path(index))) for index in batch]
            present = [(index, data) for index, data in stored if data is not None]
            decoded = self.pipeline.decode_many([data for _, data in present], workers,
                                                progress=False)
            for (index, _), chunk in zip(present, decoded, strict=True):
                self._place(out, index, chunk)
        return out

    def _place(self, out: np.ndarray, index: Sequence[int], chunk: np.ndarray) -> None:
        region = tuple(slice(i * c, min((i + 1) * c, s))
                       for i, c, s in zip(index, self.chunk_shape, self.shape, strict=True))
        if chunk.shape != self.chunk_shape:
            raise CodecError(f"chunk {self.chunk_key(index)} of {self.metadata.where} decoded "
                             f"to shape {list(chunk.shape)}, not {list(self.chunk_shape)}")
        out[region] = chunk[tuple(slice(0, r.stop - r.start) for r in region)]

    def _stored(self, path: Path) -> bytes | None:
        try:
            return read_regular_file(path, settings.max_output() + 2**20, "a Zarr chunk")
        except FileNotFoundError:
            return None

    def __repr__(self) -> str:
        return (f"ZarrArray(v{self.zarr_format}, shape={list(self.shape)}, dtype={self.dtype}, "
                f"chunks={list(self.chunk_shape)}, {self.pipeline!r})")


def _is_group(found: Path) -> bool:
    """Is this zarr.json a group's (read loosely: errors are for open_zarr_array to report)?"""
    if found.name != "zarr.json":
        return False
    try:
        with open(found, "rb") as file:
            document = json.loads(file.read(1 << 20))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(document, dict) and document.get("node_type") == "group"


def locate_chunk(path: str | os.PathLike[str], *, prefer: Prefer = "wasm",
                 runtime: str | None = None) -> tuple[ZarrArray, str] | None:
    """The array a chunk file (stored or not) belongs to, found in the folders above it, and
    the chunk's key; None when there is no array metadata above it."""
    path = Path(os.path.abspath(path))
    folder = path.parent
    for _ in range(MAX_DIMENSIONS + 2):  # a key is at most one folder per dimension, plus "c"
        found = metadata_file(folder)
        if found is not None:
            if _is_group(found):  # a group's metadata above a loose file: not a chunk
                return None
            array = open_zarr_array(found, prefer=prefer, runtime=runtime)
            key = path.relative_to(folder).as_posix()
            array.chunk_index(key)
            return array, key
        if (folder / V2_GROUP_FILE).is_file() or folder.parent == folder:
            return None
        folder = folder.parent
    return None
