"""chonkle.open_tiff against the real producers: files written by tifffile and by GDAL, read
whole and by windows, compared with tifffile's read of the same file, on both engines.

The tifffile matrix, and how it covers every compression x predictor x sample type x byte
order x layout (tiles, strips, BigTIFF, overviews) without the full cross product, is
described in tests/tiff_files.py.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiff_files import (
    BYTE_ORDERS,
    COMPRESSIONS,
    GDAL_CASES,
    LAYOUTS,
    OVERVIEWS,
    SAMPLE_TYPES,
    Case,
    GdalCase,
    assert_same,
    matrix,
    page_at,
    raster,
    tifffile_levels,
    window_of,
    write_gdal,
    write_tifffile,
)

import chonkle
from chonkle import ChonkleError, CodecError, Pipeline, SourceError, SpecError

MATRIX = matrix()
REPO = Path(__file__).resolve().parent.parent
WINDOWS = [((5, 30), (7, 40)), ((16, 17), (0, 45)), ((36, 37), (44, 45)), ((3, 3), (0, 9))]


@pytest.fixture(scope="session")
def written(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Case], Path]:
    """Each matrix case written once per test process."""
    folder = tmp_path_factory.mktemp("tifffile-matrix")
    files: dict[Case, Path] = {}

    def get(case: Case) -> Path:
        if case not in files:
            files[case] = write_tifffile(folder / f"{case.id}.tif", case)
        return files[case]

    return get


@pytest.fixture(scope="session")
def gdal_file(tmp_path_factory: pytest.TempPathFactory) -> Callable[[GdalCase], Path]:
    folder = tmp_path_factory.mktemp("gdal")
    files: dict[str, Path] = {}

    def get(case: GdalCase) -> Path:
        if case.name not in files:
            files[case.name] = write_gdal(folder, case)
        return files[case.name]

    return get


def check_every_level(path: Path, tiff: chonkle.formats.tiff.Tiff, runtime: str | None) -> None:
    """Every level whole, and windows across tile edges, equal to tifffile's read."""
    expected = tifffile_levels(path)
    for level in tiff.levels:
        want = expected[level.ifd]
        assert level.shape == want.shape
        assert_same(tiff.read(level.index, runtime=runtime), want)
    level = tiff.levels[0]
    for rows, cols in WINDOWS:
        rows = (min(rows[0], level.height), min(rows[1], level.height))
        cols = (min(cols[0], level.width), min(cols[1], level.width))
        assert_same(tiff.read(0, (rows, cols), runtime=runtime),
                    window_of(expected[level.ifd], level.planes > 1, rows, cols))


# ---- the tifffile matrix --------------------------------------------------------------------

def test_matrix_covers_every_value() -> None:
    """Every compression and every predictor meets every value of every other dimension;
    every sample type meets both byte orders."""
    dimensions = {
        "layout": set(LAYOUTS), "byteorder": set(BYTE_ORDERS), "tiled": {True, False},
        "bigtiff": {True, False}, "overviews": set(OVERVIEWS),
    }
    for compression in COMPRESSIONS:
        cases = [c for c in MATRIX if c.compression == compression]
        for name, values in dimensions.items():
            assert {getattr(c, name) for c in cases} == values, (compression, name)
        assert {c.predictor for c in cases} == ({1} if compression == "none" else {1, 2, 3})
        assert {np.dtype(c.dtype).kind for c in cases} == {"u", "i", "f"}
    for predictor in (1, 2, 3):
        cases = [c for c in MATRIX if c.predictor == predictor]
        for name, values in dimensions.items():
            assert {getattr(c, name) for c in cases} == values, (predictor, name)
    assert {c.dtype for c in MATRIX} == set(SAMPLE_TYPES)
    for dtype in SAMPLE_TYPES:
        assert {c.byteorder for c in MATRIX if c.dtype == dtype} == set(BYTE_ORDERS), dtype


@pytest.mark.parametrize("case", MATRIX, ids=lambda c: c.id)
def test_reads_what_tifffile_writes(written, case: Case, runtime: str) -> None:
    path = written(case)
    tiff = chonkle.open_tiff(path, runtime=runtime)
    assert len(tiff.levels) == 3
    assert [(level.image, level.overview) for level in tiff.levels] == [(0, 0), (0, 1), (0, 2)]
    assert tiff.byte_order == ("little" if case.byteorder == "<" else "big")
    assert tiff.bigtiff == case.bigtiff
    check_every_level(path, tiff, runtime)


