"""Lazy Dask arrays over TIFFs, and chonkle codecs in Dask: locally and on a LocalCluster of
two worker processes, compared with tifffile and zarr-python."""

from __future__ import annotations

from pathlib import Path

import numcodecs
import numpy as np
import pytest
import tifffile
from conftest import smooth_raster

pytest.importorskip("dask.array", reason="the dask extra is in the dev group")
import dask
import dask.array as da
from distributed import Client, LocalCluster

import chonkle.dask
from chonkle import SpecError


def write_cog(path: Path, shape: tuple[int, ...], tile: tuple[int, int] = (64, 64),
              planar: str | None = None, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = smooth_raster(shape, "uint16", seed=seed) if len(shape) == 2 else (
        rng.integers(0, 4000, shape, dtype="uint16"))
    tifffile.imwrite(path, data, tile=tile, compression="zlib", predictor=2,
                     planarconfig=planar, photometric="minisblack" if planar != "contig"
                     else "rgb")
    return data


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as local, Client(local) as client:
        yield client


def test_blocks_are_tile_aligned_and_read_lazily(tmp_path: Path, runtime: str) -> None:
    path = tmp_path / "cog.tif"
    data = write_cog(path, (300, 200))
    array = chonkle.dask.from_tiff(path, chunks=(128, 64), runtime=runtime)
    assert array.shape == data.shape and array.dtype == data.dtype
    assert array.chunks == ((128, 128, 44), (64, 64, 64, 8))
    with dask.config.set(scheduler="threads"):
        np.testing.assert_array_equal(array.compute(), data)
        np.testing.assert_array_equal(array[100:190, 30:170].compute(), data[100:190, 30:170])


def test_default_blocks_hold_several_tiles(tmp_path: Path) -> None:
    path = tmp_path / "cog.tif"
    write_cog(path, (1024, 1024))
    assert chonkle.dask.from_tiff(path).chunks == ((1024,), (1024,))  # 2 MiB: one block
    small = chonkle.dask.from_tiff(path, chunks=64 * 64 * 2 * 6)  # six tiles' worth
    assert small.chunks[1][0] == 128 and small.chunks[0][0] == 192


@pytest.mark.parametrize("planar", ["contig", "separate"])
def test_samples_keep_tifffiles_arrangement(tmp_path: Path, planar: str) -> None:
    path = tmp_path / f"{planar}.tif"
    shape = (150, 130, 3) if planar == "contig" else (3, 150, 130)
    data = write_cog(path, shape, planar=planar)
    array = chonkle.dask.from_tiff(path, chunks=(64, 64))
    assert array.shape == data.shape
    np.testing.assert_array_equal(array.compute(scheduler="threads"), data)


def test_bad_chunks_are_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "cog.tif"
    write_cog(path, (64, 64))
    for chunks in (0, (0, 64), "64", (1, 2, 3), True):
        with pytest.raises(SpecError, match="chunks must be"):
            chonkle.dask.from_tiff(path, chunks=chunks)


def test_a_tiff_on_a_cluster_of_two_processes(tmp_path: Path, cluster: Client,
                                              runtime: str) -> None:
    path = tmp_path / "cog.tif"
    data = write_cog(path, (512, 384), seed=3)
    array = chonkle.dask.from_tiff(path, chunks=(128, 128), runtime=runtime)
    result = cluster.compute(array).result()
    np.testing.assert_array_equal(result, data)
    ran_on = cluster.run(lambda: __import__("os").getpid())
    assert len(set(ran_on.values())) == 2  # two worker processes


def test_a_zarr_v2_array_with_a_wasm_codec_on_a_cluster(tmp_path: Path, cluster: Client,
                                                         runtime: str) -> None:
    """zarr-python writes with the chonkle.wasm codec; dask.array.from_zarr reads it on the
    cluster's workers, which decode with chonkle."""
    zarr = pytest.importorskip("zarr")
    if int(zarr.__version__.split(".")[0]) >= 3:
        pytest.skip("zarr 2 writes this store; the zarr 3 test is in tests/test_zarr_v3.py")
    data = smooth_raster((300, 260), "uint16", seed=5)
    codec = numcodecs.get_codec({"id": "chonkle.wasm", "name": "zstd",
                                 "configuration": {"level": 3}})
    store = zarr.open(str(tmp_path / "a.zarr"), mode="w", shape=data.shape, chunks=(128, 128),
                      dtype=data.dtype, compressor=codec)
    store[...] = data
    array = da.from_zarr(str(tmp_path / "a.zarr"))
    np.testing.assert_array_equal(cluster.compute(array).result(), data)


def test_a_rewritten_file_is_never_read_with_its_old_structure(tmp_path: Path) -> None:
    path = tmp_path / "cog.tif"
    write_cog(path, (64, 64))
    old = chonkle.dask.from_tiff(path)
    new_data = write_cog(path, (96, 80), seed=9)
    new = chonkle.dask.from_tiff(path)
    assert new.shape == (96, 80)
    np.testing.assert_array_equal(new.compute(scheduler="threads"), new_data)
    with pytest.raises(chonkle.SourceError, match="changed after its dask array was made"):
        old.compute(scheduler="threads")
