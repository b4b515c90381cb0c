"""Every setting chonkle reads from the environment, in one place.

Settings are read when used, not at import, so a test or a long-lived process can change
them. A malformed value is a :class:`chonkle.errors.SettingError` naming the variable; a
limit is never silently switched off by a typo. Each limit is on by default.
"""

from __future__ import annotations

import os
from pathlib import Path

from chonkle.errors import SettingError

GiB = 2**30
MiB = 2**20

RUNTIME = "CHONKLE_RUNTIME"
CACHE_DIR = "CHONKLE_CACHE_DIR"
KEY_DIR = "CHONKLE_KEY_DIR"
OFFLINE = "CHONKLE_OFFLINE"
FORCE_DOWNLOAD = "CHONKLE_FORCE_DOWNLOAD"
REQUIRE_DIGEST = "CHONKLE_REQUIRE_DIGEST"
INSECURE_REGISTRIES = "CHONKLE_INSECURE_REGISTRIES"
COMPILED_CACHE = "CHONKLE_COMPILED_CACHE"
WASM_TIMEOUT = "CHONKLE_WASM_TIMEOUT"
MAX_MEMORY = "CHONKLE_MAX_MEMORY"
MAX_OUTPUT = "CHONKLE_MAX_OUTPUT"
MAX_MODULE_SIZE = "CHONKLE_MAX_MODULE_SIZE"
HTTP_TIMEOUT = "CHONKLE_HTTP_TIMEOUT"
HTTP_RETRIES = "CHONKLE_HTTP_RETRIES"
HTTP_DEADLINE = "CHONKLE_HTTP_DEADLINE"
ALLOW_CODECS = "CHONKLE_ALLOW_CODECS"

DEFAULT_WASM_TIMEOUT = 30.0
DEFAULT_MAX_MEMORY = 1 * GiB
DEFAULT_MAX_OUTPUT = 1 * GiB
DEFAULT_MAX_MODULE_SIZE = 64 * MiB
# Linear memory is 32-bit: no call can hold or return more than this.
WASM32_LIMIT = 4 * GiB - 64 * 1024

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return value.strip() if value is not None and value.strip() else None


def flag(name: str, default: bool = False) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise SettingError(f"{name}={value!r} is not a yes/no value (use 1 or 0)")


def unknown_settings() -> list[str]:
    """CHONKLE_* variables chonkle does not know (a typo leaves a policy off)."""
    known = {value for key, value in globals().items()
             if key.isupper() and isinstance(value, str) and value.startswith("CHONKLE_")}
    return sorted(name for name in os.environ if name.startswith("CHONKLE_")
                  and not name.startswith(("CHONKLE_TEST_", "CHONKLE_BENCH_"))
                  and name not in known)


def number(name: str, default: float, *, minimum: float = 0.0) -> float:
    value = _raw(name)
    if value is None:
        return default
    try:
        parsed = float(value)
    except ValueError:
        raise SettingError(f"{name}={value!r} is not a number") from None
    if not parsed >= minimum or parsed == float("inf"):
        raise SettingError(f"{name}={value!r} must be a finite number of at least {minimum:g}")
    return parsed


_UNITS = {"": 1, "k": 1024, "kib": 1024, "m": MiB, "mib": MiB, "g": GiB, "gib": GiB}


def size(name: str, default: int, *, maximum: int | None = None) -> int:
    """A size in bytes: a plain integer, or with a binary unit (``512MiB``, ``2G``)."""
    value = _raw(name)
    if value is None:
        return default
    digits = value.rstrip("kKmMgGiIbB ")
    unit = value[len(digits):].strip().lower()
    try:
        parsed = int(digits) * _UNITS[unit]
    except (ValueError, KeyError):
        raise SettingError(f"{name}={value!r} is not a size in bytes (such as 1073741824 or "
                           "1GiB)") from None
    if parsed < 1:
        raise SettingError(f"{name}={value!r} must be at least 1 byte")
    if maximum is not None and parsed > maximum:
        raise SettingError(f"{name}={value!r} is over the most chonkle can use ({maximum} "
                           "bytes)")
    return parsed


