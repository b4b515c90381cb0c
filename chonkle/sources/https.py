"""Fetching modules over https:// with httpx.

Connect and read timeouts; retries with exponential backoff on connection errors, timeouts,
bodies cut short and 5xx answers; redirects followed only to https://. Certificates are
checked against the usual CA bundle, and SSL_CERT_FILE / SSL_CERT_DIR are honoured (httpx's
trust_env) for private CAs.
"""

from __future__ import annotations

import time
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import httpx

from chonkle.errors import SourceError
from chonkle.sources import net

MAX_REDIRECTS = 5


class _Retryable(Exception):
    """A failure worth another attempt (5xx)."""


def fetch_https(uri: str, sink: BinaryIO, progress: net.Progress | None = None) -> None:
    timeout = httpx.Timeout(net.read_timeout(), connect=net.connect_timeout())
    attempts = net.retries() + 1
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=True) as client:
        for attempt in range(attempts):
            try:
                _get(client, uri, sink, progress)
                return
            except (httpx.TransportError, _Retryable) as exc:
                if net.unresolvable_host(exc):
                    raise SourceError(f"{uri!r}: cannot resolve the host "
                                      f"{urlsplit(uri).hostname!r}") from None
                if _is_certificate_error(exc):
                    raise SourceError(
                        f"{uri!r}: TLS certificate not trusted ({exc}); for a private CA set "
                        "SSL_CERT_FILE or SSL_CERT_DIR") from exc
                if attempt + 1 == attempts:
                    raise SourceError(f"{uri!r}: {_describe(exc)} (gave up after {attempts} "
                                      "attempts)") from exc
                time.sleep(net.backoff(attempt))


def _get(client: httpx.Client, uri: str, sink: BinaryIO, progress: net.Progress | None) -> None:
    url = uri
    for _ in range(MAX_REDIRECTS + 1):
        with client.stream("GET", url) as response:
            if response.is_redirect:
                target = urljoin(url, response.headers.get("location", ""))
                if urlsplit(target).scheme != "https":
                    raise SourceError(f"{uri!r} redirects to {target!r}; chonkle follows "
                                      "redirects to https:// only")
                url = target
                continue
            if response.status_code >= 500:
                raise _Retryable(f"HTTP {response.status_code} {response.reason_phrase}")
            if response.status_code != 200:
                raise SourceError(f"{uri!r}: HTTP {response.status_code} "
                                  f"{response.reason_phrase}")
            length = response.headers.get("content-length")
            sink.seek(0)
            sink.truncate()
            net.copy_limited(response.iter_bytes(), sink, uri,
                                int(length) if length and length.isdigit() else None, progress)
            return
    raise SourceError(f"{uri!r}: more than {MAX_REDIRECTS} redirects")


def _is_certificate_error(exc: Exception) -> bool:
    return isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server broke off the transfer ({exc})"
    return str(exc) or type(exc).__name__