@pytest.mark.parametrize("case", MATRIX, ids=lambda c: c.id)
def test_native_pipelines_read_what_tifffile_writes(written, case: Case) -> None:
    path = written(case)
    tiff = chonkle.open_tiff(path, prefer="native")
    assert all(step["type"] == "numcodecs" for level in tiff.levels
               for step in level.spec["codecs"])
    check_every_level(path, tiff, None)


def test_levels_carry_tifffile_s_facts(written) -> None:
    case = next(c for c in MATRIX if c.layout == "separate" and c.tiled and c.predictor == 2)
    path = written(case)
    tiff = chonkle.open_tiff(path)
    with tifffile.TiffFile(path) as tif:
        for level in tiff.levels:
            page = page_at(tif, level.ifd)
            assert level.offsets == tuple(page.dataoffsets)
            assert level.byte_counts == tuple(page.databytecounts)
            assert level.tile_shape == (page.tilelength, page.tilewidth)
            assert level.dtype == page.dtype
            assert level.tile_count == len(page.dataoffsets) == level.planes * math_tiles(level)
    assert tiff.levels[1].ifd == ((0, 0) if case.overviews == "subifds" else (1,))


def math_tiles(level) -> int:
    return -(-level.height // level.tile_shape[0]) * -(-level.width // level.tile_shape[1])


@pytest.mark.parametrize("compression", [c for c in COMPRESSIONS if c != "none"])
def test_pipelines_are_bytes_then_predictor_then_compression(written, compression) -> None:
    case = next(c for c in MATRIX if c.compression == compression and c.predictor == 2
                and c.layout == "contig")
    level = chonkle.open_tiff(written(case)).levels[0]
    endian = "little" if case.byteorder == "<" else "big"
    wasm = {"lzw": "lzw", "adobe_deflate": "zlib", "deflate": "zlib", "packbits": "packbits",
            "zstd": "zstd"}[compression]
    steps = level.spec["codecs"]
    assert [(s["name"], s["type"]) for s in steps] == [
        ("bytes", "numcodecs"), ("tiff_predictor_2", "wasm"), (wasm, "wasm")]
    assert steps[0]["configuration"] == {"data_type": case.dtype, "endian": endian,
                                         "shape": [*level.tile_shape, 3]}
    assert steps[1]["configuration"] == {
        "bytes_per_sample": np.dtype(case.dtype).itemsize, "width": level.tile_shape[1],
        "samples_per_pixel": 3, "endian": endian}
    native = chonkle.open_tiff(written(case), prefer="native").levels[0].spec["codecs"]
    assert [s["name"] for s in native] == ["bytes", "tiff_predictor_2", {
        "lzw": "imagecodecs_lzw", "packbits": "imagecodecs_packbits",
        "zstd": "imagecodecs_zstd"}.get(compression, "zlib")]


@pytest.mark.parametrize("prefer", ["wasm", "native"])
def test_a_level_s_spec_is_a_sidecar_for_any_of_its_tiles(written, tmp_path, prefer) -> None:
    """The JSON pipeline decodes a tile's raw bytes, cut from the file, to tifffile's tile."""
    case = next(c for c in MATRIX if c.compression == "lzw" and c.predictor == 3 and c.tiled)
    path = written(case)
    level = chonkle.open_tiff(path, prefer=prefer).levels[0]
    sidecar = tmp_path / "tile.json"
    sidecar.write_text(json.dumps(level.spec))
    allowed = [s["name"] for s in level.spec["codecs"] if s["name"].startswith("imagecodecs")]
    pipeline = Pipeline.load(sidecar, allow_codecs=allowed)
    raw = path.read_bytes()
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        whole = page.asarray()
    index = level.tile_index(level.planes - 1, 1, 2)
    tile = pipeline.decode(raw[level.offsets[index]:level.offsets[index] + level.byte_counts[
        index]])
    assert tile.shape == level.chunk_shape
    expected = window_of(whole, level.planes > 1, (16, 32), (32, 45))
    expected = expected[-1] if level.planes > 1 else expected
    assert_same(tile[:, :13], expected)


def test_every_image_of_a_multi_page_file_is_a_level(tmp_path) -> None:
    """Full-resolution pages each start an image; reduced pages after one are its overviews;
    masks are skipped."""
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(raster("uint8", (20, 30)), compression="zlib")
        writer.write(raster("float32", (40, 10, 3)), compression="zstd", predictor=3,
                     tile=(16, 16), photometric="rgb")
        writer.write(raster("float32", (20, 5, 3)), compression="zstd", subfiletype=1,
                     photometric="rgb")
        writer.write(raster("uint8", (40, 10)) > 9, subfiletype=4, photometric="mask")
        writer.write(raster("int16", (7, 9)), compression="lzw", predictor=2)
    tiff = chonkle.open_tiff(path)
    assert [(level.ifd, level.image, level.overview) for level in tiff.levels] == [
        ((0,), 0, 0), ((1,), 1, 0), ((2,), 1, 1), ((4,), 2, 0)]
    check_every_level(path, tiff, None)


# ---- GDAL -----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", GDAL_CASES, ids=lambda c: c.name)
def test_reads_what_gdal_writes(gdal_file, case: GdalCase, runtime: str) -> None:
    path = gdal_file(case)
    tiff = chonkle.open_tiff(path, runtime=runtime)
    check_every_level(path, tiff, runtime)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        for name in ("ModelPixelScaleTag", "ModelTiepointTag", "GeoKeyDirectoryTag"):
            assert tiff.geo_tags[name] == page.tags[name].value
        masks = sum(p.is_mask for p in tif.pages)
    if case.driver == "COG":
        assert len(tiff.levels) >= 2 and all(level.is_overview for level in tiff.levels[1:])
    assert masks == (len(tiff.levels) if case.mask else 0)  # masks are not levels
    if case.nodata is not None:
        assert tiff.levels[0].nodata == case.nodata
        assert tiff.geo_tags["GDAL_NODATA"].strip("\x00") in (str(case.nodata),
                                                               str(int(case.nodata)))


def test_sparse_tiles_hold_nodata_and_are_not_fetched(gdal_file, monkeypatch) -> None:
    case = next(c for c in GDAL_CASES if c.sparse)
    tiff = chonkle.open_tiff(gdal_file(case))
    assert tiff.levels[0].byte_counts[0] == 0
    asked: list = []
    original = tiff.source.read_ranges
    monkeypatch.setattr(tiff.source, "read_ranges", lambda r: asked.append(r) or original(r))
    top_left = tiff.read(0, ((0, 100), (0, 100)))
    assert np.all(top_left == -9999.0) and asked == []


# ---- the reader -----------------------------------------------------------------------------

def test_any_number_of_workers_reads_the_same(written) -> None:
    case = next(c for c in MATRIX if c.compression == "zstd" and c.predictor == 2 and c.tiled)
    path = written(case)
    tiff = chonkle.open_tiff(path)
    expected = tiff.read()
    assert_same(tiff.read(workers=2), expected)
    assert_same(tiff.read(workers=1), expected)


def test_decode_many_gets_every_tile_of_a_batch_in_one_call(written, monkeypatch) -> None:
    case = next(c for c in MATRIX if c.compression == "deflate" and c.tiled and
                c.layout == "separate")
    tiff = chonkle.open_tiff(written(case))
    calls: list[int] = []
    level = tiff.levels[0]

    def decode_many(self, chunks, workers=None, progress=None):
        calls.append(len(chunks))
        return [self.decode(c) for c in chunks]

    monkeypatch.setattr(Pipeline, "decode_many", decode_many, raising=False)
    tiff.read()
    assert calls == [level.tile_count]


def test_progress_counts_every_tile(written) -> None:
    case = next(c for c in MATRIX if not c.tiled and c.layout == "separate")
    tiff = chonkle.open_tiff(written(case))
    done: list[int] = []
    tiff.read(progress=done.append)
    assert sum(done) == tiff.levels[0].tile_count
    done.clear()
    tiff.read(window=((9, 10), (0, 3)), progress=done.append)
    assert sum(done) == len(tiff.tiles(0, ((9, 10), (0, 3)))) == 2  # one strip per plane


def test_progress_may_be_a_flag(written, capsys) -> None:
    """As in decode_many: None (a bar on a terminal only), True, False; anything else is a
    SpecError."""
    case = next(c for c in MATRIX if not c.tiled and c.layout == "separate")
    tiff = chonkle.open_tiff(written(case))
    want = tiff.read(progress=lambda n: None)
    for flag in (None, False):
        np.testing.assert_array_equal(tiff.read(progress=flag), want)
        assert capsys.readouterr().err == ""  # pytest's stderr is not a terminal
    np.testing.assert_array_equal(tiff.read(progress=True), want)
    assert f"/{tiff.levels[0].tile_count}" in capsys.readouterr().err
    with pytest.raises(SpecError, match="progress must be True, False, None or a function"):
        tiff.read(progress="yes")


def test_another_engine_per_read(written, runtime: str) -> None:
    case = next(c for c in MATRIX if c.compression == "packbits" and c.predictor == 3)
    path = written(case)
    tiff = chonkle.open_tiff(path)
    assert_same(tiff.read(runtime=runtime), tifffile_levels(path)[(0,)])


@pytest.mark.parametrize(("level", "window", "message"), [
    (3, None, "no level 3"), (-1, None, "no level -1"), ("0", None, "no level"),
    (0, ((0, 38), (0, 5)), r"not inside level 0 \(37x45\)"),
    (0, ((5, 4), (0, 5)), "not inside"), (0, ((0, 5),), "a window is"),
    (0, ((0, 5), (0, 5.5)), "a window is"),
])
def test_bad_levels_and_windows_are_spec_errors(written, level, window, message) -> None:
    tiff = chonkle.open_tiff(written(MATRIX[0]))
    with pytest.raises(SpecError, match=message):
        tiff.read(level, window)


# ---- what chonkle cannot read, and files that are broken or hostile ------------------------

UNSUPPORTED = {
    "JPEG": dict(compression="jpeg", photometric="rgb"),
    "WEBP": dict(compression="webp", photometric="rgb"),
    "LERC": dict(compression="lerc"),
    "JPEG2000": dict(compression="jpeg2000", photometric="rgb"),
    "LZMA": dict(compression="lzma"),
}


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_compressions_without_a_codec_are_spec_errors_at_open(tmp_path, name) -> None:
    options = dict(UNSUPPORTED[name])
    data = raster("uint8", (32, 32, 3) if options.get("photometric") else (32, 32))
    path = tmp_path / f"{name}.tif"
    tifffile.imwrite(path, data, **options)
    with pytest.raises(SpecError, match=rf"^{path}: level 0: compression {name} \("):
        chonkle.open_tiff(path)


def test_unsupported_samples_and_bit_order_are_spec_errors(tmp_path) -> None:
    tifffile.imwrite(tmp_path / "bits.tif", raster("uint8", (16, 16)) > 100)
    with pytest.raises(SpecError, match="1-bit samples"):
        chonkle.open_tiff(tmp_path / "bits.tif")
    tifffile.imwrite(tmp_path / "complex.tif", raster("float32", (16, 16)).astype("complex64"))
    with pytest.raises(SpecError, match="SampleFormat 6"):
        chonkle.open_tiff(tmp_path / "complex.tif")
    # FillOrder 2: tifffile will not write the tag, so a harmless one is renamed to it
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, raster("uint8", (16, 16)), compression="zlib",
                     extratags=[(264, "H", 1, 2, True)])
    raw = bytearray(buffer.getvalue())
    entry = raw.find(struct.pack("<HHI", 264, 3, 1))
    raw[entry:entry + 2] = struct.pack("<H", 266)
    (tmp_path / "fill.tif").write_bytes(raw)
    with pytest.raises(SpecError, match="FillOrder 2"):
        chonkle.open_tiff(tmp_path / "fill.tif")


