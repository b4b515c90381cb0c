"""Fixed cost of a Wasm call: a codec that returns its input, so only the crossing is timed."""

from __future__ import annotations

import numpy as np
import pytest
import wasmtime

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
