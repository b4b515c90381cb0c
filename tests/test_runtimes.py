"""The engine registry: discovery through entry points, selection, and unavailable engines."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import chonkle
from chonkle.runtime import (
    WasmEngine,
    get_runtime,
    installed_runtimes,
    resolve_runtime_name,
    runtime_statuses,
)


def test_both_engines_are_registered_through_entry_points() -> None:
    assert {"wasmtime", "wasmer"} <= set(installed_runtimes())


def test_engines_follow_the_protocol(runtime: str) -> None:
    engine = get_runtime(runtime)
    assert isinstance(engine, WasmEngine)
    assert engine.name == runtime and engine.version
    assert get_runtime(runtime) is engine  # loaded once per process


def test_unknown_runtime_lists_the_installed_ones() -> None:
    with pytest.raises(chonkle.RuntimeUnavailable) as info:
        get_runtime("v8")
    assert str(info.value).startswith("unknown Wasm runtime 'v8' (installed: ")
    assert "wasmtime" in str(info.value) and "wasmer" in str(info.value)


def test_runtime_name_precedence(monkeypatch) -> None:
    monkeypatch.delenv("CHONKLE_RUNTIME", raising=False)
    assert resolve_runtime_name() == "wasmtime"
    monkeypatch.setenv("CHONKLE_RUNTIME", "wasmer")
    assert resolve_runtime_name() == "wasmer"
    assert resolve_runtime_name("wasmtime") == "wasmtime"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="wasmer loads on CPython <= 3.10")
def test_wasmer_on_new_python_says_why_and_what_to_do() -> None:
    with pytest.raises(chonkle.RuntimeUnavailable) as info:
        get_runtime("wasmer")
    message = str(info.value)
    assert "CPython <= 3.10" in message and "CHONKLE_RUNTIME=wasmtime" in message
    status = {s.name: s for s in runtime_statuses()}["wasmer"]
    assert not status.available and "CPython <= 3.10" in (status.reason or "")


def test_importing_chonkle_imports_no_engine() -> None:
    code = ("import sys, chonkle; chonkle.decode; "
            "print(any(m in sys.modules for m in ('wasmtime', 'wasmer')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_third_party_engine_plugs_in_through_the_entry_point_group(tmp_path) -> None:
    """A separately installed distribution adds an engine; chonkle itself is untouched."""


    (tmp_path / "acme_engine.py").write_text(
        "from chonkle_wasmtime import WasmtimeEngine\n"
        "class AcmeEngine(WasmtimeEngine):\n"
        "    name = 'acme'\n"
    )
    dist_info = tmp_path / "acme_engine-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-engine\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[chonkle.runtimes]\nacme = acme_engine:AcmeEngine\n")
    code = (
        "import chonkle, numpy as np\n"
        "spec = {'codecs': [{'name': 'tiff_predictor_2', 'type': 'wasm',"
        " 'configuration': {'bytes_per_sample': 1, 'width': 4}}]}\n"
        "p = chonkle.Pipeline.load(spec, runtime='acme')\n"
        "print(p.runtime, chonkle.installed_runtimes(), p.decode(bytes([1, 1, 1, 1])).tolist())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "acme ['acme', 'wasmer', 'wasmtime'] [1, 2, 3, 4]"
