"""What the sandbox limits cost on wasmtime: the same shipped codec compiled without and with
the time limit's interruption checks (chonkle's own codecs run without them, every other
module with them; README: Security model)."""

from __future__ import annotations

import imagecodecs
import numcodecs
import pytest
from cases import as_bytes
from conftest import raster_of

from chonkle import Pipeline
from chonkle.codecs import TiffPredictor2
from chonkle.engine import limits

CODECS = {
    "tiff_predictor_2": ({"bytes_per_sample": 2, "width": 1024},
                         lambda raw: as_bytes(TiffPredictor2(2, 1024).encode(raw))),
    "zstd": ({}, lambda raw: numcodecs.Zstd(3).encode(raw)),
    "zlib": ({}, lambda raw: numcodecs.Zlib(1).encode(raw)),
    "lzw": ({}, lambda raw: imagecodecs.lzw_encode(raw)),
    "shuffle": ({"elementsize": 2}, lambda raw: numcodecs.Shuffle(2).encode(raw)),
}


@pytest.mark.parametrize("checks", ["without time checks", "with time checks"])
@pytest.mark.parametrize("codec", list(CODECS))
def test_time_limit_cost(benchmark, monkeypatch, codec: str, checks: str) -> None:
    config, encode = CODECS[codec]
    if checks == "with time checks":  # treat the shipped module as any other module
        monkeypatch.setattr(limits, "shipped_digests", frozenset)
    raw = raster_of(2 * 2**20).tobytes()
    pipeline = Pipeline.load([{"name": codec, "type": "wasm", "configuration": config}],
                             runtime="wasmtime")
    benchmark.group = f"limits: {codec} decode, 2 MiB"
    benchmark.extra_info["engine"] = checks
    assert as_bytes(benchmark(pipeline.decode, encode(raw))) == raw
