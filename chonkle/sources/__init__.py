"""Where Wasm codec modules come from: a URI (or a codec shipped in chonkle) -> bytes.

Each URI scheme maps to one fetcher: local ones return bytes, remote ones (https, oci)
write into a file the cache gives them. Integrity (``sha256``) is checked here or by
the cache before bytes are returned or stored, whatever the source, so no source can
hand unverified bytes to an engine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from chonkle import settings
from chonkle.errors import SourceError
from chonkle.sources.cache import ModuleCache, check_digest
from chonkle.sources.file import fetch_file, file_uri_path
from chonkle.sources.net import Progress
from chonkle.sources.shipped import shipped_codecs, shipped_module, shipped_module_path

REQUIRE_DIGEST_ENV = settings.REQUIRE_DIGEST
OFFLINE_ENV = settings.OFFLINE


def fetch_module(uri: str | None, name: str, *, base_dir: Path | None,
                 sha256: str | None = None, progress: Progress | None = None) -> bytes:
    """Return the bytes of a Wasm module, verified against ``sha256`` when one is given.

    ``uri=None`` means the codec of that name shipped inside chonkle. Network sources go
    through the on-disk cache (chonkle.cache).
    """
    if uri is None:
        return _verified(shipped_module(name), sha256, f"shipped codec {name!r}")
    if sha256 is None and settings.require_digest():
        raise SourceError(f'{uri!r}: {REQUIRE_DIGEST_ENV}=1 and the step pins no "sha256"')
    try:
        scheme = urlsplit(uri).scheme.lower()
    except ValueError as exc:  # "Invalid IPv6 URL", for one
        raise SourceError(f"{uri!r} is not a URI: {exc}") from None
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
    force = settings.force_download()
    if not force:
        if sha256 is not None:  # content-addressed: any URI that delivered these bytes will do
            pinned = cache.blob(sha256)
            if pinned is not None:
                return pinned
        hit = cache.lookup(uri)
        if hit is not None and sha256 in (None, hit[1]):
            return hit[0]
    if settings.offline():
        raise SourceError(f"{uri!r} is not in the cache ({cache.root}) and {OFFLINE_ENV}=1 "
                          "forbids downloading; warm the cache with `chonkle cache fetch "
                          "PIPELINE` while online")
    fetcher = REMOTE_FETCHERS[scheme]
    data, _ = cache.download(uri, lambda sink: fetcher(uri, sink, progress), sha256,
                             reuse=not force)
    return data


def _fetch_https(uri: str, sink: BinaryIO, progress: Progress | None) -> None:
    from chonkle.sources.https import fetch_https  # httpx is imported only when needed

    fetch_https(uri, sink, progress)


def _fetch_oci(uri: str, sink: BinaryIO, progress: Progress | None) -> None:
    from chonkle.sources.oci import fetch_oci  # oras is imported only when needed

    fetch_oci(uri, sink, progress)


LOCAL_FETCHERS: dict[str, Callable[[str, Path | None], bytes]] = {"file": fetch_file}
RemoteFetcher = Callable[[str, BinaryIO, "Progress | None"], None]
REMOTE_FETCHERS: dict[str, RemoteFetcher] = {"https": _fetch_https, "oci": _fetch_oci}


def _unsupported_scheme_message(uri: str, scheme: str) -> str:
    if scheme == "http":
        return f"{uri!r}: plain http:// is refused; a codec is code, so fetch it over https://"
    supported = ", ".join(f"{s}://" for s in [*LOCAL_FETCHERS, *REMOTE_FETCHERS])
    return f"{uri!r}: unsupported URI scheme {scheme or '(none)'!r} (supported: {supported})"


__all__ = [
    "LOCAL_FETCHERS",
    "REMOTE_FETCHERS",
    "fetch_module",
    "file_uri_path",
    "shipped_codecs",
    "shipped_module",
    "shipped_module_path",
]
