"""wasmtime adapter for chonkle's engine protocol (see ``chonkle.runtime``).

wasmtime-py's public ``Func.__call__`` re-reads the function type and boxes every
value on each call (about 45 us); chonkle makes six calls per codec step, so this
adapter calls ``wasmtime_func_call_unchecked`` from the C API directly with a
preallocated argument buffer (about 2 us). Unchecked calls are only sound for
matching signatures, which chonkle verifies from the module's exports before
any call (``chonkle.abi.check_interface``). ctypes releases the GIL during the
call, so threads with their own instances run Wasm in parallel.
"""

from __future__ import annotations

import ctypes
import math
import threading
import time
from collections.abc import Callable
from importlib.metadata import version

import wasmtime
from wasmtime import _bindings as ffi

from chonkle.engine.protocol import FuncSignature, ModuleInterface, linear_memory_view
from chonkle.errors import CodecError, WasmTrap
from chonkle.settings import wasm_timeout


def _raw(symbol: str, restype: type, nargs: int) -> ctypes._CFuncPtr:
    """A private handle on a C API function taking plain addresses, so calls box nothing."""
    function = ffi.dll[symbol]  # indexing makes a new handle; wasmtime-py's own is untouched
    function.restype = restype
    function.argtypes = [ctypes.c_void_p] * nargs
    return function


_memory_data = _raw("wasmtime_memory_data", ctypes.c_void_p, 2)
_memory_data_size = _raw("wasmtime_memory_data_size", ctypes.c_size_t, 2)
# (context, func, args_and_results, count, trap out-pointer) -> wasmtime_error_t* or NULL
_func_call_unchecked = _raw("wasmtime_func_call_unchecked", ctypes.c_void_p, 5)
_set_epoch_deadline = ffi.dll["wasmtime_context_set_epoch_deadline"]
_set_epoch_deadline.restype = None
_set_epoch_deadline.argtypes = [ctypes.c_void_p, ctypes.c_uint64]


class WasmtimeEngine:
    """One wasmtime Engine per process; modules compiled on it are shared by all threads.

    With CHONKLE_WASM_TIMEOUT set, the engine is built with epoch interruption and a daemon
    thread advances the epoch; every call gets a deadline that many ticks ahead.
    """

    name = "wasmtime"
    TICK_SECONDS = 0.05

    def __init__(self) -> None:
        self.version = version("wasmtime")
        self.timeout = wasm_timeout()
        config = wasmtime.Config()
        config.epoch_interruption = self.timeout is not None
        self._engine = wasmtime.Engine(config)
        self.deadline_ticks = 0
        if self.timeout is not None:
            self.deadline_ticks = max(1, math.ceil(self.timeout / self.TICK_SECONDS))
            threading.Thread(target=self._tick, name="chonkle-wasmtime-epoch", daemon=True).start()

    def _tick(self) -> None:
        while True:
            time.sleep(self.TICK_SECONDS)
            self._engine.increment_epoch()

    def compile(self, wasm: bytes) -> WasmtimeModule:
        try:
            module = wasmtime.Module(self._engine, wasm)
        except wasmtime.WasmtimeError as exc:
            raise CodecError(f"not a valid Wasm module: {_reason(exc)}") from exc
        return WasmtimeModule(self, module)

    def deserialize(self, data: bytes) -> WasmtimeModule:
        """A module from `serialize` output (wasmtime rejects other versions or CPUs)."""
        return WasmtimeModule(self, wasmtime.Module.deserialize(self._engine, data))


