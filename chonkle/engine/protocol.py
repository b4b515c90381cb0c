"""The Wasm engine protocol: what an engine adapter must offer chonkle.

This module is the "strict point of cut-off" between chonkle and Wasm engines:
an adapter speaks only in bytes, ints and export names, never in pipelines or
arrays, so that wasmtime, wasmer or a third-party engine plug in the same way.
Adapters are separate distributions that register a factory in the entry-point
group ``chonkle.runtimes`` (see ``chonkle.engine.registry``).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from chonkle.errors import LimitExceeded, WasmTrap


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

    @classmethod
    def of(cls, functions: Iterable[tuple[str, Iterable[object], Iterable[object]]],
           memories: Iterable[str], imports: Iterable[tuple[str, str]]) -> ModuleInterface:
        """From exported functions as (name, param types, result types), the names of the
        exported memories, and the imports; types are named as their ``str`` or ``name``."""
        def names(types: Iterable[object]) -> tuple[str, ...]:
            return tuple(str(getattr(t, "name", t)).lower().replace("_", "") for t in types)

        return cls({name: FuncSignature(names(params), names(results))
                    for name, params, results in functions}, frozenset(memories), tuple(imports))


class Sandbox(NamedTuple):
    """The limits one instance runs under, handed to engines that enforce them.

    ``max_memory`` bounds the bytes of linear memory (every memory of the instance
    together), ``max_table_elements`` the elements of its tables, ``timeout`` the seconds one
    call into Wasm may run (None: no time limit; only for modules compiled interruptible).
    """

    max_memory: int
    max_table_elements: int
    timeout: float | None


# What an engine can enforce itself, in its ``enforces`` attribute. chonkle imposes memory
# and table caps in the module's own declarations for an engine that cannot; time can only
# be enforced by the engine.
MEMORY, TABLES, TIME = "memory", "tables", "time"


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

    def instantiate(self, *, wasi: bool, sandbox: Sandbox) -> WasmInstance:
        """Create an instance under `sandbox` (see WasmEngine.enforces).

        With ``wasi``, link a WASI with no files, no environment, no arguments and no
        sockets; stdout/stderr discarded; ``poll_oneoff`` failing at once; ``proc_exit``
        ending the call as a trap, never the process. With a timeout, the deadline is set
        before instantiation, so a start function is covered too.
        """
        ...


@runtime_checkable
class WasmEngine(Protocol):
    """An engine adapter: the only object chonkle gets from an entry point.

    ``enforces`` says which of MEMORY, TABLES and TIME the engine itself enforces per
    instance. An engine without the attribute is treated as enforcing none of them and is
    called without the keyword arguments below (the protocol of chonkle 0.1).
    """

    name: str
    version: str
    enforces: frozenset[str]

    def compile(self, wasm: bytes, *, interruptible: bool = False) -> WasmModule:
        """Validate and compile a module; raise :class:`chonkle.errors.CodecError` if invalid.

        ``interruptible``: calls into it can be stopped at the sandbox's timeout (engines
        enforcing TIME; such checks cost speed, so trusted modules are compiled without).
        Modules needing 64-bit or multiple memories, or shared memory, must be refused.
        """
        ...


# Optional, for the on-disk compiled-code cache (chonkle.engine.compiled_cache): an engine may
# offer ``deserialize(data: bytes, *, interruptible: bool = False) -> WasmModule``, its modules
# ``serialize() -> bytes``. Optional, for Pipeline.decode_many: ``parallel_threads = True``
# says calls release the GIL, so threads run Wasm in parallel (else worker processes are used).

def timed_out(timeout: float, prefix: str = "") -> LimitExceeded:
    """What an adapter raises when the engine stopped a call at its deadline."""
    return LimitExceeded(f"{prefix}the call ran longer than CHONKLE_WASM_TIMEOUT={timeout:g} s "
                         "and was stopped")


def exited(code: str, prefix: str = "") -> WasmTrap:
    """What an adapter raises when a module called WASI's proc_exit."""
    return WasmTrap(f"{prefix}the module called proc_exit({code}), which ends the call")


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
