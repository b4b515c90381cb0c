"""Zarr v2: chonkle.wasm as a zarr-python 2 compressor and filter, and pipelines read from the
``.zarray`` of stores zarr-python 2 wrote (marked zarr2: CI's CPython 3.10 leg, both
engines). Tests on hand-written metadata need no zarr and run everywhere."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr
from zarr_helpers import run_fresh, sample

import chonkle
from chonkle import Pipeline, SourceError, SpecError
from chonkle.engine.wasm_codec import WasmCodec
from chonkle.formats.zarr import open_zarr_array

zarr2 = pytest.mark.zarr2


def wasm(name: str, **configuration: Any) -> WasmCodec:
    return numcodecs.get_codec({"id": "chonkle.wasm", "name": name,
                                "configuration": configuration})


def write_v2(path: Path, data: np.ndarray, chunks: tuple[int, ...], *, fill_value: Any = 0,
             region: tuple[slice, ...] | None = None, **options: Any) -> zarr.Array:
    """A zarr-python 2 array; only ``region`` written (the rest of the chunks not stored)."""
    array = zarr.open_array(str(path), mode="w", shape=data.shape, chunks=chunks,
                            dtype=data.dtype, fill_value=fill_value, **options)
    region = region or tuple(slice(None) for _ in data.shape)
    array[region] = data[region]
    return array


# ---- chonkle.wasm inside zarr-python 2 ---------------------------------------------------

READ_BACK = """
import sys, numpy as np, zarr
array = zarr.open_array(sys.argv[1], mode="r")
expected = np.load(sys.argv[2])
print(array.compressor.runtime, [type(f).__name__ for f in array.filters or []],
      np.array_equal(array[:], expected), array[:].dtype == expected.dtype)
