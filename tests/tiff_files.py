"""TIFF files for the tests, written by the real producers into tmp folders: tifffile (every
compression x predictor x sample type x byte order x layout chonkle reads) and GDAL through
rasterio (the COG driver, and the GTiff driver for what a COG never is: stripped, separate
planes, big-endian, BigTIFF, sparse).

The tifffile matrix is not a full cross product (that would be thousands of files); it is
built so that every value of every dimension meets every compression and every predictor:

- each (compression, predictor) pair TIFF allows, 16 of them (no compression takes no
  predictor), is written with every sample type its predictor takes: predictor 2 with the
  eight integer types, predictor 3 with the three float types; predictor 1 with four types
  per compression, a different four each (all eleven without compression);
- the case's position in that list then picks the rest, by cycles of coprime lengths: layout
  (gray, 3 interleaved samples, 2 separate planes) with period 3, byte order with period 2,
  tiles or strips by pairs, BigTIFF by fours, overviews as SubIFDs or as reduced pages by
  eights. Every block of cases for one compression or one predictor is longer than 8, so it
  meets every value of each; ``test_matrix_covers_every_value`` checks that it does.

Images are 37x45 (neither a multiple of the 16x16 tiles nor of the 8-row strips, so edge
tiles are padded and each plane's last strip is short) with two overviews of 19x23 and
10x12.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

HEIGHT, WIDTH = 37, 45
TILE, ROWS_PER_STRIP = 16, 8
COMPRESSIONS = {"none": 1, "lzw": 5, "adobe_deflate": 8, "deflate": 32946, "packbits": 32773,
                "zstd": 50000}
INTEGERS = ["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64"]
FLOATS = ["float16", "float32", "float64"]
SAMPLE_TYPES = INTEGERS + FLOATS
LAYOUTS = {"gray": (1, None), "contig": (3, "contig"), "separate": (2, "separate")}
BYTE_ORDERS = {"<": "II", ">": "MM"}
OVERVIEWS = ["subifds", "pages"]


@dataclass(frozen=True)
class Case:
    compression: str
    predictor: int
    dtype: str
    layout: str
    byteorder: str
    tiled: bool
    bigtiff: bool
    overviews: str

    @property
    def id(self) -> str:
        return "-".join([self.compression, f"p{self.predictor}", self.dtype, self.layout,
                         BYTE_ORDERS[self.byteorder], "tiled" if self.tiled else "strips",
                         "big" if self.bigtiff else "classic", self.overviews])


def matrix() -> list[Case]:
    pairs = [("none", 1)] + [(c, p) for c in COMPRESSIONS if c != "none" for p in (1, 2, 3)]
    chosen: list[tuple[str, int, str]] = []
    for compression, predictor in pairs:
        if predictor == 2:
            types = INTEGERS
        elif predictor == 3:
            types = FLOATS
        elif compression == "none":
            types = SAMPLE_TYPES
        else:
            start = 4 * list(COMPRESSIONS).index(compression)
            types = [SAMPLE_TYPES[(start + j) % len(SAMPLE_TYPES)] for j in range(4)]
        chosen += [(compression, predictor, dtype) for dtype in types]
    return [Case(compression, predictor, dtype, list(LAYOUTS)[i % 3], "<>"[i % 2],
                 (i // 2) % 2 == 0, (i // 4) % 2 == 1, OVERVIEWS[(i // 8) % 2])
            for i, (compression, predictor, dtype) in enumerate(chosen)]


def raster(dtype: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Half full-range noise (so predictor differences wrap), half smooth runs; floats with
    NaN, infinities and signed zeros."""
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        noise = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
        smooth = np.clip(np.cumsum(rng.integers(-3, 4, size=shape), axis=-1) + 60, info.min,
                         info.max).astype(dtype)
        return np.where(rng.random(shape) < 0.5, noise, smooth)
    values = (np.cumsum(rng.normal(0, 2, size=shape), axis=-1) * 7.0).astype(dtype)
    flat = values.reshape(-1)
    flat[rng.integers(0, flat.size, 6)] = [np.nan, np.inf, -np.inf, -0.0, 1e-3, -np.nan]
    return values


