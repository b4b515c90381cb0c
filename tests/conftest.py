"""Shared fixtures: the engines to test on, realistic rasters, and hostile Wasm modules."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import wasmtime

from chonkle.errors import RuntimeUnavailable
from chonkle.runtime import get_runtime

RUNTIMES = ["wasmtime", "wasmer"]
# CI sets this so an engine that should load but does not fails the run instead of skipping.
REQUIRED = {r for r in os.environ.get("CHONKLE_TEST_REQUIRE_RUNTIMES", "").split(",") if r}


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tests never read or write the user's module cache (subprocesses inherit this too)."""
    folder = tmp_path_factory.mktemp("chonkle-cache")
    os.environ["CHONKLE_CACHE_DIR"] = str(folder)
    os.environ["CHONKLE_KEY_DIR"] = str(tmp_path_factory.mktemp("chonkle-key"))
    return folder


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    """Each Wasm engine in turn; an unavailable one skips, unless CI requires it."""
    name = request.param
    try:
        get_runtime(name)
    except RuntimeUnavailable as exc:
        if name in REQUIRED:
            pytest.fail(f"{name} is required here but unavailable: {exc}")
        pytest.skip(str(exc))
    return name


def smooth_raster(shape: tuple[int, ...] = (256, 256), dtype: str = "uint16",
                  seed: int = 0) -> np.ndarray:
    """A satellite-band-like raster: smooth gradients plus a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.indices(shape[-2:]) if len(shape) >= 2 else (np.zeros(shape), np.arange(shape[0]))
    base = 3000 + 800 * np.sin(x / 37.0) * np.cos(y / 23.0) + 5 * x
    noisy = base + rng.normal(0, 12, size=base.shape)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is not None:
        noisy = np.clip(noisy, info.min, info.max)
    return np.broadcast_to(noisy, shape).astype(dtype)


# A bump allocator that grows memory as needed; dealloc is a no-op. Codec bodies are
# spliced in, so each hostile module differs from a well-behaved one in one place only.
WAT_PRELUDE = """
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 1024))
  (func $alloc (export "alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (local.get $n)))
    (if (i32.gt_u (global.get $bump) (i32.shl (memory.size) (i32.const 16)))
      (then (drop (memory.grow
        (i32.add (i32.const 1) (i32.shr_u
          (i32.sub (global.get $bump) (i32.shl (memory.size) (i32.const 16)))
          (i32.const 16)))))))
    (local.get $p))
  (func (export "dealloc") (param i32 i32))
"""

# Copies its input to fresh memory: a well-behaved codec in both directions.
IDENTITY = """
  (func $copy (param $in i32) (param $len i32) (param $cfg i32) (param $cfg_len i32) (result i64)
    (local $out i32)
    (local.set $out (call $alloc (i32.add (local.get $len) (i32.const 1))))
    (memory.copy (local.get $out) (local.get $in) (local.get $len))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
  (export "decode" (func $copy))
  (export "encode" (func $copy))
"""


def wat_module(body: str, *, prelude: str = WAT_PRELUDE, imports: str = "") -> bytes:
    return wasmtime.wat2wasm(f"(module {imports} {prelude} {body})")


@pytest.fixture
def wasm_file(tmp_path: Path) -> Callable[..., str]:
    """Write a WAT module to a .wasm file and return its file:// URI."""
    counter = iter(range(1_000_000))

    def write(body: str, **kwargs: str) -> str:
        path = tmp_path / f"module{next(counter)}.wasm"
        path.write_bytes(wat_module(body, **kwargs))
        return path.as_uri()

    return write


def wasm_step(uri: str, name: str = "custom", **configuration: object) -> dict:
    return {"name": name, "type": "wasm", "uri": uri, "configuration": configuration}


def run_on_a_terminal(command: list[str], **options: object) -> tuple[int, bytes]:
    """Run `command` with stderr on a pseudo-terminal of 100x30 (as a user's terminal);
    return its exit status and everything it wrote there."""
    import fcntl
    import pty
    import struct
    import subprocess
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    process = subprocess.Popen(command, stderr=follower, **options)  # type: ignore[call-overload]
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closes when the process exits
            break
        if not chunk:
            break
        shown += chunk
    status = process.wait(timeout=300)
    os.close(leader)
    return status, shown


# ---- Zarr: tests marked zarr2 need zarr-python 2 (CI's CPython 3.10 leg), zarr3 need
# zarr-python 3 (its CPython 3.12 leg). Elsewhere they skip, saying which leg runs them, unless
# CHONKLE_TEST_REQUIRE_ZARR names their version: then the leg that must run them fails.
ZARR_LEGS = {2: "CI's CPython 3.10 leg (zarr-python 2)", 3: "CI's CPython 3.12 leg (zarr-python 3)"}


def _zarr_major() -> int | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("zarr").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    required = {int(v) for v in os.environ.get("CHONKLE_TEST_REQUIRE_ZARR", "").split(",")
                if v.strip().isdigit()}
    for major, leg in ZARR_LEGS.items():
        if item.get_closest_marker(f"zarr{major}") is None:
            continue
        installed = _zarr_major()
        if installed == major:
            continue
        found = "no zarr" if installed is None else f"zarr-python {installed}"
        if major in required:
            pytest.fail(f"needs zarr-python {major}, required here "
                        f"(CHONKLE_TEST_REQUIRE_ZARR), but this environment has {found}")
        pytest.skip(f"needs zarr-python {major} ({found} here); {leg} runs it")
