"""The engine registry: discovery through entry points, selection, and unavailable engines."""

from __future__ import annotations

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
    import subprocess

    code = ("import sys, chonkle; chonkle.decode; "
            "print(any(m in sys.modules for m in ('wasmtime', 'wasmer')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
