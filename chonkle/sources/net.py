"""Settings and plumbing shared by the network sources (https, oci).

Whatever a server sends is hostile until checked: sizes are capped while streaming (a
Content-Length is only a hint), bodies are asked for and read uncompressed (so the cap counts
what arrives, and no small answer inflates), a redirect may not leave https, and server
text quoted in a message is cut to one short line. Where a redirect leads, and how long the
whole download may take, is checked where sockets connect (chonkle.sources.guard).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterable
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

from chonkle import settings
from chonkle.errors import LimitExceeded, SourceError
from chonkle.sources.guard import Download

Progress = Callable[[int, int | None], None]  # (bytes so far, total if known)

MAX_REDIRECTS = 5
IDENTITY = {"Accept-Encoding": "identity"}


def max_module_size() -> int:
    return settings.max_module_size()


def read_timeout() -> float:
    return settings.http_timeout()


def connect_timeout() -> float:
    return min(10.0, read_timeout())


def retries() -> int:
    return settings.http_retries()


def backoff(attempt: int) -> float:
    """Seconds to wait before retry `attempt` (0-based): 0.2, 0.4, 0.8, ..."""
    return 0.2 * 2**attempt


def copy_limited(chunks: Iterable[bytes], sink: BinaryIO, uri: str, total: int | None,
                 progress: Progress | None, download: Download | None = None) -> None:
    """Stream `chunks` into `sink`, refusing more than the module size limit."""
    limit = max_module_size()
    if total is not None and total > limit:
        raise LimitExceeded(f"{uri!r} is {total} bytes, over the {limit}-byte module limit "
                            f"({settings.MAX_MODULE_SIZE})")
    received = 0
    for chunk in chunks:
        if download is not None:
            download.check()
        received += len(chunk)
        if received > limit:
            raise LimitExceeded(f"{uri!r} sent more than the {limit}-byte module limit "
                                f"({settings.MAX_MODULE_SIZE})")
        sink.write(chunk)
        if progress is not None:
            progress(received, total)


def read_capped(chunks: Iterable[bytes], limit: int, too_big: Callable[[], Exception],
                download: Download | None = None) -> bytes:
    """All of `chunks`, or `too_big()` raised as soon as they pass `limit` bytes (and the
    download's deadline checked before each chunk, when there is one)."""
    parts: list[bytes] = []
    received = 0
    for chunk in chunks:
        if download is not None:
            download.check()
        received += len(chunk)
        if received > limit:
            raise too_big()
        parts.append(chunk)
    return b"".join(parts)


def declared_length(value: str | None) -> int | None:
    """A Content-Length header as a number, or None when absent or not plain digits."""
    if value is None or not re.fullmatch(r"[0-9]{1,18}", value.strip()):
        return None
    return int(value)


def check_identity(uri: str, encoding: str | None) -> None:
    """Refuse a body compressed although chonkle asked for it uncompressed."""
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        raise SourceError(f"{uri!r}: the server sent a compressed body (Content-Encoding: "
                          f"{one_line(encoding, 40)}) although chonkle asked for identity")


def redirect_target(uri: str, current: str, location: str | None) -> str:
    """Where a redirect from `current` leads: same scheme or https, else a SourceError.

    The address it leads to is checked when connecting (chonkle.sources.guard).
    """
    if not location:
        raise SourceError(f"{uri!r}: a redirect without a Location")
    malformed = SourceError(f"{uri!r}: redirects to a malformed URL {one_line(location)!r}")
    try:
        target = urljoin(current, location.strip())
        parts = urlsplit(target)
        _ = parts.port  # a port that is not a number in range raises ValueError
        scheme = urlsplit(current).scheme.lower()
    except ValueError:
        raise malformed from None
    allowed = ["https"] if scheme == "https" else [scheme, "https"]  # never a downgrade
    if parts.scheme.lower() not in allowed:
        raise SourceError(f"{uri!r} redirects to {one_line(target)!r}; chonkle follows "
                          f"redirects to {' or '.join(s + '://' for s in allowed)} only")
    if not parts.hostname:
        raise malformed
    return target


def one_line(text: object, limit: int = 160) -> str:
    """Server-controlled text made fit for a one-line message."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def describe(exc: BaseException) -> str:
    """An exception from a network library as one short line."""
    text = one_line(exc, 200)
    name = type(exc).__name__
    return f"{name}: {text}" if text and name not in text else (text or name)


def unresolvable_host(exc: BaseException) -> bool:
    """Did `exc` (from httpx, requests or urllib3, however wrapped) fail to resolve a name?"""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen or len(seen) > 32:
            continue
        seen.add(id(current))
        if isinstance(current, socket.gaierror) or type(current).__name__ == "NameResolutionError":
            return True
        if "Name or service not known" in str(current) or "nodename nor servname" in str(current):
            return True
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None),
                    *current.args]
    return False