def test_files_that_are_not_tiffs(tmp_path) -> None:
    (tmp_path / "text.tif").write_text("hello, not a TIFF\n")
    (tmp_path / "empty.tif").write_bytes(b"")
    for name in ("text.tif", "empty.tif"):
        with pytest.raises(SpecError, match=rf"^{tmp_path / name}: not a TIFF chonkle can read"):
            chonkle.open_tiff(tmp_path / name)
    with pytest.raises(SourceError, match="no such file"):
        chonkle.open_tiff(tmp_path / "missing.tif")
    with pytest.raises(SourceError, match="is a directory"):
        chonkle.open_tiff(tmp_path)
    os.mkfifo(tmp_path / "fifo.tif")  # would block forever if opened for reading
    with pytest.raises(SourceError, match="not a regular file"):
        chonkle.open_tiff(tmp_path / "fifo.tif")
    with pytest.raises(SpecError, match="prefer"):
        chonkle.open_tiff(tmp_path / "text.tif", prefer="fast")  # type: ignore[arg-type]


def test_truncated_files(written, tmp_path) -> None:
    case = next(c for c in MATRIX if c.compression == "zstd" and c.tiled and
                c.overviews == "pages")
    raw = written(case).read_bytes()
    tiff = chonkle.open_tiff(written(case))
    last = max(tiff.levels, key=lambda level: max(level.offsets))  # its tiles end the file
    cut = tmp_path / "cut.tif"
    cut.write_bytes(raw[:max(last.offsets) + 1])  # the structure is all there, tiles are not
    with pytest.raises(SourceError, match=rf"^{cut}: truncated: a tile at bytes"):
        chonkle.open_tiff(cut).read(last.index)
    cut.write_bytes(raw[:60])  # the first directory is cut
    with pytest.raises(ChonkleError, match=rf"^{cut}: "):
        chonkle.open_tiff(cut)