class WasmtimeModule:
    def __init__(self, owner: WasmtimeEngine, module: wasmtime.Module) -> None:
        self._owner = owner
        self._engine = owner._engine
        self._module = module
        functions, memories = {}, set()
        for export in module.exports:
            kind = export.type
            if isinstance(kind, wasmtime.FuncType):
                functions[export.name] = FuncSignature(
                    tuple(str(t) for t in kind.params), tuple(str(t) for t in kind.results)
                )
            elif isinstance(kind, wasmtime.MemoryType):
                memories.add(export.name)
        imports = tuple((imp.module, imp.name or "") for imp in module.imports)
        self.interface = ModuleInterface(functions, frozenset(memories), imports)

    def serialize(self) -> bytes:
        return bytes(self._module.serialize())

    def instantiate(self, *, wasi: bool) -> WasmtimeInstance:
        store = wasmtime.Store(self._engine)
        try:
            if wasi:
                store.set_wasi(wasmtime.WasiConfig())  # no preopens, no env, no args
                linker = wasmtime.Linker(self._engine)
                linker.define_wasi()
                instance = linker.instantiate(store, self._module)
            else:
                instance = wasmtime.Instance(store, self._module, [])
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            raise WasmTrap(f"instantiation failed: {_reason(exc)}") from exc
        return WasmtimeInstance(store, instance, self._owner)


class WasmtimeInstance:
    def __init__(self, store: wasmtime.Store, instance: wasmtime.Instance,
                 owner: WasmtimeEngine) -> None:
        self._store = store
        self._deadline_ticks = owner.deadline_ticks
        self._timeout = owner.timeout
        self._context = store._context()
        self._context_address = ctypes.cast(self._context, ctypes.c_void_p).value
        self._exports = instance.exports(store)
        memory = self._exports["memory"]
        self._memory_ref = ctypes.byref(memory._memory)

    def function(self, name: str) -> Callable[..., int]:
        func = self._exports[name]
        functype = func.type(self._store)
        nparams, nresults = len(functype.params), len(functype.results)
        # wasmtime_val_raw_t is 16 bytes; as u64 pairs, slot i's low word is index 2*i.
        slots = (ctypes.c_uint64 * (2 * max(nparams, nresults, 1)))()
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        addresses = (self._context_address, ctypes.addressof(func._func),
                     ctypes.addressof(slots), len(slots) // 2, ctypes.addressof(trap))
        keep_alive = (func, slots, trap, self._store)  # the addresses point into these
        context, ticks, timeout = self._context_address, self._deadline_ticks, self._timeout

        def call(*args: int) -> int:
            for i, arg in enumerate(args):
                slots[2 * i] = arg  # i32 args: Wasm reads the low 32 bits
            if ticks:
                _set_epoch_deadline(context, ticks)
            error = _func_call_unchecked(*addresses)
            if error or trap:
                raise _trap_error(error, trap, timeout)
            return slots[0] if nresults else 0

        call.keep_alive = keep_alive  # type: ignore[attr-defined]
        return call

    def memory(self) -> memoryview:
        size = _memory_data_size(self._context, self._memory_ref)
        return linear_memory_view(_memory_data(self._context, self._memory_ref) or 0, size)


def _trap_error(error: int | None, trap: ctypes._Pointer, timeout: float | None) -> WasmTrap:
    if trap:
        message = _reason(wasmtime.Trap._from_ptr(trap))  # takes ownership of the trap
        ctypes.memset(ctypes.addressof(trap), 0, ctypes.sizeof(trap))  # reset for the next call
    else:
        pointer = ctypes.cast(error, ctypes.POINTER(ffi.wasmtime_error_t))
        message = _reason(wasmtime.WasmtimeError._from_ptr(pointer))
    if timeout is not None and "interrupt" in message:
        message += f" (the call ran longer than CHONKLE_WASM_TIMEOUT={timeout:g} s)"
    return WasmTrap(f"Wasm trap: {message}")


def _reason(exc: object) -> str:
    """What went wrong: the last "Caused by" line of a wasmtime message (a trap's backtrace,
    a compile error's location), else its first line."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if "Caused by:" not in lines:
        return lines[0] if lines else type(exc).__name__
    reason = lines[-1].split(": ", 1)[1] if lines[-1][:1].isdigit() else lines[-1]
    return reason.removeprefix("wasm trap: ")
