"""A TIFF at an https:// URL, read by HTTP range requests with httpx.

Why httpx (not obstore or fsspec): chonkle's download policy is built on it already. The
timeouts, retries with backoff, the total deadline (CHONKLE_HTTP_DEADLINE) and the address
rule are enforced by chonkle.sources.guard where sockets connect, which works for any
library, but redirects are followed by hand with chonkle.sources.net's rules, bodies are
read raw so caps count what arrives, and proxies/netrc are ignored; obstore's and fsspec's
own HTTP stacks would each need that policy rebuilt around them. A COG needs nothing more
than single ranges, which httpx does in a few lines.

- Structure: tifffile parses from a stream that fetches what it reads: the first 16 KiB,
  then read-ahead that doubles (to 1 MiB) on each miss, so a COG's header (all IFDs at the
  front) takes one or a few requests; at most 32 MiB in all.
- Tiles: the ranges a read needs, coalesced when they touch or are under 64 KiB apart (at
  most 16 MiB per request), fetched over up to 4 connections.
- Each group of requests (the structure at open; each batch of tiles) is one download: its
  requests share one deadline, retries included, and its connections obey the address rule.
- Every answer is checked: 206 with the Content-Range asked for (a server that ignores Range
  is an error, not a silent whole-file download), no Content-Encoding, the same size and
  ETag as before (a file replaced while being read is an error), exactly the bytes announced.

``http://`` is accepted for loopback hosts only (test servers), and never redirects onward
to http:// elsewhere.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import ipaddress
import re
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

import httpx

from chonkle.errors import ChonkleError, LimitExceeded, SourceError
from chonkle.formats.tiff_sources import Range, check_within, coalesce, split
from chonkle.sources import net
from chonkle.sources.guard import Download
from chonkle.sources.https import Retryable, describe

T = TypeVar("T")

FIRST_FETCH = 16 * 2**10
MAX_READ_AHEAD = 2**20
MAX_HEADER_BYTES = 32 * 2**20
MAX_GAP = 64 * 2**10
MAX_SPAN = 16 * 2**20
CONNECTIONS = 4
_CONTENT_RANGE = re.compile(r"\s*bytes\s+([0-9]{1,18})-([0-9]{1,18})/([0-9]{1,18})\s*")


def _loopback(host: str) -> bool:
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass
class _Session:
    client: httpx.Client
    download: Download


class HttpFile:
    """A remote TIFF; see the module docstring for what is fetched and checked."""

    def __init__(self, url: str) -> None:
        self.name = self.url = url
        self.label = repr(url)
        try:
            parts = urlsplit(url)
            _ = parts.port  # a port that is not a number raises ValueError
        except ValueError:
            raise SourceError(f"{url!r} is not a valid URL") from None
        scheme = parts.scheme.lower()
        self.host = parts.hostname or ""
        if not self.host:
            raise SourceError(f"{url!r} names no host")
        if scheme == "http" and not _loopback(self.host):
            raise SourceError(f"{url!r}: plain http:// is accepted only for loopback hosts; "
                              "use https://")
        if scheme not in ("http", "https"):
            raise SourceError(f"{url!r}: chonkle reads TIFFs from local paths and https:// "
                              f"URLs, not {scheme}://")
        self.size: int | None = None
        self._etag: str | None = None
        self._identity_lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None

    # ---- the two operations a TiffSource offers ---------------------------------------

    def parse(self, parse: Callable[[BinaryIO], T]) -> T:
        with self._session() as session:
            stream = _RangeStream(self, session)
            try:
                result = parse(stream)  # type: ignore[arg-type]
            except Exception:
                if stream.failure is not None:  # the transport's error, not what it caused
                    raise stream.failure from None
                raise
            if stream.failure is not None:  # swallowed by tifffile: the parse saw holes
                raise stream.failure
            return result

    def read_ranges(self, ranges: Sequence[Range]) -> list[bytes]:
        if not ranges:
            return []
        if self.size is None:  # structure not parsed yet: learn the size first
            with self._session() as session:
                self._get(session, 0, 1)
        assert self.size is not None
        check_within(self.label, ranges, self.size)
        spans = coalesce(ranges, MAX_GAP, MAX_SPAN)
        with self._session() as session:
            if len(spans) == 1:
                data = [self._get(session, spans[0].start, spans[0].end)[0]]
            else:
                data = self._get_all(session, [(s.start, s.end) for s in spans])
        return split(ranges, spans, data)

    # ---- plumbing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _session(self) -> Iterator[_Session]:
        """One download: a deadline, the address rule, and a client whose connections are
        all made (and so all watched) within it."""
        try:
            with Download(self.url, self.host) as download, self._client() as client:
                yield _Session(client, download)
        except ChonkleError:
            raise
        except Exception as exc:  # whatever httpx or a hostile answer raised: one clean line
            raise SourceError(f"{self.url!r}: {net.describe(exc)}") from exc

    def _client(self) -> httpx.Client:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context(trust_env=True)  # SSL_CERT_FILE / _DIR
        return httpx.Client(verify=self._ssl, trust_env=False, follow_redirects=False,
                            headers=net.IDENTITY)

    def _get_all(self, session: _Session, spans: list[tuple[int, int]]) -> list[bytes]:
        """Fetch spans concurrently; the guard sees each worker's connections because each
        task runs in a copy of this thread's context (which names the download)."""
        with ThreadPoolExecutor(min(CONNECTIONS, len(spans)),
                                thread_name_prefix="chonkle-range") as pool:
            futures = [pool.submit(contextvars.copy_context().run, self._get, session, a, b)
                       for a, b in spans]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in pending:
                future.cancel()
            for future in futures:
                if future in done and future.exception() is not None:
                    raise future.exception()  # type: ignore[misc]
            return [future.result()[0] for future in futures]

    def _get(self, session: _Session, start: int, end: int) -> tuple[bytes, int]:
        """Bytes [start, end) (end clipped to the file), and the file's size; retried."""
        attempts = net.retries() + 1
        for attempt in range(attempts):
            try:
                return self._get_once(session, start, end)
            except (httpx.TransportError, Retryable) as exc:
                if net.unresolvable_host(exc):
                    raise SourceError(f"{self.url!r}: cannot resolve the host "
                                      f"{self.host!r}") from None
                if isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(
                        exc):
                    raise SourceError(
                        f"{self.url!r}: TLS certificate not trusted ({net.one_line(exc)}); "
                        "for a private CA set SSL_CERT_FILE or SSL_CERT_DIR") from exc
                session.download.check()  # a connection the deadline shut is not retried
                if attempt + 1 == attempts:
                    raise SourceError(f"{self.url!r}: {describe(exc)} (gave up after "
                                      f"{attempts} attempts)") from exc
                session.download.sleep(net.backoff(attempt))
        raise AssertionError("unreachable")

    def _get_once(self, session: _Session, start: int, end: int) -> tuple[bytes, int]:
        url = self.url
        download = session.download
        for _ in range(net.MAX_REDIRECTS + 1):
            timeout = httpx.Timeout(download.timeout(net.read_timeout()),
                                    connect=download.timeout(net.connect_timeout()))
            headers = {"Range": f"bytes={start}-{end - 1}"}
            with session.client.stream("GET", url, headers=headers, timeout=timeout) as answer:
                if answer.is_redirect:
                    url = self._redirect(url, answer.headers.get("location"))
                    continue
                return self._body(answer, start, end, download)
        raise SourceError(f"{self.url!r}: more than {net.MAX_REDIRECTS} redirects")

    def _redirect(self, current: str, location: str | None) -> str:
        target = net.redirect_target(self.url, current, location)
        parts = urlsplit(target)
        if parts.scheme.lower() == "http" and not _loopback(parts.hostname or ""):
            raise SourceError(f"{self.url!r} redirects to {net.one_line(target)!r}; plain "
                              "http:// is accepted only for loopback hosts")
        return target

    def _body(self, answer: httpx.Response, start: int, end: int,
              download: Download) -> tuple[bytes, int]:
        status = f"HTTP {answer.status_code} {net.one_line(answer.reason_phrase, 60)}".strip()
        if answer.status_code >= 500:
            raise Retryable(status)
        if answer.status_code == 200:
            raise SourceError(f"{self.url!r}: the server does not honour Range requests "
                              "(it answered a range request with the whole file); chonkle "
                              "reads remote TIFFs by ranges only")
        if answer.status_code == 416:
            raise SourceError(f"{self.url!r}: bytes {start}.. are past the end of the file "
                              f"({status}): it is empty or truncated")
        if answer.status_code != 206:
            raise SourceError(f"{self.url!r}: {status}")
        net.check_identity(self.url, answer.headers.get("content-encoding"))
        first, last, total = self._content_range(answer.headers.get("content-range"))
        if first != start or last != min(end, total) - 1:
            raise SourceError(f"{self.url!r}: asked for bytes {start}-{end - 1}, the server "
                              f"sent {first}-{last} of {total}")
        self._same_file(total, answer.headers.get("etag"))
        expected = last - first + 1
        body = net.read_capped(answer.iter_raw(), expected, lambda: SourceError(
            f"{self.url!r}: the server sent more than the {expected} bytes it announced for "
            f"{first}-{last}"), download)
        if len(body) < expected:
            raise Retryable(f"the body was cut short ({len(body)} of {expected} bytes)")
        return body, total

    def _content_range(self, value: str | None) -> tuple[int, int, int]:
        match = _CONTENT_RANGE.fullmatch(value or "")
        if match is None:
            raise SourceError(f"{self.url!r}: a 206 answer without a usable Content-Range "
                              f"({net.one_line(value, 60)!r})")
        first, last, total = (int(g) for g in match.groups())
        if not first <= last < total:
            raise SourceError(f"{self.url!r}: a malformed Content-Range "
                              f"({net.one_line(value, 60)!r})")
        return first, last, total

    def _same_file(self, size: int, etag: str | None) -> None:
        """The file may not change between requests: its size and ETag must stay the same."""
        with self._identity_lock:
            if self.size is None:
                self.size, self._etag = size, etag
                return
            if size != self.size or (etag is not None and self._etag is not None
                                     and etag != self._etag):
                raise SourceError(f"{self.url!r} changed on the server while being read "
                                  f"(size {self.size} -> {size}, ETag {self._etag} -> {etag})")


