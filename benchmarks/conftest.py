"""Benchmark fixtures: engines, sizes, and data shaped like real chunks.

Data is a smooth raster like a satellite band plus sensor noise: never pure random bytes,
which no real chunk looks like and which no codec compresses. `make bench` measures the
standard sizes; `make bench-full` (CHONKLE_BENCH_FULL=1) adds 16 MiB.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pytest

from chonkle.errors import RuntimeUnavailable
from chonkle.runtime import get_runtime, runtime_statuses

ENGINES = ["native", "wasmtime", "wasmer"]
SIZES = {"4 KiB": 4 * 2**10, "256 KiB": 256 * 2**10, "2 MiB": 2 * 2**20}
if os.environ.get("CHONKLE_BENCH_FULL") == "1":
    SIZES["16 MiB"] = 16 * 2**20


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


def interleaved_speedup(one: Callable[[], object], two: Callable[[], object],
                        pairs: int = 9) -> float:
    """The median of time(one) / time(two) over runs of each in turn.

    A shared machine's speed drifts over minutes, so two medians measured a minute apart
    give a noisier ratio than neighbouring runs do.
    """
    ratios = []
    for _ in range(pairs):
        start = time.perf_counter()
        one()
        middle = time.perf_counter()
        two()
        ratios.append((middle - start) / (time.perf_counter() - middle))
    return statistics.median(ratios)


def raster_of(nbytes: int, width: int = 1024) -> np.ndarray:
    """A uint16 raster of exactly `nbytes` (rows of `width` samples; 2 MiB is 1024x1024)."""
    samples = nbytes // 2
    width = min(width, samples)
    return smooth_raster(samples // width, width)


def pytest_benchmark_update_machine_info(config, machine_info: dict) -> None:
    """Record what the numbers depend on: cores, engines and codec library versions."""
    machine_info["cores"] = os.cpu_count()
    machine_info["engines"] = {s.name: s.version or f"unavailable: {s.reason}"
                               for s in runtime_statuses()}
    packages = {}
    for name in ("numpy", "numcodecs", "imagecodecs", "numcodecs-wasm-zstd"):
        with contextlib.suppress(PackageNotFoundError):
            packages[name] = version(name)
    machine_info["packages"] = packages
