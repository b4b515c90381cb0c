"""Shared by the Zarr tests: sample arrays of every dtype, and reading in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from conftest import smooth_raster


def sample(shape: tuple[int, ...], dtype: str | np.dtype, seed: int = 0) -> np.ndarray:
    """Realistic values of ``dtype`` (either byte order): a smooth raster with noise, bools
    as a threshold of it, complex from two rasters."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return smooth_raster(shape, "float64", seed) > 3000
    if dtype.kind == "c":
        real = smooth_raster(shape, "float64", seed)
        return (real + 1j * smooth_raster(shape, "float64", seed + 1)[::-1]).astype(dtype)
    if dtype.kind == "f":
        return (smooth_raster(shape, "float64", seed) / 7).astype(dtype)
    raster = smooth_raster(shape, "float64", seed)
    if dtype.kind == "i":
        raster = raster - 3000
    info = np.iinfo(dtype)
    return np.clip(raster, info.min, info.max).astype(dtype)


def run_fresh(code: str, *args: object, runtime: str | None = None) -> list[str]:
    """Run ``code`` in a fresh interpreter (CHONKLE_RUNTIME=runtime); its stdout, split."""
    env = dict(os.environ)
    if runtime is not None:
        env["CHONKLE_RUNTIME"] = runtime
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()
