"""Every bad input of the core issue ends in a ChonkleError subclass naming the step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import IDENTITY, WAT_PRELUDE, wasm_step

import chonkle
from chonkle import (
    ChonkleError,
    CodecError,
    Pipeline,
    SourceError,
    SpecError,
    WasmAbiError,
    WasmTrap,
)

BYTES_STEP = {"name": "bytes", "type": "numcodecs",
              "configuration": {"data_type": "uint16", "shape": [4, 4]}}
CHUNK = np.arange(16, dtype="<u2").tobytes()


def pipeline_with(step: dict, runtime: str | None = None) -> Pipeline:
    return Pipeline.load({"codecs": [BYTES_STEP, step]}, runtime=runtime)


# ---- pipeline description -----------------------------------------------------------------

@pytest.mark.parametrize(("document", "message"), [
    ({}, 'needs a "codecs" key'),
    ({"codec": []}, 'needs a "codecs" key'),
    ({"codecs": {}}, '"codecs" must be a list'),
    ({"codecs": []}, '"codecs" is empty'),
    ([], "the list of steps is empty"),
    (42, "must be a path to a JSON file, a mapping with \"codecs\" or a list of steps, not int"),
])
def test_malformed_pipelines(document: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        chonkle.get_codecs(document)  # type: ignore[arg-type]


@pytest.mark.parametrize(("step", "label", "message"), [
    ({"type": "numcodecs"}, "step 1", 'missing "name"'),
    ({"name": "", "type": "numcodecs"}, "step 1", 'missing "name"'),
    ({"name": "zlib"}, "step 1 (zlib)", 'missing "type"'),
    ({"name": "zlib", "type": "python"}, "step 1 (zlib)", "unknown \"type\" 'python'"),
    ({"name": "nocodec", "type": "numcodecs"}, "step 1 (nocodec)",
     "unknown numcodecs codec 'nocodec'"),
    ({"name": "numcodecs.nocodec", "type": "numcodecs"}, "step 1 (nocodec)",
     "unknown numcodecs codec 'nocodec'"),
    ({"name": "zlib", "type": "numcodecs", "configuration": {"lvl": 1}}, "step 1 (zlib)",
     "invalid configuration"),
    ({"name": "zlib", "type": "numcodecs", "configuration": [1]}, "step 1 (zlib)",
     '"configuration" must be a JSON object'),
    ({"name": "zlib", "type": "numcodecs", "uri": "file:///x.wasm"}, "step 1 (zlib)",
     "belong to wasm steps only"),
    ({"name": "zlib", "type": "numcodecs", "confguration": {}}, "step 1 (zlib)",
     r"unknown keys \['confguration'\]"),
    ({"name": "w", "type": "wasm", "uri": "file:///x.wasm", "sha256": "abc"}, "step 1 (w)",
     '"sha256" must be 64 hexadecimal digits'),
    ({"name": "bytes", "type": "numcodecs", "configuration": {"data_type": "uint17"}},
     "step 1 (bytes)", "unknown data_type 'uint17'"),
])
def test_bad_steps_name_the_step(step: dict, label: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        chonkle.get_codecs({"codecs": [BYTES_STEP, step]})
    assert str(info.value).startswith(f"{label}: ")


def test_pipeline_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        chonkle.get_codecs(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(SpecError, match="the list of steps is empty"):
        chonkle.get_codecs(tmp_path / "list.json")
    (tmp_path / "string.json").write_text('"zlib"')
    with pytest.raises(SpecError, match='must be a JSON object with "codecs" or a list of '
                                        "steps, not a string"):
        chonkle.get_codecs(tmp_path / "string.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        chonkle.get_codecs(tmp_path / "bad.json")
    (tmp_path / "huge.json").write_text('{"codecs": [' + "9" * 5000 + "]}")
    with pytest.raises(SpecError, match="holds a value no pipeline has"):
        chonkle.get_codecs(tmp_path / "huge.json")


# ---- module sources -------------------------------------------------------------------------

def test_file_uri_that_does_not_exist(tmp_path: Path) -> None:
    uri = (tmp_path / "nope.wasm").as_uri()
    with pytest.raises(SourceError, match="does not exist") as info:
        pipeline_with(wasm_step(uri, "ghost"))
    assert str(info.value).startswith(f"step 1 (ghost): '{uri}'")


def test_relative_file_uri_that_does_not_exist(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps({"codecs": [wasm_step("file:x/y.wasm", "rel")]}))
    with pytest.raises(SourceError, match=r"step 0 \(rel\).*x/y.wasm.*does not exist"):
        chonkle.get_codecs(tmp_path / "p.json")


@pytest.mark.parametrize(("uri", "message"), [
    ("http://example.org/c.wasm", "plain http:// is refused"),
    ("ftp://example.org/c.wasm", "unsupported URI scheme 'ftp'"),
    ("c.wasm", r"unsupported URI scheme '\(none\)' \(supported: file://, https://, oci://\)"),
])
def test_unsupported_uris(uri: str, message: str) -> None:
    with pytest.raises(SourceError, match=message) as info:
        pipeline_with(wasm_step(uri, "remote"))
    assert "step 1 (remote)" in str(info.value)


def test_unknown_shipped_codec_lists_the_shipped_ones() -> None:
    with pytest.raises(SourceError, match=r"ships no Wasm codec named 'nope' \(shipped: .*"
                                          r"tiff_predictor_2"):
        pipeline_with({"name": "nope", "type": "wasm"})


def test_pinned_digest_mismatch_is_refused(wasm_file) -> None:
    with pytest.raises(SourceError, match="refusing to run it") as info:
        pipeline_with({**wasm_step(wasm_file(IDENTITY), "pinned"), "sha256": "0" * 64})
    assert "step 1 (pinned)" in str(info.value)


def test_not_a_wasm_module(tmp_path: Path, runtime: str) -> None:
    path = tmp_path / "junk.wasm"
    path.write_bytes(b"\0asm junk that is not a module")
    with pytest.raises(CodecError, match="not a valid Wasm module") as info:
        pipeline_with(wasm_step(path.as_uri(), "junk"), runtime)
    assert "step 1 (junk)" in str(info.value)


# ---- the codec contract --------------------------------------------------------------------

CONTRACT_VIOLATIONS = {
    "missing alloc": (
        WAT_PRELUDE.replace('(export "alloc")', ""), IDENTITY,
        'does not export "alloc" \\(i32\\) -> \\(i32\\)'),
    "missing memory": (
        WAT_PRELUDE.replace('(export "memory")', ""), IDENTITY,
        'does not export its linear memory as "memory"'),
    "wrong alloc signature": (
        WAT_PRELUDE.replace('(export "alloc")', "")
        + '(func (export "alloc") (param i64) (result i32) (i32.const 0))',
        IDENTITY, 'export "alloc" has signature \\(i64\\) -> \\(i32\\)'),
    "wrong decode signature": (
        WAT_PRELUDE,
        '(func (export "decode") (param i32 i32 i32 i32) (result i32) (i32.const 0))',
        'export "decode" has signature \\(i32, i32, i32, i32\\) -> \\(i32\\), the contract '
        'requires \\(i32, i32, i32, i32\\) -> \\(i64\\)'),
    "no codec function": (WAT_PRELUDE, "", 'exports neither "encode" nor "decode"'),
    "foreign import": (
        WAT_PRELUDE, IDENTITY, "imports env.log; a codec may import only wasi_snapshot_preview1"),
}


@pytest.mark.parametrize("case", sorted(CONTRACT_VIOLATIONS))
def test_module_breaking_the_contract(case: str, runtime: str, wasm_file) -> None:
    prelude, body, message = CONTRACT_VIOLATIONS[case]
    imports = '(import "env" "log" (func (param i32)))' if case == "foreign import" else ""
    uri = wasm_file(body, prelude=prelude, imports=imports)
    with pytest.raises(WasmAbiError, match=message) as info:
        pipeline_with(wasm_step(uri, "hostile"), runtime)
    assert str(info.value).startswith("step 1 (hostile): ")


def test_missing_direction(runtime: str, wasm_file) -> None:
    decode_only = IDENTITY.replace('(export "encode" (func $copy))', "")
    pipeline = pipeline_with(wasm_step(wasm_file(decode_only), "oneway"), runtime)
    assert pipeline.decode(CHUNK).shape == (4, 4)
    with pytest.raises(WasmAbiError, match='does not export "encode"') as info:
        pipeline.encode(np.zeros((4, 4), np.uint16))
    assert str(info.value).startswith("step 1 (oneway): ")


FAILING = """
  (func (export "decode") (param i32 i32 i32 i32) (result i64) (i64.const 0))
