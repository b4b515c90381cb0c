"""The on-disk cache of downloaded Wasm modules: content-addressed, verified on every read.

Layout under the cache root (``$CHONKLE_CACHE_DIR``, by default the per-user cache folder:
``~/.cache/chonkle`` on Linux):

    blobs/sha256/<hex>   module bytes, named by their SHA-256
    uris/<key>.json      which digest a URI resolved to, and when
    tmp/                 downloads in progress
    locks/<key>.lock     one process downloads a URI while the others wait
    compiled/, compiled.key   engines' compiled code, and the key that signs it
                              (chonkle.engine.compiled_cache)

The index says which code an unpinned URI runs, so the cache is used only if nobody else
can change it: the root is opened with chonkle.files.open_private_folder (it and its
parents must be the user's or root's and closed to others, checked on the open
descriptors), and everything in it is reached relative to that descriptor, never through a
link. A folder that fails is a SourceError saying why and how to fix it; so is any other
file-system failure. A blob is re-hashed whenever it is read, so a corrupted or truncated
entry is noticed, deleted and fetched again; a digest from an index entry must be 64 hex
digits before it names a file; files are written by one atomic rename (0600), so no reader
ever sees a partial one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import platformdirs

from chonkle import settings
from chonkle.errors import SourceError
from chonkle.files import (
    Folder,
    NotARegularFile,
    UntrustedFolder,
    atomic_write,
    open_private_folder,
    temporary_file,
)

try:
    import fcntl
except ImportError:  # Windows: downloads stay atomic, but are not deduplicated across processes
    fcntl = None

COMPILED = "compiled"  # chonkle.engine.compiled_cache's folder in the root
KEY_FILE = "compiled.key"  # the key that authenticates it (in settings.key_root)
_FOLDERS = ("blobs", "uris", "tmp", "locks", COMPILED)
_DIGEST = re.compile("[0-9a-f]{64}")
_INDEX_NAME = re.compile(r"[0-9a-f]{32}\.json")


def cache_dir() -> Path:
    return settings.cache_root() or Path(platformdirs.user_cache_dir("chonkle"))


def is_digest(value: object) -> bool:
    """64 lowercase hex digits: the only digests that ever name a file."""
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def check_digest(data: bytes, expected: str | None, where: str) -> str:
    """The SHA-256 of `data`; refuses it (SourceError) if it is not the pinned `expected`.

    For a local file the message leaves out the digest found: a hostile pipeline could
    otherwise name any file the user can read and learn its digest from the error.
    """
    actual = hashlib.sha256(data).hexdigest()
    if expected is not None and actual != expected:
        found = ("does not match the sha256 the pipeline" if where.lstrip("'").startswith("file:")
                 else f"has sha256 {actual}, but the pipeline")
        raise SourceError(f"module from {where} {found} pins {expected}; refusing to run it")
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
        if not is_digest(digest):
            return None
        with self._folder("blobs", "sha256", create=False) as blobs:
            return None if blobs is None else _read_blob(blobs, digest)

    def lookup(self, uri: str) -> tuple[bytes, str] | None:
        """The module last fetched from `uri`, if its index entry and blob are intact."""
        with self._folder(create=False) as root:
            return None if root is None else _lookup(root, uri)

    def entries(self) -> list[CacheEntry]:
        with self._folder("uris", create=False) as uris:
            if uris is None:
                return []
            found = (_read_entry(uris, name) for name in uris.names()
                     if _INDEX_NAME.fullmatch(name))
            return sorted((e for e in found if e is not None), key=lambda e: e.uri)

    # -- writing ---------------------------------------------------------------------------

    def download(self, uri: str, fill: Callable[[BinaryIO], None],
                 expected: str | None = None, *, reuse: bool = True) -> tuple[bytes, str]:
        """Fetch `uri` with `fill` (which writes the module into a file) and cache it.

        Under a per-URI lock, so concurrent threads and processes download once: whoever
        waited finds the entry already there (when `reuse`). The bytes are verified
        against `expected` before anything is stored, so a wrong download leaves no trace.
        """
        with self._folder(create=True) as root, _lock(root, uri):
            if reuse:
                hit = _lookup(root, uri)
                if hit is not None and expected in (None, hit[1]):
                    return hit
            with _descend(root, "tmp") as scratch, temporary_file(scratch, "download") as (
                    file, _):
                try:
                    fill(file)
                    file.flush()
                except OSError as exc:  # fetchers report their own failures as SourceError
                    raise SourceError(f"{uri!r}: cannot save the download in {scratch.path}: "
                                      f"{exc.strerror or exc}") from None
                file.seek(0)
                data = file.read()
            digest = check_digest(data, expected, f"{uri!r}")
            with _descend(root, "blobs", "sha256") as blobs:
                atomic_write(digest, data, mode=0o600, folder=blobs)
            entry = CacheEntry(uri, digest, len(data), time.time())
            with _descend(root, "uris") as uris:
                atomic_write(_index_name(uri), json.dumps(dataclasses.asdict(entry)).encode(),
                             mode=0o600, folder=uris)
            return data, digest

    def clear(self) -> int:
        """Delete everything (never following a link out of the root); returns the number
        of URI entries removed."""
        try:
            count = len(self.entries())
        except SourceError:  # a damaged index is what clear repairs
            count = 0
        with self._folder(create=False) as root:
            if root is None:
                return 0
            for name in (*_FOLDERS, KEY_FILE):  # (a key here is from an older chonkle)
                root.remove(name)
        return count

    # -- internals -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _folder(self, *names: str, create: bool) -> Iterator[Folder | None]:
        """The trusted root (or a folder in it), None if missing and not `create`. Any
        OSError inside the block is a SourceError naming the path and the reason."""
        try:
            root = open_private_folder(self.root, create=create)
            if root is None:
                yield None
                return
            with root:
                if not names:
                    yield root
                    return
                with _descend(root, *names, create=create) as folder:
                    yield folder
        except UntrustedFolder as exc:
            raise SourceError(f"the module cache {self.root} is not safe to use: {exc.path} "
                              f"{exc.reason}, so others could change the code chonkle runs; "
                              f"fix: {exc.fix}, or set {settings.CACHE_DIR} to a folder of "
                              "your own") from None
        except OSError as exc:
            where = exc.filename or self.root
            raise SourceError(f"the module cache {self.root} cannot be used: {where}: "
                              f"{exc.strerror or exc} (fix it, or set {settings.CACHE_DIR} "
                              "to another folder)") from None


@contextlib.contextmanager
def _descend(folder: Folder, *names: str, create: bool = True) -> Iterator[Folder | None]:
    """The private folder at `names` below `folder` (made if missing and `create`)."""
    current: Folder | None = folder
    with contextlib.ExitStack() as opened:
        for name in names:
            current = current.subfolder(name, create=create)
            if current is None:
                break
            opened.enter_context(current)
        yield current


def _lookup(root: Folder, uri: str) -> tuple[bytes, str] | None:
    with _descend(root, "uris", create=False) as uris:
        entry = None if uris is None else _read_entry(uris, _index_name(uri), repair=True)
    if entry is None or entry.uri != uri:
        return None
    with _descend(root, "blobs", "sha256", create=False) as blobs:
        data = None if blobs is None else _read_blob(blobs, entry.sha256)
    return None if data is None else (data, entry.sha256)


def _read_blob(blobs: Folder, digest: str) -> bytes | None:
    try:
        found = blobs.read(digest)
    except NotARegularFile:
        found = None
    else:
        if found is None:
            return None
        if hashlib.sha256(found[0]).hexdigest() == digest:
            return found[0]
    blobs.remove(digest)  # damaged, truncated, or not a file: fetched again
    return None


def _read_entry(uris: Folder, name: str, *, repair: bool = False) -> CacheEntry | None:
    """An index entry, if well-formed: its digest must be one (it names a blob file)."""
    try:
        found = uris.read(name)
        if found is None:
            return None
        record = json.loads(found[0])
        entry = CacheEntry(record["uri"], record["sha256"], record["size"], record["fetched"])
    except (NotARegularFile, ValueError, KeyError, TypeError, RecursionError):
        entry = None
    if entry is None or not (isinstance(entry.uri, str) and is_digest(entry.sha256)
                             and isinstance(entry.size, int)
                             and isinstance(entry.fetched, (int, float))):
        if repair:
            uris.remove(name)
        return None
    return entry


@contextlib.contextmanager
def _lock(root: Folder, uri: str) -> Iterator[None]:
    """This URI's lock, across threads and processes."""
    with _thread_lock(uri):
        if fcntl is None or root.fd is None:
            yield
            return
        with _descend(root, "locks") as locks:
            fd = _open_lock(locks, f"{_key(uri)}.lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


def _open_lock(locks: Folder, name: str) -> int:
    """The lock file: created if missing, never truncated, never opened through a link. A
    link or anything but a file in its place (chonkle never makes one) is deleted first."""
    for _ in range(2):
        try:
            fd = locks.open(name, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.EMLINK, errno.EISDIR):
                raise
        else:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return fd
            os.close(fd)
        locks.remove(name)
    raise OSError(errno.EINVAL, "not a regular file", str(locks.path / name))


def _key(uri: str) -> str:
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()[:32]


def _index_name(uri: str) -> str:
    return f"{_key(uri)}.json"


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(uri: str) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(uri, threading.Lock())
