"""Zarr v3's ``sharding_indexed`` codec: one stored object (a shard) holds many inner chunks.

A shard is the inner chunks' encoded bytes, in any order, plus an index: an array of shape
``chunks_per_shard + (2,)`` of uint64 (offset and length of each inner chunk in the shard,
both 2**64 - 1 for a chunk not stored), encoded with its own fixed-size codecs and placed at
the shard's end or start. Offsets count from the shard's first byte, index included.

In chonkle a shard's pipeline is one step, :class:`Sharding`, whose decode gives the whole
shard as an array (inner chunks not stored are the fill value) and whose encode writes every
inner chunk, in C order, then the index: what zarr-python reads back.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numcodecs.abc import Codec

from chonkle.errors import ChonkleError, CodecError
from chonkle.formats.zarr_codecs import flat_bytes

MISSING = 2**64 - 1


class Sharding(Codec):
    """The ``sharding_indexed`` codec of one array: ``inner`` and ``index`` are the pipelines
    of an inner chunk and of the index (each a :class:`chonkle.Pipeline`)."""

    codec_id = "sharding_indexed"

    def __init__(self, inner: Any, index: Any, shard_shape: Sequence[int],
                 chunk_shape: Sequence[int], dtype: np.dtype, fill_value: Any,
                 index_location: str, index_size: int) -> None:
        self.inner = inner
        self.index = index
        self.shard_shape = tuple(shard_shape)
        self.chunk_shape = tuple(chunk_shape)
        self.chunks_per_shard = tuple(s // c for s, c in zip(self.shard_shape,
                                                              self.chunk_shape, strict=True))
        self.dtype = np.dtype(dtype)
        self.fill_value = fill_value
        self.index_location = index_location
        self.index_size = index_size

    # -- decoding ------------------------------------------------------------------------

    def decode(self, buf: Any, out: Any = None) -> np.ndarray:
        data = flat_bytes(buf)
        entries = self._read_index(data)
        shard = np.full(self.shard_shape, self.fill_value, dtype=self.dtype)
        for position, (offset, length) in zip(self._positions(), entries.tolist(),
                                              strict=True):
            if offset == MISSING and length == MISSING:
                continue
            if offset > data.size or length > data.size - offset:
                raise CodecError(f"the shard index puts inner chunk {list(position)} at bytes "
                                 f"{offset}..{offset + length}, past the shard's end "
                                 f"({data.size} bytes)")
            try:
                chunk = self.inner.decode(data[offset:offset + length])
            except ChonkleError as exc:
                exc.step = f"inner chunk {list(position)}, {exc.step or 'decode'}"
                raise
            shard[self._region(position)] = chunk
        if out is not None:
            np.copyto(np.asarray(out), shard)
            return out
        return shard

    def _read_index(self, data: np.ndarray) -> np.ndarray:
        if data.size < self.index_size:
            raise CodecError(f"the shard is {data.size} bytes, smaller than its index "
                             f"({self.index_size} bytes)")
        raw = data[:self.index_size] if self.index_location == "start" else \
            data[data.size - self.index_size:]
        try:
            index = np.asarray(self.index.decode(raw))
        except ChonkleError as exc:
            exc.step = f"shard index, {exc.step or 'decode'}"
            raise
        count = math.prod(self.chunks_per_shard)
        if index.size != 2 * count:
            raise CodecError(f"the shard index holds {index.size} numbers, not {2 * count}")
        return index.astype(np.uint64, copy=False).reshape(count, 2)

    def _positions(self) -> itertools.product:
        """Inner chunk positions in C order (the index's order)."""
        return itertools.product(*(range(n) for n in self.chunks_per_shard))

    def _region(self, position: Sequence[int]) -> tuple[slice, ...]:
        return tuple(slice(p * c, (p + 1) * c) for p, c in zip(position, self.chunk_shape,
                                                                 strict=True))

    # -- encoding ------------------------------------------------------------------------

    def encode(self, buf: Any) -> bytes:
        array = np.asarray(buf)
        if array.shape != self.shard_shape:
            raise CodecError(f"the array has shape {list(array.shape)}, but a shard's is "
                             f"{list(self.shard_shape)}")
        start = self.index_size if self.index_location == "start" else 0
        parts: list[bytes] = []
        entries = np.empty((math.prod(self.chunks_per_shard), 2), dtype=np.uint64)
        for i, position in enumerate(self._positions()):
            chunk = self.inner.encode(np.ascontiguousarray(array[self._region(position)]))
            entries[i] = (start, len(chunk))
            start += len(chunk)
            parts.append(chunk)
        index = self.index.encode(entries.reshape((*self.chunks_per_shard, 2)))
        if len(index) != self.index_size:
            raise CodecError(f"the encoded shard index is {len(index)} bytes, not "
                             f"{self.index_size}")
        return b"".join([index, *parts] if self.index_location == "start" else [*parts, index])

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "chunk_shape": list(self.chunk_shape),
                "index_location": self.index_location}

    def inner_codecs(self) -> tuple[Any, ...]:
        """The pipelines this codec runs (for Pipeline.runtime and with_runtime)."""
        return (self.inner, self.index)

    def with_runtime(self, runtime: str | None) -> Sharding:
        """The same codec with the Wasm steps of its pipelines on another engine."""
        rebound = copy.copy(self)
        rebound.inner = self.inner.with_runtime(runtime)
        rebound.index = self.index.with_runtime(runtime)
        return rebound

    def __repr__(self) -> str:
        return f"Sharding({self.inner!r}, chunks {list(self.chunk_shape)})"
