"""TIFF predictors 2 and 3, Wasm and native, against TIFF files tifffile writes.

tifffile (with imagecodecs) writes predictor 2 and 3 as libtiff does; every raw tile or strip of
such a file, in either byte order, must decode through a chonkle pipeline to exactly the array
tifffile reads, and our predictor must re-encode it to exactly the bytes in the file. tifffile
refuses a predictor without compression (so does the TIFF specification, in effect: libtiff
ignores it), so the files are compressed with zlib or LZW.
"""

from __future__ import annotations

import functools
import io
import itertools
import json
import zlib

import imagecodecs
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chonkle import CodecError, Pipeline, SpecError
from chonkle.codecs import TiffPredictor2, TiffPredictor3

PROPERTY = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

HEIGHT, WIDTH = 37, 29  # neither a multiple of the 16x16 tiles nor of the 8-row strips
TILE, ROWS_PER_STRIP = 16, 8
PREDICTOR_2_TYPES = ["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64"]
PREDICTOR_3_TYPES = ["float16", "float32", "float64"]
# (samples per pixel, planar configuration)
LAYOUTS = {"gray": (1, None), "contig": (3, "contig"), "separate": (3, "separate")}
BYTE_ORDERS = {"<": "little", ">": "big"}


def raster(dtype: str, samples: int, seed: int) -> np.ndarray:
    """Full-range integers (so differences wrap), or smooth floats with special values."""
    rng = np.random.default_rng(seed)
    shape = (HEIGHT, WIDTH, samples) if samples > 1 else (HEIGHT, WIDTH)
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        noise = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
        smooth = np.clip(np.cumsum(rng.integers(-3, 4, size=shape), axis=1) + 50, info.min,
                         info.max).astype(dtype)
        return np.where(rng.random(shape) < 0.5, noise, smooth)
    values = np.cumsum(rng.normal(0, 2, size=shape), axis=1) * 10.0 ** rng.integers(-3, 3)
    values = values.astype(dtype)
    flat = values.reshape(-1)
    flat[rng.integers(0, flat.size, 6)] = [np.nan, np.inf, -np.inf, -0.0, 1e-7, -np.nan]
    return values


@functools.cache
def tiff(dtype: str, byteorder: str, layout: str, tiled: bool, compression: str):
    """Write a TIFF; return (page facts, raw segments, the array tifffile reads back)."""
    samples, planar = LAYOUTS[layout]
    data = raster(dtype, samples, seed=len(dtype) * 7 + samples)
    if planar == "separate":
        data = np.moveaxis(data, -1, 0)  # tifffile takes separate planes first
    predictor = 3 if np.dtype(dtype).kind == "f" else 2
    buffer = io.BytesIO()
    placement = {"tile": (TILE, TILE)} if tiled else {"rowsperstrip": ROWS_PER_STRIP}
    tifffile.imwrite(buffer, data, byteorder=byteorder, photometric="minisblack",
                     planarconfig=planar, predictor=predictor, compression=compression,
                     **placement)
    raw = buffer.getvalue()
    with tifffile.TiffFile(io.BytesIO(raw)) as tif:
        page = tif.pages[0]
        assert tif.byteorder == byteorder and page.predictor == predictor
        assert page.is_tiled == tiled and page.samplesperpixel == samples
        segments = [raw[offset:offset + count]
                    for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True)]
        expected = tif.asarray()
    np.testing.assert_array_equal(expected, data)
    return segments, expected


@functools.cache
def _pipeline(runtime: str, spec_json: str) -> Pipeline:
    return Pipeline.load(json.loads(spec_json), runtime=runtime)


def predictor_step(dtype: str, byteorder: str, layout: str, tiled: bool, kind: str) -> dict:
    samples, planar = LAYOUTS[layout]
    name = "tiff_predictor_3" if np.dtype(dtype).kind == "f" else "tiff_predictor_2"
    return {"name": name, "type": kind, "configuration": {
        "bytes_per_sample": np.dtype(dtype).itemsize, "width": TILE if tiled else WIDTH,
        "samples_per_pixel": samples if planar == "contig" else 1,
        "endian": BYTE_ORDERS[byteorder]}}


def decompress(segment: bytes, compression: str) -> bytes:
    return zlib.decompress(segment) if compression == "zlib" else imagecodecs.lzw_decode(segment)


