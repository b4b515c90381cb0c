"""Where a TIFF's bytes come from: a local file, or a URL read by ranges (tiff_http).

A source does two things: hands tifffile a seekable stream to parse the structure from, and
reads a list of byte ranges (the tiles a read needs) in as few reads as it can, coalescing
ranges that touch or nearly touch. Both kinds report every failure as a ChonkleError naming
the file: a tile that lies past the end is a truncated file (SourceError), never a short
array.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

from chonkle.errors import SourceError

T = TypeVar("T")
Range = tuple[int, int]  # (offset, length)

_OPEN_FLAGS = os.O_RDONLY | sum(getattr(os, name, 0) for name in (
    "O_NONBLOCK", "O_NOCTTY", "O_CLOEXEC", "O_BINARY"))


def is_url(source: object) -> bool:
    """Does `source` start with a URL scheme (``https://``)? Paths never do."""
    return isinstance(source, str) and re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", source) is not None


class TiffSource(Protocol):
    """What the TIFF reader needs from a place that holds a file."""

    name: str  # the path or URL, as given
    label: str  # how messages name it: a path as it is, a URL quoted (as module downloads do)

    def parse(self, parse: Callable[[BinaryIO], T]) -> T:
        """``parse(stream)`` on a seekable stream of the file (tifffile reads the structure)."""
        ...

    def read_ranges(self, ranges: Sequence[Range]) -> list[bytes]:
        """The bytes of each (offset, length), in the order given."""
        ...


@dataclass
class Span:
    """One read covering several requested ranges: [start, end) and the ranges' positions."""

    start: int
    end: int
    members: list[int] = field(default_factory=list)


def coalesce(ranges: Sequence[Range], max_gap: int, max_span: int) -> list[Span]:
    """Merge ranges into as few reads as possible.

    Ranges are taken in file order; the next one joins the current read when it starts at
    most ``max_gap`` bytes after the read's end (reading a small gap costs less than another
    request) and the read stays within ``max_span`` bytes (or the range alone is larger).
    Overlapping and repeated ranges are read once.
    """
    order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
    spans: list[Span] = []
    for index in order:
        offset, length = ranges[index]
        end = offset + length
        current = spans[-1] if spans else None
        if (current is not None and offset <= current.end + max_gap
                and max(end, current.end) - current.start <= max_span):
            current.end = max(current.end, end)
            current.members.append(index)
        else:
            spans.append(Span(offset, end, [index]))
    return spans


def split(ranges: Sequence[Range], spans: Sequence[Span], data: Sequence[bytes]) -> list[bytes]:
    """Each requested range cut out of the span read for it."""
    out: list[bytes] = [b""] * len(ranges)
    for span, blob in zip(spans, data, strict=True):
        view = memoryview(blob)
        for index in span.members:
            offset, length = ranges[index]
            out[index] = bytes(view[offset - span.start:offset - span.start + length])
    return out


def check_within(name: str, ranges: Sequence[Range], size: int) -> None:
    """Every range must lie inside the file: a tile past the end means a truncated file."""
    for offset, length in ranges:
        if offset < 0 or length < 0 or offset + length > size:
            raise SourceError(f"{name}: truncated: a tile at bytes {offset}..{offset + length} "
                              f"lies past the end of the file ({size} bytes)")


class LocalFile:
    """A regular file on this machine (never a device, FIFO or socket, which could hang or
    never end), opened afresh for each parse or read so an open Tiff holds no descriptor."""

    MAX_GAP = 4096
    MAX_SPAN = 16 * 2**20

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = self.label = str(path)

    @contextlib.contextmanager
    def _opened(self) -> Iterator[tuple[int, int]]:
        """(descriptor, size) of the file, checked to be a regular file before and after
        opening (opening a device can have effects of its own)."""
        try:
            self._check_kind(os.stat(self.path).st_mode)
            fd = os.open(self.path, _OPEN_FLAGS)
        except FileNotFoundError:
            raise SourceError(f"{self.name}: no such file") from None
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
            raise SourceError(f"{self.name}: cannot open it ({_reason(exc)})") from None
        try:
            info = os.fstat(fd)
            self._check_kind(info.st_mode)
            yield fd, info.st_size
        finally:
            os.close(fd)

    def _check_kind(self, mode: int) -> None:
        if stat.S_ISDIR(mode):
            raise SourceError(f"{self.name}: is a directory, not a TIFF file")
        if not stat.S_ISREG(mode):
            raise SourceError(f"{self.name}: not a regular file (a device, FIFO or socket); "
                              "chonkle reads TIFFs from regular files or URLs")

    def parse(self, parse: Callable[[BinaryIO], T]) -> T:
        with self._opened() as (fd, _):
            stream = os.fdopen(os.dup(fd), "rb")
            with stream:
                return parse(stream)

    def read_ranges(self, ranges: Sequence[Range]) -> list[bytes]:
        with self._opened() as (fd, size):
            check_within(self.name, ranges, size)
            spans = coalesce(ranges, self.MAX_GAP, self.MAX_SPAN)
            return split(ranges, spans, [self._pread(fd, s.start, s.end - s.start)
                                         for s in spans])

    def _pread(self, fd: int, offset: int, length: int) -> bytes:
        parts: list[bytes] = []
        got = 0
        try:
            while got < length:
                part = os.pread(fd, length - got, offset + got)
                if not part:
                    raise SourceError(f"{self.name}: truncated: bytes {offset + got}.."
                                      f"{offset + length} are missing (the file shrank?)")
                parts.append(part)
                got += len(part)
        except OSError as exc:
            raise SourceError(f"{self.name}: cannot read it ({_reason(exc)})") from None
        return b"".join(parts)


def _reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
