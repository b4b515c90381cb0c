"""The shipped .wasm files are exactly what `make wasm` builds from wasm-src/."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "chonkle" / "wasm"


def _load_build_script():
    spec = importlib.util.spec_from_file_location("wasm_build", REPO / "wasm-src" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CODECS = [p.name for p in _load_build_script().codec_dirs()]


def test_support_files_are_found_in_a_checkout() -> None:
    from chonkle.codec_build import sdk_dir

    assert (sdk_dir() / "chonkle_codec.h").is_file() and (sdk_dir() / "chonkle.zig").is_file()


def test_every_codec_source_has_a_shipped_module() -> None:
    assert {"tiff_predictor_2", "tiff_predictor_3", "shuffle", "delta", "packbits", "lzw",
            "zlib", "zstd"} <= set(CODECS)
    assert sorted(p.stem for p in SHIPPED.glob("*.wasm")) == CODECS


@pytest.mark.parametrize("codec", CODECS)
def test_rebuild_equals_the_shipped_module(codec: str, tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "wasm-src" / "build.py"), codec,
                    "--output-dir", str(tmp_path)], check=True, capture_output=True, timeout=600)
    rebuilt = (tmp_path / f"{codec}.wasm").read_bytes()
    assert rebuilt == (SHIPPED / f"{codec}.wasm").read_bytes(), (
        f"{codec}.wasm is stale: run `make wasm` and commit the result")
