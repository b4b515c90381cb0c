"""First decode in a fresh process: compiling the module versus the on-disk compiled-code cache.

Each round starts a new interpreter that imports chonkle, loads a pipeline whose only step is
the shipped zstd module (the largest) and decodes one chunk. The native row (numcodecs' zstd)
is the floor: interpreter start-up and imports, with no Wasm at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numcodecs
import pytest

from chonkle.errors import RuntimeUnavailable
from chonkle.runtime import get_runtime

VARIANTS = {
    "native": (None, "1"),
    "wasmtime, compiling": ("wasmtime", "0"),
    "wasmtime, compiled cache": ("wasmtime", "1"),
    "wasmer, compiling": ("wasmer", "0"),
    "wasmer, compiled cache": ("wasmer", "1"),
}
SCRIPT = ("import sys, chonkle; from pathlib import Path;"
          "chonkle.decode(Path(sys.argv[2]).read_bytes(), Path(sys.argv[1]))")


@pytest.mark.benchmark(group="first decode in a fresh process (zstd module)")
@pytest.mark.parametrize("engine", list(VARIANTS))
def test_first_decode_in_a_fresh_process(benchmark, tmp_path, engine: str) -> None:
    runtime, compiled_cache = VARIANTS[engine]
    if runtime:
        try:
            get_runtime(runtime)
        except RuntimeUnavailable as exc:
            pytest.skip(str(exc))
    step = ({"name": "zstd", "type": "wasm"} if runtime
            else {"name": "zstd", "type": "numcodecs"})
    pipeline, chunk = tmp_path / "pipeline.json", tmp_path / "chunk.zst"
    pipeline.write_text(json.dumps({"codecs": [step]}))
    chunk.write_bytes(numcodecs.Zstd(3).encode(bytes(range(256)) * 64))
    env = {**os.environ, "CHONKLE_CACHE_DIR": str(tmp_path / "cache"),
           "CHONKLE_COMPILED_CACHE": compiled_cache, "CHONKLE_RUNTIME": runtime or "wasmtime"}
    command = [sys.executable, "-c", SCRIPT, str(pipeline), str(chunk)]
    subprocess.run(command, env=env, check=True)  # warms the compiled cache when enabled
    benchmark.pedantic(subprocess.run, args=(command,), kwargs={"env": env, "check": True},
                       rounds=5, iterations=1)
