"""The sandbox a Wasm step runs in: its limits, read from the settings, and imposed on the
module itself where the engine cannot impose them.

Every limit is on by default: 1 GiB of linear memory per instance (CHONKLE_MAX_MEMORY),
1 GiB of output per call (CHONKLE_MAX_OUTPUT), 30 s per call (CHONKLE_WASM_TIMEOUT) and a
fixed table cap. The time limit needs interruption checks compiled into the module, which
cost 10-20% of Wasm speed; the codecs shipped with chonkle (part of the installed package and
fuzzed in CI) run without them, every other module with them.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from chonkle import settings
from chonkle.engine.protocol import MEMORY, TABLES, TIME, Sandbox, WasmEngine
from chonkle.engine.wasm_binary import PAGE_SIZE, MalformedModule, cap_resources, resource_shape
from chonkle.errors import LimitExceeded, WasmAbiError

# Elements of all tables of an instance: C needs one table of a few hundred function
# pointers; each element costs 8 bytes of host memory that a table.grow loop could claim.
MAX_TABLE_ELEMENTS = 100_000


@dataclass(frozen=True)
class Limits:
    """What one Wasm step may use, fixed when its pipeline is built."""

    max_memory: int
    max_output: int
    timeout: float | None
    max_table_elements: int = MAX_TABLE_ELEMENTS

    @property
    def sandbox(self) -> Sandbox:
        return Sandbox(self.max_memory, self.max_table_elements, self.timeout)


def current() -> Limits:
    """The limits the settings give now."""
    return Limits(settings.max_memory(), settings.max_output(), settings.wasm_timeout())


def enforced_by(engine: WasmEngine) -> frozenset[str]:
    return frozenset(getattr(engine, "enforces", frozenset()))


def speaks_limits(engine: WasmEngine) -> bool:
    """Does the engine take ``interruptible=`` and ``sandbox=`` (it declares ``enforces``)?"""
    return hasattr(engine, "enforces")


@functools.cache
def shipped_digests() -> frozenset[str]:
    """SHA-256 of every codec shipped inside chonkle: trusted to run without time checks."""
    from chonkle.sources.shipped import shipped_codecs, shipped_module

    return frozenset(hashlib.sha256(shipped_module(n)).hexdigest() for n in shipped_codecs())


@dataclass(frozen=True)
class Preparation:
    """How a module is compiled for an engine: the bytes to compile, and whether calls into
    it must be interruptible."""

    wasm: bytes
    interruptible: bool
    capped: bool  # its memory and table maxima were rewritten to the limits


def prepare(wasm: bytes, digest: str, engine: WasmEngine, limits: Limits,
            step: str) -> Preparation:
    """Refuse what chonkle disables, and impose on the module what the engine cannot.

    A module needing 64-bit, shared or several memories is a WasmAbiError. One whose
    initial memory or tables are already over the limits is a LimitExceeded. For an engine
    without store limits, the module's own maxima are lowered to the limits, so
    ``memory.grow`` and ``table.grow`` past them fail inside the module.
    """
    try:
        shape = resource_shape(wasm)
    except MalformedModule as exc:
        raise WasmAbiError(f"not a valid Wasm module: {exc}", step=step) from None
    if any(m.memory64 for m in shape.memories):
        raise WasmAbiError("the module needs 64-bit memory, which chonkle does not enable",
                           step=step)
    if any(m.shared for m in shape.memories):
        raise WasmAbiError("the module needs shared memory (threads), which chonkle does not "
                           "enable", step=step)
    if len(shape.memories) > 1:
        raise WasmAbiError(f"the module has {len(shape.memories)} memories; chonkle allows one",
                           step=step)
    initial = sum(m.minimum for m in shape.memories) * PAGE_SIZE
    if initial > limits.max_memory:
        raise LimitExceeded(f"the module starts with {initial} bytes of memory, over "
                            f"{settings.MAX_MEMORY}={limits.max_memory}", step=step)
    if len(shape.tables) > 1:  # the cap is per table: several would multiply it
        raise WasmAbiError(f"the module has {len(shape.tables)} tables; chonkle allows one",
                           step=step)
    elements = sum(t.minimum for t in shape.tables)
    if elements > limits.max_table_elements:
        raise LimitExceeded(f"the module starts with {elements} table elements, over the "
                            f"limit of {limits.max_table_elements}", step=step)
    enforced = enforced_by(engine)
    interruptible = (limits.timeout is not None and TIME in enforced
                     and digest not in shipped_digests())
    if MEMORY in enforced and TABLES in enforced:
        return Preparation(wasm, interruptible, capped=False)
    try:
        capped = cap_resources(wasm, limits.max_memory // PAGE_SIZE, limits.max_table_elements)
    except MalformedModule as exc:
        raise WasmAbiError(f"cannot impose the sandbox limits: {exc}", step=step) from None
    return Preparation(capped, interruptible, capped=True)


def describe(engine: WasmEngine) -> str:
    """What `chonkle runtimes` says of the limits an engine runs modules under."""
    enforced = enforced_by(engine)
    where = {True: "by the engine", False: "in the module"}
    time = "time (but not for chonkle's own codecs)" if TIME in enforced else "NO time limit"
    return (f"memory ({where[MEMORY in enforced]}), tables ({where[TABLES in enforced]}), "
            f"output, {time}")
