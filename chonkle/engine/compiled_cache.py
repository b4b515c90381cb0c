"""Engines' compiled code on disk, so a new process decodes its first chunk without compiling.

Keyed by engine name and version and by the module's SHA-256. Loading compiled code runs
native code, so an artifact is trusted only if (1) it sits in a directory owned by this user
that nobody else can write (the default cache root is in the shared temporary directory), and
(2) its own checksum matches. Anything else (stale, corrupt, foreign) is deleted and rebuilt;
the engine itself also rejects artifacts from another version or CPU. Disable with
CHONKLE_COMPILED_CACHE=0.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from chonkle import settings
from chonkle.engine.protocol import WasmEngine, WasmModule
from chonkle.sources.cache import cache_dir

MAGIC = b"chonkle-compiled-v1\n"


def enabled() -> bool:
    return settings.compiled_cache_enabled()


def compile_cached(engine: WasmEngine, wasm: bytes, digest: str) -> WasmModule:
    deserialize = getattr(engine, "deserialize", None)
    if deserialize is None or not enabled():
        return engine.compile(wasm)
    folder = cache_dir() / "compiled" / _safe(f"{engine.name}-{engine.version}")
    path = folder / f"{digest}.bin"
    if _private(folder) and _owned(path):
        module = _load(deserialize, path)
        if module is not None:
            return module
    module = engine.compile(wasm)
    with contextlib.suppress(Exception):  # the cache is an optimization: never fail a decode
        _store(folder, path, module.serialize())
    return module


def _load(deserialize, path: Path) -> WasmModule | None:
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    header = len(MAGIC) + 32
    checksum, payload = blob[len(MAGIC):header], blob[header:]
    if blob[:len(MAGIC)] == MAGIC and hashlib.sha256(payload).digest() == checksum:
        try:
            return deserialize(payload)
        except Exception:  # another engine build or CPU: rebuild
            pass
    path.unlink(missing_ok=True)
    return None


def _store(folder: Path, path: Path, payload: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not _private(folder):
        return
    fd, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(MAGIC + hashlib.sha256(payload).digest() + payload)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _private(folder: Path) -> bool:
    """Is every directory from the cache root down to `folder` ours and closed to others?"""
    if not hasattr(os, "getuid"):
        return True
    root = cache_dir()
    with contextlib.suppress(OSError):
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
    for directory in [root, *reversed([p for p in folder.parents if root in p.parents]), folder]:
        try:
            info = directory.stat()
        except FileNotFoundError:
            continue
        except OSError:
            return False
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return False
    return True


def _owned(path: Path) -> bool:
    if not hasattr(os, "getuid"):
        return True
    try:
        return path.stat().st_uid == os.getuid()
    except OSError:
        return False


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in name)
