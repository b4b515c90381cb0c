"""Reading a whole Zarr array through zarr-python: its native zstd codec (numcodecs) versus the
``chonkle.wasm`` zstd codec on each engine.

The array: 4096x4096 uint16 (a smooth raster with sensor noise), 512x512 chunks, zstd level 3.
It is written once with numcodecs' Zstd; the Wasm store is a copy of it whose metadata names
``chonkle.wasm`` instead, so both columns decode the very same frames. Every round opens the
array and reads it whole (``array[:]``), as a user does; the engine is chosen as a user
chooses it, with CHONKLE_RUNTIME. zarr-python 2 on CPython 3.10 (``make bench``); zarr-python 3
where that is installed.
"""

from __future__ import annotations

import json
import shutil
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from conftest import smooth_raster

zarr = pytest.importorskip("zarr")
ZARR3 = int(version("zarr").split(".")[0]) >= 3

SIZE = 4096
CHUNK = 512
LEVEL = 3
WASM_ZSTD = {"name": "zstd", "configuration": {"level": LEVEL}}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """(the native store, the same chunks under chonkle.wasm, the raster)."""
    folder = tmp_path_factory.mktemp("zarr")
    raster = smooth_raster(SIZE, SIZE)
    native, wasm = folder / "native.zarr", folder / "wasm.zarr"
    if ZARR3:
        from zarr.codecs import ZstdCodec

        array = zarr.create_array(native, shape=raster.shape, chunks=(CHUNK, CHUNK),
                                  dtype=raster.dtype, compressors=[ZstdCodec(level=LEVEL)])
    else:
        import numcodecs

        array = zarr.open_array(str(native), mode="w", shape=raster.shape,
                                chunks=(CHUNK, CHUNK), dtype=raster.dtype,
                                compressor=numcodecs.Zstd(LEVEL))
    array[:] = raster
    shutil.copytree(native, wasm)
    if ZARR3:
        metadata = json.loads((wasm / "zarr.json").read_text())
        metadata["codecs"][-1] = {"name": "chonkle.wasm", "configuration": WASM_ZSTD}
        (wasm / "zarr.json").write_text(json.dumps(metadata))
    else:
        metadata = json.loads((wasm / ".zarray").read_text())
        metadata["compressor"] = {"id": "chonkle.wasm", **WASM_ZSTD}
        (wasm / ".zarray").write_text(json.dumps(metadata))
    return native, wasm, raster


def test_read_a_whole_zarr_array(benchmark, engine: str, stores, monkeypatch) -> None:
    native, wasm, raster = stores
    benchmark.group = (f"read a whole Zarr array through zarr-python {version('zarr')}, "
                       f"{SIZE}x{SIZE} uint16, zstd, {CHUNK}x{CHUNK} chunks")
    path = native if engine == "native" else wasm
    if engine != "native":
        monkeypatch.setenv("CHONKLE_RUNTIME", engine)

    def read() -> np.ndarray:
        return zarr.open_array(str(path), mode="r")[:]

    assert np.array_equal(read(), raster)  # warm: modules compiled, files in the page cache
    if engine != "native":
        array = zarr.open_array(str(path), mode="r")
        codec = array.metadata.codecs[-1]._codec if ZARR3 else array.compressor
        assert codec.runtime == engine
    assert np.array_equal(benchmark(read), raster)
