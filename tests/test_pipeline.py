"""Pipelines mixing numcodecs and Wasm steps: equality across engines, roundtrips, API forms."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numcodecs
import numpy as np
import pytest
from conftest import IDENTITY, smooth_raster, wasm_step

import chonkle
from chonkle import Pipeline
from chonkle.codecs import TiffPredictor2
from chonkle.engine.wasm_codec import WasmCodec
from chonkle.sources import shipped_module_path

SHAPE = (256, 320)


def cog_pipeline(predictor_type: str = "wasm", **predictor_config: int) -> dict:
    """bytes -> tiff_predictor_2 -> zlib, as a COG tile is stored."""
    predictor = {"name": "tiff_predictor_2", "type": predictor_type,
                 "configuration": {"bytes_per_sample": 2, "width": SHAPE[1], **predictor_config}}
    if predictor_type == "wasm":
        predictor["uri"] = shipped_module_path("tiff_predictor_2").as_uri()
    return {"codecs": [
        {"name": "bytes", "type": "numcodecs",
         "configuration": {"endian": "little", "data_type": "uint16", "shape": list(SHAPE)}},
        predictor,
        {"name": "numcodecs.zlib", "type": "numcodecs", "configuration": {"level": 9}},
    ]}


def test_one_chunk_decodes_identically_natively_and_on_every_engine(runtime: str) -> None:
    array = smooth_raster(SHAPE)
    chunk = chonkle.encode(array, cog_pipeline("numcodecs"))
    native = chonkle.decode(chunk, cog_pipeline("numcodecs"))
    wasm = chonkle.decode(chunk, cog_pipeline("wasm"), runtime=runtime)
    assert native.dtype == wasm.dtype == np.uint16
    assert native.shape == wasm.shape == SHAPE
    np.testing.assert_array_equal(native, array)
    np.testing.assert_array_equal(wasm, native)
    # and the Wasm pipeline encodes to exactly the bytes the native one does
    assert chonkle.encode(array, cog_pipeline("wasm"), runtime=runtime) == chunk


def test_chunk_from_plain_numpy_and_zlib_decodes(runtime: str) -> None:
    """A chunk made without chonkle at all, the way a TIFF writer would make it."""
    array = smooth_raster(SHAPE)
    differenced = array.copy()
    differenced[:, 1:] = np.diff(array, axis=1)
    chunk = numcodecs.Zlib(6).encode(differenced.astype("<u2").tobytes())
    np.testing.assert_array_equal(chonkle.decode(chunk, cog_pipeline(), runtime=runtime), array)


@pytest.mark.parametrize("bytes_per_sample", [1, 2, 4, 8])
@pytest.mark.parametrize("samples_per_pixel", [1, 3])
@pytest.mark.parametrize("predictor_type", ["numcodecs", "wasm"])
def test_predictor_roundtrip_is_exact_and_matches_native(
    runtime: str, bytes_per_sample: int, samples_per_pixel: int, predictor_type: str
) -> None:
    dtype = f"uint{8 * bytes_per_sample}"
    rng = np.random.default_rng(bytes_per_sample)
    array = rng.integers(0, np.iinfo(dtype).max, size=(7, 11 * samples_per_pixel),
                         dtype=dtype, endpoint=True)
    config = {"bytes_per_sample": bytes_per_sample, "width": 11,
              "samples_per_pixel": samples_per_pixel}
    step = {"name": "tiff_predictor_2", "type": predictor_type, "configuration": config}
    pipeline = Pipeline.load({"codecs": [
        {"name": "bytes", "type": "numcodecs", "configuration": {"data_type": dtype,
                                                                  "shape": list(array.shape)}},
        step,
    ]}, runtime=runtime)
    encoded = pipeline.encode(array)
    reference = TiffPredictor2(**config).encode(array.astype(f"<{array.dtype.char}").tobytes())
    assert encoded == reference.tobytes()
    decoded = pipeline.decode(encoded)
    np.testing.assert_array_equal(decoded, array)
    assert decoded.flags.writeable


@pytest.mark.parametrize("data_type", ["bool", "int8", "int16", "int32", "int64", "uint8",
                                       "uint16", "uint32", "uint64", "float16", "float32",
                                       "float64"])
@pytest.mark.parametrize("endian", ["little", "big"])
def test_bytes_then_wasm_roundtrip_every_dtype(runtime: str, wasm_file, data_type: str,
                                               endian: str) -> None:
    array = (smooth_raster((9, 13), "float64") / 7).astype(data_type)
    pipeline = Pipeline.load({"codecs": [
        {"name": "bytes", "type": "numcodecs",
         "configuration": {"endian": endian, "data_type": data_type, "shape": [9, 13]}},
        wasm_step(wasm_file(IDENTITY)),
        {"name": "zstd", "type": "numcodecs", "configuration": {"level": 3}},
    ]}, runtime=runtime)
    decoded = pipeline.decode(pipeline.encode(array))
    assert decoded.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(decoded, array)


def test_wasm_step_given_an_array_returns_same_dtype_and_shape(runtime: str, wasm_file) -> None:
    """Predictor before bytes: the Wasm step sees an ndarray's C-order bytes."""
    array = smooth_raster((3, 40, 50), "int32")
    pipeline = Pipeline.load({"codecs": [
        {"name": "tiff_predictor_2", "type": "wasm",
         "configuration": {"bytes_per_sample": 4, "width": 50}},
        {"name": "bytes", "type": "numcodecs",
         "configuration": {"data_type": "int32", "shape": [3, 40, 50]}},
    ]}, runtime=runtime)
    encoded = pipeline.encode(array)
    assert encoded == TiffPredictor2(4, 50).encode(array).astype("<i4").tobytes()
    decoded = pipeline.decode(encoded)
    assert decoded.dtype == np.int32 and decoded.shape == (3, 40, 50)
    np.testing.assert_array_equal(decoded, array)
    step = pipeline.codecs[0]
    out = step.encode(array)
    assert out.dtype == array.dtype and out.shape == array.shape


