"""wasmer adapter for chonkle's engine protocol (see ``chonkle.engine.protocol``).

wasmer-python objects are bound to the thread that created them: touching a
Module or Instance from another thread panics ("unsendable"). So a module is
compiled once, kept in its engine-independent serialized form, and deserialized
(about 0.1 ms, no recompilation) the first time each thread needs it. Every
wasmer object lives in thread-local storage and is dropped by its own thread.

wasmer's Python bindings have no store limits and cannot interrupt Wasm: chonkle imposes
memory and table caps in the module itself before it gets here (``enforces`` is empty),
and there is no time limit. Rust panics inside wasmer (PanicException, a BaseException)
become WasmTrap, like traps.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Callable, Iterator
from importlib.metadata import version

from chonkle.engine.protocol import ModuleInterface, Sandbox, exited, linear_memory_view
from chonkle.errors import ChonkleError, CodecError, RuntimeUnavailable, WasmTrap

try:
    import wasmer
    from wasmer_compiler_cranelift import Compiler
except ImportError as exc:  # no wheels beyond CPython 3.10
    wasmer = None
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None


class WasmerEngine:
    name = "wasmer"
    enforces: frozenset[str] = frozenset()

    def __init__(self) -> None:
        if wasmer is None:
            python = f"{sys.version_info.major}.{sys.version_info.minor}"
            raise RuntimeUnavailable(
                f"wasmer cannot load on CPython {python}: wasmer's Python bindings (1.1.0) ship "
                f"native wheels only for CPython <= 3.10 ({_IMPORT_ERROR}). Use a Python 3.10 "
                "environment, or the wasmtime runtime (CHONKLE_RUNTIME=wasmtime)"
            )
        self.version = version("wasmer")
        self._local = threading.local()

    def store(self) -> wasmer.Store:
        """This thread's Store (wasmer objects may not cross threads)."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = wasmer.Store(wasmer.engine.Universal(Compiler))
        return store

    def compile(self, wasm: bytes, *, interruptible: bool = False) -> WasmerModule:
        with _reported(lambda exc: CodecError(f"not a valid Wasm module: {_first_line(exc)}")):
            return WasmerModule(self, wasmer.Module(self.store(), wasm))

    def deserialize(self, data: bytes, *, interruptible: bool = False) -> WasmerModule:
        return WasmerModule(self, wasmer.Module.deserialize(self.store(), data), bytes(data))


class WasmerModule:
    def __init__(self, engine: WasmerEngine, module: wasmer.Module,
                 serialized: bytes | None = None) -> None:
        self._engine = engine
        self._serialized = serialized if serialized is not None else bytes(module.serialize())
        self._local = threading.local()
        self._local.module = module
        exports = module.exports
        self.interface = ModuleInterface.of(
            [(e.name, map(_type, e.type.params), map(_type, e.type.results)) for e in exports
             if isinstance(e.type, wasmer.FunctionType)],
            [e.name for e in exports if isinstance(e.type, wasmer.MemoryType)],
            [(imp.module, imp.name) for imp in module.imports])

    def serialize(self) -> bytes:
        return self._serialized

    def _thread_module(self) -> wasmer.Module:
        module = getattr(self._local, "module", None)
        if module is None:
            module = wasmer.Module.deserialize(self._engine.store(), self._serialized)
            self._local.module = module
        return module

    def instantiate(self, *, wasi: bool, sandbox: Sandbox | None = None) -> WasmerInstance:
        module = self._thread_module()
        memory: list = []  # the instance's memory, for the WASI functions replaced below
        with _reported(lambda exc: _trap(exc, "instantiation failed: ")):
            if wasi:  # no preopened directories, no environment, no arguments
                instance = wasmer.Instance(module, self._wasi_imports(module, memory))
            else:
                instance = wasmer.Instance(module)
        memory.append(instance.exports.memory)
        return WasmerInstance(instance)

    def _wasi_imports(self, module: wasmer.Module, memory: list) -> dict:
        """wasmer's WASI inherits the host's stdio and its Python API cannot redirect it, so
        the stream functions fail with EBADF; poll_oneoff (sleeping) fails with ENOTSUP;
        random_get checks its buffer first (wasmer's panics on a bad pointer)."""
        store = self._engine.store()
        environment = wasmer.wasi.StateBuilder("chonkle-codec").finalize()
        imports = environment.generate_imports(store, wasmer.wasi.Version.SNAPSHOT1)
        namespace = imports.setdefault("wasi_snapshot_preview1", {})
        replacements = {**{name: lambda *args: _EBADF for name in _STDIO},
                        "poll_oneoff": lambda *args: _ENOTSUP, "random_get": _random_get(memory)}
        for imported in module.imports:
            replacement = replacements.get(imported.name)
            if imported.module == "wasi_snapshot_preview1" and replacement is not None:
                namespace[imported.name] = wasmer.Function(store, replacement, imported.type)
        return imports


_STDIO = {"fd_read", "fd_write", "fd_pread", "fd_pwrite"}
_EBADF, _EFAULT, _ENOTSUP = 8, 21, 58


def _fault(exc: BaseException) -> bool:
    """wasmer failing (a Rust panic is a BaseException), not the user interrupting?"""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


@contextlib.contextmanager
def _reported(error: Callable[[BaseException], ChonkleError]) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        if not _fault(exc):
            raise
        raise error(exc) from exc


def _random_get(memory: list) -> Callable[[int, int], int]:
    def random_get(pointer: int, length: int) -> int:
        pointer, length = pointer & 0xFFFF_FFFF, length & 0xFFFF_FFFF
        if not memory or pointer + length > memory[0].data_size:
            return _EFAULT
        with memoryview(memory[0].buffer) as view:
            view[pointer:pointer + length] = os.urandom(length)
        return 0

    return random_get


class WasmerInstance:
    def __init__(self, instance: wasmer.Instance) -> None:
        self._instance = instance
        self._memory = instance.exports.memory
        self._address, self._size = 0, -1

    def function(self, name: str) -> Callable[..., int]:
        func = getattr(self._instance.exports, name)

        def call(*args: int) -> int:
            try:
                result = func(*args)
            except BaseException as exc:  # traps are "RuntimeError: <reason>"
                if not _fault(exc):
                    raise
                raise _trap(exc) from exc
            return 0 if result is None else result

        return call

    def memory(self) -> memoryview:
        # A view of wasmer's thread-bound Buffer, dropped on another thread, panics: hand out
        # a plain view of its address (which moves only when memory grows).
        size = self._memory.data_size
        if size != self._size:
            with memoryview(self._memory.buffer) as view:
                self._address = ctypes.addressof(ctypes.c_char.from_buffer(view)) if size else 0
            self._size = size
        return linear_memory_view(self._address, size)


def _type(value_type: object) -> object:
    """wasmer 1.1 reports value types as wasmer.Type members, or as their int values."""
    return wasmer.Type(value_type) if isinstance(value_type, int) and not hasattr(
        value_type, "name") else value_type


def _trap(exc: BaseException, prefix: str = "Wasm trap: ") -> WasmTrap:
    reason = _first_line(exc).removeprefix("RuntimeError: ")
    if reason.startswith("WASI exited with code: "):
        return exited(reason.rsplit(" ", 1)[-1], prefix.removeprefix("Wasm trap: "))
    if type(exc).__name__ == "PanicException":
        return WasmTrap(f"{prefix}wasmer panicked: {reason}")
    return WasmTrap(f"{prefix}{reason}")


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