def test_corrupt_tiles_are_codec_errors_naming_the_tile(written, tmp_path, runtime) -> None:
    case = next(c for c in MATRIX if c.compression == "adobe_deflate" and c.tiled
                and c.layout == "gray")
    raw = bytearray(written(case).read_bytes())
    level = chonkle.open_tiff(written(case)).levels[0]
    index = level.tile_index(0, 1, 1)
    start = level.offsets[index]
    raw[start:start + level.byte_counts[index]] = b"\xff" * level.byte_counts[index]
    (tmp_path / "corrupt.tif").write_bytes(raw)
    tiff = chonkle.open_tiff(tmp_path / "corrupt.tif", runtime=runtime)
    with pytest.raises(CodecError, match=rf"corrupt.tif: level 0, tile {index} \(row 1, "
                                         r"column 1\): step 2 \(zlib\)"):
        tiff.read()
    assert tiff.read(0, ((0, 16), (0, 16))).shape == (16, 16)  # other tiles still read


def test_a_tile_claiming_impossible_size_is_refused_at_open(tmp_path) -> None:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, raster("uint8", (16, 16)), compression="zlib")
    raw = bytearray(buffer.getvalue())
    with tifffile.TiffFile(io.BytesIO(bytes(raw))) as tif:
        count = tif.pages[0].tags["StripByteCounts"]
        assert count.count == 1
        position = count.offset + 8  # the value, inline in the IFD entry
    raw[position:position + 4] = struct.pack("<I", 10**9)
    (tmp_path / "liar.tif").write_bytes(raw)
    with pytest.raises(SpecError, match="claims 1000000000 bytes"):
        chonkle.open_tiff(tmp_path / "liar.tif")


