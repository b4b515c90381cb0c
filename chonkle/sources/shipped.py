"""The Wasm codecs shipped inside the chonkle package (``chonkle/wasm/<name>.wasm``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from chonkle.errors import SourceError

SHIPPED_PACKAGE = "chonkle.wasm"


def shipped_codecs() -> list[str]:
    """Names of the Wasm codecs that ship inside the chonkle package."""
    return sorted(
        entry.name[: -len(".wasm")]
        for entry in resources.files(SHIPPED_PACKAGE).iterdir()
        if entry.name.endswith(".wasm")
    )


def shipped_module(name: str) -> bytes:
    """A shipped codec by its exact name: never a path, whatever the name holds."""
    if name not in shipped_codecs():
        raise SourceError(
            f'no "uri" given and chonkle ships no Wasm codec named {name!r} '
            f"(shipped: {', '.join(shipped_codecs()) or 'none'})"
        )
    return (resources.files(SHIPPED_PACKAGE) / f"{name}.wasm").read_bytes()


def shipped_module_path(name: str) -> Path:
    """Filesystem path of a shipped codec (for ``file://`` URIs in examples and tests)."""
    return Path(str(resources.files(SHIPPED_PACKAGE) / f"{name}.wasm"))
