"""The on-disk cache of downloaded Wasm modules: content-addressed, verified on every read.

Layout under ``$CHONKLE_CACHE_DIR`` (default ``$TMPDIR/chonkle/wasm``):

    blobs/sha256/<hex>   module bytes, named by their SHA-256
    uris/<key>.json      which digest a URI resolved to, and when
    tmp/                 downloads in progress (renamed into blobs/ when complete)
    locks/<key>.lock     one process downloads a URI while the others wait

A blob is re-hashed whenever it is read, so a corrupted or truncated entry is noticed,
deleted and fetched again; a download becomes visible only by an atomic rename, so no
reader ever sees a partial file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from chonkle import settings
from chonkle.errors import SourceError

try:
    import fcntl
except ImportError:  # Windows: downloads stay atomic, but are not deduplicated across processes
    fcntl = None



def cache_dir() -> Path:
    return settings.cache_root() or Path(tempfile.gettempdir()) / "chonkle" / "wasm"


def check_digest(data: bytes, expected: str | None, where: str) -> str:
    """The SHA-256 of `data`; refuses it (SourceError) if it is not the pinned `expected`."""
    actual = hashlib.sha256(data).hexdigest()
    if expected is not None and actual != expected:
        raise SourceError(f"module from {where} has sha256 {actual}, but the pipeline pins "
                          f"{expected}; refusing to run it")
    return actual



@dataclass(frozen=True)
class CacheEntry:
    uri: str
    sha256: str
    size: int
    fetched: float


class ModuleCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache_dir()

    # -- reading ---------------------------------------------------------------------------

    def blob(self, digest: str) -> bytes | None:
        """The module with this SHA-256, if cached and intact (a damaged blob is deleted)."""
        path = self._blob_path(digest)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != digest:
            path.unlink(missing_ok=True)
            return None
        return data

    def lookup(self, uri: str) -> tuple[bytes, str] | None:
        """The module last fetched from `uri`, if its index entry and blob are intact."""
        entry = self._read_index(self._index_path(uri))
        if entry is None or entry.uri != uri:
            return None
        data = self.blob(entry.sha256)
        return None if data is None else (data, entry.sha256)

    def entries(self) -> list[CacheEntry]:
        paths = sorted((self.root / "uris").glob("*.json"))
        found = (self._read_index(p) for p in paths)
        return sorted((e for e in found if e is not None), key=lambda e: e.uri)

    # -- writing ---------------------------------------------------------------------------

    def download(self, uri: str, fill: Callable[[BinaryIO], None],
                 expected: str | None = None, *, reuse: bool = True) -> tuple[bytes, str]:
        """Fetch `uri` with `fill` (which writes the module into a file) and cache it.

        Under a per-URI lock, so concurrent threads and processes download once: whoever
        waited finds the entry already there (when `reuse`). The bytes are verified
        against `expected` before anything is stored, so a wrong download leaves no trace.
        """
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._lock(uri):
            if reuse:
                hit = self.lookup(uri)
                if hit is not None and expected in (None, hit[1]):
                    return hit
            scratch = self.root / "tmp"
            scratch.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=scratch, suffix=".part")
            try:
                with os.fdopen(fd, "w+b") as file:
                    fill(file)
                    file.flush()
                    file.seek(0)
                    data = file.read()
                digest = check_digest(data, expected, f"{uri!r}")
                blob = self._blob_path(digest)
                blob.parent.mkdir(parents=True, exist_ok=True)
                os.replace(temporary, blob)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
            self._write_index(CacheEntry(uri, digest, len(data), time.time()))
            return data, digest

    def clear(self) -> int:
        """Delete everything; returns the number of URI entries removed."""
        count = len(self.entries())
        for name in ("blobs", "uris", "tmp", "locks", "compiled"):
            shutil.rmtree(self.root / name, ignore_errors=True)
        return count

    # -- internals -------------------------------------------------------------------------

    def _blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest

    def _index_path(self, uri: str) -> Path:
        return self.root / "uris" / f"{_key(uri)}.json"

    def _read_index(self, path: Path) -> CacheEntry | None:
        try:
            record = json.loads(path.read_text())
            return CacheEntry(record["uri"], record["sha256"], record["size"], record["fetched"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write_index(self, entry: CacheEntry) -> None:
        path = self._index_path(entry.uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as file:
            json.dump(entry.__dict__, file)
        os.replace(temporary, path)

    @contextlib.contextmanager
    def _lock(self, uri: str) -> Iterator[None]:
        with _thread_lock(uri):
            if fcntl is None:
                yield
                return
            locks = self.root / "locks"
            locks.mkdir(parents=True, exist_ok=True)
            with open(locks / f"{_key(uri)}.lock", "w") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)


def _key(uri: str) -> str:
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()[:32]


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(uri: str) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(uri, threading.Lock())
