"""Every shipped Wasm codec against its trusted native reference, on every engine.

Decoders must agree with the reference on every input the reference accepts. Encoders must
agree byte for byte where the format has one encoding (predictors, shuffle, delta), and
otherwise (PackBits, LZW, zlib) produce streams the reference decodes to the same data.
"""

from __future__ import annotations

import functools
import json
import warnings
import zlib
from pathlib import Path

import imagecodecs
import numcodecs
import numpy as np
import pytest
import tifffile
import wasmtime
from conftest import smooth_raster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chonkle import CodecError, Pipeline, SpecError
from chonkle.codecs import TiffPredictor2, TiffPredictor3
from chonkle.errors import LimitExceeded

PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@functools.cache
def _codec(runtime: str, name: str, config_json: str):
    step = {"name": name, "type": "wasm", "configuration": json.loads(config_json)}
    return Pipeline.load({"codecs": [step]}, runtime=runtime).codecs[0]


def wasm(runtime: str, name: str, **config: object):
    """The shipped Wasm codec `name`, compiled once per engine and configuration."""
    return _codec(runtime, name, json.dumps(config, sort_keys=True))


def wasm_bytes(codec, direction: str, data: bytes) -> bytes:
    return getattr(codec, direction)(data).tobytes()


smooth_or_random = st.sampled_from(["smooth", "random", "constant"])


def sample_data(kind: str, n: int, dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "constant":
        return np.full(n, 7).astype(dtype)
    if np.dtype(dtype).kind == "f":
        base = rng.normal(0, 1000, n) if kind == "random" else np.cumsum(rng.normal(0, 1, n))
        return base.astype(dtype)
    info = np.iinfo(dtype)
    if kind == "random":
        return rng.integers(info.min, info.max, n, dtype=np.dtype(dtype).newbyteorder("="),
                            endpoint=True).astype(dtype)
    return np.clip(np.cumsum(rng.integers(-3, 4, n)) + 100, info.min, info.max).astype(dtype)


def decode_segments(path: Path, page, pipeline: Pipeline) -> list[np.ndarray]:
    """Decode each raw strip or tile of a TIFF page, read straight from the file."""
    with open(path, "rb") as file:
        segments = []
        for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
            file.seek(offset)
            segments.append(pipeline.decode(file.read(count)))
    return segments


# ---- tiff_predictor_2 -----------------------------------------------------------------------

@PROPERTY
@given(bps=st.sampled_from([1, 2, 4, 8]), width=st.integers(1, 40), rows=st.integers(0, 6),
       spp=st.integers(1, 4), endian=st.sampled_from(["little", "big"]), kind=smooth_or_random,
       seed=st.integers(0, 2**16))
def test_tiff_predictor_2_matches_native(runtime, bps, width, rows, spp, endian, kind,
                                         seed) -> None:
    order = "<" if endian == "little" else ">"
    data = sample_data(kind, rows * width * spp, f"{order}u{bps}", seed).tobytes()
    config = {"bytes_per_sample": bps, "width": width, "samples_per_pixel": spp,
              "endian": endian}
    codec, native = wasm(runtime, "tiff_predictor_2", **config), TiffPredictor2(**config)
    encoded = wasm_bytes(codec, "encode", data)
    assert encoded == native.encode(data).tobytes()
    assert wasm_bytes(codec, "decode", encoded) == data
    assert wasm_bytes(codec, "decode", data) == native.decode(data).tobytes()


# ---- tiff_predictor_3 -----------------------------------------------------------------------

@PROPERTY
@given(bps=st.sampled_from([2, 4, 8]), width=st.integers(1, 40), rows=st.integers(0, 6),
       spp=st.integers(1, 4), endian=st.sampled_from(["little", "big"]), kind=smooth_or_random,
       seed=st.integers(0, 2**16))
def test_tiff_predictor_3_matches_imagecodecs(runtime, bps, width, rows, spp, endian, kind,
                                              seed) -> None:
    order = "<" if endian == "little" else ">"
    array = sample_data(kind, rows * width * spp, f"{order}f{bps}", seed).reshape(rows, width, spp)
    config = {"bytes_per_sample": bps, "width": width, "samples_per_pixel": spp,
              "endian": endian}
    codec, native = wasm(runtime, "tiff_predictor_3", **config), TiffPredictor3(**config)
    encoded = wasm_bytes(codec, "encode", array.tobytes())
    assert encoded == native.encode(array.tobytes()).tobytes()
    if rows:
        reference = imagecodecs.floatpred_encode(array, axis=-2)
        assert encoded == np.ascontiguousarray(reference).tobytes()
        decoded = imagecodecs.floatpred_decode(np.frombuffer(encoded, array.dtype)
                                               .reshape(array.shape), axis=-2)
        assert np.ascontiguousarray(decoded).tobytes() == array.tobytes()
    assert wasm_bytes(codec, "decode", encoded) == array.tobytes()
    assert native.decode(encoded).tobytes() == array.tobytes()


def test_tiff_predictor_3_reads_a_tiff_written_by_tifffile(tmp_path: Path, runtime: str) -> None:
    bands = [smooth_raster((64, 48), "float64", seed=band) / (band + 7) for band in range(3)]
    data = np.stack(bands, axis=-1).astype("<f4")
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, data, predictor=3, compression="zlib", tile=(32, 32),
                     photometric="rgb", planarconfig="contig")
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert page.predictor == 3 and page.tilewidth == 32
        pipeline = Pipeline.load({"codecs": [
            {"name": "bytes", "type": "numcodecs",
             "configuration": {"data_type": "float32", "shape": [32, 32, 3]}},
            {"name": "tiff_predictor_3", "type": "wasm",
             "configuration": {"bytes_per_sample": 4, "width": 32, "samples_per_pixel": 3}},
            {"name": "zlib", "type": "numcodecs"},
        ]}, runtime=runtime)
        tiles = decode_segments(path, page, pipeline)
        expected = tif.asarray()
    mosaic = np.concatenate([np.concatenate(tiles[r * 2:r * 2 + 2], axis=1) for r in range(2)])
    mosaic = mosaic[:64, :48]  # edge tiles are padded to the full tile size
    np.testing.assert_array_equal(mosaic, expected)
    np.testing.assert_array_equal(mosaic, data)


