"""The chonkle command, run as users run it: a subprocess with real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import smooth_raster

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "cog_tile.bin"


def chonkle(*args: object, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chonkle.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_decode_prints_shape_dtype_and_corner(runtime: str) -> None:
    result = chonkle("decode", EXAMPLE, "--runtime", runtime)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "shape [256, 256], dtype uint16"
    assert lines[1] == "top-left corner:"
    assert len(lines) == 8


def test_decode_to_npy_matches_the_example_source(tmp_path: Path, runtime: str) -> None:
    sys.path.insert(0, str(REPO / "examples"))
    from make_example import example_tile

    out = tmp_path / "tile.npy"
    result = chonkle("decode", EXAMPLE, "-o", out, "--runtime", runtime)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(out), example_tile())


def test_encode_then_decode_roundtrips(tmp_path: Path, runtime: str) -> None:
    array = smooth_raster((256, 256))
    np.save(tmp_path / "in.npy", array)
    pipeline = tmp_path / "pipeline.json"
    spec = json.loads((REPO / "examples" / "cog_tile.bin.json").read_text())
    spec["codecs"][1]["uri"] = (REPO / "chonkle" / "wasm" / "tiff_predictor_2.wasm").as_uri()
    pipeline.write_text(json.dumps(spec))
    result = chonkle("encode", tmp_path / "in.npy", "-o", tmp_path / "chunk",
                     "--pipeline", pipeline, "--runtime", runtime)
    assert result.returncode == 0, result.stderr
    result = chonkle("decode", tmp_path / "chunk", "--pipeline", pipeline, "-o",
                     tmp_path / "out.npy")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), array)


def test_runtimes_lists_every_engine() -> None:
    result = chonkle("runtimes")
    assert result.returncode == 0
    names = [line.split()[1] if line.startswith("*") else line.split()[0]
             for line in result.stdout.splitlines()[:-1]]
    assert names == ["wasmer", "wasmtime"]
    wasmer = next(line for line in result.stdout.splitlines() if "wasmer" in line)
    if sys.version_info < (3, 11):
        assert wasmer.split()[1:] == ["1.1.0", "available"]
    else:
        assert "unavailable: wasmer cannot load on CPython 3." in wasmer


@pytest.mark.parametrize(("args", "message"), [
    (["decode", "missing.bin"], "pipeline file missing.bin.json does not exist"),
    (["decode", "examples/cog_tile.bin", "--runtime", "v8"], "unknown Wasm runtime 'v8'"),
    (["decode", "examples/cog_tile.bin.json", "--pipeline", "examples/cog_tile.bin.json"],
     "step 2 (zlib): decode failed"),
    (["encode", "missing.npy", "-o", "x", "--pipeline", "examples/cog_tile.bin.json"],
     "missing.npy: no such file"),
])
def test_errors_are_one_line_without_traceback(args: list[str], message: str) -> None:
    result = chonkle(*args)
    assert result.returncode == 1
    assert result.stderr.startswith("chonkle: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_failed_encode_leaves_no_partial_file(tmp_path: Path) -> None:
    np.save(tmp_path / "in.npy", np.zeros((3, 3), np.float64))  # wrong dtype for the pipeline
    out = tmp_path / "chunk"
    result = chonkle("encode", tmp_path / "in.npy", "-o", out, "--pipeline", EXAMPLE.with_name(
        "cog_tile.bin.json"))
    assert result.returncode == 1 and "step 0 (bytes)" in result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "in.npy"]


def test_help() -> None:
    result = chonkle("--help")
    assert result.returncode == 0
    for command in ("decode", "encode", "runtimes"):
        assert command in result.stdout
