"""The steps of a Zarr pipeline that are Zarr's own array semantics, as numcodecs codecs.

A Zarr chunk is an array; chonkle's pipelines end in an array too, but Zarr says more about
how that array is laid out than chonkle's ``bytes`` step does. These codecs carry the rest:

- :class:`V2Layout`: Zarr v2's chunk as its filters and compressor see it, a typed array in
  the stored byte order, laid out in order C or F;
- :class:`Transpose`: Zarr v3's ``transpose`` codec;
- :class:`ArrayStep`: any array -> array or array -> bytes codec (numcodecs', or a Wasm
  one), given back the shape and data type Zarr says its output has, as zarr-python does;
- the ``sharding_indexed`` codec lives in :mod:`chonkle.formats.zarr_sharding`.

They are built from a store's metadata, never named in a pipeline file, so they are not
registered with numcodecs. Every decoded chunk is C-ordered, writable and in native byte
order, whatever the stored layout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray

from chonkle.errors import CodecError


def flat_bytes(buf: Any) -> np.ndarray:
    """Any buffer or array as its bytes in memory order: a flat uint8 array (no copy)."""
    if isinstance(buf, np.ndarray) and not (buf.flags.c_contiguous or buf.flags.f_contiguous):
        buf = np.ascontiguousarray(buf)
    return ensure_contiguous_ndarray(buf).reshape(-1, order="A").view(np.uint8)


def as_typed(buf: Any, dtype: np.dtype, shape: Sequence[int], what: str,
             order: str = "C") -> np.ndarray:
    """``buf`` as an array of ``dtype`` and ``shape``: reshaped if it already is one, else
    its bytes reinterpreted (CodecError when the size does not fit)."""
    shape = tuple(shape)
    if isinstance(buf, np.ndarray) and buf.dtype == dtype and order == "C":
        if buf.shape == shape:
            return buf
        if buf.size == math.prod(shape):
            return np.ascontiguousarray(buf).reshape(shape)
    raw = flat_bytes(buf)
    expected = math.prod(shape) * dtype.itemsize
    if raw.size != expected:
        raise CodecError(f"{what} is {raw.size} bytes, but {dtype} of shape {list(shape)} "
                         f"needs {expected} bytes")
    return raw.view(dtype).reshape(shape, order=order)  # type: ignore[call-overload]


def native_c_array(array: np.ndarray) -> np.ndarray:
    """The array in native byte order, C-ordered and writable (copied only if it is not)."""
    native = array.dtype.newbyteorder("=")
    if array.dtype != native:
        return np.array(array, dtype=native, order="C")
    return np.require(array, requirements=["C", "W"])


def _check_array(array: np.ndarray, shape: tuple[int, ...], dtype: np.dtype, what: str) -> None:
    if array.shape != shape:
        raise CodecError(f"{what}: the array has shape {list(array.shape)}, but the chunk's "
                         f"shape is {list(shape)}")
    if array.dtype.newbyteorder("=") != dtype.newbyteorder("="):
        raise CodecError(f"{what}: the array has dtype {array.dtype}, but the chunk's is "
                         f"{dtype.newbyteorder('=')}")


class V2Layout(Codec):
    """Zarr v2's array -> bytes step: encode gives the chunk as a flat array of the stored
    dtype (``"<u2"``, ``">f8"``: byte order included) in ``order`` (``C`` or ``F``), which
    is what zarr-python hands the filters and compressor; decode reads any buffer back.

    A typed array, not bytes, so filters that check their input's type (``bitround`` takes
    floats only) work as they do under zarr-python.
    """

    codec_id = "zarr_v2_layout"

    def __init__(self, dtype: str | np.dtype, shape: Sequence[int], order: str = "C") -> None:
        self.stored_dtype = np.dtype(dtype)
        self.shape = tuple(int(n) for n in shape)
        self.order = order

    def encode(self, buf: Any) -> np.ndarray:
        array = np.asarray(buf)
        _check_array(array, self.shape, self.stored_dtype, "zarr v2 layout")
        return np.ravel(array.astype(self.stored_dtype, copy=False), order=self.order)

    def decode(self, buf: Any, out: Any = None) -> np.ndarray:
        array = native_c_array(as_typed(buf, self.stored_dtype, self.shape, "the decoded chunk",
                                        order=self.order))
        if out is not None:
            np.copyto(np.asarray(out), array)
            return out
        return array

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "dtype": self.stored_dtype.str, "shape": list(self.shape),
                "order": self.order}


class Transpose(Codec):
    """Zarr v3's ``transpose``: encode permutes the axes by ``order`` (the encoded array's
    axis i is the chunk's axis ``order[i]``); decode undoes it. Outputs are C-ordered, so the
    next step sees the transposed array's own bytes."""

    codec_id = "transpose"

    def __init__(self, order: Sequence[int], shape: Sequence[int]) -> None:
        self.order = tuple(int(i) for i in order)
        self.shape = tuple(int(n) for n in shape)  # the decoded (chunk's) shape
        self.inverse = tuple(int(i) for i in np.argsort(self.order))
        self.encoded_shape = tuple(self.shape[i] for i in self.order)

    def encode(self, buf: Any) -> np.ndarray:
        array = np.asarray(buf)
        if array.shape != self.shape:
            raise CodecError(f"transpose: the array has shape {list(array.shape)}, but the "
                             f"chunk's shape is {list(self.shape)}")
        return np.ascontiguousarray(array.transpose(self.order))

    def decode(self, buf: Any, out: Any = None) -> np.ndarray:
        array = np.asarray(buf)
        if array.shape != self.encoded_shape:
            if array.size != math.prod(self.encoded_shape):
                raise CodecError(f"transpose: got {array.size} values, but the chunk holds "
                                 f"{math.prod(self.shape)}")
            array = array.reshape(self.encoded_shape)
        result = np.ascontiguousarray(array.transpose(self.inverse))
        if out is not None:
            np.copyto(np.asarray(out), result)
            return out
        return result

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "order": list(self.order), "shape": list(self.shape)}


