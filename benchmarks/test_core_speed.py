"""The core speed targets: fixed cost of a Wasm step, and predictor decode versus native.

Group names pair each Wasm measurement with its native reference, so
benchmarks/report.py can print ratios measured in the same run.
"""

from __future__ import annotations

import numpy as np
import pytest
import wasmtime
from conftest import smooth_raster

from chonkle import Pipeline
from chonkle.codecs import TiffPredictor2

IDENTITY_WAT = """(module
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 1024))
  (func $alloc (export "alloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (local.get $n)))
    (if (i32.gt_u (global.get $bump) (i32.const 32768)) (then (global.set $bump (i32.const 1024))))
    (local.get $p))
  (func (export "dealloc") (param i32 i32))
  (func (export "decode") (param $in i32) (param $len i32) (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $in)) (i64.const 32))
            (i64.extend_i32_u (local.get $len)))))"""


def predictor(engine: str, width: int) -> object:
    config = {"bytes_per_sample": 2, "width": width}
    if engine == "native":
        return TiffPredictor2(**config)
    step = {"name": "tiff_predictor_2", "type": "wasm", "configuration": config}
    return Pipeline.load({"codecs": [step]}, runtime=engine).codecs[0]


@pytest.mark.benchmark(group="fixed cost: identity step, 4 KiB")
def test_identity_step_4k(benchmark, tmp_path, engine: str) -> None:
    """Everything a Wasm step costs besides the codec's own work (6 calls, 2 copies)."""
    if engine == "native":
        pytest.skip("a fixed cost of Wasm calls has no native counterpart")
    path = tmp_path / "identity.wasm"
    path.write_bytes(wasmtime.wat2wasm(IDENTITY_WAT))
    step = {"name": "identity", "type": "wasm", "uri": path.as_uri()}
    codec = Pipeline.load({"codecs": [step]}, runtime=engine).codecs[0]
    data = np.arange(4096, dtype=np.uint8)
    assert np.array_equal(benchmark(codec.decode, data), data)


@pytest.mark.benchmark(group="tiff_predictor_2 decode, 4 KiB")
def test_predictor_decode_4k(benchmark, engine: str) -> None:
    tile = smooth_raster(1, 2048)
    encoded = TiffPredictor2(2, 2048).encode(tile.tobytes())
    decoded = benchmark(predictor(engine, 2048).decode, encoded)
    assert decoded.tobytes() == tile.tobytes()


@pytest.mark.benchmark(group="tiff_predictor_2 decode, 1024x1024 uint16")
def test_predictor_decode_2m(benchmark, engine: str) -> None:
    tile = smooth_raster(1024, 1024)
    encoded = TiffPredictor2(2, 1024).encode(tile.tobytes())
    decoded = benchmark(predictor(engine, 1024).decode, encoded)
    assert decoded.tobytes() == tile.tobytes()


@pytest.mark.benchmark(group="tiff_predictor_2 encode, 1024x1024 uint16")
def test_predictor_encode_2m(benchmark, engine: str) -> None:
    tile = smooth_raster(1024, 1024)
    encoded = benchmark(predictor(engine, 1024).encode, tile.tobytes())
    assert encoded.tobytes() == TiffPredictor2(2, 1024).encode(tile.tobytes()).tobytes()
