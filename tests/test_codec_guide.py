"""docs/writing-a-codec.md followed from scratch: its files in an empty folder, its commands run."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chonkle import CodecError, Pipeline, SpecError

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "writing-a-codec.md"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)


def guide_blocks() -> list[tuple[str, str, str]]:
    """(language, info string, body) of every fenced block, in order."""
    return [(m.group(1), m.group(2).strip(), m.group(3)) for m in FENCE.finditer(GUIDE.read_text())]


def run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    words = shlex.split(command)
    if words[0] == "chonkle":
        words = [sys.executable, "-m", "chonkle.cli", *words[1:]]
    elif words[0] == "python":
        words = [sys.executable, *words[1:]]
    return subprocess.run(words, cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def followed(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("guide")
    for language, info, body in guide_blocks():
        if info.startswith("file="):
            path = folder / info[len("file="):]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
        elif language == "sh":
            for command in body.strip().splitlines():
                if command.startswith(("chonkle ", "python ")):
                    result = run(command, folder)
                    assert result.returncode == 0, f"{command}:\n{result.stderr}"
    return folder


def test_the_guide_has_the_promised_files_and_commands() -> None:
    infos = [info for _, info, _ in guide_blocks()]
    for name in ("file=xor_mask/xor_mask.c", "file=xor_mask/config.schema.json",
                 "file=xor_mask_zig/xor_mask_zig.zig",
                 "file=pipeline.json", "file=try_it.py"):
        assert name in infos


def test_following_the_guide_builds_both_codecs(followed: Path) -> None:
    for name in ("xor_mask", "xor_mask_zig"):
        wasm = (followed / f"{name}.wasm").read_bytes()
        assert wasm[:4] == b"\0asm"
    assert sorted(p.name for p in followed.glob("*.wasm")) == ["xor_mask.wasm",
                                                                "xor_mask_zig.wasm"]


def test_the_guides_pipeline_roundtrips_on_every_engine(followed: Path, runtime: str) -> None:
    pipeline = Pipeline.load(followed / "pipeline.json", runtime=runtime)
    array = np.arange(16, dtype=np.uint16).reshape(4, 4)
    chunk = pipeline.encode(array)
    np.testing.assert_array_equal(pipeline.decode(chunk), array)
    assert (followed / "chunk.bin").is_file()  # made by the guide's `chonkle encode`
    assert (followed / "chunk.bin.json").is_file()  # its sidecar, which `chonkle decode` used


@pytest.mark.parametrize("name", ["xor_mask", "xor_mask_zig"])
def test_c_and_zig_versions_agree_and_fail_cleanly(followed: Path, runtime: str,
                                                   name: str) -> None:
    def step(**configuration: object) -> dict:
        return {"name": name, "type": "wasm", "uri": (followed / f"{name}.wasm").as_uri(),
                "configuration": configuration}

    codec = Pipeline.load({"codecs": [step(key=90)]}, runtime=runtime).codecs[0]
    data = bytes(range(256)) * 3
    assert codec.encode(data).tobytes() == bytes(b ^ 90 for b in data)
    assert codec.decode(b"").tobytes() == b""
    if name == "xor_mask":  # it declares its configuration: checked on load
        with pytest.raises(SpecError, match=r'^step 0 \(xor_mask\): configuration lacks the '
                                            r'required key "key"'):
            Pipeline.load({"codecs": [step()]}, runtime=runtime)
        with pytest.raises(SpecError, match=r'^step 0 \(xor_mask\): configuration has unknown '
                                            r'key "kye" \(known keys: key\)'):
            Pipeline.load({"codecs": [step(key=1, kye=1)]}, runtime=runtime)
        with pytest.raises(SpecError, match=r'"key" must be at most 255, not 300'):
            Pipeline.load({"codecs": [step(key=300)]}, runtime=runtime)
        return
    missing = Pipeline.load({"codecs": [step()]}, runtime=runtime)  # Zig: checked by the codec
    with pytest.raises(CodecError, match=rf'step 0 \({name}\): decode failed: configuration '
                                         r'lacks "key"'):
        missing.decode(b"abc")
    out_of_range = Pipeline.load({"codecs": [step(key=300)]}, runtime=runtime)
    with pytest.raises(CodecError, match=r'"key" must be an integer from 0 to 255'):
        out_of_range.decode(b"abc")


def test_build_errors_are_clear(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run("chonkle build-codec empty", tmp_path)
    assert result.returncode == 1 and "holds no codec sources" in result.stderr
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "broken.c").write_text("int x = ;\n")
    result = run("chonkle build-codec broken", tmp_path)
    assert result.returncode == 1 and "compiling broken failed" in result.stderr
    assert not (tmp_path / "broken.wasm").exists()
