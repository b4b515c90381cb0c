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
    wasmtime = next(line for line in result.stdout.splitlines()
                    if line[2:].startswith("wasmtime "))
    assert wasmtime.endswith("limits: memory (by the engine), tables (by the engine), output, "
                             "time (but not for chonkle's own codecs)")
    wasmer = next(line for line in result.stdout.splitlines() if line[2:].startswith("wasmer "))
    if sys.version_info < (3, 11):
        assert wasmer.split()[1:4] == ["1.1.0", "available;", "limits:"]
        assert wasmer.endswith("memory (in the module), tables (in the module), output, NO "
                               "time limit")
    else:
        assert "unavailable: wasmer cannot load on CPython 3." in wasmer


@pytest.mark.parametrize(("args", "message"), [
    (["decode", "missing.bin"], "missing.bin: no such file (the chunk to decode)"),
    (["decode", "README.md"], "pipeline file README.md.json does not exist (the default "
                              "sidecar; pass --pipeline to use another file)"),
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
    assert result.stderr.lower().count("error:") == 1


def test_a_native_codec_failure_names_its_error_once(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"not zlib at all")
    result = chonkle("decode", tmp_path / "junk", "--pipeline", EXAMPLE.with_name(
        "cog_tile.bin.json"))
    assert result.returncode == 1
    assert result.stderr == ("chonkle: error: step 2 (zlib): decode failed: Error -3 while "
                             "decompressing data: incorrect header check\n")


@pytest.mark.parametrize("content", [b"a,b\n1,2\n", b"", np.arange(3).tobytes()])
def test_encode_says_what_it_reads(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "table.csv").write_bytes(content)
    result = chonkle("encode", tmp_path / "table.csv", "-o", tmp_path / "out", "--pipeline",
                     EXAMPLE.with_name("cog_tile.bin.json"))
    assert result.returncode == 1
    assert "table.csv: not a .npy file; chonkle encode reads one array saved with numpy.save" \
        in result.stderr
    assert "pickle" not in result.stderr


def test_encode_refuses_object_arrays_without_mentioning_pickle(tmp_path: Path) -> None:
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    result = chonkle("encode", tmp_path / "objects.npy", "-o", tmp_path / "out", "--pipeline",
                     EXAMPLE.with_name("cog_tile.bin.json"))
    assert result.returncode == 1 and "holds Python objects" in result.stderr
    assert "allow_pickle" not in result.stderr


def test_outputs_get_the_usual_permissions(tmp_path: Path) -> None:
    import os
    import stat

    np.save(tmp_path / "in.npy", smooth_raster((256, 256)))
    previous = os.umask(0o022)
    try:
        encoded = chonkle("encode", tmp_path / "in.npy", "-o", tmp_path / "chunk",
                          "--pipeline", EXAMPLE.with_name("cog_tile.bin.json"))
        decoded = chonkle("decode", tmp_path / "chunk", "-o", tmp_path / "out.npy")
    finally:
        os.umask(previous)
    assert encoded.returncode == 0 and decoded.returncode == 0, encoded.stderr + decoded.stderr
    for name in ("chunk", "chunk.json", "out.npy"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunk", "chunk.json", "in.npy",
                                                          "out.npy"]


def test_encode_saves_its_pipeline_as_the_sidecar(tmp_path: Path, runtime: str) -> None:
    """`chonkle encode -o OUT --pipeline P` then `chonkle decode OUT`, with a relative file:
    URI in P that must still name the module from OUT's folder."""
    array = smooth_raster((256, 256))
    np.save(tmp_path / "in.npy", array)
    specs, outputs = tmp_path / "specs", tmp_path / "out"
    specs.mkdir(), outputs.mkdir()
    (specs / "codecs").mkdir()
    (specs / "codecs" / "p2.wasm").write_bytes(
        (REPO / "chonkle" / "wasm" / "tiff_predictor_2.wasm").read_bytes())
    document = json.loads((REPO / "examples" / "cog_tile.bin.json").read_text())["codecs"]
    document[1]["uri"] = "file:codecs/p2.wasm"
    (specs / "pipeline.json").write_text(json.dumps(document))  # a bare list of steps
    result = chonkle("encode", tmp_path / "in.npy", "-o", outputs / "chunk", "--pipeline",
                     specs / "pipeline.json", "--runtime", runtime)
    assert result.returncode == 0, result.stderr
    assert f"wrote {outputs / 'chunk.json'}" in result.stdout
    saved = json.loads((outputs / "chunk.json").read_text())
    assert saved[1]["uri"] == "file:../specs/codecs/p2.wasm"
    result = chonkle("decode", outputs / "chunk", "-o", tmp_path / "back.npy", "--runtime",
                     runtime)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "back.npy"), array)


def test_encode_keeps_an_existing_sidecar_and_obeys_no_sidecar(tmp_path: Path) -> None:
    np.save(tmp_path / "in.npy", smooth_raster((256, 256)))
    pipeline = EXAMPLE.with_name("cog_tile.bin.json")
    (tmp_path / "a.json").write_text("{}")
    result = chonkle("encode", tmp_path / "in.npy", "-o", tmp_path / "a", "--pipeline", pipeline)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "a.json").read_text() == "{}"
    assert f"kept the existing {tmp_path / 'a.json'}" in result.stderr
    result = chonkle("encode", tmp_path / "in.npy", "-o", tmp_path / "b", "--pipeline", pipeline,
                     "--no-sidecar")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "b.json").exists()


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


def test_the_example_works_anywhere_and_under_require_digest(tmp_path: Path) -> None:
    """Its Wasm step names the codec shipped in chonkle: no path, no digest needed."""
    import os
    import shutil

    for name in ("cog_tile.bin", "cog_tile.bin.json"):
        shutil.copy(REPO / "examples" / name, tmp_path / name)
    result = subprocess.run([sys.executable, "-m", "chonkle.cli", "decode", "cog_tile.bin"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "CHONKLE_REQUIRE_DIGEST": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("shape [256, 256], dtype uint16")


def test_a_folder_is_not_a_chunk(tmp_path: Path) -> None:
    result = chonkle("decode", ".", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "chonkle: error: .: a folder, not a chunk file\n"


def test_a_reader_leaving_early_is_no_error(tmp_path: Path) -> None:
    """`chonkle inspect FILE | head -1`: no traceback when head stops reading."""
    import tifffile

    path = tmp_path / "many.tif"
    with tifffile.TiffWriter(path) as tif:
        for _ in range(40):  # forty levels: more than a pipe holds before head closes it
            tif.write(np.zeros((64, 64), "uint16"), tile=(16, 16), compression="zlib")
    result = subprocess.run(f"{sys.executable} -m chonkle.cli inspect {path} | head -c 10",
                            shell=True, cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert len(result.stdout) == 10
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
