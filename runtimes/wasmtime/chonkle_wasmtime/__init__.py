"""wasmtime adapter for chonkle's engine protocol (see ``chonkle.engine.protocol``).

wasmtime-py's ``Func.__call__`` boxes every value on each call (about 45 us); chonkle makes six
calls per codec step, so this adapter calls ``wasmtime_func_call_unchecked`` with a
preallocated argument buffer (about 2 us), sound because chonkle checks signatures before any
call (``chonkle.engine.abi``). ctypes releases the GIL, so threads run Wasm in parallel.

Limits: every store gets wasmtime's store limits; ``interruptible`` modules run on a second
engine with epoch interruption (chonkle.engine.ticker advances it), with a deadline set before
instantiation and before every call. Proposals a codec has no use for (64-bit and multiple
memories, threads, GC, exceptions...) are off, so modules needing them do not compile.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable
from importlib.metadata import version

import wasmtime
from wasmtime import _bindings as ffi

from chonkle.engine import protocol, ticker
from chonkle.engine.protocol import ModuleInterface, Sandbox, linear_memory_view
from chonkle.errors import ChonkleError, CodecError, LimitExceeded, WasmTrap


def _raw(symbol: str, restype: type, nargs: int) -> ctypes._CFuncPtr:
    """A new handle (not wasmtime-py's) on a C API function taking plain addresses."""
    function = ffi.dll[symbol]
    function.restype = restype
    function.argtypes = [ctypes.c_void_p] * nargs
    return function


_memory_data = _raw("wasmtime_memory_data", ctypes.c_void_p, 2)
_memory_data_size = _raw("wasmtime_memory_data_size", ctypes.c_size_t, 2)
# (context, func, args_and_results, count, trap out-pointer) -> wasmtime_error_t* or NULL
_func_call_unchecked = _raw("wasmtime_func_call_unchecked", ctypes.c_void_p, 5)
_set_epoch_deadline = _raw("wasmtime_context_set_epoch_deadline", None, 2)  # (context, u64)

DISABLED_PROPOSALS = ("wasm_memory64", "wasm_multi_memory", "wasm_threads", "wasm_gc",
                      "wasm_function_references", "wasm_exceptions", "wasm_stack_switching",
                      "wasm_wide_arithmetic", "wasm_custom_page_sizes", "wasm_relaxed_simd")
_POLL_ONEOFF = wasmtime.FuncType([wasmtime.ValType.i32()] * 4, [wasmtime.ValType.i32()])


class WasmtimeEngine:
    """Two wasmtime Engines for this process, one with epoch interruption; modules compiled
    on them are shared by all threads."""

    name, parallel_threads = "wasmtime", True  # calls release the GIL
    enforces = frozenset({protocol.MEMORY, protocol.TABLES, protocol.TIME})

    def __init__(self) -> None:
        self.version = version("wasmtime")
        self.longest_deadline = 1  # ticks: how far Ctrl-C advances the epoch
        self._engines = {interruptible: self._new_engine(interruptible)
                         for interruptible in (False, True)}

    def engine(self, interruptible: bool) -> wasmtime.Engine:
        return self._engines[interruptible]

    def _new_engine(self, interruptible: bool) -> wasmtime.Engine:
        config = wasmtime.Config()
        for proposal in DISABLED_PROPOSALS:
            if hasattr(type(config), proposal):  # older wasmtime-py lacks some setters
                setattr(config, proposal, False)
        config.epoch_interruption = interruptible
        engine = wasmtime.Engine(config)
        if interruptible:
            ticker.start(engine.increment_epoch, lambda: self.longest_deadline)
        return engine

    def compile(self, wasm: bytes, *, interruptible: bool = False) -> WasmtimeModule:
        try:
            module = wasmtime.Module(self.engine(interruptible), wasm)
        except wasmtime.WasmtimeError as exc:
            raise CodecError(f"not a valid Wasm module: {_reason(exc)}") from exc
        return WasmtimeModule(self, module, interruptible)

    def deserialize(self, data: bytes, *, interruptible: bool = False) -> WasmtimeModule:
        """A module from `serialize` output (wasmtime rejects other versions or CPUs)."""
        module = wasmtime.Module.deserialize(self.engine(interruptible), data)
        return WasmtimeModule(self, module, interruptible)


class WasmtimeModule:
    def __init__(self, owner: WasmtimeEngine, module: wasmtime.Module,
                 interruptible: bool) -> None:
        self._owner, self._module, self._interruptible = owner, module, interruptible
        self._engine = owner.engine(interruptible)
        exports = module.exports
        self.interface = ModuleInterface.of(
            [(e.name, e.type.params, e.type.results) for e in exports
             if isinstance(e.type, wasmtime.FuncType)],
            [e.name for e in exports if isinstance(e.type, wasmtime.MemoryType)],
            [(imp.module, imp.name or "") for imp in module.imports])

    def serialize(self) -> bytes:
        return bytes(self._module.serialize())

    def instantiate(self, *, wasi: bool, sandbox: Sandbox) -> WasmtimeInstance:
        store = wasmtime.Store(self._engine)
        store.set_limits(sandbox.max_memory, sandbox.max_table_elements, instances=1, tables=1,
                         memories=1)
        timeout = sandbox.timeout if self._interruptible else None
        ticks = max(1, math.ceil(timeout / ticker.TICK_SECONDS)) if timeout else 0
        if ticks:
            self._owner.longest_deadline = max(self._owner.longest_deadline, ticks)
            store.set_epoch_deadline(ticks)  # covers the start function too
        try:
            if wasi:
                store.set_wasi(wasmtime.WasiConfig())  # no preopens, env, args; stdio closed
                linker = wasmtime.Linker(self._engine)
                linker.define_wasi()
                linker.allow_shadowing = True
                linker.define_func("wasi_snapshot_preview1", "poll_oneoff", _POLL_ONEOFF,
                                   lambda *args: 58)  # ENOTSUP: no sleeping past a deadline
                instance = linker.instantiate(store, self._module)
            else:
                instance = wasmtime.Instance(store, self._module, [])
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            raise _trap_error(_reason(exc), timeout, "instantiation failed: ") from exc
        return WasmtimeInstance(store, instance, ticks, timeout)


class WasmtimeInstance:
    def __init__(self, store: wasmtime.Store, instance: wasmtime.Instance, ticks: int,
                 timeout: float | None) -> None:
        self._store = store
        self._deadline_ticks, self._timeout = ticks, timeout
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
                raise _trap_error(_take_message(error, trap), timeout)
            return slots[0] if nresults else 0

        call.keep_alive = keep_alive  # type: ignore[attr-defined]
        return call

    def memory(self) -> memoryview:
        size = _memory_data_size(self._context, self._memory_ref)
        return linear_memory_view(_memory_data(self._context, self._memory_ref) or 0, size)


def _take_message(error: int | None, trap: ctypes._Pointer) -> str:
    if not trap:
        return _reason(wasmtime.WasmtimeError._from_ptr(
            ctypes.cast(error, ctypes.POINTER(ffi.wasmtime_error_t))))
    message = _reason(wasmtime.Trap._from_ptr(trap))  # takes ownership of the trap
    ctypes.memset(ctypes.addressof(trap), 0, ctypes.sizeof(trap))  # reset for the next call
    return message


def _trap_error(message: str, timeout: float | None, prefix: str = "") -> ChonkleError:
    """A trap as chonkle reports it: the time limit as LimitExceeded, proc_exit as the call
    ending, the rest as WasmTrap."""
    if timeout is not None and "interrupt" in message:
        return protocol.timed_out(timeout, prefix)
    if message.startswith("Exited with i32 exit status"):
        return protocol.exited(message.rsplit(" ", 1)[-1], prefix)
    if "resource limit exceeded" in message or "exceeds memory limits" in message:
        return LimitExceeded(f"{prefix}{message} (CHONKLE_MAX_MEMORY)")
    return WasmTrap(f"{prefix or 'Wasm trap: '}{message}")


def _reason(exc: object) -> str:
    """What went wrong: the last "Caused by" line of a wasmtime message (a trap's backtrace,
    a compile error's location), else its first line."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if "Caused by:" not in lines:
        return lines[0] if lines else type(exc).__name__
    reason = lines[-1].split(": ", 1)[1] if lines[-1][:1].isdigit() else lines[-1]
    return reason.removeprefix("wasm trap: ")
