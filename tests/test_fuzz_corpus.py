"""The fuzzing corpus (tests/fuzz/corpus), replayed on every run: each input ends in a result
or a ChonkleError, on both engines, so a finding once fixed stays fixed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fuzz"))

import contextlib

from targets import CORPUS, DECODERS, TARGETS

from chonkle import ChonkleError, Pipeline


def test_every_target_has_a_corpus() -> None:
    for target in TARGETS:
        assert any((CORPUS / target).iterdir()), target


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_corpus_replays_cleanly(target: str) -> None:
    inputs = sorted((CORPUS / target).iterdir())
    for path in inputs:
        TARGETS[target](path.read_bytes())  # raises only on a finding
    assert inputs


@pytest.mark.parametrize("codec", sorted(DECODERS))
def test_decoder_corpus_on_every_engine(codec: str, runtime: str) -> None:
    pipeline = Pipeline.load([{"name": codec, "type": "wasm", "configuration": DECODERS[codec]}],
                             runtime=runtime)
    for path in sorted((CORPUS / f"decode_{codec}").iterdir()):
        with contextlib.suppress(ChonkleError):
            pipeline.decode(path.read_bytes())