def runtime_name() -> str | None:
    return _raw(RUNTIME)


def cache_root() -> Path | None:
    """``CHONKLE_CACHE_DIR`` if set (the default is chosen by chonkle.sources.cache)."""
    value = _raw(CACHE_DIR)
    return Path(value).expanduser() if value else None


def key_root() -> Path:
    """Where the key authenticating compiled code lives: never inside the cache it protects
    (a cache folder may be copied or restored from elsewhere), but in the per-user config
    folder (``~/.config/chonkle`` on Linux), or ``CHONKLE_KEY_DIR``."""
    value = _raw(KEY_DIR)
    if value:
        return Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("chonkle"))


def offline() -> bool:
    return flag(OFFLINE)


def force_download() -> bool:
    return flag(FORCE_DOWNLOAD)


def require_digest() -> bool:
    return flag(REQUIRE_DIGEST)


def compiled_cache_enabled() -> bool:
    return flag(COMPILED_CACHE, default=True)


def insecure_registries() -> set[str]:
    return {h.strip() for h in (_raw(INSECURE_REGISTRIES) or "").split(",") if h.strip()}


def wasm_timeout() -> float | None:
    """Seconds one call into Wasm may run (30 by default); ``0`` turns the limit off.

    Only a plain ``0`` does: ``-0``, ``1e-400`` or a negative number is an error, never a
    limit quietly switched off.
    """
    if _raw(WASM_TIMEOUT) in ("0", "0.0"):
        return None
    return number(WASM_TIMEOUT, DEFAULT_WASM_TIMEOUT, minimum=1e-3)


def max_memory() -> int:
    """Bytes of linear memory one instance may hold (1 GiB by default)."""
    return size(MAX_MEMORY, DEFAULT_MAX_MEMORY, maximum=4 * GiB)


def max_output() -> int:
    """Bytes one call into a codec may produce (1 GiB by default)."""
    return size(MAX_OUTPUT, DEFAULT_MAX_OUTPUT, maximum=WASM32_LIMIT)


def max_module_size() -> int:
    return size(MAX_MODULE_SIZE, DEFAULT_MAX_MODULE_SIZE)


def http_timeout() -> float:
    return number(HTTP_TIMEOUT, 30.0, minimum=0.001)


def http_retries() -> int:
    return int(number(HTTP_RETRIES, 3))


def http_deadline() -> float:
    """Seconds one download may take in all, retries included (300 by default)."""
    return number(HTTP_DEADLINE, 300.0, minimum=0.001)


def allowed_codecs() -> frozenset[str]:
    """numcodecs codecs allowed beyond the built-in list of data codecs."""
    return frozenset(n.strip() for n in (_raw(ALLOW_CODECS) or "").split(",") if n.strip())


def build_fingerprint() -> tuple[object, ...]:
    """The raw values of the settings that decide how a pipeline is built, or whether at all.

    A pipeline remembered by ``decode(chunk, spec)`` is reused only while these are
    unchanged, so turning a policy on or a limit down is never bypassed by an earlier build.
    This runs on every such call, so it reads ``os.environ``'s underlying mapping with
    pre-encoded keys (six ``os.environ.get`` calls would cost more than the rest together).
    """
    if _ENVIRON_DATA is not None:
        return tuple(map(_ENVIRON_DATA.get, _FINGERPRINT_KEYS))
    return tuple(os.environ.get(name) for name in _FINGERPRINT)


_FINGERPRINT = (RUNTIME, REQUIRE_DIGEST, ALLOW_CODECS, MAX_MEMORY, MAX_OUTPUT, WASM_TIMEOUT)
# CPython's os.environ keeps its data in ``_data`` under ``encodekey(name)``; elsewhere the
# public mapping is used.
_ENVIRON_DATA = getattr(os.environ, "_data", None)
_encodekey = getattr(os.environ, "encodekey", None)
if _ENVIRON_DATA is None or _encodekey is None:
    _ENVIRON_DATA = None
    _FINGERPRINT_KEYS: tuple[object, ...] = ()
else:
    _FINGERPRINT_KEYS = tuple(_encodekey(name) for name in _FINGERPRINT)