def test_empty_chunk_roundtrips(runtime: str) -> None:
    pipeline = Pipeline.load({"codecs": [
        {"name": "bytes", "type": "numcodecs", "configuration": {"data_type": "uint16",
                                                                  "shape": [0, 4]}},
        {"name": "tiff_predictor_2", "type": "wasm",
         "configuration": {"bytes_per_sample": 2, "width": 4}},
    ]}, runtime=runtime)
    empty = np.zeros((0, 4), np.uint16)
    assert pipeline.encode(empty) == b""
    assert pipeline.decode(b"").shape == (0, 4)


def test_api_accepts_codec_lists_pipelines_paths_and_mappings(tmp_path: Path, runtime: str) -> None:
    array = smooth_raster(SHAPE)
    spec = cog_pipeline()
    path = tmp_path / "chunk.json"
    path.write_text(json.dumps(spec))
    codecs = chonkle.get_codecs(path, runtime=runtime)
    assert [type(c).__name__ for c in codecs] == ["Bytes", "WasmCodec", "Zlib"]
    chunk = chonkle.encode(array, codecs)
    for form in (codecs, Pipeline.load(spec, runtime=runtime), spec, path, str(path)):
        np.testing.assert_array_equal(chonkle.decode(chunk, form, runtime=runtime), array)


def test_the_original_api_as_its_readme_wrote_it(tmp_path: Path, runtime: str) -> None:
    """get_codecs(path or dict), then decode(chunk, codecs) and encode(arr, codecs); and the
    original demo's pipeline built by hand as a list of step dicts."""
    array = smooth_raster(SHAPE)
    steps = cog_pipeline()["codecs"]
    path = tmp_path / "0.json"
    path.write_text(json.dumps({"codecs": steps}))
    for codecs in (chonkle.get_codecs(path), chonkle.get_codecs({"codecs": steps}), steps):
        chunk = chonkle.encode(array, codecs, runtime=runtime)
        np.testing.assert_array_equal(chonkle.decode(chunk, codecs, runtime=runtime), array)


def test_every_form_is_accepted_everywhere(tmp_path: Path, runtime: str) -> None:
    array = smooth_raster(SHAPE)
    steps = cog_pipeline()["codecs"]
    (tmp_path / "mapping.json").write_text(json.dumps({"codecs": steps}))
    (tmp_path / "list.json").write_text(json.dumps(steps))
    codecs = chonkle.get_codecs(steps, runtime=runtime)
    mixed = [steps[0], codecs[1], numcodecs.Zlib(level=9)]
    forms = [steps, tuple(steps), {"codecs": steps}, codecs, mixed, tmp_path / "mapping.json",
             str(tmp_path / "list.json"), Pipeline.load(steps, runtime=runtime)]
    chunk = chonkle.encode(array, steps, runtime=runtime)
    for form in forms:
        assert chonkle.encode(array, form, runtime=runtime) == chunk
        np.testing.assert_array_equal(chonkle.decode(chunk, form, runtime=runtime), array)
        pipeline = Pipeline.load(form, runtime=runtime)
        assert pipeline.labels == ["step 0 (bytes)", "step 1 (tiff_predictor_2)",
                                   "step 2 (zlib)"]
        np.testing.assert_array_equal(pipeline.decode(chunk), array)
        assert Pipeline.load(pipeline) is pipeline


