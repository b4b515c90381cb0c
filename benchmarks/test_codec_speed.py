"""Decode speed of every Wasm codec against its native reference, on a 1024x1024 raster.

The data is a smooth uint16 band with sensor noise (float32 for the floating-point
predictor), encoded the way each codec is used: a predictor or shuffle on the raw
samples, a compressor on the raw bytes. Each group pairs one codec's native reference
with its Wasm build on every engine, measured in the same run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import imagecodecs
import numcodecs
import numpy as np
import pytest
from conftest import smooth_raster

from chonkle import Pipeline
from chonkle.codecs import TiffPredictor2

RASTER = smooth_raster(1024, 1024)
FLOATS = (RASTER.astype(np.float32) / 7).astype("<f4")


@dataclass(frozen=True)
class Case:
    config: dict
    data: bytes  # what the codec decodes
    expected: bytes
    native: Callable[[bytes], object]


def _cases() -> dict[str, Case]:
    raw = RASTER.tobytes()
    pred2 = TiffPredictor2(2, 1024)
    pred3 = imagecodecs.floatpred_encode(FLOATS, axis=-1).tobytes()
    delta = numcodecs.Delta("<u2")
    zlib, zstd = numcodecs.Zlib(6), numcodecs.Zstd(3)
    return {
        "tiff_predictor_2": Case({"bytes_per_sample": 2, "width": 1024},
                                 pred2.encode(raw).tobytes(), raw, pred2.decode),
        "tiff_predictor_3": Case({"bytes_per_sample": 4, "width": 1024}, pred3,
                                 FLOATS.tobytes(), lambda b: imagecodecs.floatpred_decode(
                                     np.frombuffer(b, "<f4").reshape(1024, 1024), axis=-1)),
        "shuffle": Case({"elementsize": 2}, bytes(numcodecs.Shuffle(2).encode(raw)), raw,
                        numcodecs.Shuffle(2).decode),
        "delta": Case({"dtype": "<u2"}, delta.encode(RASTER).tobytes(), raw, delta.decode),
        "packbits": Case({}, imagecodecs.packbits_encode(raw), raw,
                         imagecodecs.packbits_decode),
        "lzw": Case({}, imagecodecs.lzw_encode(raw), raw, imagecodecs.lzw_decode),
        "zlib": Case({}, zlib.encode(raw), raw, zlib.decode),
        "zstd": Case({}, zstd.encode(raw), raw, zstd.decode),
    }


CASES = _cases()


@pytest.mark.parametrize("codec", sorted(CASES))
def test_decode(benchmark, codec: str, engine: str) -> None:
    case = CASES[codec]
    benchmark.group = f"{codec} decode, 1024x1024"
    if engine == "native":
        decode = case.native
    else:
        step = {"name": codec, "type": "wasm", "configuration": case.config}
        decode = Pipeline.load({"codecs": [step]}, runtime=engine).codecs[0].decode
    result = benchmark(decode, case.data)
    assert np.asarray(result).tobytes() == case.expected
