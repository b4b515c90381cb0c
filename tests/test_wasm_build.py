"""The shipped .wasm files are exactly what `make wasm` builds from wasm-src/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "chonkle" / "wasm"
CODECS = sorted(p.name for p in (REPO / "wasm-src").iterdir()
                if p.is_dir() and any(p.glob("*.c")))


def test_every_codec_source_has_a_shipped_module() -> None:
    assert "tiff_predictor_2" in CODECS
    assert sorted(p.stem for p in SHIPPED.glob("*.wasm")) == CODECS


@pytest.mark.parametrize("codec", CODECS)
def test_rebuild_equals_the_shipped_module(codec: str, tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "wasm-src" / "build.py"), codec,
                    "--output-dir", str(tmp_path)], check=True, capture_output=True, timeout=600)
    rebuilt = (tmp_path / f"{codec}.wasm").read_bytes()
    assert rebuilt == (SHIPPED / f"{codec}.wasm").read_bytes(), (
        f"{codec}.wasm is stale: run `make wasm` and commit the result")
