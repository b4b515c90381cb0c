"""Read TIFF, GeoTIFF and Cloud-Optimized GeoTIFF images with pipelines taken from their tags.

    tiff = chonkle.open_tiff("scene.tif")          # or "https://example.org/scene.tif"
    tiff.levels[0].pipeline                         # full resolution first, then overviews
    everything = tiff.read()                        # equal to tifffile's read of the page
    corner = tiff.read(level=1, window=((0, 256), (0, 256)))

tifffile parses the structure (chonkle.formats.tiff_levels turns each image file directory
into a level with its pipeline); this module finds the tiles a read needs, fetches them in
batches (the next batch is fetched while the current one decodes), decodes each batch with
one ``decode_many`` call of the level's pipeline, and crops the tiles into the result.

Levels, in file order: each full-resolution image in the main IFD chain, followed by its
overviews, which are its SubIFDs and the reduced-resolution IFDs (NewSubfileType bit 0) that
follow it in the chain, as GDAL writes a COG. Transparency masks (NewSubfileType bit 2) are
not levels.
"""

from __future__ import annotations

import contextlib
import operator
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from chonkle import progress as progress_bars
from chonkle.errors import ChonkleError, CodecError, LimitExceeded, SpecError
from chonkle.formats.tiff_levels import (
    MAX_IFDS,
    PageFacts,
    Prefer,
    TiffLevel,
    build_level,
    page_facts,
)
from chonkle.formats.tiff_sources import LocalFile, TiffSource, is_url
from chonkle.pipeline import Pipeline
from chonkle.sources.net import describe

# Tiles fetched and decoded together: enough for every core, few enough to bound memory and
# to show progress; a remote batch is one download (one deadline).
BATCH_TILES = 128
BATCH_BYTES = 64 * 2**20

Window = tuple[tuple[int, int], tuple[int, int]]
Progress = Callable[[int], object]  # called with the number of tiles just finished


def open_tiff(source: str | os.PathLike[str], *, prefer: Prefer = "wasm",
              runtime: str | None = None) -> Tiff:
    """Open a TIFF (a local path, or an ``https://`` URL) and derive every level's pipeline.

    ``prefer="wasm"`` (the default) decodes predictors and compressions with the Wasm codecs
    shipped in chonkle, on ``runtime`` (default: CHONKLE_RUNTIME, else wasmtime);
    ``"native"`` with native codecs. A compression, sample type or layout chonkle cannot
    decode is a SpecError naming it, raised here; a file that cannot be reached, a
    SourceError; every error names the file.
    """
    if prefer not in ("wasm", "native"):
        raise SpecError(f"prefer must be 'wasm' or 'native', not {prefer!r}")
    if isinstance(source, str) and is_url(source):
        from chonkle.formats.tiff_http import HttpFile  # httpx is imported only when needed

        where: TiffSource = HttpFile(source)
    elif isinstance(source, (str, os.PathLike)):
        where = LocalFile(source)
    else:
        raise SpecError(f"open_tiff takes a path or a URL, not {type(source).__name__}")
    parsed = where.parse(lambda stream: _parse(stream, where))
    levels = tuple(build_level(facts, index, image, overview, prefer, runtime,
                               f"{where.label}: level {index}")
                   for index, (facts, image, overview) in enumerate(parsed.pages))
    return Tiff(where, levels, parsed.byte_order, parsed.bigtiff, prefer)


@dataclass(frozen=True)
class _Parsed:
    byte_order: str
    bigtiff: bool
    pages: list[tuple[PageFacts, int, int]]  # (facts, image, overview)


def _parse(stream: BinaryIO, source: TiffSource) -> _Parsed:
    """Every level's facts, read with tifffile; whatever tifffile raises on a damaged or
    hostile file becomes one SpecError naming the file."""
    import tifffile

    name = source.label
    try:
        with tifffile.TiffFile(stream, name=source.name.rsplit("/", 1)[-1] or "tiff") as tif:
            pages = _levels(tif, name)
            return _Parsed("little" if tif.byteorder == "<" else "big", bool(tif.is_bigtiff),
                           pages)
    except ChonkleError:
        raise
    except Exception as exc:
        raise SpecError(f"{name}: not a TIFF chonkle can read ({describe(exc)})") from exc


