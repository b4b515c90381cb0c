"""TIFF tags -> chonkle levels: one image file directory (IFD) as shape, tiles and pipeline.

Like tifffile's TiffPage, one :class:`TiffLevel` carries everything a tile needs: where each
tile is, its shape, and the pipeline that decodes it. The structure is parsed by tifffile,
never by hand; this module only reads what tifffile computed from the tags and refuses (with
a SpecError naming the file, the level and the feature) what no chonkle pipeline can decode,
when the file is opened rather than halfway through a read.

A tile's pipeline, in encode order: ``bytes`` (data_type, the file's byte order, the tile
shape) -> the TIFF predictor, if any -> the compression, if any. Decoding gives an array of
the tile shape, (rows, columns) or (rows, columns, samples), in native byte order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numcodecs
import numpy as np

from chonkle.errors import SpecError
from chonkle.pipeline import Pipeline

Prefer = Literal["wasm", "native"]

MAX_IFDS = 4096  # image file directories parsed at open, SubIFDs included

# TIFF Compression -> (shipped Wasm codec, native numcodecs codec) and their configuration
# (levels matter only for encoding; decoding ignores them).
_ZLIB = (("zlib", {"level": 6}), ("zlib", {"level": 6}))
COMPRESSIONS: dict[int, tuple[tuple[str, dict[str, Any]], tuple[str, dict[str, Any]]]] = {
    5: (("lzw", {}), ("imagecodecs_lzw", {})),
    8: _ZLIB,  # Adobe Deflate: a zlib stream
    32946: _ZLIB,  # the older Deflate code, the same stream
    32773: (("packbits", {}), ("imagecodecs_packbits", {})),
    # numcodecs' zstd before 0.14 cannot decode frames without their size, which GDAL writes
    50000: (("zstd", {"level": 3}), ("imagecodecs_zstd", {"level": 3})),
}
COMPRESSION_NAMES = {1: "NONE", 5: "LZW", 8: "ADOBE_DEFLATE", 32946: "DEFLATE",
                     32773: "PACKBITS", 50000: "ZSTD"}
# numcodecs' own "packbits" packs booleans into bits: native TIFF PackBits (and LZW, ZSTD) is
# imagecodecs' (tifffile's codecs), registered under its own ids when a native pipeline asks.
IMAGECODECS = {"imagecodecs_lzw": "Lzw", "imagecodecs_packbits": "Packbits",
               "imagecodecs_zstd": "Zstd"}
PREDICTORS = {2: "tiff_predictor_2", 3: "tiff_predictor_3"}
# GeoTIFF and GDAL tags, exposed as tifffile reads them (never interpreted here).
GEO_TAGS = {33550, 33922, 34264, 34735, 34736, 34737, 42112, 42113, 50844}


@dataclass(frozen=True)
class TiffLevel:
    """One image (a full-resolution image or an overview) of a TIFF, ready to read.

    ``shape`` and ``dtype`` are those of tifffile's ``TiffPage.asarray()``: (rows, columns),
    (rows, columns, samples) for interleaved samples, (samples, rows, columns) for separate
    planes. ``tile_shape`` is (rows, columns) of one tile, or of one strip (RowsPerStrip,
    ImageWidth) in a stripped image; ``offsets`` and ``byte_counts`` are the TIFF's, in its
    order (plane, then row of tiles, then column); a tile with no bytes is filled with
    ``nodata``. ``pipeline`` decodes one tile to ``chunk_shape``; ``spec`` is its JSON form
    (a sidecar). ``ifd`` locates the directory as tifffile does: ``(page,)`` in the main
    chain, ``(page, subifd)`` for a SubIFD.
    """

    index: int
    ifd: tuple[int, ...]
    image: int
    overview: int
    shape: tuple[int, ...]
    dtype: np.dtype
    height: int
    width: int
    planes: int
    samples: int
    tiled: bool
    tile_shape: tuple[int, int]
    compression: str
    predictor: int
    byte_order: Literal["little", "big"]
    offsets: tuple[int, ...]
    byte_counts: tuple[int, ...]
    nodata: int | float
    geo_tags: dict[str, Any]
    spec: dict[str, Any]
    pipeline: Pipeline
    tail_pipeline: Pipeline | None = field(default=None, repr=False)
    """Decodes the last strip of each plane when it is shorter than RowsPerStrip (to a 1-D
    array, since writers store it trimmed or padded); None when every strip is whole."""

    @property
    def chunk_shape(self) -> tuple[int, ...]:
        """The array one tile decodes to."""
        return self.tile_shape + ((self.samples,) if self.samples > 1 else ())

    @property
    def grid(self) -> tuple[int, int, int]:
        """(planes, rows of tiles, columns of tiles)."""
        rows, cols = self.tile_shape
        return self.planes, -(-self.height // rows), -(-self.width // cols)

    @property
    def tile_count(self) -> int:
        return len(self.offsets)

    @property
    def is_overview(self) -> bool:
        return self.overview > 0

    def tile_index(self, plane: int, row: int, col: int) -> int:
        """The position of a tile in ``offsets``: its plane, row and column of tiles."""
        _, down, across = self.grid
        return (plane * down + row) * across + col

    def window_shape(self, rows: int, cols: int) -> tuple[int, ...]:
        """The shape of a window of this level, arranged as tifffile arranges the level."""
        if self.planes > 1:
            return (self.planes, rows, cols)
        return (rows, cols, self.samples) if self.samples > 1 else (rows, cols)


@dataclass(frozen=True)
class PageFacts:
    """What a level needs from a tifffile page, read while the file is open."""

    ifd: tuple[int, ...]
    shape: tuple[int, ...]
    dtype: np.dtype
    height: int
    width: int
    planes: int
    samples: int
    tiled: bool
    tile_shape: tuple[int, int]
    compression: int
    predictor: int
    byte_order: Literal["little", "big"]
    offsets: tuple[int, ...]
    byte_counts: tuple[int, ...]
    nodata: int | float
    geo_tags: dict[str, Any]


def page_facts(page: Any, ifd: tuple[int, ...], where: str) -> PageFacts:
    """Read a tifffile TiffPage; SpecError (naming `where`) for what chonkle cannot decode."""
    def refuse(why: str) -> SpecError:
        return SpecError(f"{where}: {why}")

    compression = int(page.compression)
    if compression not in COMPRESSION_NAMES:
        name = getattr(page.compression, "name", None) or f"code {compression}"
        raise refuse(f"compression {name} ({compression}) has no chonkle codec; chonkle "
                     "reads TIFFs compressed with none, LZW, Deflate, PackBits or ZSTD")
    dtype = page.dtype
    if dtype is None or dtype.kind not in "uif" or dtype.itemsize * 8 != page.bitspersample:
        raise refuse(f"{page.bitspersample}-bit samples of SampleFormat "
                     f"{int(page.sampleformat)} are not supported; chonkle reads 8, 16, 32 and "
                     "64-bit integers and 16, 32 and 64-bit floats")
    dtype = np.dtype(dtype).newbyteorder("=")
    predictor = int(page.predictor)
    if predictor not in (1, 2, 3):
        raise refuse(f"predictor {predictor} is not supported (1, 2 and 3 are)")
    if predictor == 2 and dtype.kind == "f":
        raise refuse("predictor 2 (horizontal differencing) on floating-point samples is not "
                     "supported")
    if predictor == 3 and dtype.kind != "f":
        raise refuse(f"predictor 3 (floating point) on {dtype} samples is not supported")
    if int(page.fillorder) != 1:
        raise refuse("FillOrder 2 (bits in reverse order) is not supported")
    if page.is_subsampled:
        raise refuse("YCbCr chroma subsampling is not supported")
    planes, depth, height, width, samples = (int(n) for n in page.shaped)
    if depth != 1 or (page.is_tiled and int(page.tiledepth) != 1):
        raise refuse("volumetric images (ImageDepth or TileDepth over 1) are not supported")
    if height < 1 or width < 1:
        raise refuse(f"the image is empty ({height}x{width})")
    if page.is_tiled:
        tile_shape = (int(page.tilelength), int(page.tilewidth))
    else:
        tile_shape = (min(int(page.rowsperstrip or height), height), width)
    if min(tile_shape) < 1:
        raise refuse(f"tiles of {tile_shape[0]}x{tile_shape[1]} pixels")
    facts = PageFacts(
        ifd=ifd, shape=tuple(int(n) for n in page.shape),
        dtype=dtype, height=height, width=width, planes=planes, samples=samples,
        tiled=bool(page.is_tiled), tile_shape=tile_shape, compression=compression,
        predictor=predictor,
        byte_order="little" if page.parent.byteorder == "<" else "big",
        offsets=tuple(int(n) for n in page.dataoffsets),
        byte_counts=tuple(int(n) for n in page.databytecounts),
        nodata=page.nodata, geo_tags=_geo_tags(page.tags.values()))
    _check_layout(facts, refuse)
    return facts


def _check_layout(facts: PageFacts, refuse: Any) -> None:
    expected_shape = ((facts.planes, facts.height, facts.width) if facts.planes > 1 else
                      (facts.height, facts.width) + ((facts.samples,) if facts.samples > 1
                                                     else ()))
    if facts.shape != expected_shape:
        raise refuse(f"tifffile arranges this image as {list(facts.shape)}, a layout chonkle "
                     "does not read")
    rows, cols = facts.tile_shape
    count = facts.planes * -(-facts.height // rows) * -(-facts.width // cols)
    if len(facts.offsets) != count or len(facts.byte_counts) != count:
        raise refuse(f"{len(facts.offsets)} offsets and {len(facts.byte_counts)} byte counts "
                     f"for {count} {'tiles' if facts.tiled else 'strips'}")
    # No encoding chonkle reads makes a tile more than about 1.5 times larger than its
    # samples (LZW at worst): a larger claim is a hostile file, refused before any read.
    tile_bytes = math.prod(facts.tile_shape) * facts.samples * facts.dtype.itemsize
    limit = 2 * tile_bytes + 65536
    for index, nbytes in enumerate(facts.byte_counts):
        if nbytes > limit:
            raise refuse(f"tile {index} claims {nbytes} bytes; a tile of {rows}x{cols} "
                         f"{facts.dtype} samples never needs more than {limit}")


def _geo_tags(tags: Iterable[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for tag in tags:
        if tag.code in GEO_TAGS:
            value = tag.value
            if isinstance(value, np.ndarray):
                value = tuple(value.tolist())
            found[tag.name] = value
    return found


def pipeline_spec(facts: PageFacts, prefer: Prefer, *, shaped: bool = True) -> dict[str, Any]:
    """The pipeline of one tile as JSON: bytes -> predictor -> compression (encode order).

    ``prefer="wasm"`` uses the Wasm codecs shipped in chonkle for the predictor and the
    compression (every one TIFF needs is shipped); ``"native"`` uses chonkle's native
    predictors, numcodecs' zlib, and imagecodecs' LZW, PackBits and ZSTD codecs (named by their
    imagecodecs ids: ``imagecodecs_lzw``, ``imagecodecs_packbits``, ``imagecodecs_zstd``).
    """
    kind = "wasm" if prefer == "wasm" else "numcodecs"
    layout: dict[str, Any] = {"data_type": facts.dtype.name, "endian": facts.byte_order}
    if shaped:
        layout["shape"] = list(facts.tile_shape) + ([facts.samples] if facts.samples > 1 else [])
    steps: list[dict[str, Any]] = [{"name": "bytes", "type": "numcodecs",
                                    "configuration": layout}]
    if facts.predictor != 1:
        steps.append({"name": PREDICTORS[facts.predictor], "type": kind, "configuration": {
            "bytes_per_sample": facts.dtype.itemsize, "width": facts.tile_shape[1],
            "samples_per_pixel": facts.samples, "endian": facts.byte_order}})
    if facts.compression != 1:
        wasm, native = COMPRESSIONS[facts.compression]
        name, configuration = wasm if kind == "wasm" else native
        steps.append({"name": name, "type": kind, "configuration": dict(configuration)})
    return {"codecs": steps}


def build_level(facts: PageFacts, index: int, image: int, overview: int, prefer: Prefer,
                runtime: str | None, where: str) -> TiffLevel:
    """The level of one parsed page, its pipelines built (Wasm modules compiled) now."""
    spec = pipeline_spec(facts, prefer)
    pipeline = _load(spec, runtime, where)
    tail = None
    if not facts.tiled and facts.height % facts.tile_shape[0]:
        tail = _load(pipeline_spec(facts, prefer, shaped=False), runtime, where)
    return TiffLevel(
        index=index, ifd=facts.ifd, image=image, overview=overview, shape=facts.shape,
        dtype=facts.dtype, height=facts.height, width=facts.width,
        planes=facts.planes, samples=facts.samples, tiled=facts.tiled,
        tile_shape=facts.tile_shape,
        compression=COMPRESSION_NAMES[facts.compression], predictor=facts.predictor,
        byte_order=facts.byte_order, offsets=facts.offsets, byte_counts=facts.byte_counts,
        nodata=facts.nodata, geo_tags=facts.geo_tags, spec=spec, pipeline=pipeline,
        tail_pipeline=tail)


def _load(spec: dict[str, Any], runtime: str | None, where: str) -> Pipeline:
    allowed = [step["name"] for step in spec["codecs"] if step["name"] in IMAGECODECS]
    for name in allowed:
        _register_imagecodecs(name, where)
    return Pipeline.load(spec, runtime=runtime, allow_codecs=allowed)


def _register_imagecodecs(name: str, where: str) -> None:
    """imagecodecs' numcodecs codec `name`, registered under its own id (as imagecodecs'
    register_codecs would), for the native LZW and PackBits steps."""
    if name in numcodecs.registry.codec_registry:
        return
    try:
        import imagecodecs.numcodecs as imagecodecs_numcodecs
    except ImportError:
        raise SpecError(f"{where}: native {name.removeprefix('imagecodecs_')} needs the "
                        "imagecodecs package (pip install imagecodecs); or read with "
                        "prefer='wasm'") from None
    numcodecs.register_codec(getattr(imagecodecs_numcodecs, IMAGECODECS[name]))
