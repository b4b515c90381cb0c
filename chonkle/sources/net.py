"""Settings and plumbing shared by the network sources (https, oci)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO

from chonkle.errors import SourceError

Progress = Callable[[int, int | None], None]  # (bytes so far, total if known)

DEFAULT_MAX_MODULE_SIZE = 64 * 2**20


def _number(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise SourceError(f"{name}={value!r} is not a number") from None


def max_module_size() -> int:
    return int(_number("CHONKLE_MAX_MODULE_SIZE", DEFAULT_MAX_MODULE_SIZE))


def read_timeout() -> float:
    return _number("CHONKLE_HTTP_TIMEOUT", 30.0)


def connect_timeout() -> float:
    return min(10.0, read_timeout())


def retries() -> int:
    return int(_number("CHONKLE_HTTP_RETRIES", 3))


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
