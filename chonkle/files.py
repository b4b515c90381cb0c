"""Writing files so that nobody ever sees half of one, and folders nobody else can tamper with.

Every module that writes a file (the CLI's outputs, both caches) goes through
:func:`atomic_write`: the bytes go to a fresh temporary file in the target's folder, are
flushed to disk, and replace the target by one rename. A failure at any point leaves the
target as it was and no temporary file behind.

The caches hold code that chonkle runs, so their folder must be one nobody else can change.
:func:`open_private_folder` opens it one component at a time, each relative to its parent's
descriptor and never through a link, and checks every open descriptor with ``fstat``: what
was checked is what gets used, whatever is renamed meanwhile. A :class:`Folder` then does
every open, rename and delete relative to that descriptor, never by path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted as a file must not hang a read
# Ancestors are only passed through: O_PATH needs no read permission on them (Linux).
_PASS_THROUGH = getattr(os, "O_PATH", os.O_RDONLY) | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
_DIRECTORY = os.O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
# Descriptor-relative calls and owners exist on POSIX; elsewhere folders are used by path.
AT_CALLS = hasattr(os, "geteuid") and os.open in os.supports_dir_fd and bool(O_NOFOLLOW)
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


class UntrustedFolder(Exception):
    """A folder that someone other than this user (or root) could change: `path`, `reason`,
    and `fix`, a command that makes it safe."""

    def __init__(self, path: Path, reason: str, fix: str) -> None:
        super().__init__(f"{path} {reason}")
        self.path, self.reason, self.fix = path, reason, fix


class Folder:
    """An open folder; `name` arguments are single entries in it, reached by its descriptor
    (``fd``), or by path where the platform has no descriptor-relative calls (``fd`` None)."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path, self.fd = path, fd

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _at(self, name: str) -> tuple[str, dict]:
        if self.fd is None:
            return str(self.path / name), {}
        return name, {"dir_fd": self.fd}

    @contextlib.contextmanager
    def _naming(self, name: str) -> Iterator[None]:
        """OSErrors name the full path, not just the entry."""
        try:
            yield
        except OSError as exc:
            if not isinstance(exc.filename, str) or exc.filename == name:
                raise OSError(exc.errno, exc.strerror, str(self.path / name)) from None
            raise

    def open(self, name: str, flags: int, mode: int = 0o600) -> int:
        """``os.open`` of an entry, never through a link."""
        target, at = self._at(name)
        with self._naming(name):
            return os.open(target, flags | O_NOFOLLOW | O_CLOEXEC | O_BINARY, mode, **at)

    def read(self, name: str) -> tuple[bytes, os.stat_result] | None:
        """The bytes of a regular file and its fstat, None if there is no such entry.

        A link or anything but a regular file raises :class:`NotARegularFile`.
        """
        try:
            fd = self.open(name, os.O_RDONLY | O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK, errno.EISDIR, errno.ENXIO):
                # EMLINK: BSD's link; ENXIO: a socket
                raise NotARegularFile(exc.errno, "not a regular file", exc.filename) from None
            raise
        with _closing_on_error(fd), self._naming(name):
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise NotARegularFile(errno.EINVAL, "not a regular file", str(self.path / name))
        with os.fdopen(fd, "rb") as file, self._naming(name):
            return file.read(), info

    def names(self) -> list[str]:
        with self._naming("."):
            return os.listdir(self.path if self.fd is None else self.fd)

    def subfolder(self, name: str, *, create: bool) -> Folder | None:
        """A private folder in this one (made 0700 if missing and `create`), None if missing.

        It must be a real folder, owned by this user or root, that nobody else can write.
        """
        if self.fd is None:
            return _folder_by_path(self.path / name, create)
        with self._naming(name):
            fd = _open_or_make(self.fd, name, self.path / name, _DIRECTORY, create)
        if fd is None:
            return None
        folder = Folder(self.path / name, fd)
        with _closing_on_error(folder):
            problem = _verdict(folder.path, os.fstat(fd), leaf=True)
            if problem is not None:
                raise UntrustedFolder(*problem)
        return folder

    def replace(self, source: str, target: str) -> None:
        with self._naming(target):
            if self.fd is None:
                os.replace(self.path / source, self.path / target)
            else:
                os.replace(source, target, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def link(self, source: str, target: str) -> None:
        """A second name for `source`; FileExistsError if `target` exists (never replaced)."""
        with self._naming(target):
            if self.fd is None:
                os.link(self.path / source, self.path / target)
            else:
                os.link(source, target, src_dir_fd=self.fd, dst_dir_fd=self.fd,
                        follow_symlinks=False)

    def remove(self, name: str) -> None:
        """Delete an entry (a file, a link, or a folder and all it holds); never follows a
        link, so nothing outside this folder is touched. A missing entry is no error.

        Folders are emptied with an explicit stack, not recursion: a hostile tree of any
        depth is removed.
        """
        if not self._unlink_unless_folder(name):
            return
        stack: list[tuple[Folder, Folder, str]] = [(self, self._inner(name), name)]
        while stack:
            parent, folder, entry = stack[-1]
            for inner_name in folder.names():
                if folder._unlink_unless_folder(inner_name):
                    stack.append((folder, folder._inner(inner_name), inner_name))
                    break
            else:  # emptied
                stack.pop()
                folder.__exit__()
                gone, gone_at = parent._at(entry)
                with parent._naming(entry), contextlib.suppress(FileNotFoundError):
                    os.rmdir(gone, **gone_at)

    def _unlink_unless_folder(self, name: str) -> bool:
        """Remove the entry unless it is a folder (a link is removed, not followed): True
        when it is a folder. A missing entry is already gone."""
        target, at = self._at(name)
        with self._naming(name):
            try:
                info = os.stat(target, follow_symlinks=False, **at)
            except FileNotFoundError:
                return False
            if stat.S_ISDIR(info.st_mode):
                return True
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target, **at)
            return False

    def _inner(self, name: str) -> Folder:
        """A folder inside this one, opened without following a link."""
        if self.fd is None:
            return Folder(self.path / name, None)
        with self._naming(name):
            return Folder(self.path / name, os.open(name, _DIRECTORY, dir_fd=self.fd))


