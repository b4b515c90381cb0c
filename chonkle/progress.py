"""Progress bars, one library (tqdm) for every long operation: on a terminal, never in a log.

``progress=None`` (the default everywhere) shows a bar only when stderr is a terminal;
``True`` and ``False`` force it on or off.
"""

from __future__ import annotations

import sys
from typing import Any


def bar(total: int | None, description: str, *, unit: str = "it", progress: bool | None = None,
        **options: Any) -> Any:
    """A tqdm bar on stderr (a do-nothing one when not shown); use as a context manager."""
    from tqdm import tqdm

    shown = sys.stderr.isatty() if progress is None else progress
    return tqdm(total=total, desc=description, unit=unit, disable=not shown, file=sys.stderr,
                leave=False, **options)
