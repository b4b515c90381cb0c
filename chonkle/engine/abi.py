"""Host side of the chonkle Wasm codec contract (docs/wasm-codec-contract.md).

A module is checked against the contract once, from its export and import
types, before it is ever instantiated: the engine adapters call exports
without per-call type checks, so a wrong signature must never get that far.

Per thread, one instance per module is kept and reused. An instance that
trapped or broke the contract is discarded (its memory may be corrupt) and the
next call builds a fresh one.
"""

from __future__ import annotations

import ctypes
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from chonkle import settings
from chonkle.engine import limits as limits_module
from chonkle.engine.compiled_cache import compile_cached
from chonkle.engine.limits import Limits
from chonkle.engine.protocol import (
    FuncSignature,
    ModuleInterface,
    WasmEngine,
    WasmInstance,
    WasmModule,
)
from chonkle.errors import ChonkleError, CodecError, LimitExceeded, WasmAbiError, WasmTrap

Direction = str  # "encode" | "decode"
DIRECTIONS: tuple[str, ...] = ("encode", "decode")
WASI_MODULE = "wasi_snapshot_preview1"

REQUIRED_FUNCTIONS: dict[str, FuncSignature] = {
    "alloc": FuncSignature(("i32",), ("i32",)),
    "dealloc": FuncSignature(("i32", "i32"), ()),
}
CODEC_SIGNATURE = FuncSignature(("i32", "i32", "i32", "i32"), ("i64",))
OPTIONAL_FUNCTIONS: dict[str, FuncSignature] = {
    "_initialize": FuncSignature((), ()),  # WASI reactor constructor
    "last_error": FuncSignature((), ("i64",)),  # chonkle extension: packed ptr/len of a message
    "set_output_limit": FuncSignature(("i32",), ()),  # chonkle extension: CHONKLE_MAX_OUTPUT
}
# The result (pointer 0, length 1): the codec refused to produce more than the output limit.
LIMIT_RESULT = 1
MAX_ERROR_MESSAGE = 4096
# Linear memory never shrinks, so an instance that grew past this (a huge chunk, or a
# decompression bomb) is dropped after the call instead of being kept for the next one.
MAX_RETAINED_MEMORY = 256 * 2**20
# A call that fails or traps with linear memory this close to CHONKLE_MAX_MEMORY ran into it.
MEMORY_LIMIT_SLACK = 16 * 2**20


@dataclass(frozen=True)
class CodecInterface:
    """What a checked module offers: its directions, whether it needs WASI or a constructor,
    which chonkle extensions it implements, and the configuration schema it declares."""

    directions: frozenset[str]
    wasi: bool
    initialize: bool
    last_error: bool
    output_limit: bool = False


def check_interface(interface: ModuleInterface, step: str) -> CodecInterface:
    """Verify a module follows the contract; raise :class:`WasmAbiError` naming what is off."""
    if "memory" not in interface.memories:
        raise WasmAbiError('module does not export its linear memory as "memory"', step=step)
    for name, signature in REQUIRED_FUNCTIONS.items():
        _check_function(interface, name, signature, step, required=True)
    directions = frozenset(
        d for d in DIRECTIONS if _check_function(interface, d, CODEC_SIGNATURE, step)
    )
    if not directions:
        raise WasmAbiError(
            f'module exports neither "encode" nor "decode" with signature {CODEC_SIGNATURE}',
            step=step,
        )
    present = {
        name: _check_function(interface, name, signature, step)
        for name, signature in OPTIONAL_FUNCTIONS.items()
    }
    foreign = sorted({f"{m}.{n}" for m, n in interface.imports if m != WASI_MODULE})
    if foreign:
        raise WasmAbiError(
            f"module imports {', '.join(foreign)}; a codec may import only {WASI_MODULE}",
            step=step,
        )
    return CodecInterface(directions, bool(interface.imports), present["_initialize"],
                          present["last_error"], present["set_output_limit"])


def _check_function(interface: ModuleInterface, name: str, expected: FuncSignature,
                    step: str, *, required: bool = False) -> bool:
    actual = interface.functions.get(name)
    if actual is None:
        if required:
            raise WasmAbiError(f'module does not export "{name}" {expected}', step=step)
        return False
    if actual != expected:
        raise WasmAbiError(
            f'export "{name}" has signature {actual}, the contract requires {expected}',
            step=step,
        )
    return True


