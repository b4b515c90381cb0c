"""Remote TIFFs: COGs read over HTTPS by range requests from a real server on loopback that
honours Range and counts what it sends (tests/servers.py RangeServer).

Checked: results equal tifffile's read of the same file on both engines; the header takes one
or a few requests; a window fetches only its tiles (a small fraction of the file); adjacent
tiles come in one request; retries, the deadline and the address rules are those of module
downloads; every misbehaving server ends in a ChonkleError naming the URL.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from servers import Authority, RangeServer, ScriptedServer, public_address, redirect
from tiff_files import (
    MATRIX_FOR_HTTP,
    GdalCase,
    assert_same,
    raster,
    tifffile_levels,
    write_gdal,
    write_tifffile,
)

import chonkle
from chonkle import LimitExceeded, SourceError, SpecError
from chonkle.formats import tiff_http

REPO = Path(__file__).resolve().parent.parent
BIG = GdalCase("big-cog", "COG", "uint16", 1,
               {"COMPRESS": "DEFLATE", "PREDICTOR": "2", "BLOCKSIZE": "256"}, size=(2048, 2048))


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(autouse=True)
def trust_and_be_quick(authority: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(authority.ca_file))
    monkeypatch.setenv("CHONKLE_HTTP_TIMEOUT", "2")
    monkeypatch.setenv("CHONKLE_HTTP_RETRIES", "2")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("remote")
    found = {"big.tif": write_gdal(folder, BIG)}
    for case in MATRIX_FOR_HTTP:
        found[f"{case.id}.tif"] = write_tifffile(folder / f"{case.id}.tif", case)
    return found


@pytest.fixture(scope="module")
def server(authority: Authority, files: dict[str, Path]) -> RangeServer:
    with RangeServer(authority, slow_seconds=3.0) as running:
        for name, path in files.items():
            running.files[name] = path.read_bytes()
        yield running


@pytest.fixture
def counts(server: RangeServer) -> RangeServer:
    server.reset_counts()
    return server


def test_a_window_of_one_tile_fetches_a_small_fraction(files, counts, runtime) -> None:
    url = counts.url("big.tif")
    tiff = chonkle.open_tiff(url, runtime=runtime)
    assert counts.requests["big.tif"] == 1  # the whole header came in the first range
    header_bytes = counts.sent["big.tif"]
    window = ((600, 700), (300, 400))  # inside tile row 2, column 1
    assert tiff.tiles(0, window) == [2 * 8 + 1]
    got = tiff.read(0, window)
    assert_same(got, tifffile_levels(files["big.tif"])[(0,)][600:700, 300:400])
    size = len(counts.files["big.tif"])
    tile = tiff.levels[0].byte_counts[17]
    assert counts.requests["big.tif"] == 2
    assert counts.sent["big.tif"] == header_bytes + tile
    assert counts.sent["big.tif"] < size / 20, (counts.sent["big.tif"], size)


def test_whole_levels_come_in_coalesced_requests(files, counts, runtime) -> None:
    url = counts.url("big.tif")
    tiff = chonkle.open_tiff(url, runtime=runtime)
    expected = tifffile_levels(files["big.tif"])
    counts.reset_counts()
    for level in tiff.levels:
        assert_same(tiff.read(level.index), expected[level.ifd])
    # every level's tiles are contiguous in a COG: one request per level
    assert counts.requests["big.tif"] == len(tiff.levels)
    stored = sum(sum(level.byte_counts) for level in tiff.levels)
    assert stored <= counts.sent["big.tif"] <= stored + 8 * sum(
        level.tile_count for level in tiff.levels)  # GDAL's 4-byte leaders and trailers


@pytest.mark.parametrize("case", MATRIX_FOR_HTTP, ids=lambda c: c.id)
def test_files_tifffile_writes_over_http(files, counts, case) -> None:
    """Not COGs: directories spread through the file, strips, separate planes, BigTIFF."""
    tiff = chonkle.open_tiff(counts.url(f"{case.id}.tif"))
    assert counts.requests[f"{case.id}.tif"] <= 3
    expected = tifffile_levels(files[f"{case.id}.tif"])
    for level in tiff.levels:
        assert_same(tiff.read(level.index), expected[level.ifd])


def test_plain_http_on_loopback(files) -> None:
    with RangeServer() as plain:
        plain.files["big.tif"] = files["big.tif"].read_bytes()
        tiff = chonkle.open_tiff(plain.url("big.tif"))
        assert_same(tiff.read(2), tifffile_levels(files["big.tif"])[tiff.levels[2].ifd])


def test_reads_from_many_threads_at_once(files, server) -> None:
    tiff = chonkle.open_tiff(server.url("big.tif"))
    whole = tifffile_levels(files["big.tif"])[(0,)]
    windows = [((r, r + 300), (c, c + 500)) for r in (0, 700, 1500) for c in (0, 900)]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda w: tiff.read(0, w, workers=1), windows))
    for (rows, cols), got in zip(windows, results, strict=True):
        assert_same(got, whole[rows[0]:rows[1], cols[0]:cols[1]])


# ---- servers and files that misbehave ----------------------------------------------------

@pytest.mark.parametrize(("mode", "error", "message"), [
    ("ignore-range", SourceError, "does not honour Range requests"),
    ("cut", SourceError, r"broke off the transfer .* \(gave up after 3 attempts\)"),
    ("gzip", SourceError, r"compressed body \(Content-Encoding: gzip\)"),
    ("to-http", SourceError, "chonkle follows redirects to https:// only"),
])
def test_misbehaving_servers_are_source_errors(server, files, mode, error, message) -> None:
    name = f"{mode}.tif"
    server.files[name] = files["big.tif"].read_bytes()
    server.modes[name] = mode
    url = server.url(name)
    with pytest.raises(error, match=message) as caught:
        chonkle.open_tiff(url)
    assert str(caught.value).startswith(repr(url))


def test_missing_files_and_files_that_are_not_tiffs(server) -> None:
    with pytest.raises(SourceError, match=r"HTTP 404"):
        chonkle.open_tiff(server.url("nothing-here.tif"))
    server.files["text.tif"] = b"this is not a TIFF at all\n" * 100
    with pytest.raises(SpecError) as caught:
        chonkle.open_tiff(server.url("text.tif"))
    assert str(caught.value).startswith(f"{server.url('text.tif')!r}: not a TIFF chonkle can "
                                        "read (TiffFileError: not a TIFF file")
    server.files["empty.tif"] = b""
    with pytest.raises(SourceError, match=r"past the end of the file .*empty or truncated"):
        chonkle.open_tiff(server.url("empty.tif"))


def test_a_truncated_remote_file(server, files) -> None:
    raw = files["big.tif"].read_bytes()
    tiff = chonkle.open_tiff(server.url("big.tif"))
    server.files["truncated.tif"] = raw[:max(tiff.levels[0].offsets)]
    truncated = chonkle.open_tiff(server.url("truncated.tif"))
    with pytest.raises(SourceError, match="truncated: a tile at bytes"):
        truncated.read(0)
    assert truncated.read(0, ((0, 10), (0, 10))).shape == (10, 10)  # earlier tiles are there


def test_retries_on_5xx_then_gives_up(server, files, monkeypatch) -> None:
    server.files["flaky.tif"] = files["big.tif"].read_bytes()
    server.modes["flaky.tif"] = "flaky"  # 503 twice, then fine: within 2 retries
    tiff = chonkle.open_tiff(server.url("flaky.tif"))
    assert tiff.read(2).shape == tiff.levels[2].shape
    server.files["flakier.tif"] = server.files["flaky.tif"]
    server.modes["flakier.tif"] = "flaky"
    monkeypatch.setenv("CHONKLE_HTTP_RETRIES", "1")
    with pytest.raises(SourceError, match=r"HTTP 503 .*gave up after 2 attempts"):
        chonkle.open_tiff(server.url("flakier.tif"))


def test_a_file_replaced_while_being_read(server, files) -> None:
    server.files["changing.tif"] = files["big.tif"].read_bytes()
    server.modes["changing.tif"] = "changing"
    tiff = chonkle.open_tiff(server.url("changing.tif"))
    with pytest.raises(SourceError, match="changed on the server while being read"):
        tiff.read(2)


def test_the_deadline_bounds_every_download(server, files, monkeypatch) -> None:
    server.files["slow.tif"] = files["big.tif"].read_bytes()
    server.modes["slow.tif"] = "slow"  # 3 s before each answer
    monkeypatch.setenv("CHONKLE_HTTP_TIMEOUT", "30")
    monkeypatch.setenv("CHONKLE_HTTP_DEADLINE", "1")
    with pytest.raises(LimitExceeded, match=r"1 s deadline \(CHONKLE_HTTP_DEADLINE\)"):
        chonkle.open_tiff(server.url("slow.tif"))


@pytest.mark.parametrize(("url", "message"), [
    ("http://example.org/scene.tif", "plain http:// is accepted only for loopback hosts"),
    ("ftp://example.org/scene.tif", "not ftp://"),
    ("https://:443/scene.tif", "names no host"),
    ("https://example.org:http/scene.tif", "not a valid URL"),
])
def test_urls_chonkle_refuses_before_connecting(url, message) -> None:
    with pytest.raises(SourceError, match=message):
        chonkle.open_tiff(url)


def test_redirects_from_elsewhere_may_not_reach_this_machine(authority, server) -> None:
    """A host that is not this machine redirecting to loopback is refused where the socket
    connects (chonkle.sources.guard), as for module downloads."""
    try:
        context = public_address()
        address = context.__enter__()
    except (PermissionError, RuntimeError) as exc:
        pytest.skip(f"no extra address on lo: {exc}")
    try:
        with ScriptedServer(address, authority) as elsewhere:
            elsewhere.routes["/a.tif"] = redirect(server.url("big.tif"))
            with pytest.raises(SourceError, match=r"refusing to connect to 127\.0\.0\.1"):
                chonkle.open_tiff(elsewhere.url("/a.tif"))
    finally:
        context.__exit__(None, None, None)


def test_http_redirecting_to_plain_http_elsewhere_is_refused(monkeypatch) -> None:
    with ScriptedServer() as local:
        local.routes["/a.tif"] = redirect("http://example.org/a.tif")
        with pytest.raises(SourceError, match="plain http:// is accepted only for loopback"):
            chonkle.open_tiff(local.url("/a.tif"))


def test_a_hostile_header_cannot_make_chonkle_fetch_without_end(server, monkeypatch) -> None:
    """A structure that asks for more than the header cap is refused, not downloaded."""
    import tifffile

    monkeypatch.setattr(tiff_http, "MAX_HEADER_BYTES", 40_000)
    path_bytes = _many_pages(tifffile)
    server.files["pages.tif"] = path_bytes
    with pytest.raises(LimitExceeded, match="TIFF structure needs more than 40000 bytes"):
        chonkle.open_tiff(server.url("pages.tif"))
    assert server.sent["pages.tif"] <= 40_000 + 16 * 2**10


def _many_pages(tifffile) -> bytes:
    import io

    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer) as writer:
        for _ in range(60):
            writer.write(raster("uint16", (64, 64)), compression="zlib")  # IFDs every 8 KiB
    return buffer.getvalue()


# ---- the command line, on a URL --------------------------------------------------------------

def test_cli_inspect_and_read_a_url(server, files, tmp_path) -> None:
    url = server.url("big.tif")
    run = [sys.executable, "-m", "chonkle.cli"]
    inspected = subprocess.run([*run, "inspect", url], capture_output=True, text=True,
                               cwd=REPO, timeout=120)
    assert inspected.returncode == 0, inspected.stderr
    assert f'"source": "{url}"' in inspected.stdout
    out = tmp_path / "w.npy"
    read = subprocess.run([*run, "read", url, "--level", "1", "--window", "0:300,200:260", "-o",
                           out], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert read.returncode == 0, read.stderr
    assert_same(np.load(out), tifffile_levels(files["big.tif"])[(1,)][0:300, 200:260])