def _image(case: Case, height: int, width: int, seed: int) -> np.ndarray:
    samples, planar = LAYOUTS[case.layout]
    if planar == "separate":
        shape: tuple[int, ...] = (samples, height, width)
    elif planar == "contig":
        shape = (height, width, samples)
    else:
        shape = (height, width)
    return raster(case.dtype, shape, seed)


def write_tifffile(path: Path, case: Case) -> Path:
    """`case` as a TIFF written by tifffile: a 37x45 image and two overviews."""
    planar = LAYOUTS[case.layout][1]
    options: dict[str, Any] = {
        "photometric": "minisblack", "planarconfig": planar,
        "compression": COMPRESSIONS[case.compression], "predictor": case.predictor,
    }
    if case.tiled:
        options["tile"] = (TILE, TILE)
    else:
        options["rowsperstrip"] = ROWS_PER_STRIP
    sizes = [(HEIGHT, WIDTH), (19, 23), (10, 12)]
    with tifffile.TiffWriter(path, bigtiff=case.bigtiff, byteorder=case.byteorder) as writer:
        for number, (height, width) in enumerate(sizes):
            extra: dict[str, Any] = {}
            if number == 0 and case.overviews == "subifds":
                extra["subifds"] = len(sizes) - 1
            if number > 0:
                extra["subfiletype"] = 1
            writer.write(_image(case, height, width, seed=number), **options, **extra)
    return path


def page_at(tif: tifffile.TiffFile, ifd: tuple[int, ...]) -> Any:
    """The tifffile page a chonkle level's ``ifd`` names."""
    page = tif.pages[ifd[0]]
    for number in ifd[1:]:
        page = page.pages[number]
    return page


def tifffile_levels(path: Path | str) -> dict[tuple[int, ...], np.ndarray]:
    """tifffile's read of every image and SubIFD (masks too), by ifd."""
    found = {}
    with tifffile.TiffFile(path) as tif:
        for number, page in enumerate(tif.pages):
            found[(number,)] = page.asarray()
            for sub_number, sub in enumerate(page.pages or ()):
                found[(number, sub_number)] = sub.asarray()
    return found


def assert_same(got: np.ndarray, expected: np.ndarray) -> None:
    """Same shape, dtype and bytes (NaN payloads and signed zeros included)."""
    want = np.ascontiguousarray(expected.astype(expected.dtype.newbyteorder("="), copy=False))
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.dtype.isnative
    assert np.ascontiguousarray(got).tobytes() == want.tobytes()


def window_of(array: np.ndarray, separate: bool, rows: tuple[int, int],
              cols: tuple[int, int]) -> np.ndarray:
    if separate:
        return array[:, rows[0]:rows[1], cols[0]:cols[1]]
    return array[rows[0]:rows[1], cols[0]:cols[1]]


# ---- GDAL ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class GdalCase:
    """A file GDAL writes: `driver` with creation `options`, `bands` bands of `dtype`."""

    name: str
    driver: str
    dtype: str
    bands: int
    options: dict[str, str]
    size: tuple[int, int] = (300, 420)
    nodata: float | None = None
    sparse: bool = False  # leave a block of the image unwritten (no bytes on disk)
    mask: bool = False  # an internal transparency mask (IFDs that are not levels)
    overviews: tuple[int, ...] = ()  # GTiff: internal overviews by these factors


