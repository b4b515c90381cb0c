"""Peers: numcodecs-wasm's zstd and zlib on the same 1024x1024 raster (optional group `peers`).

Each peer decodes its own encoding of the data (numcodecs-wasm frames its output its own
way); the groups match the matrix's, so the report shows peers beside chonkle's engines.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import raster_of


@pytest.mark.parametrize("codec", ["zstd", "zlib"])
def test_numcodecs_wasm_decode(benchmark, codec: str) -> None:
    module = pytest.importorskip(f"numcodecs_wasm_{codec}",
                                 reason="numcodecs-wasm is not installed (dependency group peers)")
    peer = module.Zstd(level=3) if codec == "zstd" else module.Zlib(level=6)
    raw = raster_of(2 * 2**20).tobytes()
    encoded = peer.encode(np.frombuffer(raw, np.uint8))
    benchmark.group = f"{codec} decode, 2 MiB"
    benchmark.extra_info["engine"] = "numcodecs-wasm"
    result = benchmark(peer.decode, encoded)
    assert np.asarray(result).tobytes() == raw
