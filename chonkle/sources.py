"""Where Wasm codec modules come from: a URI (or a codec shipped in chonkle) -> bytes.

Each URI scheme maps to one fetcher: local ones return bytes, remote ones (https, oci)
write into a file the cache gives them. Integrity (``sha256``) is checked here or by
the cache before bytes are returned or stored, whatever the source, so no source can
hand unverified bytes to an engine.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from chonkle.cache import ModuleCache, check_digest, env_flag
from chonkle.errors import SourceError
from chonkle.remote import Progress

SHIPPED_PACKAGE = "chonkle.wasm"


REQUIRE_DIGEST_ENV = "CHONKLE_REQUIRE_DIGEST"
OFFLINE_ENV = "CHONKLE_OFFLINE"
FORCE_DOWNLOAD_ENV = "CHONKLE_FORCE_DOWNLOAD"


def fetch_module(uri: str | None, name: str, *, base_dir: Path | None,
                 sha256: str | None = None, progress: Progress | None = None) -> bytes:
    """Return the bytes of a Wasm module, verified against ``sha256`` when one is given.

    ``uri=None`` means the codec of that name shipped inside chonkle. Network sources go
    through the on-disk cache (chonkle.cache).
    """
    if uri is None:
        return _verified(shipped_module(name), sha256, f"shipped codec {name!r}")
    if sha256 is None and env_flag(REQUIRE_DIGEST_ENV):
        raise SourceError(f'{uri!r}: {REQUIRE_DIGEST_ENV}=1 and the step pins no "sha256"')
    scheme = urlsplit(uri).scheme.lower()
    if scheme in LOCAL_FETCHERS:
        return _verified(LOCAL_FETCHERS[scheme](uri, base_dir), sha256, uri)
    if scheme in REMOTE_FETCHERS:
        return _fetch_remote(uri, scheme, sha256, progress)
    raise SourceError(_unsupported_scheme_message(uri, scheme))


def _verified(wasm: bytes, sha256: str | None, where: str) -> bytes:
    check_digest(wasm, sha256, where)
    return wasm


def _fetch_remote(uri: str, scheme: str, sha256: str | None, progress: Progress | None) -> bytes:
    cache = ModuleCache()
    force = env_flag(FORCE_DOWNLOAD_ENV)
    if not force:
        if sha256 is not None:  # content-addressed: any URI that delivered these bytes will do
            pinned = cache.blob(sha256)
            if pinned is not None:
                return pinned
        hit = cache.lookup(uri)
        if hit is not None and sha256 in (None, hit[1]):
            return hit[0]
    if env_flag(OFFLINE_ENV):
        raise SourceError(f"{uri!r} is not in the cache ({cache.root}) and {OFFLINE_ENV}=1 "
                          "forbids downloading; warm the cache with `chonkle cache fetch "
                          "PIPELINE` while online")
    fetcher = REMOTE_FETCHERS[scheme]
    data, _ = cache.download(uri, lambda sink: fetcher(uri, sink, progress), sha256,
                             reuse=not force)
    return data


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


def _fetch_https(uri: str, sink: BinaryIO, progress: Progress | None) -> None:
    from chonkle.https_source import fetch_https  # httpx is imported only when needed

    fetch_https(uri, sink, progress)


def _fetch_oci(uri: str, sink: BinaryIO, progress: Progress | None) -> None:
    from chonkle.oci_source import fetch_oci  # oras is imported only when needed

    fetch_oci(uri, sink, progress)


LOCAL_FETCHERS: dict[str, Callable[[str, Path | None], bytes]] = {"file": _fetch_file}
RemoteFetcher = Callable[[str, BinaryIO, "Progress | None"], None]
REMOTE_FETCHERS: dict[str, RemoteFetcher] = {"https": _fetch_https, "oci": _fetch_oci}


def _unsupported_scheme_message(uri: str, scheme: str) -> str:
    if scheme == "http":
        return f"{uri!r}: plain http:// is refused; a codec is code, so fetch it over https://"
    supported = ", ".join(f"{s}://" for s in [*LOCAL_FETCHERS, *REMOTE_FETCHERS])
    return f"{uri!r}: unsupported URI scheme {scheme or '(none)'!r} (supported: {supported})"
