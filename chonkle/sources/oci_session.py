"""The requests session through which oras reaches a registry for one pull.

oras answers a registry's 401 itself: it reads the Bearer realm from WWW-Authenticate and
GETs it through the session it holds (oras.auth.TokenAuth.request_anonymous_token and
request_token). A session is therefore the one place that sees every URL a pull touches:

- a URL that is not the registry's own is an auth realm, and must be https on the
  registry's host (any loopback host for a loopback registry; http only when the registry
  itself is reached over http), or a hostile registry could point the client at any URL;
- redirects are followed here, by hand: never from https to http, Authorization dropped
  when the host changes, a realm's redirects kept to the realm rule; the address a
  connection reaches is checked by chonkle.sources.guard, like the deadline;
- each request gets the connect and read timeouts, cut to what is left of the deadline;
- bodies are asked for uncompressed; one not read as a stream (a manifest, a token reply)
  is read here, at most MAX_DOCUMENT bytes, before oras or chonkle parses it.
"""

from __future__ import annotations

import io
import ipaddress
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from chonkle.errors import LimitExceeded, SourceError
from chonkle.sources import net
from chonkle.sources.guard import Download

MAX_DOCUMENT = 4 * 2**20  # a manifest or a token reply is a few KiB


class RegistrySession(requests.Session):
    def __init__(self, uri: str, download: Download, origin: str, verify: bool | str) -> None:
        super().__init__()
        self.trust_env = False  # no proxies (the address check must see the real server)
        # and no ~/.netrc credentials sent wherever a realm points
        self.verify = verify
        self.headers.update(net.IDENTITY)
        self.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self._uri = uri
        self._download = download
        self._origin = _authority(origin)
        self._loopback = _is_loopback_name(self._origin[1])

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> requests.Response:
        url = url.decode() if isinstance(url, bytes) else url
        realm = _authority(url) != self._origin
        if realm:
            self._check_realm(url)
        stream = bool(kwargs.pop("stream", False))
        kwargs.update(allow_redirects=False, stream=True)
        for _ in range(net.MAX_REDIRECTS + 1):
            kwargs["timeout"] = (self._download.timeout(net.connect_timeout()),
                                 self._download.timeout(net.read_timeout()))
            response = super().request(method, url, *args, **kwargs)
            if not response.is_redirect:
                break
            response.close()
            target = net.redirect_target(self._uri, url, response.headers.get("location"))
            if realm:
                self._check_realm(target)
            if _authority(target) != _authority(url):
                kwargs["headers"] = {k: v for k, v in (kwargs.get("headers") or {}).items()
                                     if k.lower() != "authorization"}
            kwargs.pop("params", None)  # the Location is the whole URL
            url = target
        else:
            raise SourceError(f"{self._uri!r}: more than {net.MAX_REDIRECTS} redirects")
        if response.status_code == 200:
            net.check_identity(self._uri, response.headers.get("content-encoding"))
        if not stream:
            self._read_body(response, url)
        return response

    def _check_realm(self, url: str) -> None:
        scheme, host, _ = _authority(url)
        schemes = {"https", self._origin[0]}
        same_host = host == self._origin[1] or (self._loopback and _is_loopback_name(host))
        if scheme not in schemes or not same_host:
            raise SourceError(
                f"{self._uri!r}: the registry's auth realm {net.one_line(url)!r} is not https "
                f"on the registry's own host {self._origin[1]!r}; refusing to request a token "
                "there")

    def _read_body(self, response: requests.Response, url: str) -> None:
        """Read the whole body now, capped, so that .content and .json() see only that."""
        def too_big() -> LimitExceeded:
            response.close()
            return LimitExceeded(f"{self._uri!r}: the registry sent more than {MAX_DOCUMENT} "
                                 f"bytes (the limit for a manifest or token reply) for "
                                 f"{net.one_line(urlsplit(url).path, 100)}")

        declared = net.declared_length(response.headers.get("content-length"))
        if declared is not None and declared > MAX_DOCUMENT:
            raise too_big()
        raw = response.raw
        try:
            body = net.read_capped(iter(lambda: raw.read(65536, decode_content=False), b""),
                                   MAX_DOCUMENT, too_big)
        except urllib3.exceptions.HTTPError as exc:  # as requests would have raised it
            raise requests.exceptions.ConnectionError(exc) from exc
        response.raw = io.BytesIO(body)
        _ = response.content  # cached from the capped bytes


def _authority(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of `url`, the port defaulted; an unparsable URL matches nothing."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or {"https": 443, "http": 80}.get(scheme)
        return scheme, (parts.hostname or "").lower().rstrip("."), port
    except ValueError:
        return "", "", None


def _is_loopback_name(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
