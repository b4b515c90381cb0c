"""Fetching modules over https:// with httpx.

Every wait is bounded: connect and read timeouts per request, and one deadline for the whole
download, retries included (CHONKLE_HTTP_DEADLINE, chonkle.sources.guard). Retries back off
exponentially on connection errors, timeouts, bodies cut short and 5xx answers. Redirects are
followed by hand, at most five, to https:// only; where they lead is checked when connecting
(never onto this machine from a host that is not on it). The body is asked for uncompressed
and read raw, so the size limit counts exactly what arrives.

Certificates are checked against the usual CA bundle, SSL_CERT_FILE / SSL_CERT_DIR honoured
for private CAs. Proxies and ~/.netrc from the environment are not used: the address check
must see the real server, and no credentials go wherever a redirect points.
"""

from __future__ import annotations

from typing import BinaryIO
from urllib.parse import urlsplit

import httpx

from chonkle.errors import ChonkleError, SourceError
from chonkle.sources import net
from chonkle.sources.guard import Download


class Retryable(Exception):
    """A failure worth another attempt (5xx)."""


def fetch_https(uri: str, sink: BinaryIO, progress: net.Progress | None = None) -> None:
    try:
        with Download(uri, urlsplit(uri).hostname or "") as download, _client() as client:
            _fetch(client, uri, sink, progress, download)
    except ChonkleError:
        raise
    except Exception as exc:  # whatever httpx or a hostile answer raised: one clean line
        raise SourceError(f"{uri!r}: {net.describe(exc)}") from exc


def _client() -> httpx.Client:
    verify = httpx.create_ssl_context(trust_env=True)  # SSL_CERT_FILE / SSL_CERT_DIR
    return httpx.Client(verify=verify, trust_env=False, follow_redirects=False,
                        headers=net.IDENTITY)


def _fetch(client: httpx.Client, uri: str, sink: BinaryIO, progress: net.Progress | None,
           download: Download) -> None:
    attempts = net.retries() + 1
    for attempt in range(attempts):
        try:
            _get(client, uri, sink, progress, download)
            return
        except (httpx.TransportError, Retryable) as exc:
            if net.unresolvable_host(exc):
                raise SourceError(f"{uri!r}: cannot resolve the host "
                                  f"{urlsplit(uri).hostname!r}") from None
            if _is_certificate_error(exc):
                raise SourceError(
                    f"{uri!r}: TLS certificate not trusted ({net.one_line(exc)}); for a private "
                    "CA set SSL_CERT_FILE or SSL_CERT_DIR") from exc
            download.check()  # a connection the deadline shut down is not retried
            if attempt + 1 == attempts:
                raise SourceError(f"{uri!r}: {describe(exc)} (gave up after {attempts} "
                                  "attempts)") from exc
            download.sleep(net.backoff(attempt))


def _get(client: httpx.Client, uri: str, sink: BinaryIO, progress: net.Progress | None,
         download: Download) -> None:
    url = uri
    for _ in range(net.MAX_REDIRECTS + 1):
        timeout = httpx.Timeout(download.timeout(net.read_timeout()),
                                connect=download.timeout(net.connect_timeout()))
        with client.stream("GET", url, timeout=timeout) as response:
            if response.is_redirect:
                url = net.redirect_target(uri, url, response.headers.get("location"))
                continue
            status = f"HTTP {response.status_code} {net.one_line(response.reason_phrase, 60)}"
            if response.status_code >= 500:
                raise Retryable(status.strip())
            if response.status_code != 200:
                raise SourceError(f"{uri!r}: {status.strip()}")
            net.check_identity(uri, response.headers.get("content-encoding"))
            sink.seek(0)
            sink.truncate()
            net.copy_limited(response.iter_raw(), sink, uri,
                             net.declared_length(response.headers.get("content-length")),
                             progress, download)
            return
    raise SourceError(f"{uri!r}: more than {net.MAX_REDIRECTS} redirects")


def _is_certificate_error(exc: Exception) -> bool:
    return isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(exc)


def describe(exc: Exception) -> str:
    """A failed HTTP exchange in one line (httpx's own words, shortened)."""
    if isinstance(exc, Retryable):
        return str(exc)
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server broke off the transfer ({net.one_line(exc)})"
    return net.describe(exc)