def test_mixed_lists_name_their_steps_in_errors() -> None:
    steps = [{"name": "bytes", "type": "numcodecs", "configuration": {"data_type": "uint16"}},
             numcodecs.Zlib(level=1)]
    with pytest.raises(chonkle.CodecError, match=r"^step 1 \(zlib\): decode failed"):
        chonkle.decode(b"garbage", steps)
    with pytest.raises(chonkle.SpecError, match=r"^step 1: a step must be a JSON object"):
        chonkle.decode(b"", [numcodecs.Zlib(), 42])


def test_equal_specs_are_built_once(monkeypatch, runtime: str) -> None:
    """decode(chunk, spec) per chunk neither re-validates, re-fetches nor re-compiles."""
    from chonkle import pipeline as pipeline_module

    pipeline_module.clear_memo()
    built = []
    original = pipeline_module._build_codec
    monkeypatch.setattr(pipeline_module, "_build_codec",
                        lambda *args: built.append(args[0].name) or original(*args))
    array = smooth_raster(SHAPE)
    chunk = chonkle.encode(array, cog_pipeline(), runtime=runtime)
    for _ in range(5):  # equal, not identical: a fresh copy each time, keys in another order
        spec = json.loads(json.dumps(cog_pipeline()))
        spec["codecs"] = [dict(reversed(list(step.items()))) for step in spec["codecs"]]
        np.testing.assert_array_equal(chonkle.decode(chunk, spec, runtime=runtime), array)
        np.testing.assert_array_equal(chonkle.decode(chunk, spec["codecs"], runtime=runtime),
                                      array)
    assert built == ["bytes", "tiff_predictor_2", "zlib"] * 2  # once as a mapping, once a list
    other = cog_pipeline()
    other["codecs"][2]["configuration"]["level"] = 9.0  # equal to 9 in Python, not in JSON
    chonkle.decode(chunk, other, runtime=runtime)
    assert len(built) == 9


def test_remembered_pipelines_follow_the_settings_and_the_current_directory(
        tmp_path: Path, monkeypatch) -> None:
    steps = cog_pipeline()["codecs"]
    steps[1]["uri"] = "file:pred.wasm"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "pred.wasm").write_bytes(shipped_module_path("tiff_predictor_2")
                                               .read_bytes())
    array = smooth_raster(SHAPE)
    monkeypatch.chdir(tmp_path / "a")
    chunk = chonkle.encode(array, steps)  # relative file: URIs resolve against the cwd
    np.testing.assert_array_equal(chonkle.decode(chunk, steps), array)
    monkeypatch.chdir(tmp_path / "b")
    with pytest.raises(chonkle.SourceError, match="does not exist"):
        chonkle.decode(chunk, steps)
    monkeypatch.chdir(tmp_path / "a")
    monkeypatch.setenv("CHONKLE_REQUIRE_DIGEST", "1")
    with pytest.raises(chonkle.SourceError, match='pins no "sha256"'):
        chonkle.decode(chunk, steps)


def test_remembered_pipelines_are_shared_safely_by_threads(runtime: str) -> None:
    arrays = [smooth_raster(SHAPE, seed=i) for i in range(16)]
    chunks = [chonkle.encode(a, cog_pipeline(), runtime=runtime) for a in arrays]

    def decode(i: int) -> np.ndarray:
        return chonkle.decode(chunks[i], json.loads(json.dumps(cog_pipeline()["codecs"])),
                              runtime=runtime)

    with ThreadPoolExecutor(4) as pool:
        for array, decoded in zip(arrays, pool.map(decode, range(16)), strict=True):
            np.testing.assert_array_equal(decoded, array)


def test_runtime_argument_rebinds_codec_lists() -> None:
    codecs = chonkle.get_codecs(cog_pipeline(), runtime="wasmtime")
    pipeline = chonkle.pipeline.as_pipeline(codecs, runtime="wasmtime")
    assert pipeline.runtime == "wasmtime"
    with pytest.raises(chonkle.RuntimeUnavailable, match="unknown Wasm runtime 'nope'"):
        chonkle.decode(b"", codecs, runtime="nope")


