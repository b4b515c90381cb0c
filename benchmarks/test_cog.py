"""Reading a whole COG: tifffile (with imagecodecs, natively) versus chonkle.open_tiff().read()
on each engine, serially and on 2 workers.

The file: a 4096x4096 uint16 raster (smooth structure plus sensor noise), Deflate with
predictor 2, in 512 tiles (TIFF tiles need not be square: 256 rows x 128 columns; a square
tiling gives 256 or 1024), with three reduced-resolution overviews after it as a COG has. Both
readers open the file and read level 0 on every round. The native column is tifffile with
``maxworkers`` 1 or 2; chonkle's columns pass ``workers`` 1 or 2 to its reader, which decodes
through ``Pipeline.decode_many`` (the row for 2 workers is skipped where that does not exist).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import interleaved_speedup, smooth_raster

import chonkle
from chonkle import Pipeline

SIZE = 4096
TILE = (256, 128)


@pytest.fixture(scope="module")
def cog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("cog") / "raster.tif"
    raster = smooth_raster(SIZE, SIZE)
    options = {"tile": TILE, "compression": "adobe_deflate", "compressionargs": {"level": 6},
               "predictor": 2, "photometric": "minisblack"}
    with tifffile.TiffWriter(path) as writer:
        writer.write(raster, **options)
        for factor in (2, 4, 8):
            writer.write(raster[::factor, ::factor], subfiletype=1, **options)
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages[0].dataoffsets) == 512
    return path, raster


@pytest.mark.parametrize("workers", [1, 2])
def test_read_whole_cog(benchmark, engine: str, cog, workers: int) -> None:
    path, raster = cog
    benchmark.group = (f"read a whole COG, 4096x4096 uint16, Deflate + predictor 2, 512 tiles, "
                       f"{workers} worker{'s' if workers > 1 else ''}")
    if engine == "native":
        benchmark.extra_info["reader"] = "tifffile"

        def read(workers: int = workers) -> np.ndarray:
            with tifffile.TiffFile(path) as tif:
                return tif.pages[0].asarray(maxworkers=workers)
    else:
        if workers > 1 and not hasattr(Pipeline, "decode_many"):
            pytest.skip("Pipeline.decode_many (parallel decoding) does not exist yet")
        chonkle.open_tiff(path, runtime=engine).read(workers=workers)  # warm every worker

        def read(workers: int = workers) -> np.ndarray:
            return chonkle.open_tiff(path, runtime=engine).read(workers=workers)
    if workers > 1:
        benchmark.extra_info["speedup"] = interleaved_speedup(lambda: read(1), read)
    assert np.array_equal(benchmark(read), raster)
