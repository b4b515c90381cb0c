"""Host side of the chonkle Wasm codec contract (docs/wasm-codec-contract.md).

A module is checked against the contract once, from its export and import
types, before it is ever instantiated: the engine adapters call exports
without per-call type checks, so a wrong signature must never get that far.

Per thread, one instance per module is kept and reused. An instance that
trapped or broke the contract is discarded (its memory may be corrupt) and the
next call builds a fresh one.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chonkle import settings
from chonkle.engine import config_schema
from chonkle.engine.compiled_cache import compile_cached
from chonkle.engine.protocol import (
    FuncSignature,
    ModuleInterface,
    WasmEngine,
    WasmInstance,
    WasmModule,
)
from chonkle.engine.wasm_binary import MalformedModule, custom_section
from chonkle.errors import ChonkleError, CodecError, LimitExceeded, WasmAbiError

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


@dataclass(frozen=True)
class CodecInterface:
    """What a checked module offers: its directions, whether it needs WASI or a constructor,
    which chonkle extensions it implements, and the configuration schema it declares."""

    directions: frozenset[str]
    wasi: bool
    initialize: bool
    last_error: bool
    output_limit: bool = False
    config_schema: Mapping[str, Any] | None = None


def check_interface(interface: ModuleInterface, step: str,
                    wasm: bytes | None = None) -> CodecInterface:
    """Verify a module follows the contract; raise :class:`WasmAbiError` naming what is off.

    With the module's bytes, its declared configuration schema is read too.
    """
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
                          present["last_error"], present["set_output_limit"],
                          None if wasm is None else _declared_schema(wasm, step))


def _declared_schema(wasm: bytes, step: str) -> Mapping[str, Any] | None:
    try:
        payload = custom_section(wasm, config_schema.SECTION_NAME)
        return None if payload is None else config_schema.parse_schema(payload)
    except (MalformedModule, config_schema.SchemaError) as exc:
        raise WasmAbiError(f"invalid {config_schema.SECTION_NAME} section: {exc}",
                           step=step) from None


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


_pools: dict[tuple[str, str], tuple[CodecInterface, InstancePool]] = {}
_compile_lock = threading.Lock()


def module_pool(engine: WasmEngine, wasm: bytes, step: str) -> tuple[CodecInterface, InstancePool]:
    """The checked interface and the instance pool of a module, once per process and engine.

    Compiling, checking and instantiating happen once however many pipelines use the module:
    a second ``Pipeline.load`` (or ``chonkle.decode(chunk, spec)`` per chunk) reuses this
    thread's instance. A new process loads the engine's compiled code from disk when it can
    (compiled_cache).
    """
    key = (engine.name, hashlib.sha256(wasm).hexdigest())
    found = _pools.get(key)
    if found is None:
        with _compile_lock:
            found = _pools.get(key)
            if found is None:
                try:
                    module = compile_cached(engine, wasm, key[1])
                except ChonkleError as exc:
                    exc.step = exc.step or step
                    raise
                codec = check_interface(module.interface, step, wasm)
                found = _pools[key] = (codec, InstancePool(module, codec))
    return found


class CodecInstance:
    """One live instance with its exports bound; used by a single thread."""

    def __init__(self, module: WasmModule, codec: CodecInterface) -> None:
        self._step = ""  # the label of the step being run, set by the pool for each call
        self._instance: WasmInstance = module.instantiate(wasi=codec.wasi)
        if codec.initialize:
            self._instance.function("_initialize")()
        self._set_output_limit = (self._instance.function("set_output_limit")
                                  if codec.output_limit else None)
        self._output_limit = -1  # what the module was last told
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
        limit = settings.max_output()
        if self._set_output_limit is not None and limit != self._output_limit:
            self._set_output_limit(limit)
            self._output_limit = limit
        in_len, cfg_len = len(data), len(config)
        in_size = max(in_len, 1)  # an empty input still gets a real, freeable pointer
        in_ptr = self._allocate(in_size, "input")
        cfg_ptr = self._allocate(cfg_len, "configuration")
        memory = self._instance.memory()  # once, after both allocs: alloc may grow memory
        self._check_bounds(in_ptr, in_size, len(memory), "alloc for the input")
        self._check_bounds(cfg_ptr, cfg_len, len(memory), "alloc for the configuration")
        memory[in_ptr:in_ptr + in_len] = data
        memory[cfg_ptr:cfg_ptr + cfg_len] = config
        del memory  # the call may grow (and move) linear memory
        packed = function(in_ptr, in_len, cfg_ptr, cfg_len) & 0xFFFF_FFFF_FFFF_FFFF
        self._dealloc(cfg_ptr, cfg_len)
        self._dealloc(in_ptr, in_size)
        out_ptr, out_len = packed >> 32, packed & 0xFFFF_FFFF
        if out_ptr == 0 and out_len in (0, LIMIT_RESULT):
            self.memory_size = len(self._instance.memory())  # a failed decode may have grown it
            detail = self._error_detail()
            self.healthy = True
            if out_len == LIMIT_RESULT:
                raise LimitExceeded(f"{direction} stopped: the output would exceed "
                                    f"{settings.MAX_OUTPUT}={limit} bytes{detail}",
                                    step=self._step)
            raise CodecError(f"{direction} failed{detail}", step=self._step)
        if out_ptr == 0:
            raise WasmAbiError(f"{direction} returned a null pointer with length {out_len}",
                               step=self._step)
        memory = self._instance.memory()
        self.memory_size = len(memory)
        self._check_bounds(out_ptr, out_len, len(memory), f"{direction} output")
        if out_len > limit:
            self.healthy = True  # memory is intact: the output is simply too large
            self._pending = (out_ptr, out_len)
            self.release()
            raise LimitExceeded(f"{direction} produced {out_len} bytes, over "
                                f"{settings.MAX_OUTPUT}={limit} bytes", step=self._step)
        self._pending = (out_ptr, out_len)
        self.healthy = True
        return memory[out_ptr:out_ptr + out_len]

    def release(self) -> None:
        """Free the output of the last call (after the caller copied it out)."""
        out_ptr, out_len = self._pending
        self.healthy = False
        self._dealloc(out_ptr, out_len)
        self.healthy = True

    def _allocate(self, size: int, what: str) -> int:
        ptr = self._alloc(size) & 0xFFFF_FFFF
        if ptr == 0:
            raise CodecError(f"alloc({size}) for the {what} failed (returned 0)", step=self._step)
        return ptr

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
        return ": " + bytes(memory[ptr:ptr + length]).decode("utf-8", "replace")


class InstancePool:
    """A module's instances, one per thread, rebuilt after a trap or contract violation.

    Shared by every step that uses the module: the configuration and the step's label come
    with each call.
    """

    def __init__(self, module: WasmModule, codec: CodecInterface) -> None:
        self._module, self._codec = module, codec
        self._local = threading.local()

    def run(self, direction: Direction, data: memoryview, config: bytes,
            copy_out: Callable[[memoryview], object], step: str) -> object:
        """Call ``direction`` on this thread's instance; ``copy_out`` copies the output view."""
        instance = getattr(self._local, "instance", None)
        if instance is None:
            instance = self._local.instance = self._new_instance(step)
        instance._step = step
        try:
            output = instance.call(direction, data, config)
            try:
                return copy_out(output)
            finally:
                del output
                instance.release()
        except ChonkleError as exc:
            if not instance.healthy:
                self._local.instance = None  # trapped or broke the contract: memory untrusted
            exc.step = exc.step or step
            raise
        finally:
            if self._local.instance is not None and instance.memory_size > MAX_RETAINED_MEMORY:
                self._local.instance = None

    def _new_instance(self, step: str) -> CodecInstance:
        try:
            return CodecInstance(self._module, self._codec)
        except ChonkleError as exc:
            exc.step = exc.step or step
            raise