def test_chonkle_runtime_environment_variable_selects_the_engine(monkeypatch, runtime) -> None:
    monkeypatch.setenv("CHONKLE_RUNTIME", runtime)
    codecs = chonkle.get_codecs(cog_pipeline())
    assert codecs[1].runtime == runtime
    monkeypatch.setenv("CHONKLE_RUNTIME", "nope")
    with pytest.raises(chonkle.RuntimeUnavailable, match=r"installed: .*wasmtime"):
        chonkle.get_codecs(cog_pipeline())


def test_relative_file_uri_resolves_against_the_pipeline_folder(tmp_path: Path,
                                                                 monkeypatch) -> None:
    (tmp_path / "codecs").mkdir()
    (tmp_path / "codecs" / "pred.wasm").write_bytes(
        shipped_module_path("tiff_predictor_2").read_bytes())
    spec = cog_pipeline()
    for uri in ("file:codecs/pred.wasm", "file://./codecs/pred.wasm"):
        spec["codecs"][1]["uri"] = uri
        (tmp_path / "p.json").write_text(json.dumps(spec))
        monkeypatch.chdir("/")
        codecs = chonkle.get_codecs(tmp_path / "p.json")
        assert isinstance(codecs[1], WasmCodec)


def test_wasm_step_without_uri_uses_the_codec_shipped_in_chonkle() -> None:
    spec = cog_pipeline()
    del spec["codecs"][1]["uri"]
    array = smooth_raster(SHAPE)
    np.testing.assert_array_equal(chonkle.decode(chonkle.encode(array, spec), spec), array)


def test_native_pipeline_needs_no_engine(monkeypatch) -> None:
    monkeypatch.setenv("CHONKLE_RUNTIME", "no-such-engine")
    array = smooth_raster(SHAPE)
    spec = cog_pipeline("numcodecs")
    np.testing.assert_array_equal(chonkle.decode(chonkle.encode(array, spec), spec), array)


def test_modules_compile_once_per_engine(runtime: str) -> None:
    first = chonkle.get_codecs(cog_pipeline(), runtime=runtime)[1]
    second = chonkle.get_codecs(cog_pipeline(), runtime=runtime)[1]
    assert first._pool._module is second._pool._module


def pool_codec_config(runtime: str) -> bytes:
    return chonkle.get_codecs(cog_pipeline(), runtime=runtime)[1].config_json


def test_pipelines_sharing_a_module_reuse_this_threads_instance(runtime: str) -> None:
    """decode(chunk, spec) per chunk loads the pipeline each time, but instantiates once."""
    array = smooth_raster(SHAPE)
    chunk = chonkle.encode(array, cog_pipeline(), runtime=runtime)
    chonkle.decode(chunk, cog_pipeline(), runtime=runtime)
    pool = chonkle.get_codecs(cog_pipeline(), runtime=runtime)[1]._pool
    instances = dict(pool._local.instances)
    assert len(instances) == 1
    for _ in range(3):
        np.testing.assert_array_equal(chonkle.decode(chunk, cog_pipeline(), runtime=runtime),
                                      array)
    assert pool._local.instances == instances
    other = chonkle.get_codecs(cog_pipeline(samples_per_pixel=1), runtime=runtime)[1]
    assert other.config_json != pool_codec_config(runtime)  # its own configuration...
    assert other._pool is pool  # ...on the same instances


def test_many_threads_decode_correctly_with_one_pipeline(runtime: str) -> None:
    pipeline = Pipeline.load(cog_pipeline(), runtime=runtime)
    arrays = [smooth_raster(SHAPE, seed=i) for i in range(24)]
    chunks = [pipeline.encode(a) for a in arrays]

    def roundtrip(i: int) -> bool:
        for _ in range(5):
            if not np.array_equal(pipeline.decode(chunks[i]), arrays[i]):
                return False
            if pipeline.encode(arrays[i]) != chunks[i]:
                return False
        return True

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert all(pool.map(roundtrip, range(len(arrays))))


def test_numcodecs_finds_chonkle_codecs_by_name() -> None:
    codec = numcodecs.get_codec({"id": "tiff_predictor_2", "bytes_per_sample": 2, "width": 4})
    assert isinstance(codec, TiffPredictor2)
    bytes_codec = numcodecs.get_codec({"id": "bytes", "data_type": "uint16", "shape": [2]})
    assert numcodecs.get_codec(bytes_codec.get_config()).get_config() == bytes_codec.get_config()
