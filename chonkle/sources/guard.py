"""One download's deadline and address rule, enforced where its sockets connect.

Both HTTP stacks chonkle drives (httpx for https://, requests under oras for oci://) resolve
names and open sockets deep inside, and a redirect or a registry's auth realm can send them
anywhere; a server that drips a byte a second never trips a per-read timeout. So a single
place sees every connection a download makes: an audit hook on ``socket.connect`` (PEP 578),
installed once per process and acting only for the thread that is inside ``with
Download(...)`` (a context variable), whatever library opens the socket.

- It sees the address actually being connected, after name resolution, so a host name that
  resolves (or re-resolves) to loopback is caught as surely as a literal 127.0.0.1, and it
  refuses before a single packet is sent.
- It keeps a duplicate of each socket, so when the deadline passes a watchdog shuts the
  connection down under whatever is waiting on it (a read, a TLS handshake, a header line).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
import threading
import time
from contextvars import ContextVar
from typing import Any

from chonkle import settings
from chonkle.errors import LimitExceeded, SourceError

_current: ContextVar[Download | None] = ContextVar("chonkle_download", default=None)
# Cloud metadata services outside the link-local range (AWS's IPv6 endpoint).
_METADATA = frozenset({ipaddress.ip_address("fd00:ec2::254")})
_hook_lock = threading.Lock()
_hook_installed = False


def is_internal(address: str) -> bool:
    """Loopback, link-local or unspecified (0.0.0.0 reaches this machine), IPv4-mapped too.

    Anything that is not an IP address counts as internal: refusing is the safe answer.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip in _METADATA


def _addresses(host: str) -> list[str]:
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    try:
        return [str(info[4][0]) for info in socket.getaddrinfo(host, None,
                                                               type=socket.SOCK_STREAM)]
    except (OSError, UnicodeError, ValueError):
        return []


def is_local_host(host: str) -> bool:
    """Is `host` on this machine: localhost, or every address it resolves to internal?"""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    found = _addresses(name)
    return bool(found) and all(is_internal(a) for a in found)


class Download:
    """The deadline (CHONKLE_HTTP_DEADLINE, retries included) and address rule of one download.

    ``host`` is the host the URI names: if it is not on this machine, no connection made for
    this download (redirects, auth realms) may reach an internal address. Any exception that
    leaves the block after the deadline passed becomes a LimitExceeded naming it.
    """

    def __init__(self, uri: str, host: str) -> None:
        self.uri = uri
        self.host = host
        self.seconds = settings.http_deadline()
        self._local: bool | None = None  # decided at the first connection: a name that
        # cannot be resolved costs no second lookup
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._fired = False
        self._ends = 0.0
        self._timer: threading.Timer | None = None
        self._token: Any = None

    def __enter__(self) -> Download:
        _install_hook()
        self._ends = time.monotonic() + self.seconds
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()
        self._token = _current.set(self)
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        _current.reset(self._token)
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for duplicate in sockets:
            duplicate.close()
        if isinstance(exc, Exception) and not isinstance(exc, LimitExceeded) and self.expired:
            raise self.overdue() from exc

    @property
    def expired(self) -> bool:
        return self._fired or time.monotonic() >= self._ends

    def remaining(self) -> float:
        return max(0.0, self._ends - time.monotonic())

    def overdue(self) -> LimitExceeded:
        return LimitExceeded(f"{self.uri!r}: the download did not finish within its "
                             f"{self.seconds:g} s deadline ({settings.HTTP_DEADLINE})")

    def check(self) -> None:
        if self.expired:
            raise self.overdue()

    def timeout(self, seconds: float) -> float:
        """`seconds`, shortened to what is left of the deadline (which must not have passed)."""
        self.check()
        return max(0.001, min(seconds, self.remaining()))

    def sleep(self, seconds: float) -> None:
        """Wait before a retry; a wait that would outlast the deadline fails at once."""
        if seconds >= self.remaining():
            raise self.overdue()
        time.sleep(seconds)

    def _expire(self) -> None:
        with self._lock:
            self._fired = True
            sockets = list(self._sockets)
        for duplicate in sockets:
            with contextlib.suppress(OSError):
                duplicate.shutdown(socket.SHUT_RDWR)

    def connecting(self, sock: socket.socket, address: object) -> None:
        """Called (by the audit hook) before `sock` connects to `address` for this download."""
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
            return
        self.check()
        target = str(address[0])
        if self._local is None:
            self._local = is_local_host(self.host)
        if not self._local and any(is_internal(a) for a in _addresses(target) or [target]):
            raise SourceError(f"{self.uri!r}: refusing to connect to {target}, a loopback or "
                              f"link-local address: {self.host!r} is neither, and its redirects "
                              "and auth realm may not lead there")
        duplicate = sock.dup()
        with self._lock:
            self._sockets.append(duplicate)
            fired = self._fired
        if fired:
            raise self.overdue()


def _audit(event: str, args: tuple) -> None:
    if event == "socket.connect":
        download = _current.get()
        if download is not None:
            download.connecting(*args)


def _install_hook() -> None:
    global _hook_installed
    with _hook_lock:
        if not _hook_installed:
            sys.addaudithook(_audit)
            _hook_installed = True