def mosaic(pieces: list[np.ndarray], tiled: bool, planes: int) -> np.ndarray:
    """Put decoded tiles or strips back together, one image per plane, edge tiles cropped."""
    per_plane = len(pieces) // planes
    images = []
    for plane in range(planes):
        mine = pieces[plane * per_plane:(plane + 1) * per_plane]
        if tiled:
            across = -(-WIDTH // TILE)
            rows = [np.concatenate(mine[r:r + across], axis=1) for r in range(0, per_plane, across)]
            images.append(np.concatenate(rows)[:HEIGHT, :WIDTH])
        else:
            images.append(np.concatenate(mine))
    return np.stack(images) if planes > 1 else images[0]


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("byteorder", list(BYTE_ORDERS), ids=["II", "MM"])
@pytest.mark.parametrize("dtype", PREDICTOR_2_TYPES + PREDICTOR_3_TYPES)
def test_decodes_every_segment_of_a_tiff_like_tifffile(runtime, dtype, byteorder,
                                                       layout) -> None:
    """Tiled and stripped, zlib and LZW, the Wasm predictor and the native one."""
    samples, planar = LAYOUTS[layout]
    for tiled, compression, kind in itertools.product([True, False], ["zlib", "lzw"],
                                                      ["wasm", "numcodecs"]):
        segments, expected = tiff(dtype, byteorder, layout, tiled, compression)
        predictor = predictor_step(dtype, byteorder, layout, tiled, kind)
        steps = [
            {"name": "bytes", "type": "numcodecs",
             "configuration": {"data_type": dtype, "endian": BYTE_ORDERS[byteorder]}},
            predictor,
            {"name": "zlib", "type": "numcodecs"} if compression == "zlib"
            else {"name": "lzw", "type": "wasm"},
        ]
        pipeline = _pipeline(runtime, json.dumps({"codecs": steps}))
        predict_only = _pipeline(runtime, json.dumps({"codecs": [predictor]}))
        width = TILE if tiled else WIDTH
        shape = (-1, width, samples) if planar == "contig" else (-1, width)
        pieces = []
        for segment in segments:
            decoded = pipeline.decode(segment)
            assert decoded.dtype == np.dtype(dtype)
            pieces.append(decoded.reshape(shape))
            # and back: our predictor gives exactly the bytes the file holds, uncompressed
            stored = decoded.astype(np.dtype(dtype).newbyteorder(byteorder)).tobytes()
            assert predict_only.encode(stored) == decompress(segment, compression), (
                tiled, compression, kind)
        image = mosaic(pieces, tiled, planes=3 if planar == "separate" else 1)
        assert image.shape == expected.shape
        assert image.tobytes() == np.ascontiguousarray(expected, dtype=dtype).tobytes(), (
            tiled, compression, kind)


# ---- the configuration's `endian`, native and Wasm alike --------------------------------------

def _wasm(runtime: str, name: str, **config: object):
    step = {"name": name, "type": "wasm", "configuration": config}
    return _pipeline(runtime, json.dumps({"codecs": [step]})).codecs[0]


@PROPERTY
@given(bps=st.sampled_from([1, 2, 4, 8]), width=st.integers(1, 20), rows=st.integers(0, 5),
       spp=st.integers(1, 4), endian=st.sampled_from(["little", "big"]),
       seed=st.integers(0, 2**16))
def test_predictor_2_differences_values_in_the_configured_byte_order(runtime, bps, width, rows,
                                                                     spp, endian, seed) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 2 ** (8 * bps), size=(rows, width * spp), dtype=f"u{bps}",
                          endpoint=False)
    stored = values.astype(f"{'<' if endian == 'little' else '>'}u{bps}")
    config = {"bytes_per_sample": bps, "width": width, "samples_per_pixel": spp,
              "endian": endian}
    # the reference: differences of the values, per sample of a pixel, wrapping
    expected = values.copy()
    expected[:, spp:] = values[:, spp:] - values[:, :-spp]
    expected_bytes = expected.astype(stored.dtype).tobytes()
    native, codec = TiffPredictor2(**config), _wasm(runtime, "tiff_predictor_2", **config)
    assert native.encode(stored.tobytes()).tobytes() == expected_bytes
    assert codec.encode(stored.tobytes()).tobytes() == expected_bytes
    assert native.decode(expected_bytes).tobytes() == stored.tobytes()
    assert codec.decode(expected_bytes).tobytes() == stored.tobytes()


@PROPERTY
@given(bps=st.sampled_from([2, 4, 8]), width=st.integers(1, 20), rows=st.integers(1, 5),
       spp=st.integers(1, 4), endian=st.sampled_from(["little", "big"]),
       seed=st.integers(0, 2**16))