# Compiled modules kept for reuse: the most recent ones (a pipeline holds on to its own).
MAX_POOLS = 64
_pools: dict[tuple, tuple[CodecInterface, InstancePool]] = {}
_pools_lock = threading.Lock()
_compile_locks: dict[tuple, threading.Lock] = {}


def module_pool(engine: WasmEngine, wasm: bytes, step: str,
                limits: Limits) -> tuple[CodecInterface, InstancePool]:
    """The checked interface and the instance pool of a module, once per process and engine.

    Compiling, checking and instantiating happen once however many pipelines use the module:
    a second ``Pipeline.load`` (or ``chonkle.decode(chunk, spec)`` per chunk) reuses this
    thread's instance. A new process loads the engine's compiled code from disk when it can
    (compiled_cache). The module is compiled as the limits require (interruptible unless
    shipped with chonkle; memory and table maxima rewritten for engines without store
    limits), so those choices are part of the key.
    """
    digest = hashlib.sha256(wasm).hexdigest()
    prepared = limits_module.prepare(wasm, digest, engine, limits, step)
    caps = (limits.max_memory, limits.max_table_elements) if prepared.capped else None
    key = (engine.name, digest, prepared.interruptible, caps)
    found = _pools.get(key)
    if found is None:
        with _pools_lock:  # one lock per module: a slow compile blocks no other module
            compile_lock = _compile_locks.setdefault(key, threading.Lock())
        with compile_lock:
            found = _pools.get(key)
            if found is None:
                compiled_digest = (hashlib.sha256(prepared.wasm).hexdigest() if prepared.capped
                                   else digest)
                try:
                    module = compile_cached(EngineVariant(engine, prepared.interruptible),
                                            prepared.wasm, compiled_digest)
                except ChonkleError as exc:
                    exc.step = exc.step or step
                    raise
                codec = check_interface(module.interface, step)
                found = (codec, InstancePool(module, codec, engine))
                with _pools_lock:
                    _pools[key] = found
                    while len(_pools) > MAX_POOLS:
                        oldest = next(iter(_pools))
                        del _pools[oldest]
                        _compile_locks.pop(oldest, None)
    return found


# Copies at least this large go through ctypes.memmove, which releases the GIL: with threads
# decoding chunks in parallel, a copy in one thread no longer stalls the Wasm of the others.
GIL_FREE_COPY = 64 * 1024


def copy_into(memory: memoryview, offset: int, data: memoryview) -> None:
    """Copy `data` into linear memory at `offset` (bounds already checked)."""
    if len(data) < GIL_FREE_COPY:
        memory[offset:offset + len(data)] = data
        return
    target = np.frombuffer(memory, np.uint8)
    source = np.frombuffer(data, np.uint8)
    ctypes.memmove(target.ctypes.data + offset, source.ctypes.data, len(data))


def copy_out(output: memoryview) -> np.ndarray:
    """A new array holding `output` (a view of linear memory, valid until the next call)."""
    if len(output) < GIL_FREE_COPY:
        return np.frombuffer(output, dtype=np.uint8).copy()
    result = np.empty(len(output), np.uint8)
    ctypes.memmove(result.ctypes.data, np.frombuffer(output, np.uint8).ctypes.data, len(output))
    return result


class EngineVariant:
    """An engine as one kind of module is compiled on it (with or without interruption
    checks), with the name and version the compiled-code cache keys artifacts by."""

    def __init__(self, engine: WasmEngine, interruptible: bool) -> None:
        self.engine, self.interruptible = engine, interruptible
        self.name = engine.name
        self.version = f"{engine.version}-interruptible" if interruptible else engine.version
        if hasattr(engine, "deserialize"):
            self.deserialize = self._deserialize

    def compile(self, wasm: bytes) -> WasmModule:
        if limits_module.speaks_limits(self.engine):
            return self.engine.compile(wasm, interruptible=self.interruptible)
        return self.engine.compile(wasm)  # an engine written for chonkle 0.1

    def _deserialize(self, data: bytes) -> WasmModule:
        if limits_module.speaks_limits(self.engine):
            return self.engine.deserialize(data, interruptible=self.interruptible)
        return self.engine.deserialize(data)


