"""Running Wasm codecs: the engine protocol and registry, the codec contract's host side
(abi), the Wasm step as a numcodecs codec, compiled-code caching and sandbox limits.

Importing this package imports no engine; ``get_runtime`` loads one on first use.
"""

from chonkle.engine.registry import get_runtime, installed_runtimes, runtime_statuses

__all__ = ["get_runtime", "installed_runtimes", "runtime_statuses"]