# ---- shuffle --------------------------------------------------------------------------------
# numcodecs.Shuffle takes any elementsize <= 1 (0, negative, a boolean, 0.5, ...) as "no
# shuffle"; above 1 it must be an integer (a float fails in every call), and one past int64 fails
# for every input. chonkle refuses what its schema can (non-numbers, more than int64) at load and
# the rest (a float over 1, a partial element) in the call, as numcodecs does.

def numcodecs_result(function, *args):
    """numcodecs' bytes, or the exception it raised."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bytes(np.ascontiguousarray(function(*args)).reshape(-1).view(np.uint8))
    except Exception as exc:
        return exc


def wasm_result(codec, direction: str, data: bytes):
    try:
        return wasm_bytes(codec, direction, data)
    except CodecError as exc:
        assert type(exc) is CodecError  # refused cleanly
        return exc


elementsizes = st.one_of(
    st.integers(-20, 20), st.integers(-2**80, 2**80), st.booleans(),
    st.floats(-1e20, 1e20, allow_nan=False), st.sampled_from([0.5, 1.0, -0.0, 2.0, 2.5]),
    st.sampled_from([2**31, 2**32 + 3, 2**63 - 1, 2**63, 2**64]))


@settings(PROPERTY, max_examples=120)
@given(elementsize=elementsizes, count=st.integers(0, 60), extra=st.integers(0, 2),
       kind=smooth_or_random, seed=st.integers(0, 2**16))
def test_shuffle_matches_numcodecs_for_every_elementsize(runtime, elementsize, count, extra, kind,
                                                         seed) -> None:
    size = elementsize if isinstance(elementsize, int) and 1 < elementsize <= 16 else 4
    data = sample_data(kind, count * size + extra, "u1", seed).tobytes()
    native = numcodecs.Shuffle(elementsize)
    try:
        codec = wasm(runtime, "shuffle", elementsize=elementsize)
    except SpecError as exc:  # refused at load: numcodecs fails on every input too
        assert '"elementsize"' in str(exc) and "step 0 (shuffle)" in str(exc)
        for sample in (data, b"", bytes(4096)):
            assert isinstance(numcodecs_result(native.encode, sample), Exception)
        return
    for direction in ("encode", "decode"):
        expected = numcodecs_result(getattr(native, direction), data)
        got = wasm_result(codec, direction, data)
        if isinstance(expected, Exception):
            assert isinstance(got, CodecError), (direction, expected)
        else:
            assert got == expected, direction


@pytest.mark.parametrize("elementsize", [0, 1, -3, True, False, 0.5])
def test_shuffle_of_elementsize_at_most_one_is_a_copy(runtime: str, elementsize) -> None:
    data = bytes(range(7))
    codec = wasm(runtime, "shuffle", elementsize=elementsize)
    assert wasm_bytes(codec, "encode", data) == wasm_bytes(codec, "decode", data) == data
    assert bytes(numcodecs.Shuffle(elementsize).encode(data)) == data


def test_shuffle_rejects_partial_elements(runtime: str) -> None:
    with pytest.raises(CodecError, match="not a whole number of 4-byte elements"):
        wasm(runtime, "shuffle", elementsize=4).decode(b"12345")


# ---- delta ----------------------------------------------------------------------------------
# dtype and astype: every spelling the schema lists (each one numpy reads as a fixed-size bool,
# integer, float16/32/64 or complex64/128, in either byte order), or null. Where numpy's result
# is defined the bytes are numcodecs' own; a float cast to an integer type it does not fit (C
# leaves that undefined, and numpy's answer depends on the machine and on the position in the
# array) is refused, and so is what numcodecs refuses (a first item astype cannot hold).

DELTA_SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "wasm-src" / "delta" /
                           "config.schema.json").read_text())
DTYPE_SPELLINGS = [s for s in DELTA_SCHEMA["properties"]["dtype"]["enum"] if s is not None]


def test_delta_accepts_exactly_fixed_size_numeric_dtypes() -> None:
    assert DELTA_SCHEMA["properties"]["astype"]["enum"] == [*DTYPE_SPELLINGS, None]
    kinds = set()
    for spelling in DTYPE_SPELLINGS:
        dtype = np.dtype(spelling)
        assert dtype.kind in "biufc" and (dtype.itemsize <= 8 or dtype.kind == "c"), spelling
        kinds.add(dtype.newbyteorder("<").str)
    assert kinds == {"|b1", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8", "<f2",
                     "<f4", "<f8", "<c8", "<c16"}


def delta_values(dtype: np.dtype, n: int, seed: int) -> np.ndarray:
    """Items of `dtype`: full-range or smooth integers, floats with infinities, NaNs (with
    payloads, quiet and signalling), signed zeros and subnormals, or any bytes at all."""
    rng = np.random.default_rng(seed)
    style = rng.integers(0, 4)
    if style == 0 or n == 0:
        return np.frombuffer(rng.bytes(n * dtype.itemsize), dtype)
    native = dtype.newbyteorder("=")
    if dtype.kind == "b":
        return rng.integers(0, 2, n).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(native)
        if style == 1:
            return rng.integers(info.min, info.max, n, dtype=native, endpoint=True).astype(dtype)
        start = rng.integers(max(info.min, -1000), min(info.max, 1000) + 1)
        return np.clip(start + np.cumsum(rng.integers(-3, 4, n)), info.min, info.max).astype(dtype)
    scale = 10.0 ** rng.integers(0, 6)
    values = np.cumsum(rng.normal(0, 3, n)) if style == 1 else rng.normal(0, scale, n)
    if dtype.kind == "c":
        values = values + 1j * rng.normal(0, 100, n)
    with np.errstate(all="ignore"):
        values = values.astype(native)
    part = np.dtype(f"u{dtype.itemsize // (2 if dtype.kind == 'c' else 1)}")
    bits = values.view(part)
    specials = {2: [0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFE33, 0x8000, 0x0001],
                4: [0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFFC01234, 0x80000000, 1],
                8: [0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000000,
                    0x7FF0000000000001, 0xFFF8000000012345, 0x8000000000000000, 1]}
    picks = rng.integers(0, bits.size, rng.integers(0, max(2, bits.size // 3)))
    bits[picks] = rng.choice(np.array(specials[part.itemsize], dtype=part), picks.size)
    return values.astype(dtype)


def casts_defined(values: np.ndarray, to: np.dtype) -> bool:
    """Are all of numpy's casts of `values` to `to` defined (no float to an integer type it
    cannot hold)?"""
    if to.kind not in "iu" or values.dtype.kind not in "fc":
        return True
    with np.errstate(all="ignore"):  # signalling NaNs
        x = (values.real if values.dtype.kind == "c" else values).astype(np.float64)
    if not np.all(np.isfinite(x)):
        return False
    whole, bits = np.trunc(x), 8 * to.itemsize
    low, high = (-(2.0 ** (bits - 1)), 2.0 ** (bits - 1)) if to.kind == "i" else (0.0, 2.0 ** bits)
    return bool(np.all((whole >= low) & (whole < high)))


def check_delta(codec, native, direction: str, data: bytes, defined: bool) -> None:
    expected = numcodecs_result(getattr(native, direction), data)
    got = wasm_result(codec, direction, data)
    if isinstance(expected, Exception) or not defined:
        assert isinstance(got, CodecError), (direction, expected, got)
    else:
        assert got == expected, direction


dtype_spellings = st.one_of(st.sampled_from(DTYPE_SPELLINGS), st.none())


@settings(PROPERTY, max_examples=300)
@given(dtype=dtype_spellings, astype=st.one_of(dtype_spellings, st.just("missing")),
       count=st.integers(0, 40), seed=st.integers(0, 2**32))
def test_delta_matches_numcodecs_for_every_dtype(runtime, dtype, astype, count, seed) -> None:
    config = {"dtype": dtype} if astype == "missing" else {"dtype": dtype, "astype": astype}
    native = numcodecs.Delta(**config)
    codec = wasm(runtime, "delta", **config)
    d, a = native.dtype, native.astype
    # encode: enc[0] = arr[0], enc[1:] = np.diff(arr), cast to astype
    array = delta_values(d, count, seed)
    if count:  # numcodecs cannot encode an empty array (chonkle gives an empty one)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            native_items = array.astype(d.newbyteorder("="))
            stored = np.concatenate([native_items[:1], np.diff(native_items)])
        check_delta(codec, native, "encode", array.tobytes(), casts_defined(stored, a))
    else:
        assert wasm_bytes(codec, "encode", b"") == b""
    # decode: np.cumsum(enc, out=dec), summed in np.promote_types(astype, dtype)
    encoded = delta_values(a, count, seed + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sums = np.cumsum(encoded.astype(np.promote_types(a, d)))
    check_delta(codec, native, "decode", encoded.tobytes(), casts_defined(sums, d))


@pytest.mark.parametrize(("dtype", "astype"), [
    ("bool", None), ("|b1", "i1"), ("<f2", None), (">f2", "<f4"), ("<u8", ">i8"), (">i2", "<u1"),
    ("<c8", "<c16"), ("f4", "<f2"), ("<i4", "<f8"), ("u1", "bool"), (">c16", "<f2"),
])
def test_delta_known_cases_match_numcodecs(runtime: str, dtype: str, astype) -> None:
    """bool (np.diff is "not equal", the sum "or"), float16, byte orders, narrower and wider."""
    native = numcodecs.Delta(dtype, astype)
    codec = wasm(runtime, "delta", dtype=dtype, astype=astype)
    d, a = native.dtype, native.astype
    for seed in range(20):
        array = delta_values(d, 17, seed)
        items = array.astype(d.newbyteorder("="))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stored = np.concatenate([items[:1], np.diff(items)])
            encoded = delta_values(a, 17, seed)
            sums = np.cumsum(encoded.astype(np.promote_types(a, d)))
        check_delta(codec, native, "encode", array.tobytes(), casts_defined(stored, a))
        check_delta(codec, native, "decode", encoded.tobytes(), casts_defined(sums, d))


def test_delta_refuses_what_numcodecs_raises_on(runtime: str) -> None:
    codec = wasm(runtime, "delta", dtype="<i2", astype="<i1")
    with pytest.raises(CodecError, match=r"item 0: int16 300 does not fit int8 \(numpy raises"):
        codec.encode(np.array([300, 301], "<i2").tobytes())
    with pytest.raises(OverflowError):
        numcodecs.Delta("<i2", "<i1").encode(np.array([300, 301], "<i2"))
    assert wasm_bytes(codec, "encode", np.array([100, 301], "<i2").tobytes()) == bytes(
        numcodecs.Delta("<i2", "<i1").encode(np.array([100, 301], "<i2")).view("u1"))
    float_codec = wasm(runtime, "delta", dtype="<f4", astype="<u1")
    with pytest.raises(CodecError, match="item 1: the difference, float32 -3, does not fit "
                                         "uint8: numpy's cast of it is undefined"):
        float_codec.encode(np.array([1.0, -2.0], "<f4").tobytes())


@pytest.mark.parametrize(("spelling", "numcodecs_accepts"), [
    ("<M8[s]", True), ("m8[ms]", True), ("O", False), ("S4", True), ("<U2", True), ("V8", True),
    ("f16", True), ("longdouble", True), ("G", True), ("int", True), ("long", True), ("L", True),
    ("intp", True), ("float128", True), (">int16", False), ("c", True), ("i3", False), ("", False),
])
def test_delta_refuses_other_dtypes_at_load(spelling: str, numcodecs_accepts: bool) -> None:
    """Not numbers (object, strings, void, datetimes), or platform-dependent (long double, C
    long, intp): refused when the pipeline is loaded."""
    if numcodecs_accepts:
        numcodecs.Delta(spelling)
    else:
        with pytest.raises((TypeError, ValueError)):
            numcodecs.Delta(spelling)
    with pytest.raises(SpecError, match=r'step 0 \(delta\): configuration "dtype" must be one of'):
        wasm(None, "delta", dtype=spelling)


# ---- packbits and lzw -----------------------------------------------------------------------

run_heavy_bytes = st.lists(st.tuples(st.integers(0, 255), st.integers(1, 300)), max_size=40).map(
    lambda runs: b"".join(bytes([value]) * length for value, length in runs))
any_bytes = st.one_of(st.binary(max_size=3000), run_heavy_bytes)


@pytest.mark.parametrize("name", ["packbits", "lzw"])
@PROPERTY
@given(data=any_bytes)
def test_run_length_and_lzw_coders_interoperate_with_imagecodecs(runtime, name, data) -> None:
    codec = wasm(runtime, name)
    reference_encode = getattr(imagecodecs, f"{name}_encode")
    reference_decode = getattr(imagecodecs, f"{name}_decode")
    encoded = wasm_bytes(codec, "encode", data)
    assert reference_decode(encoded) == data
    assert wasm_bytes(codec, "decode", encoded) == data
    assert wasm_bytes(codec, "decode", reference_encode(data)) == data
    if name == "packbits":  # 2-byte repeats inside literal runs are merged: never larger
        assert len(encoded) <= len(reference_encode(data))


def test_lzw_crosses_table_resets(runtime: str) -> None:
    data = sample_data("random", 400_000, "u1", 3).tobytes() + bytes(200_000)
    codec = wasm(runtime, "lzw")
    assert imagecodecs.lzw_decode(wasm_bytes(codec, "encode", data)) == data
    assert wasm_bytes(codec, "decode", imagecodecs.lzw_encode(data)) == data


def lzw_end_of_information(stream: bytes) -> int | None:
    """Read a TIFF LZW stream's codes: where its end-of-information code (257) ends, in bytes,
    if it is the last code and only zero padding follows; else None."""
    bits, have, at, width, table = 0, 0, 0, 9, 258
    previous = None
    while True:
        while have < width and at < len(stream):
            bits, have, at = bits << 8 | stream[at], have + 8, at + 1
        if have < width:
            return None
        have -= width
        code = bits >> have & ((1 << width) - 1)
        if code == 257:
            padding = bits & ((1 << have) - 1) == 0 and not any(stream[at:])
            return at if padding else None
        if code == 256:
            width, table, previous = 9, 258, None
            continue
        if previous is not None and table < 4096:
            table += 1
            if table == (1 << width) - 1 and width < 12:
                width += 1
        previous = code


@PROPERTY
@given(data=any_bytes)
def test_lzw_streams_end_with_end_of_information_and_truncation_fails(runtime, data) -> None:
    codec = wasm(runtime, "lzw")
    for stream in (imagecodecs.lzw_encode(data), wasm_bytes(codec, "encode", data)):
        end = lzw_end_of_information(stream)
        assert end is not None
        for cut in sorted({1, end // 2, end - 1} - {0}):
            with pytest.raises(CodecError, match=r"truncated input: .* without its "
                                                 r"end-of-information code"):
                codec.decode(stream[:cut])


def test_lzw_reads_a_tiff_written_by_tifffile(tmp_path: Path, runtime: str) -> None:
    data = smooth_raster((96, 80))
    path = tmp_path / "lzw.tif"
    tifffile.imwrite(path, data, compression="lzw", predictor=2, rowsperstrip=32)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert page.compression == 5 and page.predictor == 2
        pipeline = Pipeline.load({"codecs": [
            {"name": "bytes", "type": "numcodecs",
             "configuration": {"data_type": "uint16", "shape": [32, 80]}},
            {"name": "tiff_predictor_2", "type": "wasm",
             "configuration": {"bytes_per_sample": 2, "width": 80}},
            {"name": "lzw", "type": "wasm"},
        ]}, runtime=runtime)
        strips = decode_segments(path, page, pipeline)
        raw = path.read_bytes()
        for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
            assert lzw_end_of_information(raw[offset:offset + count]) is not None
    np.testing.assert_array_equal(np.concatenate(strips), data)


def test_tifffile_reads_lzw_written_by_the_wasm_codec(tmp_path: Path, runtime: str) -> None:
    """Our encoder's output, placed in a TIFF, is read back by tifffile."""
    data = smooth_raster((64, 64))
    path = tmp_path / "ours.tif"
    codec = wasm(runtime, "lzw")
    tifffile.imwrite(path, data, compression="lzw", rowsperstrip=64)
    with tifffile.TiffFile(path, mode="r+b") as tif:
        page = tif.pages[0]
        offset, count = page.dataoffsets[0], page.databytecounts[0]
    ours = wasm_bytes(codec, "encode", data.tobytes())
    with open(path, "r+b") as file:  # append our strip and point the page at it
        file.seek(0, 2)
        new_offset = file.tell()
        file.write(ours)
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tif.pages[0].tags["StripOffsets"].overwrite([new_offset])
        tif.pages[0].tags["StripByteCounts"].overwrite([len(ours)])
    assert (offset, count) != (new_offset, len(ours))
    np.testing.assert_array_equal(tifffile.imread(path), data)


