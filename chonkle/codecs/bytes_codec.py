"""The ``bytes`` codec: an array's memory layout (Zarr v3 ``bytes`` semantics)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray

from chonkle.errors import CodecError, SpecError

ZARR_DATA_TYPES: dict[str, str] = {
    "bool": "b1",
    "int8": "i1", "int16": "i2", "int32": "i4", "int64": "i8",
    "uint8": "u1", "uint16": "u2", "uint32": "u4", "uint64": "u8",
    "float16": "f2", "float32": "f4", "float64": "f8",
    "complex64": "c8", "complex128": "c16",
}
ENDIANS = {"little": "<", "big": ">"}


class Bytes(Codec):
    """Encode: ndarray -> its bytes in ``endian`` order. Decode: bytes -> ndarray.

    Decoded arrays come back in the machine's native byte order, writable, with the
    configured ``shape`` (or 1-D when no shape is configured).
    """

    codec_id = "bytes"

    def __init__(self, data_type: str, endian: str = "little",
                 shape: Sequence[int] | None = None) -> None:
        if data_type not in ZARR_DATA_TYPES:
            raise SpecError(f"unknown data_type {data_type!r} (expected one of "
                            f"{', '.join(ZARR_DATA_TYPES)})")
        if endian not in ENDIANS:
            raise SpecError(f"endian must be 'little' or 'big', not {endian!r}")
        if shape is not None and (
            not isinstance(shape, Sequence) or isinstance(shape, str)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
        ):
            raise SpecError(f"shape must be a list of non-negative integers, not {shape!r}")
        self.data_type = data_type
        self.endian = endian
        self.shape = None if shape is None else tuple(shape)
        self.stored_dtype = np.dtype(ENDIANS[endian] + ZARR_DATA_TYPES[data_type])
        self.native_dtype = self.stored_dtype.newbyteorder("=")

    def encode(self, buf: Any) -> np.ndarray:
        array = np.asarray(buf)
        if array.dtype.newbyteorder("=") != self.native_dtype:
            raise CodecError(f"array has dtype {array.dtype}, but data_type is {self.data_type}")
        if self.shape is not None and array.shape != self.shape:
            raise CodecError(f"array has shape {list(array.shape)}, but shape is "
                             f"{list(self.shape)}")
        stored = np.ascontiguousarray(array.astype(self.stored_dtype, copy=False))
        return stored.reshape(-1).view(np.uint8)

    def decode(self, buf: Any, out: Any = None) -> np.ndarray:
        raw = ensure_contiguous_ndarray(buf).reshape(-1).view(np.uint8)
        itemsize = self.stored_dtype.itemsize
        if self.shape is not None:
            expected = math.prod(self.shape) * itemsize
            if raw.size != expected:
                raise CodecError(
                    f"decoded data is {raw.size} bytes, but {self.data_type} with shape "
                    f"{list(self.shape)} needs {expected} bytes"
                )
            shape: tuple[int, ...] = self.shape
        else:
            if raw.size % itemsize:
                raise CodecError(f"decoded data is {raw.size} bytes, not a whole number of "
                                 f"{self.data_type} items ({itemsize} bytes each)")
            shape = (raw.size // itemsize,)
        array = raw.view(self.stored_dtype).reshape(shape)
        if array.dtype != self.native_dtype:
            array = array.astype(self.native_dtype)
        elif not array.flags.writeable:
            array = array.copy()
        if out is not None:
            np.copyto(np.asarray(out), array)
            return out
        return array

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"id": self.codec_id, "data_type": self.data_type,
                                  "endian": self.endian}
        if self.shape is not None:
            config["shape"] = list(self.shape)
        return config