def test_predictor_3_matches_imagecodecs_in_either_byte_order(runtime, bps, width, rows, spp,
                                                              endian, seed) -> None:
    rng = np.random.default_rng(seed)
    array = (np.cumsum(rng.normal(0, 1, size=(rows, width, spp)), axis=1)
             .astype(f"{'<' if endian == 'little' else '>'}f{bps}"))
    config = {"bytes_per_sample": bps, "width": width, "samples_per_pixel": spp,
              "endian": endian}
    reference = np.ascontiguousarray(imagecodecs.floatpred_encode(array, axis=-2)).tobytes()
    # the predicted bytes do not depend on the samples' byte order
    other = array.astype(array.dtype.newbyteorder())
    assert np.ascontiguousarray(imagecodecs.floatpred_encode(other, axis=-2)).tobytes() == reference
    native, codec = TiffPredictor3(**config), _wasm(runtime, "tiff_predictor_3", **config)
    assert native.encode(array.tobytes()).tobytes() == reference
    assert codec.encode(array.tobytes()).tobytes() == reference
    assert native.decode(reference).tobytes() == array.tobytes()
    assert codec.decode(reference).tobytes() == array.tobytes()
    decoded = imagecodecs.floatpred_decode(np.frombuffer(reference, array.dtype)
                                           .reshape(array.shape), axis=-2)
    assert np.ascontiguousarray(decoded).tobytes() == array.tobytes()


def test_native_predictors_take_arrays_in_their_own_byte_order() -> None:
    ints = np.arange(60, dtype="u2").reshape(6, 10) * 997
    for array in (ints, ints.astype(">u2")):
        encoded = TiffPredictor2().encode(array)
        assert encoded.dtype == array.dtype and encoded.shape == array.shape
        np.testing.assert_array_equal(encoded[:, 1:], np.full((6, 9), 997, "u2"))
        np.testing.assert_array_equal(TiffPredictor2().decode(encoded), ints)
    floats = np.linspace(-3, 7, 60).reshape(6, 10)
    encodings = set()
    for array in (floats.astype("<f4"), floats.astype(">f4")):
        encoded = TiffPredictor3().encode(array)
        assert encoded.dtype == array.dtype and encoded.shape == array.shape
        encodings.add(encoded.tobytes())
        np.testing.assert_array_equal(TiffPredictor3().decode(encoded), array)
    assert len(encodings) == 1  # the same predicted bytes for either byte order


@pytest.mark.parametrize("cls", [TiffPredictor2, TiffPredictor3])
@pytest.mark.parametrize(("config", "message"), [
    ({"bytes_per_sample": 3, "width": 4}, "bytes_per_sample must be"),
    ({"bytes_per_sample": True, "width": 4}, "bytes_per_sample must be"),
    ({"bytes_per_sample": 4, "width": 0}, "width must be an integer from 1"),
    ({"bytes_per_sample": 4, "width": 4, "samples_per_pixel": 0}, "samples_per_pixel must be"),
    ({"bytes_per_sample": 4, "width": 4, "endian": "middle"}, "endian must be 'little' or 'big'"),
])
def test_native_predictors_refuse_bad_configuration(cls, config: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        cls(**config)


@pytest.mark.parametrize(("name", "config", "key"), [
    ("tiff_predictor_2", {"bytes_per_sampel": 2, "width": 4}, "bytes_per_sampel"),
    ("tiff_predictor_3", {"bytes_per_sample": 4, "width": 4, "endian": "BIG"}, "endian"),
])
def test_native_predictor_steps_refuse_bad_configuration_at_load(name: str, config: dict,
                                                                 key: str) -> None:
    step = {"name": name, "type": "numcodecs", "configuration": config}
    with pytest.raises(SpecError, match=key) as info:
        Pipeline.load({"codecs": [step]})
    assert f"step 0 ({name})" in str(info.value)


def test_native_predictor_3_is_registered_with_numcodecs() -> None:
    import numcodecs

    codec = numcodecs.get_codec({"id": "tiff_predictor_3", "bytes_per_sample": 4, "width": 8,
                                 "endian": "big"})
    assert isinstance(codec, TiffPredictor3)
    assert numcodecs.get_codec(codec.get_config()).get_config() == codec.get_config()


def test_native_predictors_refuse_partial_rows() -> None:
    with pytest.raises(CodecError, match="do not form whole rows"):
        TiffPredictor3(bytes_per_sample=4, width=3).decode(bytes(16))
    with pytest.raises(CodecError, match="floating-point samples"):
        TiffPredictor3().encode(np.zeros(4, "i4"))
