"""Every codec x engine x direction x size, against the native implementation in the same run.

Decoders all read the native encoder's output, so every engine decodes the same stream.
Encoders of formats with one encoding must match native byte for byte; compressors (zlib,
zstd) must write streams the native codec decodes.
"""

from __future__ import annotations

import pytest
from cases import CASES, as_bytes
from conftest import SIZES, raster_of

from chonkle import Pipeline


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("direction", ["decode", "encode"])
@pytest.mark.parametrize("codec", list(CASES))
def test_codec(benchmark, codec: str, direction: str, size: str, engine: str) -> None:
    case = CASES[codec]
    if direction == "encode" and engine != "native" and not case.wasm_encode:
        pytest.skip(f"{codec} has no Wasm encoder")
    raster = raster_of(SIZES[size])
    raw = case.prepare(raster)
    encoded = as_bytes(case.native_encode(raster, raw))
    benchmark.group = f"{codec} {direction}, {size}"
    if engine == "native":
        native = case.native_decode if direction == "decode" else case.native_encode
        function, argument = (lambda data: native(raster, data)), (
            encoded if direction == "decode" else raw)
    else:
        step = {"name": codec, "type": "wasm", "configuration": case.config(raster)}
        wasm = Pipeline.load({"codecs": [step]}, runtime=engine).codecs[0]
        function = getattr(wasm, direction)
        argument = encoded if direction == "decode" else raw
    result = benchmark(function, argument)
    if direction == "decode":
        assert as_bytes(result) == raw
    elif codec in ("tiff_predictor_2", "tiff_predictor_3", "shuffle", "delta"):
        assert as_bytes(result) == encoded  # formats with one encoding: byte for byte
    elif codec in ("zlib", "zstd"):
        assert as_bytes(case.native_decode(raster, as_bytes(result))) == raw
