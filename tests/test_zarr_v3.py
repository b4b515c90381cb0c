"""Zarr v3: the zarr-python 3 codec chonkle.wasm, and pipelines read from the ``zarr.json`` of
stores zarr-python 3 wrote (marked zarr3: CI's CPython 3.12 leg, on wasmtime, the engine that
loads there). Tests on hand-written metadata need no zarr and run everywhere."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr_helpers import run_fresh, sample

import chonkle
from chonkle import Pipeline, SourceError, SpecError
from chonkle.engine.wasm_codec import WasmCodec
from chonkle.formats.zarr import open_zarr_array

zarr3 = pytest.mark.zarr3


def wasm(name: str, **configuration: Any) -> dict[str, Any]:
    inner: dict[str, Any] = {"name": name}
    if configuration:
        inner["configuration"] = configuration
    return {"name": "chonkle.wasm", "configuration": inner}


# ---- chonkle.wasm inside zarr-python 3 ---------------------------------------------------

READ_BACK = """
import sys, numpy as np, xarray, zarr
expected = np.load(sys.argv[2])
array = zarr.open_array(sys.argv[1], mode="r")
dataset = xarray.open_zarr(sys.argv[1].rsplit("/", 1)[0], zarr_format=3, consolidated=False)
print(type(array.metadata.codecs[-1]).__name__, np.array_equal(array[:], expected),
      np.array_equal(dataset["a"].values, expected), "wasmtime" in sys.modules)
