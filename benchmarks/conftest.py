"""Benchmark fixtures: engines, and data shaped like real chunks (smooth rasters, not noise)."""

from __future__ import annotations

import numpy as np
import pytest

from chonkle.errors import RuntimeUnavailable
from chonkle.runtime import get_runtime

ENGINES = ["native", "wasmtime", "wasmer"]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    if request.param != "native":
        try:
            get_runtime(request.param)
        except RuntimeUnavailable as exc:
            pytest.skip(str(exc))
    return request.param


def smooth_raster(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A satellite-band-like uint16 raster: smooth structure plus sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.indices((height, width))
    surface = 2400 + 900 * np.sin(x / 41.0) * np.cos(y / 29.0) + 0.5 * x + 0.3 * y
    return np.clip(surface + rng.normal(0, 15, surface.shape), 0, 65535).astype(np.uint16)
