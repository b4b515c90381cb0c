"""Fixed cost of a Wasm call: a codec that returns its input, so only the crossing is timed."""

from __future__ import annotations

import numpy as np
import pytest
import wasmtime
from conftest import raster_of

import chonkle
from chonkle import Pipeline

# Returns its input buffer (a bump allocator makes that safe here): zero work in Wasm.
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


@pytest.mark.benchmark(group="fixed cost of a Wasm step, 4 KiB")
def test_identity_step(benchmark, tmp_path, engine: str) -> None:
    """Six calls into Wasm (alloc x2, the codec, dealloc x3), two copies, the checks."""
    if engine == "native":
        pytest.skip("a Wasm call has no native counterpart")
    path = tmp_path / "identity.wasm"
    path.write_bytes(wasmtime.wat2wasm(IDENTITY_WAT))
    codec = Pipeline.load({"codecs": [{"name": "identity", "type": "wasm",
                                       "uri": path.as_uri()}]}, runtime=engine).codecs[0]
    data = np.arange(4096, dtype=np.uint8)
    assert np.array_equal(benchmark(codec.decode, data), data)


PREDICTOR_STEPS = [{"name": "tiff_predictor_2", "type": "wasm",
                    "configuration": {"bytes_per_sample": 2, "width": 64}}]


@pytest.mark.benchmark(group="one Wasm step on 4 KiB: prebuilt Pipeline.decode")
def test_prebuilt_pipeline(benchmark, engine: str) -> None:
    """The reference for the row below: the pipeline built once, outside the timing."""
    if engine == "native":
        pytest.skip("compares two ways of calling the same Wasm step")
    pipeline = Pipeline.load(PREDICTOR_STEPS, runtime=engine)
    chunk = raster_of(4096, width=64).tobytes()
    assert benchmark(pipeline.decode, chunk).nbytes == 4096


@pytest.mark.benchmark(group="one Wasm step on 4 KiB: decode(chunk, list of dicts)")
def test_decode_with_a_list_of_dicts(benchmark, engine: str) -> None:
    """The original API, called per chunk with the spec as dicts: a memoized build."""
    if engine == "native":
        pytest.skip("compares two ways of calling the same Wasm step")
    chunk = raster_of(4096, width=64).tobytes()
    steps = [dict(step) for step in PREDICTOR_STEPS]
    assert benchmark(chonkle.decode, chunk, steps, runtime=engine).nbytes == 4096
