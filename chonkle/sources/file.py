"""Local modules: ``file:`` URIs.

A pipeline file may come from anywhere, so the path it names is hostile too: only a regular
file is read (``/dev/zero`` would never end, a FIFO would block forever waiting for a writer,
and opening some devices has side effects), and at most CHONKLE_MAX_MODULE_SIZE bytes of it.
The path is stat'ed before it is opened, so a device is never opened; it is opened without
blocking and checked again on the descriptor, so swapping the file in between gains nothing.
Symbolic links are followed (a link to a module is common); what they lead to is checked.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import unquote, urlsplit

from chonkle import settings
from chonkle.errors import LimitExceeded, SourceError

_CHUNK = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | sum(getattr(os, name, 0) for name in (
    "O_NONBLOCK", "O_NOCTTY", "O_CLOEXEC", "O_BINARY"))


def file_uri_path(uri: str, base_dir: Path | None) -> Path:
    """The path a ``file:`` URI names.

    ``file:///abs/x.wasm`` is absolute; ``file:x.wasm``, ``file:./x.wasm`` and
    ``file://./x.wasm`` are relative to the pipeline file's folder (or, for a
    pipeline given as a dict, the current directory).
    """
    parts = urlsplit(uri)
    if parts.netloc in ("", "localhost"):
        raw = parts.path
    else:  # file://./x.wasm or file://codecs/x.wasm: the "host" is the first path segment
        raw = parts.netloc + parts.path
    if not raw:
        raise SourceError(f"{uri!r} names no file")
    path = Path(unquote(raw))
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    return path


def fetch_file(uri: str, base_dir: Path | None) -> bytes:
    try:
        path = file_uri_path(uri, base_dir)
    except ValueError:  # a malformed URI (e.g. an unclosed [ in its "host")
        raise SourceError(f"{uri!r} is not a valid file: URI") from None
    where = f"{uri!r}: {str(path)!r}"
    try:
        _check_kind(where, os.stat(path).st_mode)
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise SourceError(f"{where} does not exist") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise SourceError(f"{where}: cannot read it ({_reason(exc)})") from None
    with os.fdopen(fd, "rb", buffering=0) as file:
        try:
            return _read_limited(where, file.fileno())
        except OSError as exc:
            raise SourceError(f"{where}: cannot read it ({_reason(exc)})") from None


def _check_kind(where: str, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise SourceError(f"{where} is a directory, not a .wasm file")
    if not stat.S_ISREG(mode):
        raise SourceError(f"{where} is not a regular file (a device, FIFO or socket); chonkle "
                          "reads modules only from regular files")


def _read_limited(where: str, fd: int) -> bytes:
    _check_kind(where, os.fstat(fd).st_mode)  # the file opened is the file checked
    limit = settings.max_module_size()
    too_big = LimitExceeded(f"{where} is over the {limit}-byte module limit "
                            f"({settings.MAX_MODULE_SIZE})")
    if os.fstat(fd).st_size > limit:
        raise too_big
    chunks: list[bytes] = []
    received = 0
    while received <= limit:  # st_size can lie (procfs, a file still growing)
        chunk = os.read(fd, min(_CHUNK, limit + 1 - received))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        received += len(chunk)
    raise too_big


def _reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def is_relative_file_uri(uri: str) -> bool:
    """``file:x.wasm``, ``file:./x.wasm`` or ``file://./x.wasm``: relative to a folder."""
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise SourceError(f"{uri!r} is not a URI: {exc}") from None
    if parts.scheme.lower() != "file":
        return False
    return parts.netloc not in ("", "localhost") or not parts.path.startswith("/")


def absolute_file_uri(uri: str, base_dir: Path | None) -> str:
    """`uri`, with a relative ``file:`` URI made absolute against `base_dir` (or the current
    directory), so it names the same file wherever the step travels; others unchanged."""
    if not is_relative_file_uri(uri):
        return uri
    return file_uri_path(uri, base_dir).absolute().as_uri()
