"""Engines' compiled code on disk, so a new process decodes its first chunk without compiling.

Loading compiled code runs native code that no Wasm sandbox checks, so an artifact is loaded
only if (1) the cache root and every folder down to it pass chonkle.files'
open_private_folder (the user's or root's, closed to others, checked on the open
descriptors), and (2) it carries an HMAC-SHA256, under a random per-user key kept in the
root (``compiled.key``, 0600), over the module's digest, the engine's name and version and
the artifact itself. A checksum anyone could recompute proves nothing; the key is known only
to this user, so an artifact planted or altered by anyone else never verifies. What does
not verify is deleted and compiled again, never loaded.

The cache is an optimization: a folder that fails the checks, a missing key, or any file
error means compiling in memory as if it were off, never a failed decode. Artifacts live in
``compiled/<engine>-<version>/<digest>.bin``; the engine itself also rejects artifacts from
another build or CPU. Disable with CHONKLE_COMPILED_CACHE=0.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import os
import secrets
import stat
from collections.abc import Callable

from chonkle import settings
from chonkle.engine.protocol import WasmEngine, WasmModule
from chonkle.files import (
    Folder,
    NotARegularFile,
    UntrustedFolder,
    atomic_write,
    open_private_folder,
    temporary_file,
)
from chonkle.sources.cache import COMPILED, KEY_FILE, cache_dir, is_digest

MAGIC = b"chonkle-compiled-v2\n"
KEY_SIZE = 32
_TAG_SIZE = 32
_FAILURES = (OSError, UntrustedFolder)


def enabled() -> bool:
    return settings.compiled_cache_enabled()


def compile_cached(engine: WasmEngine, wasm: bytes, digest: str) -> WasmModule:
    deserialize = getattr(engine, "deserialize", None)
    if deserialize is None or not enabled() or not is_digest(digest):
        return engine.compile(wasm)
    opened = _open(engine)
    if opened is None:  # no trustworthy place on disk: compile in memory
        return engine.compile(wasm)
    folder, key = opened
    with folder:
        name = f"{digest}.bin"
        context = (digest, str(engine.name), str(engine.version))
        module = _load(folder, name, key, context, deserialize)
        if module is None:
            module = engine.compile(wasm)
            with contextlib.suppress(Exception):  # serialize may fail in engine-specific ways
                atomic_write(name, seal(key, *context, module.serialize()), mode=0o600,
                             folder=folder)
        return module


def seal(key: bytes, digest: str, engine: str, version: str, payload: bytes) -> bytes:
    """The artifact file: MAGIC, the tag authenticating everything else, the payload."""
    return MAGIC + _tag(key, digest, engine, version, payload) + payload


def _tag(key: bytes, digest: str, engine: str, version: str, payload: bytes) -> bytes:
    mac = hmac.new(key, digestmod="sha256")
    for field in (MAGIC, *(s.encode("utf-8") for s in (digest, engine, version))):
        mac.update(len(field).to_bytes(8, "big") + field)  # length-prefixed: unambiguous
    mac.update(payload)
    return mac.digest()


def _load(folder: Folder, name: str, key: bytes, context: tuple[str, str, str],
          deserialize: Callable[[bytes], WasmModule]) -> WasmModule | None:
    """The module in a verified artifact; anything else found there is deleted."""
    try:
        found = folder.read(name)
    except NotARegularFile:
        found = None
    except OSError:
        return None
    else:
        if found is None:
            return None
        blob, info = found
        header = len(MAGIC) + _TAG_SIZE
        payload = blob[header:]
        if (info.st_uid == os.geteuid() and blob[:len(MAGIC)] == MAGIC
                and hmac.compare_digest(blob[len(MAGIC):header], _tag(key, *context, payload))):
            try:
                return deserialize(payload)
            except Exception:  # another engine build or CPU: rebuild
                pass
    with contextlib.suppress(OSError):
        folder.remove(name)
    return None


def _open(engine: WasmEngine) -> tuple[Folder, bytes] | None:
    """This engine's artifact folder and the key, if both their folders are trustworthy.

    The key lives outside the cache (settings.key_root): whoever supplies a cache folder, a
    copied one or a restored one, must not supply the key that vouches for what is in it.
    """
    try:
        key_root = open_private_folder(settings.key_root(), create=True)
        root = open_private_folder(cache_dir(), create=True)
    except _FAILURES:
        return None
    if root is None or root.fd is None or key_root is None or key_root.fd is None:
        return None  # no owners to check (Windows): do not cache
    with root, key_root:
        try:
            key = _secret_key(key_root)
            with root.subfolder(COMPILED, create=True) as compiled:
                return compiled.subfolder(_safe(f"{engine.name}-{engine.version}"),
                                          create=True), key
        except _FAILURES:
            return None


def _secret_key(root: Folder) -> bytes:
    """The user's key, made on first use."""
    for _ in range(3):
        key = _read_key(root)
        if key is not None:
            return key
        try:
            return _new_key(root)
        except FileExistsError:  # another process made one first: use it
            continue
    raise OSError(errno.EAGAIN, "cannot settle on a key", str(root.path / KEY_FILE))


def _read_key(root: Folder) -> bytes | None:
    """The key, read without following links and used only if it is a regular file of 32
    bytes owned by this user and closed to others; a bad one is deleted (and so every
    artifact it signed is rebuilt)."""
    try:
        found = root.read(KEY_FILE)
        if found is None:
            return None
        key, info = found
        if (info.st_uid == os.geteuid() and len(key) == KEY_SIZE
                and not stat.S_IMODE(info.st_mode) & 0o077):
            return key
    except NotARegularFile:
        pass
    root.remove(KEY_FILE)
    return None


def _new_key(root: Folder) -> bytes:
    """A fresh key, written in full (O_EXCL | O_NOFOLLOW, 0600) before it gets its name;
    linking never replaces, so concurrent processes agree on one key."""
    key = secrets.token_bytes(KEY_SIZE)
    with temporary_file(root, KEY_FILE, 0o600, exact=0o600) as (file, temporary):
        file.write(key)
        file.flush()
        os.fsync(file.fileno())
        root.link(temporary, KEY_FILE)
    return key


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in name)
