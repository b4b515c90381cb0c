"""Every codec that exists both natively and as a shipped Wasm module, as benchmark cases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import imagecodecs
import numcodecs
import numpy as np

from chonkle.codecs import TiffPredictor2


@dataclass(frozen=True)
class CodecCase:
    """`prepare(raster)` gives the bytes to encode; natives work on bytes in and out."""

    config: Callable[[np.ndarray], dict]
    prepare: Callable[[np.ndarray], bytes]
    native_encode: Callable[[np.ndarray, bytes], object]
    native_decode: Callable[[np.ndarray, bytes], object]
    wasm_encode: bool = True


def _floats(raster: np.ndarray) -> np.ndarray:
    """The raster as float32 of the same byte size (half the rows): a floating-point band."""
    return (raster[: raster.shape[0] // 2 or 1].astype(np.float32) / 7).astype("<f4")


def _rows(raster: np.ndarray) -> int:
    return raster.shape[-1]


CASES: dict[str, CodecCase] = {
    "tiff_predictor_2": CodecCase(
        lambda r: {"bytes_per_sample": 2, "width": _rows(r)},
        lambda r: r.tobytes(),
        lambda r, b: TiffPredictor2(2, _rows(r)).encode(b),
        lambda r, b: TiffPredictor2(2, _rows(r)).decode(b)),
    "tiff_predictor_3": CodecCase(
        lambda r: {"bytes_per_sample": 4, "width": _rows(r)},
        lambda r: _floats(r).tobytes(),
        lambda r, b: imagecodecs.floatpred_encode(
            np.frombuffer(b, "<f4").reshape(-1, _rows(r)), axis=-1),
        lambda r, b: imagecodecs.floatpred_decode(
            np.frombuffer(b, "<f4").reshape(-1, _rows(r)), axis=-1)),
    "shuffle": CodecCase(
        lambda r: {"elementsize": 2}, lambda r: r.tobytes(),
        lambda r, b: numcodecs.Shuffle(2).encode(b), lambda r, b: numcodecs.Shuffle(2).decode(b)),
    "delta": CodecCase(
        lambda r: {"dtype": "<u2"}, lambda r: r.tobytes(),
        lambda r, b: numcodecs.Delta("<u2").encode(b),
        lambda r, b: numcodecs.Delta("<u2").decode(b)),
    "packbits": CodecCase(
        lambda r: {}, lambda r: r.tobytes(),
        lambda r, b: imagecodecs.packbits_encode(b), lambda r, b: imagecodecs.packbits_decode(b)),
    "lzw": CodecCase(
        lambda r: {}, lambda r: r.tobytes(),
        lambda r, b: imagecodecs.lzw_encode(b), lambda r, b: imagecodecs.lzw_decode(b)),
    "zlib": CodecCase(
        lambda r: {"level": 6}, lambda r: r.tobytes(),
        lambda r, b: numcodecs.Zlib(6).encode(b), lambda r, b: numcodecs.Zlib(6).decode(b)),
    "zstd": CodecCase(
        lambda r: {"level": 3}, lambda r: r.tobytes(),
        lambda r, b: numcodecs.Zstd(3).encode(b), lambda r, b: numcodecs.Zstd(3).decode(b)),
}


def as_bytes(result: object) -> bytes:
    return np.ascontiguousarray(np.asarray(result)).tobytes()