"""


@zarr3
def test_wasm_compressors_write_and_read_back_in_a_fresh_process(runtime: str,
                                                                  tmp_path: Path) -> None:
    data = sample((70, 90), "uint16")
    group = zarr.create_group(tmp_path / "store")
    array = group.create_array("a", shape=data.shape, chunks=(32, 32), dtype=data.dtype,
                               dimension_names=["y", "x"],
                               compressors=[wasm("shuffle"), wasm("zstd", level=5)])
    array[:] = data
    metadata = json.loads((tmp_path / "store" / "a" / "zarr.json").read_text())
    assert metadata["codecs"][1:] == [  # elementsize filled in from the data type
        wasm("shuffle", elementsize=2), wasm("zstd", level=5)]
    np.save(tmp_path / "expected.npy", data)
    shown = run_fresh(READ_BACK, tmp_path / "store" / "a", tmp_path / "expected.npy",
                      runtime=runtime)
    assert shown == ["ChonkleWasmCodec", "True", "True", "True"]


@zarr3
def test_a_store_naming_its_module_by_uri_and_digest_reads_anywhere(tmp_path: Path) -> None:
    module = tmp_path / "modules" / "my-zstd.wasm"
    module.parent.mkdir()
    shutil.copy(Path(chonkle.__file__).parent / "wasm" / "zstd.wasm", module)
    digest = hashlib.sha256(module.read_bytes()).hexdigest()
    codec = {"name": "chonkle.wasm", "configuration": {
        "name": "zstd", "uri": module.as_uri(), "sha256": digest,
        "configuration": {"level": 3}}}
    data = sample((40, 40), "float32")
    zarr.create_array(tmp_path / "a", shape=data.shape, chunks=(20, 20), dtype=data.dtype,
                      compressors=[codec])[:] = data
    code = "import sys, zarr; print(zarr.open_array(sys.argv[1], mode='r')[:].sum())"
    assert run_fresh(code, tmp_path / "a") == [str(data.sum())]
    np.testing.assert_array_equal(open_zarr_array(tmp_path / "a").read(workers=1), data)
    # Another module under that digest's name: refused when the metadata is read.
    metadata_path = tmp_path / "a" / "zarr.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["codecs"][1]["configuration"]["sha256"] = hashlib.sha256(b"other").hexdigest()
    metadata_path.write_text(json.dumps(metadata))
    with pytest.raises(SourceError, match="refusing to run it"):
        zarr.open_array(tmp_path / "a", mode="r")
    with pytest.raises(SourceError, match="refusing to run it") as caught:
        open_zarr_array(tmp_path / "a")
    assert caught.value.step == "codec 1 (chonkle.wasm zstd)"


@zarr3
def test_the_codec_follows_zarrs_codec_interface(tmp_path: Path) -> None:
    from zarr.core.array_spec import ArrayConfig, ArraySpec
    from zarr.core.buffer import default_buffer_prototype
    from zarr.dtype import parse_dtype

    from chonkle.formats.zarr_v3 import ChonkleWasmCodec

    codec = ChonkleWasmCodec.from_dict(wasm("zstd", level=3, checksum=True))
    assert codec.to_dict() == wasm("zstd", level=3, checksum=True)
    assert pickle.loads(pickle.dumps(codec)) == codec and hash(codec) == hash(
        ChonkleWasmCodec.from_dict(codec.to_dict()))
    spec = ArraySpec((10, 10), parse_dtype("int32", zarr_format=3), 0,
                     ArrayConfig.from_dict({}), default_buffer_prototype())
    buffer = spec.prototype.buffer.from_bytes(sample((10, 10), "int32").tobytes())
    encoded = codec._encode_sync(buffer, spec)
    assert codec._decode_sync(encoded, spec).to_bytes() == buffer.to_bytes()
    import asyncio

    [decoded] = asyncio.run(codec.decode([(encoded, spec)]))
    assert decoded.to_bytes() == buffer.to_bytes()
    with pytest.raises(NotImplementedError):
        codec.compute_encoded_size(400, spec)
    assert not codec.is_fixed_size
    shuffle = ChonkleWasmCodec(name="shuffle").evolve_from_array_spec(spec)
    assert shuffle.configuration == {"elementsize": 4} and shuffle.is_fixed_size
    assert shuffle.compute_encoded_size(400, spec) == 400
    delta = ChonkleWasmCodec(name="delta", configuration={"dtype": "<i4", "astype": "<i2"})
    assert delta.compute_encoded_size(400, spec) == 200
    for bad, message in [({"name": "zstd"}, "is {\"name\": \"chonkle.wasm\""),
                         ({"name": "chonkle.wasm"}, 'needs a "configuration"'),
                         (wasm("zstd") | {"configuration": {"name": "zstd", "x": 1}},
                          "unknown keys ['x']"),
                         (wasm("zstd", nonsense=1), "nonsense"),
                         (wasm("no-such-codec"), "no-such-codec")]:
        with pytest.raises(chonkle.ChonkleError, match=message.replace("[", r"\[")):
            ChonkleWasmCodec.from_dict(bad)
    array = zarr.create_array(tmp_path / "a", shape=(10, 10), chunks=(5, 5), dtype="int32",
                              compressors=[codec])
    array[:] = sample((10, 10), "int32")
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(array))[:], array[:])


# ---- pipelines from stores zarr-python 3 wrote ---------------------------------------------

def _cases() -> dict[str, dict[str, Any]]:
    import numcodecs
    import zarr.codecs as zc
    import zarr.codecs.numcodecs as zn

    big = zc.BytesCodec(endian="big")
    return {
        "uint16 zstd": {"dtype": "uint16", "compressors": [zc.ZstdCodec(level=3)]},
        "int32 big transpose gzip": {"dtype": "int32", "serializer": big,
                                     "filters": [zc.TransposeCodec(order=(1, 0))],
                                     "compressors": [zc.GzipCodec(level=5)], "fill_value": -7},
        "float64 blosc nan": {"dtype": "float64", "fill_value": float("nan"), "compressors": [
            zc.BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")]},
        "float32 bitround zstd crc32c": {"dtype": "float32", "filters": [
            zn.BitRound(keepbits=8)], "compressors": [zc.ZstdCodec(), zc.Crc32cCodec()]},
        "int16 delta shuffle zlib": {"dtype": "int16", "filters": [zn.Delta(dtype="<i2")],
                                     "compressors": [zn.Shuffle(), zn.Zlib(level=4)]},
        "int32 delta astype": {"dtype": "int32", "filters": [zn.Delta(dtype="<i4",
                                                                      astype="<i2")],
                               "compressors": [zn.Zstd(level=2)]},
        "float32 fixedscaleoffset lz4": {"dtype": "float32", "filters": [zn.FixedScaleOffset(
            offset=400, scale=10, dtype="<f4", astype="<i4")], "compressors": [zn.LZ4()]},
        "bool packbits": {"dtype": "bool", "filters": [zn.PackBits()],
                          "compressors": [zc.ZstdCodec()], "fill_value": True},
        "complex128 uncompressed": {"dtype": "complex128", "compressors": None,
                                    "fill_value": 1 + 2j},
        "uint8 chonkle.wasm": {"dtype": "uint8", "compressors": [wasm("shuffle"),
                                                                 wasm("zstd", level=5)]},
        "int64 big, keys c.0.0": {"dtype": "int64", "serializer": big,
                                  "chunk_key_encoding": {"name": "default", "separator": "."}},
        "uint16 v2 keys": {"dtype": "uint16", "chunk_key_encoding": {"name": "v2",
                                                                     "separator": "."}},
        "uint16 sharded": {"dtype": "uint16", "shards": (64, 64), "fill_value": 9},
        "float32 sharded, index first, big, then zstd": {
            "dtype": "float32", "chunks": (64, 64), "fill_value": -1.5,
            "serializer": zc.ShardingCodec(chunk_shape=(16, 32), codecs=[big, zc.GzipCodec()],
                                           index_location="start"),
            "compressors": [zc.ZstdCodec()]},
        "v2 format, F order": {"zarr_format": 2, "dtype": ">u4", "order": "F",
                               "filters": [numcodecs.Shuffle(4)],
                               "compressors": numcodecs.Zstd(level=1), "fill_value": 5},
    }


CASE_NAMES = ["uint16 zstd", "int32 big transpose gzip", "float64 blosc nan",
              "float32 bitround zstd crc32c", "int16 delta shuffle zlib", "int32 delta astype",
              "float32 fixedscaleoffset lz4", "bool packbits", "complex128 uncompressed",
              "uint8 chonkle.wasm", "int64 big, keys c.0.0", "uint16 v2 keys",
              "uint16 sharded", "float32 sharded, index first, big, then zstd",
              "v2 format, F order"]


@zarr3
@pytest.mark.parametrize("case", CASE_NAMES)
def test_chonkle_reads_what_zarr3_wrote(tmp_path: Path, runtime: str, case: str) -> None:
    options = dict(_cases()[case])
    dtype = options.pop("dtype")
    chunks = options.pop("chunks", (32, 32))
    data = sample((70, 100), dtype)
    written = zarr.create_array(tmp_path / "a", shape=data.shape, chunks=chunks, dtype=dtype,
                                **options)
    written[:40, :] = data[:40, :]  # partial edge chunks, and chunks (or shards) not stored
    expected = zarr.open_array(tmp_path / "a", mode="r")[:]
    array = open_zarr_array(tmp_path / "a", runtime=runtime)
    assert array.grid != tuple(1 for _ in array.grid)
    decoded = array.read(workers=1)
    assert decoded.dtype == expected.dtype.newbyteorder("=") and decoded.flags.c_contiguous
    np.testing.assert_array_equal(decoded, expected)
    native = open_zarr_array(tmp_path / "a", prefer="native")
    np.testing.assert_array_equal(native.read(workers=1), expected)
    # Encoding: chonkle's chunk (or shard) in place of zarr-python's reads the same.
    key = array.chunk_key((0, 1))
    chunk = array.read_chunk(key)
    assert chunk.shape == array.chunk_shape
    array.chunk_path(key).write_bytes(array.pipeline.encode(chunk))
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "a", mode="r")[:], expected)


@zarr3
def test_wasm_codecs_are_used_where_chonkle_ships_them(tmp_path: Path) -> None:
    import zarr.codecs as zc
    import zarr.codecs.numcodecs as zn

    zarr.create_array(tmp_path / "a", shape=(8, 8), chunks=(8, 8), dtype="int16",
                      filters=[zn.Delta(dtype="<i2")], serializer=zc.BytesCodec(),
                      compressors=[zn.Shuffle(), zc.ZstdCodec(), zc.GzipCodec()])
    labels = ["codec 0 (numcodecs.delta)", "codec 1 (bytes)", "codec 2 (numcodecs.shuffle)",
              "codec 3 (zstd)", "codec 4 (gzip)"]

    def kinds(pipeline: Pipeline) -> list[str]:
        codecs = [getattr(c, "inner", c) for c in pipeline.codecs]
        return ["wasm" if isinstance(c, WasmCodec) else c.codec_id for c in codecs]

    pipeline = Pipeline.from_zarr(tmp_path / "a")
    assert pipeline.labels == labels
    assert kinds(pipeline) == ["wasm", "bytes", "wasm", "wasm", "gzip"]
    native = Pipeline.from_zarr(tmp_path / "a" / "zarr.json", prefer="native")
    assert kinds(native) == ["delta", "bytes", "shuffle", "zstd", "gzip"]


@zarr3
def test_cli_decodes_chunks_and_shards_of_zarr3_arrays(tmp_path: Path) -> None:
    data = sample((40, 50), "float32")
    zarr.create_array(tmp_path / "s" / "plain", shape=data.shape, chunks=(16, 32),
                      dtype=data.dtype, fill_value=-1)[:16, :] = data[:16, :]
    zarr.create_array(tmp_path / "s" / "sharded", shape=data.shape, chunks=(8, 16),
                      shards=(16, 32), dtype=data.dtype)[:] = data
    out = tmp_path / "out.npy"
    result = chonkle_cli("decode", tmp_path / "s" / "plain" / "c" / "0" / "1", "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("chunk c/0/1 of the Zarr v3 array ")
    expected = np.full((16, 32), -1, "float32")
    expected[:, :18] = data[:16, 32:]
    np.testing.assert_array_equal(np.load(out), expected)
    result = chonkle_cli("decode", tmp_path / "s" / "sharded" / "c" / "1" / "0", "-o", out)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(out), data[16:32, :32])
    missing = chonkle_cli("decode", tmp_path / "s" / "plain" / "c" / "2" / "0")
    assert missing.returncode == 0 and "holds the array's fill value (-1.0)" in missing.stderr
    wrong = chonkle_cli("decode", tmp_path / "s" / "plain" / "zarr.json.bak")
    assert wrong.returncode == 1
    assert "'zarr.json.bak' is not a chunk key of the array" in wrong.stderr
    assert "(its keys look like 'c/0/0')" in wrong.stderr


def chonkle_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chonkle.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


# ---- hand-written metadata (no zarr needed) ------------------------------------------------

VALID: dict[str, Any] = {
    "zarr_format": 3, "node_type": "array", "shape": [10, 12], "data_type": "uint16",
    "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 6]}},
    "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
    "fill_value": 0, "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                                {"name": "zstd", "configuration": {"level": 1}}],
}


def test_a_sharded_pipeline_from_metadata_round_trips_without_zarr() -> None:
    sharding = {"name": "sharding_indexed", "configuration": {
        "chunk_shape": [2, 3], "index_location": "end",
        "codecs": [{"name": "transpose", "configuration": {"order": [1, 0]}},
                   {"name": "bytes", "configuration": {"endian": "big"}},
                   {"name": "chonkle.wasm", "configuration": {"name": "zlib"}}],
        "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}]}}
    metadata = {**VALID, "data_type": "int32", "fill_value": -5, "codecs": [sharding]}
    array = open_zarr_array(metadata)
    shard = sample((4, 6), "int32")
    shard[2:, 3:] = -5
    encoded = array.pipeline.encode(shard)
    np.testing.assert_array_equal(array.pipeline.decode(encoded), shard)
    index = np.frombuffer(encoded[-4 * 16:], "<u8").reshape(4, 2).copy()
    index[3] = 2**64 - 1  # the last inner chunk: not stored, so the fill value
    np.testing.assert_array_equal(array.decode_chunk(encoded[:-64] + index.tobytes()), shard)
    restored = pickle.loads(pickle.dumps(array.pipeline))  # worker processes get it so
    np.testing.assert_array_equal(restored.decode(encoded), shard)
    assert array.chunk_key((1, 1)) == "c/1/1" and array.chunk_index("c/2/1") == (2, 1)
    with pytest.raises(chonkle.CodecError, match="past the shard's end"):
        index[0] = (len(encoded), 10)
        array.decode_chunk(encoded[:-64] + index.tobytes())
    with pytest.raises(chonkle.CodecError, match="smaller than its index"):
        array.decode_chunk(b"tiny")


@pytest.mark.parametrize(("change", "message"), [
    ({"node_type": "group"}, "a group, not an array"),
    ({"zarr_format": "3"}, '"zarr_format" must be 2 or 3'),
    ({"data_type": "string"}, "data_type 'string' is not supported"),
    ({"data_type": {"name": "datetime64"}}, "is not supported"),
    ({"chunk_grid": {"name": "rectilinear", "configuration": {}}}, "'rectilinear' is not"),
    ({"chunk_grid": "regular"}, '"chunk_grid chunk_shape" must be a list'),
    ({"chunk_grid": {"name": "regular", "configuration": []}}, '"configuration" must be'),
    ({"chunk_key_encoding": {"name": "default", "configuration": {"separator": "|"}}},
     "separator must be"),
    ({"chunk_key_encoding": {"name": "custom"}}, "chunk_key_encoding 'custom' is not"),
    ({"storage_transformers": [{"name": "x"}]}, "storage_transformers are not supported"),
    ({"fill_value": "NaN"}, "is not a uint16 value"),
    ({"codecs": []}, '"codecs" must be a non-empty list'),
    ({"codecs": [{"name": "zstd"}]}, "bytes -> bytes codec 'zstd' before an array -> bytes"),
    ({"codecs": [{"name": "transpose", "configuration": {"order": [0, 1]}}]},
     "no array -> bytes codec"),
    ({"codecs": [{"name": "bytes"}, {"name": "transpose", "configuration": {"order": [0, 1]}}]},
     "array codec 'transpose' after the array -> bytes codec"),
    ({"codecs": [{"name": "transpose", "configuration": {"order": [0, 0]}}, {"name": "bytes"}]},
     "transpose order must be a permutation"),
    ({"codecs": [{"name": "bytes", "configuration": {"endian": "middle"}}]},
     "endian must be 'little' or 'big'"),
    ({"codecs": [{"name": "bytes"}, {"name": "numcodecs.pickle"}]},
     "'pickle' is not allowed"),
    ({"codecs": [{"name": "vlen-utf8"}, {"name": "frobnicate"}, {"name": "numcodecs.nope"}]},
     "cannot build the codec(s) 'frobnicate', 'numcodecs.nope', 'vlen-utf8'"),
    ({"codecs": [{"name": "sharding_indexed", "configuration": {
        "chunk_shape": [3, 6], "codecs": [{"name": "bytes"}],
        "index_codecs": [{"name": "bytes"}]}}]}, "must divide the shard shape"),
    ({"codecs": [{"name": "sharding_indexed", "configuration": {
        "chunk_shape": [2, 3], "codecs": [{"name": "bytes"}],
        "index_codecs": [{"name": "bytes"}, {"name": "zstd"}]}}]}, "has no fixed size"),
    ({"codecs": [{"name": "sharding_indexed", "configuration": {
        "chunk_shape": [2, 3], "codecs": [{"name": "bytes"}, {"name": "mystery"}],
        "index_codecs": [{"name": "bytes"}]}}]}, "cannot build the codec(s) 'mystery'"),
    ({"codecs": [{"name": "bytes"}, {"name": "blosc", "configuration": {"shuffle": 3}}]},
     "blosc shuffle must be one of"),
    ({"codecs": [{"name": "bytes"}, {"name": "chonkle.wasm", "configuration": {
        "name": "zstd", "sha256": "xyz"}}]}, '"sha256" must be 64 hexadecimal digits'),
    ({"codecs": [7]}, "codecs[0] must be a name or a JSON object"),
])
def test_malformed_zarr_json_is_a_spec_error_naming_the_file(
        tmp_path: Path, change: dict, message: str) -> None:
    (tmp_path / "zarr.json").write_text(json.dumps({**VALID, **change}))
    with pytest.raises(SpecError) as caught:
        open_zarr_array(tmp_path)
    assert str(tmp_path / "zarr.json") in str(caught.value)
    assert message in str(caught.value)


def test_metadata_mappings_name_themselves() -> None:
    with pytest.raises(SpecError, match=r"^Zarr metadata: data_type 'string'"):
        Pipeline.from_zarr({**VALID, "data_type": "string"})
    with pytest.raises(SpecError, match="prefer must be 'wasm' or 'native'"):
        Pipeline.from_zarr(VALID, prefer="fast")
    with pytest.raises(SpecError, match="has no folder to read chunks from"):
        open_zarr_array(VALID).read_chunk("c/0/0")
    for key in ("c/0/00", "c/0", "0/0", "c/0/-1", "c/0/0/0", "c\\0\\0"):
        with pytest.raises(SpecError, match="is not a chunk key"):
            open_zarr_array(VALID).chunk_index(key)
    scalar = open_zarr_array({**VALID, "shape": [], "chunk_grid": {
        "name": "regular", "configuration": {"chunk_shape": []}}})
    assert scalar.chunk_key(()) == "c" and scalar.chunk_index("c") == ()
    with pytest.raises(SpecError, match="is not a chunk key"):
        scalar.chunk_index("x")


@pytest.mark.parametrize(("value", "dtype", "expected"), [
    ("NaN", "float32", np.nan), ("-Infinity", "float64", -np.inf),
    ("0x7fc00000", "float32", np.nan), ("0x3ff0000000000000", "float64", 1.0),
    ([1.5, "Infinity"], "complex128", complex(1.5, np.inf)), (True, "bool", True),
    (3.0, "int8", 3), (None, "uint16", 0),
])
def test_fill_values_are_read_as_zarr_writes_them(value: Any, dtype: str, expected: Any) -> None:
    array = open_zarr_array({**VALID, "data_type": dtype, "fill_value": value,
                             "codecs": [{"name": "bytes"}]})
    fill = array.fill_chunk()
    assert fill.shape == (4, 6) and fill.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(fill, np.full((4, 6), expected, dtype))


HOSTILE_BASES: dict[str, dict[str, Any]] = {
    "v3": {**VALID, "codecs": [
        {"name": "transpose", "configuration": {"order": [1, 0]}},
        {"name": "bytes", "configuration": {"endian": "little"}},
        {"name": "zstd", "configuration": {"level": 1}},
        {"name": "chonkle.wasm", "configuration": {"name": "shuffle",
                                                   "configuration": {"elementsize": 2}}}]},
    "v3 sharded": {**VALID, "codecs": [{"name": "sharding_indexed", "configuration": {
        "chunk_shape": [2, 3], "index_location": "end",
        "codecs": [{"name": "numcodecs.delta", "configuration": {"dtype": "<u2"}},
                   {"name": "bytes"},
                   {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5,
                                                       "shuffle": "shuffle"}}],
        "index_codecs": [{"name": "bytes"}]}}]},
    "v2": {"zarr_format": 2, "shape": [10, 10], "chunks": [5, 5], "dtype": "<u2",
           "compressor": {"id": "zstd", "level": 1}, "fill_value": 0, "order": "C",
           "filters": [{"id": "delta", "dtype": "<u2"},
                       {"id": "chonkle.wasm", "name": "shuffle",
                        "configuration": {"elementsize": 2}}]},
}
ODD_VALUES = [None, True, 0, -1, 1.5, 2**70, "", "x", "NaN", [], [1], [1, 2, 3], [-1, 2], {},
              {"name": 1}, {"name": "bytes"}, [[1]], ["a"], {"configuration": 1}]


def _places(value: Any, where: tuple = ()) -> list[tuple]:
    inside = (value.items() if isinstance(value, dict) else
              enumerate(value) if isinstance(value, list) else [])
    return [p for key, item in inside for p in [(*where, key), *_places(item, (*where, key))]]


@pytest.mark.parametrize("base", HOSTILE_BASES)
def test_hostile_metadata_only_ever_raises_chonkle_errors(base: str) -> None:
    """Every value of the metadata, in turn, replaced by values of every JSON type: the
    metadata is refused with a ChonkleError, or it builds a pipeline that works."""
    original = HOSTILE_BASES[base]
    for place in _places(original):
        for odd in ODD_VALUES:
            metadata = json.loads(json.dumps(original))
            target = metadata
            for key in place[:-1]:
                target = target[key]
            target[place[-1]] = odd
            try:
                array = open_zarr_array(metadata)
                array.pipeline.decode(array.pipeline.encode(array.fill_chunk()))
            except chonkle.ChonkleError:
                pass
            except Exception as exc:  # pragma: no cover (the failure's report)
                pytest.fail(f"{place} = {odd!r}: {type(exc).__name__}: {exc}")
