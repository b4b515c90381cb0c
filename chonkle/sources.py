"""Where Wasm codec modules come from: a URI (or a codec shipped in chonkle) -> bytes.

Each URI scheme maps to one fetcher in ``FETCHERS``; adding ``https`` or ``oci``
means adding a function there, nothing else. Integrity (``sha256``) is checked
here, after every fetch, so no source can hand unverified bytes to an engine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlsplit

from chonkle.errors import SourceError

Fetcher = Callable[[str, "Path | None"], bytes]
SHIPPED_PACKAGE = "chonkle.wasm"


def fetch_module(uri: str | None, name: str, *, base_dir: Path | None,
                 sha256: str | None = None) -> bytes:
    """Return the bytes of a Wasm module, verified against ``sha256`` when one is given.

    ``uri=None`` means the codec of that name shipped inside chonkle.
    """
    if uri is None:
        wasm = shipped_module(name)
        where = f"shipped codec {name!r}"
    else:
        scheme = urlsplit(uri).scheme.lower()
        fetcher = FETCHERS.get(scheme)
        if fetcher is None:
            raise SourceError(_unsupported_scheme_message(uri, scheme))
        wasm = fetcher(uri, base_dir)
        where = uri
    if sha256 is not None:
        actual = hashlib.sha256(wasm).hexdigest()
        if actual != sha256:
            raise SourceError(
                f"module from {where} has sha256 {actual}, but the pipeline pins {sha256}; "
                "refusing to run it"
            )
    return wasm


def shipped_codecs() -> list[str]:
    """Names of the Wasm codecs that ship inside the chonkle package."""
    return sorted(
        entry.name[: -len(".wasm")]
        for entry in resources.files(SHIPPED_PACKAGE).iterdir()
        if entry.name.endswith(".wasm")
    )


def shipped_module(name: str) -> bytes:
    resource = resources.files(SHIPPED_PACKAGE) / f"{name}.wasm"
    if not resource.is_file():
        raise SourceError(
            f'no "uri" given and chonkle ships no Wasm codec named {name!r} '
            f"(shipped: {', '.join(shipped_codecs()) or 'none'})"
        )
    return resource.read_bytes()


def shipped_module_path(name: str) -> Path:
    """Filesystem path of a shipped codec (for ``file://`` URIs in examples and tests)."""
    return Path(str(resources.files(SHIPPED_PACKAGE) / f"{name}.wasm"))


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


def _fetch_file(uri: str, base_dir: Path | None) -> bytes:
    path = file_uri_path(uri, base_dir)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{uri!r}: file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise SourceError(f"{uri!r}: {str(path)!r} is a directory, not a .wasm file") from None
    except OSError as exc:
        raise SourceError(f"{uri!r}: cannot read {str(path)!r}: {exc.strerror}") from exc


FETCHERS: dict[str, Fetcher] = {"file": _fetch_file}

_PLANNED = {"https": "https:// sources", "oci": "oci:// registries"}


def _unsupported_scheme_message(uri: str, scheme: str) -> str:
    if scheme == "http":
        return f"{uri!r}: plain http:// is refused; a codec is code, so fetch it over https://"
    if scheme in _PLANNED:
        return f"{uri!r}: {_PLANNED[scheme]} are not supported by this version of chonkle yet"
    supported = ", ".join(f"{s}://" for s in FETCHERS)
    return f"{uri!r}: unsupported URI scheme {scheme or '(none)'!r} (supported: {supported})"
