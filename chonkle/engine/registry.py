"""The registry of installed Wasm engines, found through the ``chonkle.runtimes`` entry points.

Like numcodecs' codec registry and fsspec's ``known_implementations``: nothing here imports
an engine until one is asked for by name, and a missing engine is one sentence saying what
to install.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from chonkle import settings
from chonkle.engine import limits
from chonkle.engine.protocol import WasmEngine
from chonkle.errors import ChonkleError, RuntimeUnavailable

ENTRY_POINT_GROUP = "chonkle.runtimes"
DEFAULT_RUNTIME = "wasmtime"
RUNTIME_ENV_VAR = settings.RUNTIME

# What to tell a user who asks for an engine that is not installed (fsspec-style).
INSTALL_HINTS: dict[str, str] = {
    "wasmtime": ("install the chonkle-wasmtime package (from a chonkle checkout: "
                 "`pip install ./runtimes/wasmtime`, or `uv sync`)"),
    "wasmer": ("install the chonkle-wasmer package on CPython <= 3.10 (from a chonkle "
               "checkout: `pip install ./runtimes/wasmer`, or `uv sync`); wasmer's Python "
               "bindings ship no wheels for newer Pythons"),
}


_engines: dict[str, WasmEngine] = {}
_lock = threading.Lock()


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def installed_runtimes() -> list[str]:
    """Names of the engines registered in this environment (loadable or not)."""
    return sorted(_entry_points())


def resolve_runtime_name(name: str | None = None) -> str:
    """The engine name to use: the explicit one, else ``$CHONKLE_RUNTIME``, else the default."""
    return name or settings.runtime_name() or DEFAULT_RUNTIME


def get_runtime(name: str | None = None) -> WasmEngine:
    """Load (once per process) and return the engine called ``name``."""
    name = resolve_runtime_name(name)
    engine = _engines.get(name)
    if engine is not None:
        return engine
    with _lock:
        if name not in _engines:
            _engines[name] = _load(name)
        return _engines[name]


def _load(name: str) -> WasmEngine:
    eps = _entry_points()
    if name not in eps:
        installed = ", ".join(sorted(eps)) or "none"
        hint = INSTALL_HINTS.get(name)
        advice = f"; {hint}" if hint else ""
        raise RuntimeUnavailable(
            f"unknown Wasm runtime {name!r} (installed: {installed}){advice}"
        )
    try:
        factory = eps[name].load()
        engine = factory()
    except ChonkleError:
        raise
    except Exception as exc:  # an engine's import can fail in many engine-specific ways
        raise RuntimeUnavailable(
            f"Wasm runtime {name!r} cannot load on Python "
            f"{sys.version_info.major}.{sys.version_info.minor}: {type(exc).__name__}: {exc}"
        ) from exc
    return engine


@dataclass(frozen=True)
class RuntimeStatus:
    """One line of `chonkle runtimes`."""

    name: str
    available: bool
    version: str | None
    reason: str | None
    limits: str | None = None  # what the engine enforces, for an available one


def runtime_statuses() -> list[RuntimeStatus]:
    """Every registered engine and every engine chonkle knows how to install, with its state."""
    statuses = []
    for name in sorted(set(_entry_points()) | set(INSTALL_HINTS)):
        try:
            engine = get_runtime(name)
        except RuntimeUnavailable as exc:
            statuses.append(RuntimeStatus(name, False, None, str(exc)))
        else:
            statuses.append(RuntimeStatus(name, True, engine.version, None,
                                          limits.describe(engine)))
    return statuses