ArraySpec = tuple[tuple[int, ...], np.dtype]
"""What flows between Zarr's array codecs: a chunk's shape and (native) data type."""


class ArrayStep(Codec):
    """An array -> array codec (``encoded`` given) or array -> bytes codec (``encoded``
    None), with the shapes and data types Zarr says it takes and gives.

    numcodecs' filters hand back flat arrays, and Wasm codecs arrays of their input's type
    or bytes; the next step of a Zarr pipeline needs the chunk as Zarr describes it, so
    this reinterprets each output as that (as zarr-python's own numcodecs wrappers do).
    """

    def __init__(self, inner: Codec, decoded: ArraySpec, encoded: ArraySpec | None) -> None:
        self.inner = inner
        self.decoded = (tuple(decoded[0]), np.dtype(decoded[1]))
        self.encoded = None if encoded is None else (tuple(encoded[0]), np.dtype(encoded[1]))
        self.codec_id = inner.codec_id

    def encode(self, buf: Any) -> Any:
        array = np.ascontiguousarray(np.asarray(buf))
        output = self.inner.encode(array)
        if self.encoded is None:
            return output
        shape, dtype = self.encoded
        return as_typed(output, dtype, shape, f"{self.codec_id}'s output")

    def decode(self, buf: Any, out: Any = None) -> np.ndarray:
        if self.encoded is not None:
            buf = as_typed(buf, self.encoded[1], self.encoded[0], f"{self.codec_id}'s input")
        shape, dtype = self.decoded
        array = native_c_array(as_typed(self.inner.decode(buf), dtype, shape,
                                        f"{self.codec_id}'s output"))
        if out is not None:
            np.copyto(np.asarray(out), array)
            return out
        return array

    def get_config(self) -> dict[str, Any]:
        return self.inner.get_config()

    def inner_codecs(self) -> tuple[Codec, ...]:
        """The codecs this one runs (for Pipeline.runtime and with_runtime)."""
        return (self.inner,)

    def with_runtime(self, runtime: str | None) -> ArrayStep:
        """The same step with its Wasm codec on another engine."""
        rebind = getattr(self.inner, "with_runtime", None)
        return self if rebind is None else ArrayStep(rebind(runtime), self.decoded, self.encoded)

    def __repr__(self) -> str:
        return f"ArrayStep({self.inner!r})"