@functools.cache
def bomb(name: str) -> bytes:
    """A small stream decoding to far more than the limits the tests set."""
    if name == "packbits":
        return bytes([0x81, 0x00]) * 20_000  # 128 zero bytes per 2 input bytes
    return imagecodecs.lzw_encode(bytes(40 * 2**20))  # about 30 KiB



def fresh(runtime: str | None, name: str, **config: object):
    """A codec from a pipeline loaded now (under the limits set now)."""
    step = {"name": name, "type": "wasm", "configuration": config}
    return Pipeline.load({"codecs": [step]}, runtime=runtime).codecs[0]


@pytest.mark.parametrize("name", ["packbits", "lzw"])
def test_decompression_bombs_stop_at_the_output_limit(runtime: str, name: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    normal = wasm_bytes(wasm(runtime, name), "encode", b"fine data, fine data")
    tiny = wasm_bytes(wasm(runtime, name), "encode", b"tiny")
    monkeypatch.setenv("CHONKLE_MAX_OUTPUT", "64KiB")
    codec = fresh(runtime, name)
    with pytest.raises(LimitExceeded, match=rf"step 0 \({name}\): .*output (of \d+ bytes )?would "
                                            r"exceed the limit of 65536 bytes"):
        codec.decode(bomb(name))
    assert wasm_bytes(codec, "decode", normal) == b"fine data, fine data"  # the next call works
    monkeypatch.setenv("CHONKLE_MAX_OUTPUT", "16")
    codec = fresh(runtime, name)
    with pytest.raises(LimitExceeded):
        codec.decode(normal)  # 20 bytes
    with pytest.raises(LimitExceeded):
        codec.encode(bytes(100))
    assert wasm_bytes(codec, "decode", tiny) == b"tiny"


def test_lzw_growth_stops_at_the_limit(runtime: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Growing its output, the LZW decoder never allocates past the output limit: with room for
    3 times the limit in linear memory beyond what the module starts with, a 40 MiB bomb stops
    at the 2 MiB output limit (a decoder growing past the limit runs out of memory first)."""
    from chonkle.sources.shipped import shipped_module

    module = wasmtime.Module(wasmtime.Engine(), shipped_module("lzw"))
    memory = next(export.type for export in module.exports if export.name == "memory")
    limit = 2 * 2**20
    monkeypatch.setenv("CHONKLE_MAX_OUTPUT", str(limit))
    monkeypatch.setenv("CHONKLE_MAX_MEMORY", str(memory.limits.min * 65536 + 3 * limit))
    codec = fresh(runtime, "lzw")
    with pytest.raises(LimitExceeded, match=f"output would exceed the limit of {limit} bytes"):
        codec.decode(bomb("lzw"))
    data = sample_data("smooth", 2**20 + 10, "<u2", 1).tobytes()  # just over the limit
    with pytest.raises(LimitExceeded, match=f"output would exceed the limit of {limit} bytes"):
        codec.decode(imagecodecs.lzw_encode(data))
    assert wasm_bytes(codec, "decode", imagecodecs.lzw_encode(data[:limit])) == data[:limit]


@pytest.mark.parametrize(("name", "config"), [
    ("tiff_predictor_2", {"bytes_per_sample": 4, "width": 4}),
    ("tiff_predictor_3", {"bytes_per_sample": 4, "width": 4}),
    ("shuffle", {}),
    ("delta", {"dtype": "<i4"}),
])
def test_same_size_codecs_check_the_output_limit(runtime: str, name: str, config: dict,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHONKLE_MAX_OUTPUT", "64")
    codec = fresh(runtime, name, **config)
    assert len(wasm_bytes(codec, "decode", bytes(64))) == 64
    for direction in ("encode", "decode"):
        with pytest.raises(LimitExceeded, match="output of 128 bytes would exceed the limit of "
                                                "64 bytes"):
            getattr(codec, direction)(bytes(128))


# ---- every codec: the configuration is checked when the pipeline is loaded -----------------

VALID = {
    "tiff_predictor_2": {"bytes_per_sample": 2, "width": 8},
    "tiff_predictor_3": {"bytes_per_sample": 4, "width": 8},
    "shuffle": {"elementsize": 4},
    "delta": {"dtype": "<i4"},
    "packbits": {},
    "lzw": {},
}
MISTAKES = [  # (codec, configuration, the key the error names, what it says; | separates options)
    ("tiff_predictor_2", {"bytes_per_sampel": 2, "width": 8}, "bytes_per_sampel|bytes_per_sample",
     "unknown key|lacks the required key"),
    ("tiff_predictor_2", {"bytes_per_sample": 2, "width": 8, "samples_per_pixl": 3},
     "samples_per_pixl", "unknown key"),
    ("tiff_predictor_2", {"width": 8}, "bytes_per_sample", "lacks the required key"),
    ("tiff_predictor_2", {"bytes_per_sample": 2, "width": "8"}, "width", "must be an integer"),
    ("tiff_predictor_2", {"bytes_per_sample": 3, "width": 8}, "bytes_per_sample",
     "must be one of 1, 2, 4, 8"),
    ("tiff_predictor_2", {"bytes_per_sample": 2, "width": 8, "endian": "BIG"}, "endian",
     'must be one of "little", "big"'),
    ("tiff_predictor_3", {"bytes_per_sample": 4, "widht": 8}, "widht|width",
     "unknown key|lacks the required key"),
    ("tiff_predictor_3", {"bytes_per_sample": 4, "width": 8, "endain": "big"}, "endain",
     "unknown key"),
    ("tiff_predictor_3", {"bytes_per_sample": 4}, "width", "lacks the required key"),
    ("tiff_predictor_3", {"bytes_per_sample": 1, "width": 8}, "bytes_per_sample",
     "must be one of 2, 4, 8"),
    ("tiff_predictor_3", {"bytes_per_sample": 4, "width": 8, "samples_per_pixel": 2.0},
     "samples_per_pixel", "must be an integer"),
    ("shuffle", {"element_size": 4}, "element_size", "unknown key"),
    ("shuffle", {"elementsize": "4"}, "elementsize", "must be a number or a boolean"),
    ("shuffle", {"elementsize": 2**64}, "elementsize", "must be at most"),
    ("delta", {"dtype": "<i4", "as_type": "<i2"}, "as_type", "unknown key"),
    ("delta", {"astype": "<i2"}, "dtype", "lacks the required key"),
    ("delta", {"dtype": 4}, "dtype", "must be a string or null"),
    ("packbits", {"level": 1}, "level", "unknown key"),
    ("lzw", {"early_change": True}, "early_change", "unknown key"),
]


@pytest.mark.parametrize(("name", "config", "key", "message"), MISTAKES)
def test_configuration_mistakes_are_spec_errors_at_load(runtime: str, name: str, config: dict,
                                                         key: str, message: str) -> None:
    wasm(runtime, name, **VALID[name])  # the valid configuration loads
    with pytest.raises(SpecError) as info:
        wasm(runtime, name, **config)
    text = str(info.value)
    assert text.startswith(f"step 0 ({name}): configuration ")
    # a misspelled required key: named as unknown, or the required one as missing
    assert any(f'"{k}"' in text for k in key.split("|")), text
    assert any(m in text for m in message.split("|")), text


def test_every_codec_of_this_file_declares_a_closed_schema() -> None:
    for name in VALID:
        schema = json.loads((Path(__file__).resolve().parent.parent / "wasm-src" / name /
                             "config.schema.json").read_text())
        assert schema["type"] == "object" and schema["additionalProperties"] is False, name


# ---- zlib and zstd --------------------------------------------------------------------------

compressible = st.one_of(any_bytes, st.builds(
    lambda seed, n: sample_data("smooth", n, "<u2", seed).tobytes(),
    st.integers(0, 2**16), st.integers(0, 20000)))


@PROPERTY
@given(data=compressible, level=st.integers(0, 9))
def test_zlib_interoperates_with_numcodecs(runtime, data, level) -> None:
    codec, native = wasm(runtime, "zlib", level=level), numcodecs.Zlib(level)
    encoded = wasm_bytes(codec, "encode", data)
    assert bytes(native.decode(encoded)) == data
    assert zlib.decompress(encoded) == data
    assert wasm_bytes(codec, "decode", native.encode(data)) == data
    assert wasm_bytes(codec, "decode", encoded) == data


@pytest.mark.parametrize("level", [1, 6, 9])
def test_zlib_compresses_like_zlib(runtime: str, level: int) -> None:
    """Not just valid: within a few percent of zlib's own size on a raster."""
    data = smooth_raster((512, 512)).tobytes()
    ours = len(wasm_bytes(wasm(runtime, "zlib", level=level), "encode", data))
    assert ours <= 1.03 * len(numcodecs.Zlib(level).encode(data))


@PROPERTY
@given(data=compressible, level=st.sampled_from([-5, 1, 3, 9, 19]), checksum=st.booleans())
def test_zstd_decodes_what_numcodecs_encodes(runtime, data, level, checksum) -> None:
    encoded = numcodecs.Zstd(level=level, checksum=checksum).encode(data)
    assert wasm_bytes(wasm(runtime, "zstd"), "decode", encoded) == data


def test_zstd_decodes_concatenated_and_skippable_frames(runtime: str) -> None:
    first, second = b"first frame " * 100, bytes(range(256)) * 50
    skippable = (0x184D2A50).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"12345"
    stream = (numcodecs.Zstd(3).encode(first) + skippable + numcodecs.Zstd(9).encode(second))
    assert wasm_bytes(wasm(runtime, "zstd"), "decode", stream) == first + second


@pytest.mark.parametrize("name", ["zlib", "zstd"])
def test_truncated_and_corrupted_streams_fail_cleanly(runtime: str, name: str) -> None:
    data = smooth_raster((64, 64)).tobytes()
    native = numcodecs.Zlib(6) if name == "zlib" else numcodecs.Zstd(3, checksum=True)
    stream = native.encode(data)
    codec = wasm(runtime, name)
    for cut in (1, 5, len(stream) // 2, len(stream) - 1):
        with pytest.raises(CodecError, match=f"step 0 \\({name}\\): decode failed: "):
            codec.decode(stream[:cut])
    corrupted = bytearray(stream)
    corrupted[-2] ^= 0xFF  # inside the checksum
    with pytest.raises(CodecError, match=r"checksum|corrupt"):
        codec.decode(bytes(corrupted))
    assert wasm_bytes(codec, "decode", stream) == data  # and the codec still works


def test_decoders_refuse_outputs_beyond_their_bound(runtime: str) -> None:
    """A 20-byte zstd frame declaring 2 GiB is refused before anything is allocated."""
    header = (0xFD2FB528).to_bytes(4, "little") + bytes([0xE0]) + (2**31).to_bytes(8, "little")
    with pytest.raises(LimitExceeded, match="output of 2147483648 bytes would exceed the "
                                            "limit of 1073741824 bytes"):
        wasm(runtime, "zstd").decode(header + bytes([1, 0, 0]))


def test_a_decompression_bomb_fails_and_its_memory_is_released() -> None:
    """32 KiB of RLE blocks expanding past 1 GiB: a clean failure, and the instance that grew
    to hold it is dropped (linear memory never shrinks), so the next call starts small."""
    rle_block = ((128 * 1024) << 3 | 1 << 1).to_bytes(3, "little") + b"x"  # 128 KiB of "x"
    bomb = (0xFD2FB528).to_bytes(4, "little") + bytes([0x00, 0x58]) + rle_block * 8200
    codec = Pipeline.load({"codecs": [{"name": "zstd", "type": "wasm"}]}).codecs[0]
    with pytest.raises(LimitExceeded, match=r"CHONKLE_MAX_(OUTPUT|MEMORY)"):
        codec.decode(bomb)
    assert codec._pool._local.instances == {}
    assert wasm_bytes(codec, "decode", numcodecs.Zstd().encode(b"fine")) == b"fine"
    assert [i.memory_size for i in codec._pool._local.instances.values()] < [64 * 2**20]


# ---- every codec: hostile input -------------------------------------------------------------

CONFIGS = {
    "tiff_predictor_2": {"bytes_per_sample": 2, "width": 8},
    "tiff_predictor_3": {"bytes_per_sample": 4, "width": 8},
    "shuffle": {"elementsize": 4},
    "delta": {"dtype": "<i4"},
    "packbits": {},
    "lzw": {},
    "zlib": {},
    "zstd": {},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@PROPERTY
@given(data=st.binary(max_size=2000))
def test_random_bytes_fail_cleanly_or_decode(runtime, name, data) -> None:
    codec = wasm(runtime, name, **CONFIGS[name])
    try:
        codec.decode(data)
    except CodecError as exc:
        assert "step 0 (" + name + ")" in str(exc)
        assert type(exc) is CodecError  # a clean failure result, never a trap
    if "encode" in codec.interface.directions:
        assert wasm_bytes(codec, "decode", wasm_bytes(codec, "encode", bytes(64))) == bytes(64)


def test_a_crc32c_codec_exists_on_every_python() -> None:
    """Zarr v3's crc32c (in every sharded array's index): numcodecs' own where it has one,
    chonkle's where it has not (numcodecs 0.13, CPython 3.10)."""
    codec = numcodecs.get_codec({"id": "crc32c"})
    encoded = np.asarray(codec.encode(b"123456789")).tobytes()
    assert encoded == b"123456789" + (0xE3069283).to_bytes(4, "little")  # the check value
    assert np.asarray(codec.decode(encoded)).tobytes() == b"123456789"
    from chonkle.codecs import Crc32c

    ours = Crc32c()
    with pytest.raises(CodecError, match="CRC-32C checksum does not match"):
        ours.decode(encoded[:-1] + b"\0")
    with pytest.raises(CodecError, match="cannot hold"):
        ours.decode(b"ab")
    assert np.asarray(ours.decode(encoded)).tobytes() == b"123456789"