GDAL_CASES = [
    GdalCase("cog-deflate-p2-uint16", "COG", "uint16", 1,
             {"COMPRESS": "DEFLATE", "PREDICTOR": "2", "BLOCKSIZE": "128"}),
    GdalCase("cog-zstd-p3-float32-2bands", "COG", "float32", 2,
             {"COMPRESS": "ZSTD", "PREDICTOR": "3", "BLOCKSIZE": "128"}),
    GdalCase("cog-lzw-p2-int16-rgb", "COG", "int16", 3,
             {"COMPRESS": "LZW", "PREDICTOR": "2", "BLOCKSIZE": "128"}),
    GdalCase("cog-deflate-p3-float64", "COG", "float64", 1,
             {"COMPRESS": "DEFLATE", "PREDICTOR": "3", "BLOCKSIZE": "256"}),
    GdalCase("cog-zstd-p2-uint8-mask", "COG", "uint8", 3,
             {"COMPRESS": "ZSTD", "PREDICTOR": "2", "BLOCKSIZE": "128"}, mask=True),
    GdalCase("cog-lzw-uint32-nodata", "COG", "uint32", 1,
             {"COMPRESS": "LZW", "BLOCKSIZE": "128"}, nodata=7),
    GdalCase("cog-deflate-p2-int8", "COG", "int8", 1,
             {"COMPRESS": "DEFLATE", "PREDICTOR": "2", "BLOCKSIZE": "128"}),
    GdalCase("gtiff-packbits-strips-int32-band", "GTiff", "int32", 2,
             {"COMPRESS": "PACKBITS", "INTERLEAVE": "BAND", "BLOCKYSIZE": "7"}),
    GdalCase("gtiff-deflate-p2-uint16-big-endian-bigtiff", "GTiff", "uint16", 2,
             {"COMPRESS": "DEFLATE", "PREDICTOR": "2", "TILED": "YES", "BLOCKXSIZE": "64",
              "BLOCKYSIZE": "32", "ENDIANNESS": "BIG", "BIGTIFF": "YES"}, overviews=(2, 4)),
    GdalCase("gtiff-zstd-p3-float32-band-strips-big-endian", "GTiff", "float32", 3,
             {"COMPRESS": "ZSTD", "PREDICTOR": "3", "INTERLEAVE": "BAND", "BLOCKYSIZE": "16",
              "ENDIANNESS": "BIG"}),
    GdalCase("gtiff-sparse-deflate-float32-nodata", "GTiff", "float32", 1,
             {"COMPRESS": "DEFLATE", "TILED": "YES", "SPARSE_OK": "TRUE"}, nodata=-9999.0,
             sparse=True),
    GdalCase("gtiff-uncompressed-uint64", "GTiff", "uint64", 1,
             {"TILED": "YES", "BLOCKXSIZE": "96", "BLOCKYSIZE": "80"}),
]


def write_gdal(folder: Path, case: GdalCase) -> Path:
    """Write `case` with GDAL (rasterio's bundled build), georeferenced in UTM."""
    import rasterio
    import rasterio.shutil
    from rasterio.transform import Affine

    height, width = case.size
    data = np.stack([raster(case.dtype, (height, width), seed=band)
                     for band in range(case.bands)])
    if np.dtype(case.dtype).kind == "f":
        data = np.nan_to_num(data, nan=1.5, posinf=2.5, neginf=-2.5)  # GDAL's overviews
    profile = {"width": width, "height": height, "count": case.bands, "dtype": case.dtype,
               "crs": "EPSG:32633", "transform": Affine(10, 0, 500000, 0, -10, 4600000),
               "nodata": case.nodata}
    target = folder / f"{case.name}.tif"
    source = folder / f"{case.name}.src.tif" if case.driver == "COG" else target
    options = {} if case.driver == "COG" else case.options
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning and the like
        with rasterio.open(source, "w", driver="GTiff", **profile, **options) as dataset:
            if case.sparse:  # the first rows of blocks are never written: no bytes on disk
                dataset.write(data[:, 256:, :], window=((256, height), (0, width)))
            else:
                dataset.write(data)
            if case.mask:
                mask = np.full((height, width), 255, np.uint8)
                mask[:40, :90] = 0
                dataset.write_mask(mask)
            if case.overviews:
                dataset.build_overviews(list(case.overviews))
        if case.driver == "COG":
            rasterio.shutil.copy(source, target, driver="COG", **case.options)
            source.unlink()
    return target


# Matrix files read over HTTP too: strips, separate planes, big-endian, BigTIFF, directories
# spread through the file (tifffile writes each page's directory before its data).
MATRIX_FOR_HTTP = [
    next(c for c in matrix() if not c.tiled and c.layout == "separate" and c.byteorder == ">"
         and c.bigtiff),
    next(c for c in matrix() if c.tiled and c.layout == "contig" and c.overviews == "pages"
         and c.predictor == 2),
]
