"""Settings and plumbing shared by the network sources (https, oci)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import BinaryIO

from chonkle import settings
from chonkle.errors import SourceError

Progress = Callable[[int, int | None], None]  # (bytes so far, total if known)

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


def copy_limited(chunks, sink: BinaryIO, uri: str, total: int | None,
                 progress: Progress | None) -> None:
    """Stream `chunks` into `sink`, refusing more than the module size limit."""
    limit = max_module_size()
    if total is not None and total > limit:
        raise SourceError(f"{uri!r} is {total} bytes, over the {limit}-byte module limit "
                          "(CHONKLE_MAX_MODULE_SIZE)")
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise SourceError(f"{uri!r} sent more than the {limit}-byte module limit "
                              "(CHONKLE_MAX_MODULE_SIZE)")
        sink.write(chunk)
        if progress is not None:
            progress(received, total)


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