class NotARegularFile(OSError):
    """A link, folder or device where a cache expects a file: damage to delete, not to read."""


def open_private_folder(path: Path, *, create: bool) -> Folder | None:
    """Open `path` as a folder only this user (or root) can change; None if it is missing
    and not `create`. Components it creates are made 0700, whatever the umask.

    Links in the given path are resolved first (the path is the user's choice); the real
    path is then opened from ``/`` one component at a time with O_NOFOLLOW, each relative to
    its parent's descriptor, and each descriptor is checked with fstat. The folder and every
    ancestor up to the first one owned by root or sticky (like /tmp, whose entries others
    cannot rename or delete) must be owned by this user or root and closed to writes by
    others; otherwise :class:`UntrustedFolder`. Nothing is created inside a folder that
    fails this.
    """
    if not AT_CALLS:
        return _folder_by_path(path, create)
    real = Path(os.path.realpath(path))
    names = real.parts[1:]
    fd = os.open(real.anchor, _PASS_THROUGH if names else _DIRECTORY)
    current = Path(real.anchor)
    try:
        problem = _verdict(current, os.fstat(fd), leaf=not names)
        for index, name in enumerate(names):
            leaf = index == len(names) - 1
            child_path = current / name
            try:  # never create anything below a folder that failed
                child = _open_or_make(fd, name, child_path, _DIRECTORY if leaf else _PASS_THROUGH,
                                      create and problem is None)
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, str(child_path)) from None
            if child is None:
                if create:
                    raise UntrustedFolder(*problem)
                return None
            os.close(fd)
            fd, current = child, child_path
            found = _verdict(current, os.fstat(fd), leaf)
            if found is not None:
                problem = found
            elif not leaf and _vouches(os.fstat(fd)):
                problem = None  # what was found above no longer matters
        if problem is not None:
            raise UntrustedFolder(*problem)
        folder, fd = Folder(real, fd), -1
        return folder
    finally:
        if fd >= 0:
            os.close(fd)


def _vouches(info: os.stat_result) -> bool:
    """Going down, a folder root owns, or a sticky one (nobody can rename or delete what
    others own in it), protects what is below it whatever is above it."""
    return info.st_uid == 0 or bool(info.st_mode & stat.S_ISVTX)


