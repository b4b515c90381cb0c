"""Local modules: ``file:`` URIs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from chonkle.errors import SourceError


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
    path = file_uri_path(uri, base_dir)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{uri!r}: file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise SourceError(f"{uri!r}: {str(path)!r} is a directory, not a .wasm file") from None
    except OSError as exc:
        raise SourceError(f"{uri!r}: cannot read {str(path)!r}: {exc.strerror}") from exc


def is_relative_file_uri(uri: str) -> bool:
    """``file:x.wasm``, ``file:./x.wasm`` or ``file://./x.wasm``: relative to a folder."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "file":
        return False
    return parts.netloc not in ("", "localhost") or not parts.path.startswith("/")