"""
FAILING_WITH_MESSAGE = FAILING + """
  (data (i32.const 64) "input is truncated")
  (func (export "last_error") (result i64) (i64.const 0x0000004000000012))
"""


@pytest.mark.parametrize(("body", "message"), [
    (FAILING, "decode failed$"),
    (FAILING_WITH_MESSAGE, "decode failed: input is truncated$"),
])
def test_codec_reporting_failure(runtime: str, wasm_file, body: str, message: str) -> None:
    pipeline = pipeline_with(wasm_step(wasm_file(body), "failing"), runtime)
    for _ in range(3):  # a clean failure keeps the instance usable
        with pytest.raises(CodecError, match=message) as info:
            pipeline.decode(CHUNK)
        assert type(info.value) is CodecError
        assert str(info.value).startswith("step 1 (failing): ")


def returning(packed: str) -> str:
    return f'(func (export "decode") (param i32 i32 i32 i32) (result i64) (i64.const {packed}))'


@pytest.mark.parametrize("packed", [
    "0x0010000000000010",  # pointer 1 MiB, memory is 64 KiB
    "0x0000FFF000001000",  # starts inside, ends outside
    "0xFFFFFFFFFFFFFFFF",  # everything set
])
def test_output_outside_linear_memory(runtime: str, wasm_file, packed: str) -> None:
    pipeline = pipeline_with(wasm_step(wasm_file(returning(packed)), "wild"), runtime)
    with pytest.raises(WasmAbiError, match="outside linear memory") as info:
        pipeline.decode(CHUNK)
    assert str(info.value).startswith("step 1 (wild): ")


TRAPS = {  # the trapping instruction, and the reason the error message must give
    "unreachable": ("unreachable", "unreachable"),
    "out-of-bounds load": ("(i64.load (i32.const -8))", "out of bounds memory access"),
    "division by zero": ("(i64.extend_i32_u (i32.div_u (i32.const 1) (local.get 1)))",
                         "integer divide by zero"),
}


@pytest.mark.parametrize("trap", sorted(TRAPS))
def test_trap_discards_the_instance_and_the_next_call_works(runtime: str, wasm_file,
                                                            trap: str) -> None:
    # Traps when the input is empty; otherwise behaves as the identity codec.
    instruction, reason = TRAPS[trap]
    body = IDENTITY.replace(
        "(local $out i32)",
        f"(local $out i32) (if (i32.eqz (local.get $len)) (then (drop {instruction})))",
    )
    pipeline = Pipeline.load({"codecs": [wasm_step(wasm_file(body), "trappy")]}, runtime=runtime)
    with pytest.raises(WasmTrap, match=f"Wasm trap: .*{reason}") as info:
        pipeline.decode(b"")
    assert str(info.value).startswith("step 0 (trappy): ")
    assert pipeline.decode(b"abc").tobytes() == b"abc"
    with pytest.raises(WasmTrap):
        pipeline.decode(b"")
    assert pipeline.decode(b"xyz").tobytes() == b"xyz"


def test_decoded_size_not_fitting_the_bytes_step(runtime: str, wasm_file) -> None:
    pipeline = pipeline_with(wasm_step(wasm_file(IDENTITY), "identity"), runtime)
    with pytest.raises(CodecError, match=r"decoded data is 30 bytes, but uint16 with shape "
                                         r"\[4, 4\] needs 32 bytes") as info:
        pipeline.decode(CHUNK[:30])
    assert str(info.value).startswith("step 0 (bytes): ")


def test_encode_with_wrong_array(runtime: str) -> None:
    pipeline = pipeline_with({"name": "tiff_predictor_2", "type": "wasm",
                              "configuration": {"bytes_per_sample": 2, "width": 4}}, runtime)
    with pytest.raises(CodecError, match="dtype float64, but data_type is uint16") as info:
        pipeline.encode(np.zeros((4, 4)))
    assert str(info.value).startswith("step 0 (bytes): ")
    with pytest.raises(CodecError, match=r"shape \[2, 8\], but shape is \[4, 4\]"):
        pipeline.encode(np.zeros((2, 8), np.uint16))


@pytest.mark.parametrize(("config", "message"), [
    ({"width": 4}, 'configuration lacks the required key "bytes_per_sample"'),
    ({"bytes_per_sampel": 2, "width": 4},
     'configuration has unknown key "bytes_per_sampel" (known keys: bytes_per_sample, endian, '
     "samples_per_pixel, width)"),
    ({"bytes_per_sample": 3, "width": 4},
     'configuration "bytes_per_sample" must be one of 1, 2, 4, 8, not 3'),
    ({"bytes_per_sample": 2, "width": "4"},
     'configuration "width" must be an integer, not the string "4"'),
    ({"bytes_per_sample": 2, "width": 4, "endian": "middle"},
     'configuration "endian" must be one of "little", "big", not "middle"'),
])
def test_wasm_predictor_configuration_is_checked_on_load(runtime: str, config: dict,
                                                         message: str) -> None:
    """A shipped codec declares its configuration: mistakes are found before any chunk."""
    with pytest.raises(SpecError) as info:
        pipeline_with({"name": "tiff_predictor_2", "type": "wasm", "configuration": config},
                      runtime)
    assert str(info.value) == f"step 1 (tiff_predictor_2): {message}"


def test_wasm_predictor_refuses_a_chunk_of_partial_rows(runtime: str) -> None:
    pipeline = pipeline_with({"name": "tiff_predictor_2", "type": "wasm",
                              "configuration": {"bytes_per_sample": 2, "width": 3}}, runtime)
    with pytest.raises(CodecError, match="16 samples do not form whole rows of 3 samples"
                       ) as info:
        pipeline.decode(CHUNK)
    assert str(info.value).startswith("step 1 (tiff_predictor_2): decode failed: ")


def test_native_codec_failure_is_wrapped() -> None:
    pipeline = Pipeline.load({"codecs": [BYTES_STEP, {"name": "zlib", "type": "numcodecs"}]})
    with pytest.raises(CodecError, match=r"decode failed: .*Error") as info:
        pipeline.decode(b"definitely not zlib")
    assert str(info.value).startswith("step 1 (zlib): ")


def test_every_error_is_a_chonkle_error() -> None:
    for error in (SpecError, SourceError, CodecError, WasmAbiError, WasmTrap,
                  chonkle.RuntimeUnavailable):
        assert issubclass(error, ChonkleError)