def _levels(tif: Any, name: str) -> list[tuple[PageFacts, int, int]]:
    found: list[tuple[PageFacts, int, int]] = []
    image, overview, seen = -1, 0, 0

    def add(page: Any, ifd: tuple[int, ...], reduced: bool) -> None:
        nonlocal image, overview
        if page.is_mask:
            return
        if reduced and image >= 0:
            overview += 1
        else:
            image, overview = image + 1, 0
        found.append((page_facts(page, ifd, f"{name}: level {len(found)}"), image, overview))

    for number, page in enumerate(tif.pages):
        seen += 1 + len(page.subifds or ())
        if seen > MAX_IFDS:
            raise SpecError(f"{name}: more than {MAX_IFDS} image file directories; chonkle "
                            "reads images and their overviews, not stacks that large")
        add(page, (number,), bool(page.is_reduced))
        for sub_number, sub in enumerate(page.pages or ()):
            add(sub, (number, sub_number), True)
    if not found:
        raise SpecError(f"{name}: the TIFF holds no image (only masks, or nothing)")
    return found


@dataclass(frozen=True)
class _Tile:
    """One tile (or strip) a read needs: where it is in ``offsets`` and in the image."""

    index: int
    plane: int
    row: int  # the image row of its first row
    col: int
    rows: int  # rows of it inside the image (a last strip may be short)
    tail: bool  # a short last strip, decoded with the tail pipeline