def _verdict(path: Path, info: os.stat_result, leaf: bool) -> tuple[Path, str, str] | None:
    """Why a folder cannot be trusted, and the fix (the UntrustedFolder arguments), or None.

    A sticky ancestor may be writable by all (like /tmp); the folder itself may not.
    """
    me = os.geteuid()
    if info.st_uid not in (me, 0):
        return (path, f"is owned by uid {info.st_uid}, not by you (uid {me}) or root",
                "use a folder of your own")
    if info.st_mode & _OTHERS_WRITE and (leaf or not info.st_mode & stat.S_ISVTX):
        return (path, f"is writable by others (mode {stat.S_IMODE(info.st_mode):o})",
                f"chmod {'700' if leaf else 'go-w'} {path}")
    return None


def _open_or_make(parent: int, name: str, path: Path, flags: int, create: bool) -> int | None:
    """Open folder `name` in `parent`; if missing, make it 0700 (when `create`) or None."""
    try:
        return _open_folder(parent, name, path, flags)
    except FileNotFoundError:
        if not create:
            return None
    try:
        os.mkdir(name, 0o700, dir_fd=parent)
        made = True
    except FileExistsError:  # made meanwhile by another process: checked like any other
        made = False
    fd = _open_folder(parent, name, path, _DIRECTORY)
    if made:
        with _closing_on_error(fd):
            os.fchmod(fd, 0o700)  # the umask may have taken bits away
    return fd


def _open_folder(parent: int, name: str, path: Path, flags: int) -> int:
    try:
        return os.open(name, flags, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            with contextlib.suppress(OSError):
                if stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                    raise UntrustedFolder(path, "is a symbolic link, which chonkle does not "
                                          "follow here", f"rm {path}") from None
        raise


@contextlib.contextmanager
def _closing_on_error(resource: Folder | int) -> Iterator[None]:
    try:
        yield
    except BaseException:
        if isinstance(resource, Folder):
            resource.close()
        else:
            os.close(resource)
        raise


def _folder_by_path(path: Path, create: bool) -> Folder | None:
    """Where descriptors cannot be used (Windows): the per-user folder, by path."""
    if create:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    elif not path.is_dir():
        return None
    return Folder(path, None)


def atomic_write(path: Path | str, data: bytes | Callable[[BinaryIO], object], *,
                 mode: int = 0o666, fsync: bool = True, folder: Folder | None = None) -> None:
    """Replace `path` with `data` (bytes, or a function writing into the open file).

    Without `folder`, `path` is a path and ``mode`` is filtered by the umask as for any new
    file: the default gives the usual 0644. With `folder`, `path` is an entry of that open
    folder and the file gets exactly ``mode`` (caches pass 0o600), whatever the umask. The
    temporary file is created with O_EXCL | O_NOFOLLOW under a random name, so a link
    planted in the folder is never written through.
    """
    if folder is not None:
        _write(folder, str(path), data, mode, fsync, exact=mode)
        return
    path = Path(path)
    if not AT_CALLS:
        _write(Folder(path.parent, None), path.name, data, mode, fsync, exact=None)
        return
    # The folder of a path the user gave: links in it are followed, as the user meant.
    fd = os.open(path.parent, _PASS_THROUGH & ~O_NOFOLLOW)
    with Folder(path.parent, fd) as parent:
        _write(parent, path.name, data, mode, fsync, exact=None)


def _write(folder: Folder, name: str, data: bytes | Callable[[BinaryIO], object], mode: int,
           fsync: bool, exact: int | None) -> None:
    with temporary_file(folder, name, mode, exact=exact) as (file, temporary):
        if callable(data):
            data(file)
        else:
            file.write(data)
        file.flush()
        if fsync:
            os.fsync(file.fileno())
        file.close()
        folder.replace(temporary, name)


@contextlib.contextmanager
def temporary_file(folder: Folder, stem: str, mode: int = 0o600, *,
                   exact: int | None = None) -> Iterator[tuple[BinaryIO, str]]:
    """A new file in `folder` and its name there, deleted on exit unless renamed away
    meanwhile. With `exact`, the file gets that mode whatever the umask."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL
    for _ in range(100):
        temporary = f".{stem}.{secrets.token_hex(6)}.tmp"
        try:
            fd = folder.open(temporary, flags, mode)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 48 random bits
        raise FileExistsError(f"cannot create a temporary file in {folder.path}")
    try:
        with os.fdopen(fd, "w+b") as file:
            if exact is not None and hasattr(os, "fchmod"):
                os.fchmod(file.fileno(), exact)
            yield file, temporary
    finally:
        folder.remove(temporary)
