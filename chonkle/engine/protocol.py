"""The Wasm engine protocol: what an engine adapter must offer chonkle.

This module is the "strict point of cut-off" between chonkle and Wasm engines:
an adapter speaks only in bytes, ints and export names, never in pipelines or
arrays, so that wasmtime, wasmer or a third-party engine plug in the same way.
Adapters are separate distributions that register a factory in the entry-point
group ``chonkle.runtimes`` (see ``chonkle.engine.registry``).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class FuncSignature:
    """Parameter and result types of a function, as Wasm value type names ('i32', 'i64', ...)."""

    params: tuple[str, ...]
    results: tuple[str, ...]

    def __str__(self) -> str:
        return f"({', '.join(self.params)}) -> ({', '.join(self.results)})"


@dataclass(frozen=True)
class ModuleInterface:
    """What a compiled module exports and imports, read before it is ever instantiated.

    ``functions`` maps export name to signature; ``memories`` lists exported memory
    names; ``imports`` lists (module, name) pairs the module needs from its host.
    """

    functions: dict[str, FuncSignature]
    memories: frozenset[str]
    imports: tuple[tuple[str, str], ...]


@runtime_checkable
class WasmInstance(Protocol):
    """A live instance. Used only by the thread that created it."""

    def function(self, name: str) -> Callable[..., int]:
        """Return a callable for an exported function taking and returning ints.

        The callable raises :class:`chonkle.errors.WasmTrap` when the Wasm code traps.
        The caller has checked the signature, so adapters may skip per-call type checks.
        """
        ...

    def memory(self) -> memoryview:
        """A writable byte view of the exported ``memory``, valid until the next call into Wasm."""
        ...


@runtime_checkable
class WasmModule(Protocol):
    """A compiled module. Safe to share between threads (adapters ensure it)."""

    interface: ModuleInterface

    def instantiate(self, *, wasi: bool) -> WasmInstance:
        """Create an instance; with ``wasi``, link a WASI with no files, env or args."""
        ...


@runtime_checkable
class WasmEngine(Protocol):
    """An engine adapter: the only object chonkle gets from an entry point."""

    name: str
    version: str

    def compile(self, wasm: bytes) -> WasmModule:
        """Validate and compile a module; raise :class:`chonkle.errors.CodecError` if invalid."""
        ...


# Optional, for the on-disk compiled-code cache (chonkle.compiled_cache): an engine may offer
# ``deserialize(data: bytes) -> WasmModule``, its modules ``serialize() -> bytes``.

_memoryview_from_memory = ctypes.pythonapi.PyMemoryView_FromMemory
_memoryview_from_memory.restype = ctypes.py_object
_memoryview_from_memory.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int]
_PYBUF_WRITE = 0x200


def linear_memory_view(address: int, size: int) -> memoryview:
    """A writable view of `size` bytes at `address`, for adapters' ``memory()``.

    It references no engine object, so nothing thread-bound is kept alive by the view or by
    a traceback holding it; the caller must not use it after the next call into Wasm.
    """
    return _memoryview_from_memory(address, size, _PYBUF_WRITE)