class CodecInstance:
    """One live instance with its exports bound; used by a single thread."""

    def __init__(self, module: WasmModule, codec: CodecInterface, limits: Limits,
                 new_protocol: bool) -> None:
        self._step = ""  # the label of the step being run, set by the pool for each call
        self._limits = limits
        self.memory_size = 0
        if new_protocol:
            self._instance: WasmInstance = module.instantiate(wasi=codec.wasi,
                                                              sandbox=limits.sandbox)
        else:
            self._instance = module.instantiate(wasi=codec.wasi)
        if codec.initialize:
            self._instance.function("_initialize")()
        if codec.output_limit:
            self._instance.function("set_output_limit")(limits.max_output)
        self._alloc = self._instance.function("alloc")
        self._dealloc = self._instance.function("dealloc")
        self._last_error = self._instance.function("last_error") if codec.last_error else None
        self._codec_functions: dict[str, Callable[..., int]] = {
            d: self._instance.function(d) for d in codec.directions
        }

    def call(self, direction: Direction, data: memoryview, config: bytes) -> memoryview:
        """Run one codec call; return a view of the output in linear memory.

        The view is valid until the next call into this instance: the caller copies it
        out, then calls :meth:`release`. ``healthy`` stays False unless the call ends
        normally or with the codec's own failure result; a pool discards an unhealthy
        instance, and nothing more is called in it (no dealloc after a trap).
        """
        self.healthy = False
        self.memory_size = 0  # linear memory after the call, once known
        function = self._codec_functions[direction]
        in_len, cfg_len = len(data), len(config)
        in_size = max(in_len, 1)  # an empty input still gets a real, freeable pointer
        in_ptr = self._allocate(in_size, "input")
        cfg_ptr = self._allocate(cfg_len, "configuration")
        memory = self._instance.memory()  # once, after both allocs: alloc may grow memory
        self._check_bounds(in_ptr, in_size, len(memory), "alloc for the input")
        self._check_bounds(cfg_ptr, cfg_len, len(memory), "alloc for the configuration")
        copy_into(memory, in_ptr, data)
        memory[cfg_ptr:cfg_ptr + cfg_len] = config
        del memory  # the call may grow (and move) linear memory
        try:
            packed = function(in_ptr, in_len, cfg_ptr, cfg_len) & 0xFFFF_FFFF_FFFF_FFFF
        except WasmTrap as exc:  # e.g. Rust's abort when an allocation fails at the cap
            if self._near_memory_limit():
                raise LimitExceeded(f"{direction} trapped with linear memory at the "
                                    f"{settings.MAX_MEMORY}={self._limits.max_memory}-byte "
                                    f"limit ({exc.message})", step=self._step) from exc
            raise
        self._dealloc(cfg_ptr, cfg_len)
        self._dealloc(in_ptr, in_size)
        out_ptr, out_len = packed >> 32, packed & 0xFFFF_FFFF
        if out_ptr == 0:
            self._fail(direction, out_len)
        memory = self._instance.memory()
        self.memory_size = len(memory)
        self._check_bounds(out_ptr, out_len, len(memory), f"{direction} output")
        self._pending = (out_ptr, out_len)
        if out_len > self._limits.max_output:
            self.release()  # healthy stays False: the instance is dropped after a breach
            raise LimitExceeded(f"{direction} produced {out_len} bytes, over "
                                f"{settings.MAX_OUTPUT}={self._limits.max_output}",
                                step=self._step)
        self.healthy = True
        return memory[out_ptr:out_ptr + out_len]

    def _fail(self, direction: Direction, code: int) -> None:
        """A failure result: the codec's own error, a limit it refused to pass, or a null
        pointer with a length (a contract violation)."""
        if code > LIMIT_RESULT:
            raise WasmAbiError(f"{direction} returned a null pointer with length {code}",
                               step=self._step)
        self.memory_size = len(self._instance.memory())  # a failed decode may have grown it
        detail = self._error_detail()
        if code == LIMIT_RESULT:
            raise LimitExceeded(f"{direction} stopped: the output would exceed "
                                f"{settings.MAX_OUTPUT}={self._limits.max_output} bytes"
                                f"{detail}", step=self._step)
        self.healthy = True
        if "out of memory" in detail or self._near_memory_limit():
            self.healthy = False
            raise LimitExceeded(f"{direction} failed{detail} (linear memory is limited to "
                                f"{settings.MAX_MEMORY}={self._limits.max_memory} bytes)",
                                step=self._step)
        raise CodecError(f"{direction} failed{detail}", step=self._step)

    def _near_memory_limit(self) -> bool:
        """Did the call fail with linear memory about full? Growing memory only fails at the
        limit, so a failure there is the limit's doing, whatever the module reports."""
        return len(self._instance.memory()) > self._limits.max_memory - MEMORY_LIMIT_SLACK

    def release(self) -> None:
        """Free the output of the last call (after the caller copied it out)."""
        out_ptr, out_len = self._pending
        healthy, self.healthy = self.healthy, False
        self._dealloc(out_ptr, out_len)
        self.healthy = healthy

    def _allocate(self, size: int, what: str) -> int:
        ptr = self._alloc(size) & 0xFFFF_FFFF
        if ptr != 0:
            return ptr
        memory_size = len(self._instance.memory())
        if memory_size + size > self._limits.max_memory:
            raise LimitExceeded(f"the {what} ({size} bytes) does not fit in linear memory "
                                f"limited to {settings.MAX_MEMORY}={self._limits.max_memory} "
                                "bytes", step=self._step)
        raise CodecError(f"alloc({size}) for the {what} failed (returned 0)", step=self._step)

    def _check_bounds(self, ptr: int, size: int, memory_size: int, what: str) -> None:
        if ptr + size > memory_size:
            raise WasmAbiError(
                f"{what} is at {ptr}+{size} bytes, outside linear memory of {memory_size} bytes",
                step=self._step,
            )

    def _error_detail(self) -> str:
        """The codec's own message, when it exports ``last_error`` (empty otherwise)."""
        if self._last_error is None:
            return ""
        packed = self._last_error() & 0xFFFF_FFFF_FFFF_FFFF
        ptr, length = packed >> 32, min(packed & 0xFFFF_FFFF, MAX_ERROR_MESSAGE)
        memory = self._instance.memory()
        if ptr == 0 or length == 0 or ptr + length > len(memory):
            return ""
        text = bytes(memory[ptr:ptr + length]).decode("utf-8", "replace")
        # the module's words, shown on a terminal: no control characters (escape sequences)
        return ": " + "".join(c if c.isprintable() else " " for c in text).strip()