@settings(max_examples=int(os.environ.get("TIFF_FUZZ_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_files_only_raise_chonkle_errors(written, tmp_path, data) -> None:
    """Bytes of the structure (header, directories, tag values) changed at random: opening and
    reading either work or raise a ChonkleError; nothing else escapes. TIFF_FUZZ_EXAMPLES=N
    runs longer (1500 pass)."""
    case = data.draw(st.sampled_from([c for c in MATRIX if c.compression in ("lzw", "zstd")]))
    raw = bytearray(written(case).read_bytes())
    with tifffile.TiffFile(io.BytesIO(bytes(raw))) as tif:
        data_start = min(tif.pages[0].dataoffsets)
    structure = [i for i in range(len(raw)) if i < data_start or i >= len(raw) - 600]
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.sampled_from(structure))] = data.draw(st.integers(0, 255))
    path = tmp_path / "damaged.tif"
    path.write_bytes(bytes(raw))
    try:
        tiff = chonkle.open_tiff(path)
        for level in tiff.levels:
            tiff.read(level.index)
    except ChonkleError as exc:
        assert str(exc).startswith(str(path)), str(exc)


# ---- the command line -----------------------------------------------------------------------

def chonkle_cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chonkle.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_inspect_prints_levels_and_their_pipelines(gdal_file) -> None:
    path = gdal_file(GDAL_CASES[0])
    result = chonkle_cli("inspect", path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    tiff = chonkle.open_tiff(path)
    assert document["source"] == str(path) and document["byte_order"] == "little"
    assert [level["pipeline"] for level in document["levels"]] == [
        level.spec for level in tiff.levels]
    first = document["levels"][0]
    assert (first["shape"], first["dtype"], first["tile_shape"], first["tiles"]) == (
        [300, 420], "uint16", [128, 128], 12)
    assert document["geo_tags"]["ModelPixelScaleTag"] == [10.0, 10.0, 0.0]


def test_inspect_level_saves_a_sidecar_that_decode_uses(gdal_file, tmp_path) -> None:
    path = gdal_file(GDAL_CASES[2])
    result = chonkle_cli("inspect", path, "--level", "1")
    assert result.returncode == 0, result.stderr
    level = chonkle.open_tiff(path).levels[1]
    assert json.loads(result.stdout) == level.spec
    raw = path.read_bytes()
    tile = tmp_path / "tile.bin"
    tile.write_bytes(raw[level.offsets[0]:level.offsets[0] + level.byte_counts[0]])
    (tmp_path / "tile.bin.json").write_text(result.stdout)
    decoded = chonkle_cli("decode", tile, "-o", tmp_path / "tile.npy")
    assert decoded.returncode == 0, decoded.stderr
    assert_same(np.load(tmp_path / "tile.npy")[:128, :128],
                tifffile_levels(path)[level.ifd][:128, :128])


def test_read_writes_npy_and_prints_a_summary(gdal_file, tmp_path, runtime) -> None:
    path = gdal_file(GDAL_CASES[1])
    out = tmp_path / "window.npy"
    result = chonkle_cli("read", path, "--level", "1", "--window", "10:140,100:200", "-o", out,
                         "--runtime", runtime)
    assert result.returncode == 0, result.stderr
    assert_same(np.load(out), tifffile_levels(path)[(1,)][10:140, 100:200])
    assert result.stderr == ""  # no progress bar outside a terminal
    summary = chonkle_cli("read", path, "--window", "0:3,0:4", "--prefer", "native")
    assert summary.returncode == 0, summary.stderr
    lines = summary.stdout.splitlines()
    assert lines[0] == (f"{path}: level 0 of 3, rows 0:3, columns 0:4: 1 tiles decoded, ZSTD, "
                        "predictor 3")
    assert lines[1] == "shape [3, 4, 2], dtype float32"


def test_read_shows_a_progress_bar_on_a_terminal(gdal_file, tmp_path) -> None:
    import fcntl
    import pty
    import termios

    path = gdal_file(next(c for c in GDAL_CASES if "strips" in c.name))  # 86 strips
    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        result = subprocess.run([sys.executable, "-m", "chonkle.cli", "read", path, "-o",
                                 tmp_path / "all.npy"], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=secondary, timeout=120)
        os.close(secondary)
        secondary = -1
        shown = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main)
        if secondary >= 0:
            os.close(secondary)
    assert result.returncode == 0
    assert b"read" in shown and b"/86" in shown and b"tile" in shown


@pytest.mark.parametrize(("args", "message"), [
    (["--window", "1:2"], "--window '1:2' is not R0:R1,C0:C1"),
    (["--level", "9"], "no level 9"),
    (["--window", "0:999,0:5"], "is not inside level 0"),
])
def test_read_errors_are_one_line(gdal_file, args, message) -> None:
    result = chonkle_cli("read", gdal_file(GDAL_CASES[0]), *args)
    assert result.returncode == 1
    assert result.stderr.startswith("chonkle: error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_inspect_names_an_unsupported_compression(tmp_path) -> None:
    tifffile.imwrite(tmp_path / "jpeg.tif", raster("uint8", (32, 32, 3)), compression="jpeg",
                     photometric="rgb")
    result = chonkle_cli("inspect", tmp_path / "jpeg.tif")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"chonkle: error: {tmp_path / 'jpeg.tif'}: level 0: compression JPEG (7) has no chonkle "
        "codec; chonkle reads TIFFs compressed with none, LZW, Deflate, PackBits or ZSTD")


def test_importing_chonkle_does_not_import_httpx_or_tifffile() -> None:
    code = ("import sys, chonkle; print('httpx' in sys.modules, 'tifffile' in sys.modules, "
            "callable(chonkle.open_tiff))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.split() == ["False", "False", "True"], result.stderr
