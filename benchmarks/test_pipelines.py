"""Whole pipelines on a 1024x1024 uint16 tile, native steps versus Wasm steps, and many tiles
decoded with 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import interleaved_speedup, smooth_raster

from chonkle import Pipeline


def cog(kind: str, shape: tuple[int, int]) -> dict:
    """bytes -> tiff_predictor_2 -> zlib, as a COG tile is stored."""
    return {"codecs": [
        {"name": "bytes", "type": "numcodecs",
         "configuration": {"data_type": "uint16", "shape": list(shape)}},
        {"name": "tiff_predictor_2", "type": kind,
         "configuration": {"bytes_per_sample": 2, "width": shape[1]}},
        {"name": "zlib", "type": kind, "configuration": {"level": 6}},
    ]}


def zarr(kind: str, shape: tuple[int, int]) -> dict:
    """bytes -> shuffle -> zstd, as Zarr chunks often are."""
    return {"codecs": [
        {"name": "bytes", "type": "numcodecs",
         "configuration": {"data_type": "uint16", "shape": list(shape)}},
        {"name": "shuffle", "type": kind, "configuration": {"elementsize": 2}},
        {"name": "zstd", "type": kind, "configuration": {"level": 3}},
    ]}


def pipeline_for(build, engine: str, shape: tuple[int, int]) -> tuple[Pipeline, Pipeline]:
    """(the pipeline to time, a native one that encodes the chunks)."""
    native = Pipeline.load(build("numcodecs", shape))
    if engine == "native":
        return native, native
    return Pipeline.load(build("wasm", shape), runtime=engine), native


@pytest.mark.parametrize("name", ["COG (bytes, tiff_predictor_2, zlib)",
                                  "Zarr (bytes, shuffle, zstd)"])
def test_pipeline_decode(benchmark, engine: str, name: str) -> None:
    build = cog if name.startswith("COG") else zarr
    tile = smooth_raster(1024, 1024)
    pipeline, native = pipeline_for(build, engine, tile.shape)
    chunk = native.encode(tile)
    benchmark.group = f"pipeline {name} decode, 2 MiB"
    assert np.array_equal(benchmark(pipeline.decode, chunk), tile)


def test_pipeline_encode_cog(benchmark, engine: str) -> None:
    tile = smooth_raster(1024, 1024)
    pipeline, native = pipeline_for(cog, engine, tile.shape)
    benchmark.group = "pipeline COG (bytes, tiff_predictor_2, zlib) encode, 2 MiB"
    assert np.array_equal(native.decode(benchmark(pipeline.encode, tile)), tile)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("tile", [256, 512])  # tifffile's and many producers' tile; GDAL's COG
def test_many_tiles(benchmark, engine: str, workers: int, tile: int) -> None:
    """64 COG tiles with Pipeline.decode_many on 1 or 2 workers: threads on
    wasmtime (and native), worker processes on wasmer (its calls hold the GIL)."""
    tiles = [smooth_raster(tile, tile, seed) for seed in range(64)]
    pipeline, native = pipeline_for(cog, engine, (tile, tile))
    chunks = [native.encode(t) for t in tiles]
    benchmark.group = f"64 COG tiles of {tile}x{tile}, decode_many, {workers} worker(s)"
    pipeline.decode_many(chunks, workers=workers)  # start workers, compile, instantiate
    if workers > 1:
        benchmark.extra_info["speedup"] = interleaved_speedup(
            lambda: pipeline.decode_many(chunks, workers=1),
            lambda: pipeline.decode_many(chunks, workers=workers))
    decoded = benchmark(pipeline.decode_many, chunks, workers=workers)
    assert all(np.array_equal(d, t) for d, t in zip(decoded, tiles, strict=True))