class Tiff:
    """An open TIFF: its levels and their pipelines. Holds no open file or connection; safe
    to read from many threads at once."""

    def __init__(self, source: TiffSource, levels: tuple[TiffLevel, ...], byte_order: str,
                 bigtiff: bool, prefer: Prefer) -> None:
        self.source = source
        self.name = source.name
        self.levels = levels
        self.byte_order = byte_order
        self.bigtiff = bigtiff
        self.prefer = prefer

    @property
    def geo_tags(self) -> dict[str, Any]:
        """The GeoTIFF and GDAL tags of level 0, as tifffile reads them (not interpreted)."""
        return self.levels[0].geo_tags

    def __repr__(self) -> str:
        return f"<chonkle Tiff {self.name!r}: {len(self.levels)} level(s)>"

    def level(self, level: int) -> TiffLevel:
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not (
                0 <= level < len(self.levels)):
            raise SpecError(f"{self.source.label}: no level {level!r} (it has levels 0 to "
                            f"{len(self.levels) - 1})")
        return self.levels[int(level)]

    def tiles(self, level: int = 0, window: Window | None = None) -> list[int]:
        """Indices (into the level's ``offsets``) of the tiles a read of `window` decodes."""
        chosen = self.level(level)
        return [tile.index for tile in _tiles(chosen, *self._window(chosen, window))]

    def read(self, level: int = 0, window: Window | None = None, runtime: str | None = None,
             *, workers: int | None = None, progress: bool | Progress | None = None
             ) -> np.ndarray:
        """The level, or the window ``((row0, row1), (col0, col1))`` of it, as an array.

        The result equals tifffile's ``asarray()`` of the same image (cropped to the window):
        shape (rows, columns), (rows, columns, samples) or, for separate planes, (samples,
        rows, columns); native byte order. Tiles without bytes hold the GDAL_NODATA value
        (0 without one). ``runtime`` runs the Wasm steps on another engine; ``workers`` is
        handed to ``Pipeline.decode_many`` (None: its default). ``progress``: None shows a
        progress bar on a terminal for reads of 16 tiles or more, True or False force it on
        or off; a function is called instead, with n as every n tiles are done.
        """
        if not (progress is None or isinstance(progress, bool) or callable(progress)):
            raise SpecError(f"progress must be True, False, None or a function, not "
                            f"{progress!r}")
        chosen = self.level(level)
        (r0, r1), (c0, c1) = self._window(chosen, window)
        try:
            out = np.empty((chosen.planes, r1 - r0, c1 - c0, chosen.samples), chosen.dtype)
        except (MemoryError, ValueError) as exc:
            raise LimitExceeded(f"{self.source.label}: level {chosen.index}: a window of {r1 - r0}x"
                                f"{c1 - c0} pixels does not fit in memory") from exc
        needed = _tiles(chosen, (r0, r1), (c0, c1))
        if callable(progress):
            self._read_tiles(chosen, needed, out, (r0, r1, c0, c1), runtime, workers, progress)
        else:
            shown = False if progress is None and len(needed) < 16 else progress
            with progress_bars.bar(len(needed), "read", unit="tile", progress=shown,
                                   dynamic_ncols=True) as bar:
                self._read_tiles(chosen, needed, out, (r0, r1, c0, c1), runtime, workers,
                                 bar.update)
        return out.reshape(chosen.window_shape(r1 - r0, c1 - c0))

    def _read_tiles(self, chosen: TiffLevel, needed: list[_Tile], out: np.ndarray,
                    bounds: tuple[int, int, int, int], runtime: str | None,
                    workers: int | None, progress: Progress) -> None:
        """Decode the `needed` tiles into `out` (the window `bounds`), nodata where a tile
        has no bytes."""
        r0, r1, c0, c1 = bounds
        stored = [t for t in needed if chosen.byte_counts[t.index] > 0
                  and chosen.offsets[t.index] > 0]
        for tile in needed:
            if chosen.byte_counts[tile.index] <= 0 or chosen.offsets[tile.index] <= 0:
                _region(out, tile, chosen.tile_shape[1], r0, c0, r1, c1)[...] = chosen.nodata
        if len(stored) < len(needed):
            progress(len(needed) - len(stored))
        pipelines = (chosen.pipeline, chosen.tail_pipeline)
        if runtime is not None:
            pipelines = tuple(p and p.with_runtime(runtime) for p in pipelines)
        # closed on the way out, error or not: its prefetching thread stops at once
        with contextlib.closing(self._fetched(chosen, stored)) as fetched:
            for batch, chunks in fetched:
                for tail in (False, True):
                    picked = [i for i, tile in enumerate(batch) if tile.tail == tail]
                    if not picked:
                        continue
                    tiles = [batch[i] for i in picked]
                    arrays = self._decode(chosen, pipelines[tail], tiles,
                                          [chunks[i] for i in picked], workers)
                    for tile, array in zip(tiles, arrays, strict=True):
                        block = _as_block(array, chosen, tile, self._where(chosen, tile))
                        cols = block.shape[1]
                        _region(out, tile, cols, r0, c0, r1, c1)[...] = block[
                            max(r0, tile.row) - tile.row:min(r1, tile.row + tile.rows) - tile.row,
                            max(c0, tile.col) - tile.col:min(c1, tile.col + cols) - tile.col]
                progress(len(batch))

    # ---- helpers ---------------------------------------------------------------------------

    def _window(self, level: TiffLevel, window: Window | None) -> Window:
        if window is None:
            return (0, level.height), (0, level.width)
        try:
            (r0, r1), (c0, c1) = window
            r0, r1, c0, c1 = (operator.index(n) for n in (r0, r1, c0, c1))
        except (TypeError, ValueError):
            raise SpecError(f"a window is ((row0, row1), (col0, col1)) of integers, not "
                            f"{window!r}") from None
        if not (0 <= r0 <= r1 <= level.height and 0 <= c0 <= c1 <= level.width):
            raise SpecError(f"{self.source.label}: the window rows {r0}:{r1}, columns {c0}:{c1} "
                            f"is not inside level {level.index} ({level.height}x{level.width})")
        return (r0, r1), (c0, c1)

    def _where(self, level: TiffLevel, tile: _Tile | None) -> str:
        where = f"{self.source.label}: level {level.index}"
        if tile is None:
            return where
        kind = "tile" if level.tiled else "strip"
        plane = f"plane {tile.plane}, " if level.planes > 1 else ""
        return (f"{where}, {kind} {tile.index} ({plane}row {tile.row // level.tile_shape[0]}, "
                f"column {tile.col // level.tile_shape[1]})")

    def _fetched(self, level: TiffLevel, tiles: list[_Tile]) -> Iterator[tuple[list[_Tile],
                                                                               list[bytes]]]:
        """Batches of tiles with their bytes; the next batch is fetched while this one is
        decoded (by a single background thread: fetches never overlap each other)."""
        batches = _batches(level, tiles)
        if not batches:
            return
        pool = ThreadPoolExecutor(1, thread_name_prefix="chonkle-tiff")
        try:
            ahead: Future[list[bytes]] | None = pool.submit(self._fetch, level, batches[0])
            for number, batch in enumerate(batches):
                assert ahead is not None
                chunks = ahead.result()
                ahead = (pool.submit(self._fetch, level, batches[number + 1])
                         if number + 1 < len(batches) else None)
                yield batch, chunks
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _fetch(self, level: TiffLevel, batch: list[_Tile]) -> list[bytes]:
        return self.source.read_ranges([(level.offsets[t.index], level.byte_counts[t.index])
                                        for t in batch])

    def _decode(self, level: TiffLevel, pipeline: Pipeline | None, tiles: list[_Tile],
                chunks: list[bytes], workers: int | None) -> list[np.ndarray]:
        assert pipeline is not None
        try:
            return decode_chunks(pipeline, chunks, workers)
        except ChonkleError as exc:
            chunk = getattr(exc, "chunk", None)
            tile = tiles[chunk] if isinstance(chunk, int) and 0 <= chunk < len(tiles) else None
            raise _located(exc, self._where(level, tile)) from exc


