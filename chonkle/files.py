"""Writing files so that nobody ever sees half of one, and reading them without following
a link somebody else planted.

Every module that writes a file (the CLI's outputs, both caches) goes through
:func:`atomic_write`: the bytes go to a fresh temporary file in the target's folder, are
flushed to disk, and replace the target by one rename. A failure at any point leaves the
target as it was and no temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


def atomic_write(path: Path, data: bytes | Callable[[BinaryIO], object], *,
                 mode: int = 0o666, fsync: bool = True) -> None:
    """Replace `path` with `data` (bytes, or a function writing into the open file).

    ``mode`` is filtered by the umask as for any new file: the default gives the usual
    0644; caches pass 0o600. The temporary file is created with O_EXCL | O_NOFOLLOW under a
    random name, so a link planted in the folder is never written through.
    """
    with temporary_file(path.parent, path.name, mode) as (file, temporary):
        if callable(data):
            data(file)
        else:
            file.write(data)
        file.flush()
        if fsync:
            os.fsync(file.fileno())
        file.close()
        os.replace(temporary, path)


@contextlib.contextmanager
def temporary_file(folder: Path, stem: str, mode: int = 0o600) -> Iterator[tuple[BinaryIO, Path]]:
    """A new file in `folder`, deleted on exit unless it was renamed away meanwhile."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_BINARY
    for _ in range(100):
        temporary = folder / f".{stem}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(temporary, flags, mode)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 48 random bits
        raise FileExistsError(f"cannot create a temporary file in {folder}")
    try:
        with os.fdopen(fd, "w+b") as file:
            yield file, temporary
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