class _RangeStream(io.RawIOBase):
    """A read-only, seekable stream over a remote file, fetching what is read (and some
    read-ahead) for tifffile. Transport errors are kept in ``failure``: tifffile catches
    some exceptions while parsing and goes on, and the caller must not trust what it built."""

    def __init__(self, source: HttpFile, session: _Session) -> None:
        super().__init__()
        self.source = source
        self.session = session
        self.failure: ChonkleError | None = None
        self._pos = 0
        self._spans: list[tuple[int, bytes]] = []
        self._fetched = 0
        self._read_ahead = FIRST_FETCH
        data, self._size = self._fetch(0, FIRST_FETCH)
        self._spans.append((0, data))

    @property
    def name(self) -> str:
        return self.source.url

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        count = min(len(target), self._size - self._pos)
        if count <= 0:
            return 0
        try:
            data = self._bytes(self._pos, count)
        except ChonkleError as exc:
            self.failure = self.failure or exc
            raise
        target[:count] = data
        self._pos += count
        return count

    def _bytes(self, pos: int, count: int) -> bytes:
        for start, blob in self._spans:
            if start <= pos and pos + count <= start + len(blob):
                return blob[pos - start:pos - start + count]
        end = min(self._size, pos + max(count, self._read_ahead))
        self._read_ahead = min(2 * self._read_ahead, MAX_READ_AHEAD)
        data, _ = self._fetch(pos, end)
        self._spans.append((pos, data))
        return data[:count]

    def _fetch(self, start: int, end: int) -> tuple[bytes, int]:
        if self._fetched + (end - start) > MAX_HEADER_BYTES:
            raise LimitExceeded(f"{self.source.url!r}: its TIFF structure needs more than "
                                f"{MAX_HEADER_BYTES} bytes; no image chonkle reads has one "
                                "that large")
        try:
            data, size = self.source._get(self.session, start, end)
        except ChonkleError as exc:
            self.failure = self.failure or exc
            raise
        self._fetched += len(data)
        return data, size