"""


@zarr2
@pytest.mark.parametrize("order", ["C", "F"])
def test_wasm_compressor_and_filters_read_back_in_a_fresh_process(
        runtime: str, tmp_path: Path, order: str) -> None:
    data = sample((70, 90), "<i4")
    codecs = {"compressor": wasm("zstd", level=5),
              "filters": [wasm("delta", dtype="<i4"), wasm("shuffle", elementsize=4)]}
    write_v2(tmp_path / "a", data, (32, 40), order=order, **codecs)
    metadata = json.loads((tmp_path / "a" / ".zarray").read_text())
    assert metadata["compressor"] == {"id": "chonkle.wasm", "name": "zstd",
                                      "configuration": {"level": 5}}
    assert [f["name"] for f in metadata["filters"]] == ["delta", "shuffle"]
    np.save(tmp_path / "expected.npy", data)
    shown = run_fresh(READ_BACK, tmp_path / "a", tmp_path / "expected.npy", runtime=runtime)
    assert shown == [runtime, "['WasmCodec',", "'WasmCodec']", "True", "True"]
    # The chunks are what numcodecs' own codecs write, byte for byte decodable by them.
    native = zarr.open_array(str(tmp_path / "a"), mode="r")
    stored = (tmp_path / "a" / "0.0").read_bytes()
    raw = numcodecs.Zstd().decode(stored)
    unshuffled = numcodecs.Shuffle(4).decode(raw)
    expected = native[:32, :40]
    assert np.array_equal(
        np.frombuffer(numcodecs.Delta("<i4").decode(unshuffled), "<i4").reshape(
            (32, 40), order=order), expected)


@zarr2
def test_a_zarr2_array_of_wasm_codecs_computes_on_dask_worker_processes(tmp_path: Path) -> None:
    """The codecs travel to worker processes pickled as their configuration (forked workers:
    dask pickles every task all the same, and they start in a second, not ten)."""
    data = sample((64, 96), "<u2")
    write_v2(tmp_path / "a", data, (32, 32), compressor=wasm("zstd", level=3),
             filters=[wasm("shuffle", elementsize=2)])
    code = ("import sys, dask, dask.array as da\n"
            "array = da.from_zarr(sys.argv[1])\n"
            "with dask.config.set({'multiprocessing.context': 'fork'}):\n"
            "    print(int(array.sum().compute(scheduler='processes', num_workers=2)))\n")
    assert run_fresh(code, tmp_path / "a") == [str(int(data.sum(dtype=np.int64)))]


@zarr2
def test_the_wasm_codec_round_trips_through_get_config_and_pickle() -> None:
    codec = wasm("zstd", level=7, checksum=True)
    assert numcodecs.get_codec(codec.get_config()) == codec
    restored = pickle.loads(pickle.dumps(codec))
    assert restored.get_config() == codec.get_config()
    data = sample((40, 40), "<f8").tobytes()
    assert restored.decode(codec.encode(data)).tobytes() == data


# ---- pipelines from stores zarr-python 2 wrote ---------------------------------------------

# (dtype, order, compressor, filters, dimension separator, fill value): every codec chonkle maps,
# several dtypes, both byte orders, both orders, partial edge chunks, chunks not stored.
CASES = {
    "u2 zstd": ("<u2", "C", numcodecs.Zstd(3), None, ".", 0),
    "u2 big F shuffle zstd /": (">u2", "F", numcodecs.Zstd(1), [numcodecs.Shuffle(2)], "/", 7),
    "i4 F delta zlib": ("<i4", "F", numcodecs.Zlib(5), [numcodecs.Delta("<i4")], ".", -1),
    "i4 big delta astype gzip": (">i4", "C", numcodecs.GZip(5),
                                 [numcodecs.Delta(">i4", astype=">i2")], ".", 0),
    "f8 bitround blosc": ("<f8", "C", numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE),
                          [numcodecs.BitRound(10)], ".", "NaN"),
    "f4 big F uncompressed": (">f4", "F", None, None, ".", -2.5),
    "bool zstd": ("|b1", "C", numcodecs.Zstd(1), None, ".", True),
    "c8 F shuffle bz2": ("<c8", "F", numcodecs.BZ2(), [numcodecs.Shuffle(8)], ".", 1 + 2j),
    "u1 lzma /": ("|u1", "C", numcodecs.LZMA(), None, "/", 255),
    "i8 big delta lz4": (">i8", "C", numcodecs.LZ4(), [numcodecs.Delta(">i8")], ".", 3),
    "f4 fixedscaleoffset zstd": ("<f4", "C", numcodecs.Zstd(), [numcodecs.FixedScaleOffset(
        offset=400, scale=10, dtype="<f4", astype="<i4")], ".", 0),
    "f2 quantize zstd": ("<f2", "C", numcodecs.Zstd(), [numcodecs.Quantize(1, "<f2")], ".", 0),
}


@zarr2
@pytest.mark.parametrize("case", CASES)
def test_chonkle_reads_what_zarr2_wrote(tmp_path: Path, runtime: str, case: str) -> None:
    dtype, order, compressor, filters, separator, fill = CASES[case]
    data = sample((45, 70), dtype)
    if fill == "NaN":
        fill = float("nan")
    written = write_v2(tmp_path / "a", data, (16, 32), fill_value=fill, order=order,
                       compressor=compressor, filters=filters, dimension_separator=separator,
                       region=(slice(0, 30), slice(None)))  # the last row of chunks not stored
    expected = zarr.open_array(str(tmp_path / "a"), mode="r")[:]
    assert written.nchunks_initialized < written.nchunks
    array = open_zarr_array(tmp_path / "a", runtime=runtime)
    decoded = array.read(workers=1)
    assert decoded.dtype == np.dtype(dtype).newbyteorder("=") and decoded.flags.c_contiguous
    np.testing.assert_array_equal(decoded, expected)
    native = open_zarr_array(tmp_path / "a", prefer="native")
    np.testing.assert_array_equal(native.read(workers=1), expected)
    # Encoding: chonkle's chunk in place of zarr-python's reads the same.
    key = array.chunk_key((1, 1))
    chunk = array.read_chunk(key)
    assert chunk.shape == (16, 32)
    array.chunk_path(key).write_bytes(array.pipeline.encode(chunk))
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a"), mode="r")[:], expected)


@zarr2
def test_a_whole_array_decodes_on_every_core(tmp_path: Path, runtime: str) -> None:
    data = sample((200, 300), "<f4")
    write_v2(tmp_path / "a", data, (32, 64), compressor=numcodecs.Zstd(3),
             filters=[numcodecs.Shuffle(4)], region=(slice(0, 150), slice(None)))
    expected = zarr.open_array(str(tmp_path / "a"), mode="r")[:]
    np.testing.assert_array_equal(open_zarr_array(tmp_path / "a", runtime=runtime).read(
        workers=2), expected)


@zarr2
def test_wasm_codecs_are_used_where_chonkle_ships_them(tmp_path: Path) -> None:
    write_v2(tmp_path / "a", sample((8, 8), "<u2"), (8, 8), compressor=numcodecs.Zstd(3),
             filters=[numcodecs.Delta("<u2"), numcodecs.Shuffle(2)])
    wasm_pipeline = Pipeline.from_zarr(tmp_path / "a")
    assert [type(c).__name__ for c in wasm_pipeline.codecs] == [
        "V2Layout", "WasmCodec", "WasmCodec", "WasmCodec"]
    assert wasm_pipeline.labels == ["layout (<u2, order C)", "filter 0 (delta)",
                                    "filter 1 (shuffle)", "compressor (zstd)"]
    native = Pipeline.from_zarr(tmp_path / "a" / ".zarray", prefer="native")
    assert [c.codec_id for c in native.codecs[1:]] == ["delta", "shuffle", "zstd"]
    assert not any(isinstance(c, WasmCodec) for c in native.codecs)


@zarr2
def test_a_pipeline_from_the_parsed_zarray_decodes_its_chunks(tmp_path: Path) -> None:
    data = sample((20, 30), ">f8")
    write_v2(tmp_path / "a", data, (20, 30), compressor=numcodecs.Zstd(3))
    metadata = json.loads((tmp_path / "a" / ".zarray").read_text())
    decoded = chonkle.decode((tmp_path / "a" / "0.0").read_bytes(), Pipeline.from_zarr(metadata))
    np.testing.assert_array_equal(decoded, data)


@zarr2
@pytest.mark.parametrize("separator", [".", "/"])
def test_cli_decodes_a_chunk_of_a_zarr2_array(tmp_path: Path, separator: str) -> None:
    data = sample((40, 50), "<i2")
    write_v2(tmp_path / "store" / "a", data, (16, 32), compressor=numcodecs.Zstd(3),
             dimension_separator=separator, fill_value=-9, region=(slice(0, 16), slice(None)))
    chunk = tmp_path / "store" / "a" / separator.join(["0", "1"])
    out = tmp_path / "chunk.npy"
    result = chonkle_cli("decode", chunk, "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"chunk 0{separator}1 of the Zarr v2 array ")
    expected = np.full((16, 32), -9, "<i2")
    expected[:, :18] = data[:16, 32:]
    np.testing.assert_array_equal(np.load(out), expected)
    missing = chonkle_cli("decode", tmp_path / "store" / "a" / separator.join(["2", "0"]))
    assert missing.returncode == 0, missing.stderr
    assert "not stored, so it holds the array's fill value (-9)" in missing.stderr
    assert "shape [16, 32], dtype int16" in missing.stdout
    wrong = chonkle_cli("decode", tmp_path / "store" / "a" / separator.join(["9", "0"]))
    assert wrong.returncode == 1 and "is outside the array" in wrong.stderr


def chonkle_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chonkle.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


# ---- hostile metadata (no zarr needed) -----------------------------------------------------

VALID = {"zarr_format": 2, "shape": [10, 10], "chunks": [5, 5], "dtype": "<u2",
         "compressor": {"id": "zstd", "level": 1}, "fill_value": 0, "filters": None,
         "order": "C"}


def write_zarray(folder: Path, metadata: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".zarray").write_text(json.dumps(metadata))
    return folder


def test_pickle_in_a_zarray_is_refused_unless_allowed(tmp_path: Path) -> None:
    folder = write_zarray(tmp_path / "a", {**VALID, "compressor": {"id": "pickle"}})
    with pytest.raises(SpecError) as caught:
        open_zarr_array(folder)
    message = str(caught.value)
    assert ".zarray" in message and "compressor (pickle)" in message
    assert "'pickle' is not allowed" in message and "arbitrary Python" in message
    assert open_zarr_array(folder, allow_codecs=["pickle"]).pipeline.codecs[1].codec_id == \
        "pickle"


def test_codecs_chonkle_cannot_build_are_named(tmp_path: Path) -> None:
    folder = write_zarray(tmp_path / "a", {**VALID, "filters": [{"id": "nonesuch"}],
                                           "compressor": {"id": "alsonot"}})
    with pytest.raises(SpecError, match=r"cannot build the codec\(s\) 'nonesuch', 'alsonot'"):
        open_zarr_array(folder)


@pytest.mark.parametrize(("change", "message"), [
    ({"zarr_format": 4}, '"zarr_format" must be 2 or 3'),
    ({"shape": None}, '"shape" must be a list'),
    ({"shape": [10, -1]}, '"shape" must be a list of non-negative integers'),
    ({"chunks": [5]}, '"chunks" has 1 dimensions, but the shape has 2'),
    ({"chunks": [0, 5]}, '"chunks" must be a list of positive integers'),
    ({"chunks": [5, True]}, '"chunks" must be a list'),
    ({"dtype": "<M8[ns]"}, "is not supported"),
    ({"dtype": [["a", "<u2"]]}, "structured dtypes are not"),
    ({"dtype": "nonsense"}, "is not a numpy dtype"),
    ({"order": "K"}, '"order" must be "C" or "F"'),
    ({"compressor": "zstd"}, 'compressor must be a JSON object with an "id"'),
    ({"compressor": {"id": "zstd", "level": "max"}}, "compressor (zstd)"),
    ({"compressor": {"id": "zstd", "nonsense": 1}}, "compressor (zstd)"),
    ({"filters": {"id": "delta"}}, '"filters" must be a list or null'),
    ({"filters": [7]}, 'filter 0 must be a JSON object with an "id"'),
    ({"filters": [{"id": "chonkle.wasm", "name": "zstd", "what": 1}]}, "unknown keys ['what']"),
    ({"filters": [{"id": "chonkle.wasm", "name": "../zstd"}]}, "is not a codec name"),
    ({"fill_value": "zero"}, '"fill_value" \'zero\' is not a uint16 value'),
    ({"fill_value": 70000}, "out of range"),
    ({"dimension_separator": "-"}, '"dimension_separator" must be "." or "/"'),
    ({"chunks": [2**40, 2**20]}, "output limit"),
])
def test_malformed_zarray_is_a_spec_error_naming_the_file(
        tmp_path: Path, change: dict, message: str) -> None:
    folder = write_zarray(tmp_path / "a", {**VALID, **change})
    with pytest.raises(chonkle.ChonkleError) as caught:
        open_zarr_array(folder)
    assert str(folder / ".zarray") in str(caught.value) and message in str(caught.value)


@pytest.mark.parametrize(("content", "message"), [
    (b"{", "is not valid JSON"),
    (b"\xff\xfe", "is not UTF-8"),
    (b"[1, 2]", "must be a JSON object"),
    (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
    (b'{"zarr_format": ' + b"7" * 5000 + b"}", "holds a value no Zarr metadata has"),
])
def test_unreadable_metadata_is_a_spec_error(tmp_path: Path, content: bytes,
                                             message: str) -> None:
    (tmp_path / ".zarray").write_bytes(content)
    with pytest.raises(SpecError, match=message):
        open_zarr_array(tmp_path)


def test_metadata_that_is_not_a_regular_file_is_refused_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / ".zarray")
    with pytest.raises(SpecError, match="not a regular file"):
        open_zarr_array(tmp_path / ".zarray")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match="holds no Zarr array metadata"):
        open_zarr_array(tmp_path / "empty")
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / ".zgroup").write_text('{"zarr_format": 2}')
    with pytest.raises(SpecError, match="a group, not an array"):
        open_zarr_array(tmp_path / "g")


def test_a_wrong_digest_in_a_zarray_is_refused_before_any_code_runs(tmp_path: Path) -> None:
    wasm_file = Path(chonkle.__file__).parent / "wasm" / "zstd.wasm"
    step = {"id": "chonkle.wasm", "name": "zstd", "uri": wasm_file.as_uri(), "sha256": "0" * 64}
    folder = write_zarray(tmp_path / "a", {**VALID, "compressor": step})
    with pytest.raises(SourceError, match="refusing to run it") as caught:
        open_zarr_array(folder)
    assert caught.value.step == "compressor (chonkle.wasm zstd)"
