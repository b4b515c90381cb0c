"""wasmer adapter for chonkle's engine protocol (see ``chonkle.runtime``).

wasmer-python objects are bound to the thread that created them: touching a
Module or Instance from another thread panics ("unsendable"). So a module is
compiled once, kept in its engine-independent serialized form, and deserialized
(about 0.1 ms, no recompilation) the first time each thread needs it. Every
wasmer object lives in thread-local storage and is dropped by its own thread.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import warnings
from collections.abc import Callable
from importlib.metadata import version

from chonkle.engine.protocol import FuncSignature, ModuleInterface, linear_memory_view
from chonkle.errors import CodecError, RuntimeUnavailable, WasmTrap
from chonkle.settings import wasm_timeout

try:
    import wasmer
    from wasmer_compiler_cranelift import Compiler
except ImportError as exc:  # no wheels beyond CPython 3.10
    wasmer = None
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None

_TYPE_NAMES = {"I32": "i32", "I64": "i64", "F32": "f32", "F64": "f64", "V128": "v128",
               "EXTERN_REF": "externref", "FUNC_REF": "funcref"}


class WasmerEngine:
    name = "wasmer"

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
        if wasm_timeout() is not None:
            warnings.warn("wasmer's Python bindings cannot interrupt Wasm: CHONKLE_WASM_TIMEOUT "
                          "is ignored with the wasmer runtime", RuntimeWarning, stacklevel=2)

    def store(self) -> wasmer.Store:
        """This thread's Store (wasmer objects may not cross threads)."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = wasmer.Store(wasmer.engine.Universal(Compiler))
        return store

    def compile(self, wasm: bytes) -> WasmerModule:
        try:
            module = wasmer.Module(self.store(), wasm)
        except Exception as exc:  # wasmer raises plain RuntimeError/ValueError for bad bytes
            raise CodecError(f"not a valid Wasm module: {_first_line(exc)}") from exc
        return WasmerModule(self, module)

    def deserialize(self, data: bytes) -> WasmerModule:
        """A module from `serialize` output, with no recompilation."""
        return WasmerModule(self, wasmer.Module.deserialize(self.store(), data), bytes(data))


class WasmerModule:
    def __init__(self, engine: WasmerEngine, module: wasmer.Module,
                 serialized: bytes | None = None) -> None:
        self._engine = engine
        self._serialized = serialized if serialized is not None else bytes(module.serialize())
        self._local = threading.local()
        self._local.module = module
        functions, memories = {}, set()
        for export in module.exports:
            kind = export.type
            if isinstance(kind, wasmer.FunctionType):
                functions[export.name] = FuncSignature(
                    tuple(_type_name(t) for t in kind.params),
                    tuple(_type_name(t) for t in kind.results),
                )
            elif isinstance(kind, wasmer.MemoryType):
                memories.add(export.name)
        imports = tuple((imp.module, imp.name) for imp in module.imports)
        self.interface = ModuleInterface(functions, frozenset(memories), imports)

    def serialize(self) -> bytes:
        return self._serialized

    def _thread_module(self) -> wasmer.Module:
        module = getattr(self._local, "module", None)
        if module is None:
            module = wasmer.Module.deserialize(self._engine.store(), self._serialized)
            self._local.module = module
        return module

    def instantiate(self, *, wasi: bool) -> WasmerInstance:
        module = self._thread_module()
        try:
            if wasi:
                # No preopened directories, no environment, no arguments.
                instance = wasmer.Instance(module, self._wasi_imports(module))
            else:
                instance = wasmer.Instance(module)
        except Exception as exc:
            raise WasmTrap(f"instantiation failed: {_first_line(exc)}") from exc
        return WasmerInstance(instance)


    def _wasi_imports(self, module: wasmer.Module) -> dict:
        """WASI with no preopens, env or args, and stdio cut off.

        wasmer's WASI inherits the host's stdin, stdout and stderr, and its Python API
        cannot redirect them, so the stream functions a module imports are replaced by
        ones that fail with EBADF: a codec can neither print to the user's terminal nor
        block reading stdin.
        """
        store = self._engine.store()
        environment = wasmer.wasi.StateBuilder("chonkle-codec").finalize()
        imports = environment.generate_imports(store, wasmer.wasi.Version.SNAPSHOT1)
        namespace = imports.setdefault("wasi_snapshot_preview1", {})
        for imported in module.imports:
            if imported.module == "wasi_snapshot_preview1" and imported.name in _STDIO:
                namespace[imported.name] = wasmer.Function(store, _bad_file_descriptor,
                                                           imported.type)
        return imports


_STDIO = {"fd_read", "fd_write", "fd_pread", "fd_pwrite"}
_EBADF = 8


def _bad_file_descriptor(*args: int) -> int:
    return _EBADF


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
            except Exception as exc:  # wasmer reports traps as "RuntimeError: <reason>"
                reason = _first_line(exc).removeprefix("RuntimeError: ")
                raise WasmTrap(f"Wasm trap: {reason}") from exc
            return 0 if result is None else result

        return call

    def memory(self) -> memoryview:
        # A view over wasmer's Buffer would keep that thread-bound object alive, in the view
        # and in any traceback holding it, and dropping it on another thread panics. So take
        # the buffer's address, release it here, and hand out a plain view of the memory.
        # Memory moves only when it grows, so the address is looked up again only then.
        size = self._memory.data_size
        if size != self._size:
            with memoryview(self._memory.buffer) as view:
                self._address = ctypes.addressof(ctypes.c_char.from_buffer(view)) if size else 0
            self._size = size
        return linear_memory_view(self._address, size)


def _type_name(value_type: object) -> str:
    # wasmer 1.1 reports value types as wasmer.Type members, or as their int values.
    if isinstance(value_type, int) and not hasattr(value_type, "name"):
        value_type = wasmer.Type(value_type)
    name = getattr(value_type, "name", str(value_type))
    return _TYPE_NAMES.get(name, name.lower())


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