def decode_chunks(pipeline: Pipeline, chunks: Sequence[bytes],
                  workers: int | None = None) -> list[np.ndarray]:
    """Every chunk decoded, in order, with one ``pipeline.decode_many`` call. A failure
    carries the failing chunk's position as ``chunk``."""
    # the reader shows its own progress, in tiles
    return pipeline.decode_many(list(chunks), workers=workers, progress=False)


def _located(exc: ChonkleError, where: str) -> ChonkleError:
    """The same kind of error, its message naming the file, level and tile."""
    detail = f"{exc.step}: {exc.message}" if exc.step else exc.message
    try:
        return type(exc)(f"{where}: {detail}")
    except Exception:  # a subclass with another constructor
        return CodecError(f"{where}: {detail}")


def _tiles(level: TiffLevel, rows: tuple[int, int], cols: tuple[int, int]) -> list[_Tile]:
    (r0, r1), (c0, c1) = rows, cols
    if r0 == r1 or c0 == c1:
        return []
    height, width = level.tile_shape
    found = []
    for plane in range(level.planes):
        for row in range(r0 // height, (r1 - 1) // height + 1):
            top = row * height
            inside = min(height, level.height - top)
            for col in range(c0 // width, (c1 - 1) // width + 1):
                found.append(_Tile(level.tile_index(plane, row, col), plane, top, col * width,
                                   inside, not level.tiled and inside < height))
    return found


def _batches(level: TiffLevel, tiles: list[_Tile]) -> list[list[_Tile]]:
    batches: list[list[_Tile]] = []
    size = 0
    for tile in tiles:
        count = level.byte_counts[tile.index]
        if not batches or len(batches[-1]) >= BATCH_TILES or size + count > BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(tile)
        size += count
    return batches


def _region(out: np.ndarray, tile: _Tile, cols: int, r0: int, c0: int, r1: int,
            c1: int) -> np.ndarray:
    """The part of `out` (a window starting at r0, c0) that `tile` covers."""
    return out[tile.plane, max(r0, tile.row) - r0:min(r1, tile.row + tile.rows) - r0,
               max(c0, tile.col) - c0:min(c1, tile.col + cols) - c0]


def _as_block(array: np.ndarray, level: TiffLevel, tile: _Tile, where: str) -> np.ndarray:
    """A decoded tile as (rows, columns, samples). A short last strip decodes to 1-D: it may
    be stored trimmed to the image or padded to a whole strip; its rows are taken."""
    samples = level.samples
    if not tile.tail:
        if array.shape != level.chunk_shape:
            raise CodecError(f"{where}: decoded to shape {list(array.shape)}, not the tile "
                             f"shape {list(level.chunk_shape)}")
        return array.reshape((*level.tile_shape, samples))
    row = level.width * samples
    flat = array.reshape(-1)
    if flat.size % row or flat.size // row < tile.rows:
        raise CodecError(f"{where}: decoded to {flat.size} samples, not {tile.rows} rows of "
                         f"{row}")
    return flat.reshape(-1, level.width, samples)[:tile.rows]
