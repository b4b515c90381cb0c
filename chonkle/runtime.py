"""The engine protocol and registry under their original import path.

Third-party engines written against ``chonkle.runtime`` keep working; new code imports
``chonkle.engine``.
"""

from chonkle.engine.protocol import (
    FuncSignature,
    ModuleInterface,
    WasmEngine,
    WasmInstance,
    WasmModule,
    linear_memory_view,
)
from chonkle.engine.registry import (
    DEFAULT_RUNTIME,
    ENTRY_POINT_GROUP,
    RUNTIME_ENV_VAR,
    RuntimeStatus,
    get_runtime,
    installed_runtimes,
    resolve_runtime_name,
    runtime_statuses,
)

__all__ = [
    "DEFAULT_RUNTIME",
    "ENTRY_POINT_GROUP",
    "RUNTIME_ENV_VAR",
    "FuncSignature",
    "ModuleInterface",
    "RuntimeStatus",
    "WasmEngine",
    "WasmInstance",
    "WasmModule",
    "get_runtime",
    "installed_runtimes",
    "linear_memory_view",
    "resolve_runtime_name",
    "runtime_statuses",
]