class InstancePool:
    """A module's instances, one per thread and set of limits, rebuilt after a trap, a
    contract violation or a limit breach.

    Shared by every step that uses the module: the configuration, the limits and the step's
    label come with each call.
    """

    def __init__(self, module: WasmModule, codec: CodecInterface, engine: WasmEngine) -> None:
        self._module, self._codec = module, codec
        self._new_protocol = limits_module.speaks_limits(engine)
        self._local = threading.local()

    def run(self, direction: Direction, data: memoryview, config: bytes,
            copy_out: Callable[[memoryview], object], step: str, limits: Limits) -> object:
        """Call ``direction`` on this thread's instance; ``copy_out`` copies the output view."""
        instances = getattr(self._local, "instances", None)
        if instances is None:
            instances = self._local.instances = {}
        instance = instances.get(limits)
        if instance is None:
            instance = instances[limits] = self._new_instance(step, limits)
        instance._step = step
        try:
            output = instance.call(direction, data, config)
            try:
                return copy_out(output)
            finally:
                del output
                instance.release()
        except BaseException as exc:  # Ctrl-C included: the call did not finish
            if not instance.healthy:
                instances.pop(limits, None)  # trapped, broke the contract or a limit
            if isinstance(exc, ChonkleError):
                exc.step = exc.step or step
            raise
        finally:
            if instance.memory_size > MAX_RETAINED_MEMORY:
                instances.pop(limits, None)

    def _new_instance(self, step: str, limits: Limits) -> CodecInstance:
        try:
            return CodecInstance(self._module, self._codec, limits, self._new_protocol)
        except ChonkleError as exc:
            exc.step = exc.step or step
            raise
