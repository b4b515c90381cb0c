"""Fetching modules from OCI registries: oci://REGISTRY/REPO:TAG or oci://REGISTRY/REPO@sha256:HEX.

oras speaks the registry protocol (URLs, auth tokens); chonkle reads the manifest's raw bytes
itself, so a reference by digest is checked against the manifest it names, and streams the
chosen layer with the size limit, checking it against the layer digest the manifest gives.
The layer is the one whose media type is application/wasm, else the single *.wasm layer.

Registries are reached over https. Plain http is allowed only for loopback hosts and for
hosts listed in CHONKLE_INSECURE_REGISTRIES (comma-separated host:port), as container tools
do; those are tried over https first.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any, BinaryIO

from chonkle import settings
from chonkle.errors import SourceError
from chonkle.sources import net

WASM_MEDIA_TYPE = "application/wasm"
MANIFEST_TYPES = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
]
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TITLE = "org.opencontainers.image.title"


@dataclass(frozen=True)
class OciReference:
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def reference(self) -> str:
        return self.digest or self.tag or "latest"

    @property
    def target(self) -> str:
        separator = "@" if self.digest else ":"
        return f"{self.registry}/{self.repository}{separator}{self.reference}"


def parse_oci_uri(uri: str) -> OciReference:
    rest = uri[len("oci://"):]
    registry, _, path = rest.partition("/")
    if not registry or not path:
        raise SourceError(f"{uri!r}: an OCI URI is oci://REGISTRY/REPOSITORY:TAG or "
                          "oci://REGISTRY/REPOSITORY@sha256:DIGEST")
    digest = tag = None
    if "@" in path:
        path, digest = path.split("@", 1)
        if not _DIGEST.match(digest):
            raise SourceError(f"{uri!r}: {digest!r} is not a sha256:<64 hex digits> digest")
    elif ":" in path.rsplit("/", 1)[-1]:
        path, tag = path.rsplit(":", 1)
    return OciReference(registry, path, tag, digest)


def _host(registry: str) -> str:
    """The host part of host[:port], including [IPv6]:port."""
    if registry.startswith("["):
        return registry[1:registry.find("]")]
    return registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry


def insecure_allowed(registry: str) -> bool:
    host = _host(registry)
    listed = settings.insecure_registries()
    if registry in listed or host in listed or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fetch_oci(uri: str, sink: BinaryIO, progress: net.Progress | None = None) -> None:
    ref = parse_oci_uri(uri)
    schemes = ["https", "http"] if insecure_allowed(ref.registry) else ["https"]
    last: Exception | None = None
    for scheme in schemes:
        try:
            _fetch(uri, ref, scheme, sink, progress)
            return
        except SourceError:
            raise
        except Exception as exc:  # requests/oras raise many kinds; try the next scheme
            if net.unresolvable_host(exc):
                raise SourceError(f"{uri!r}: cannot resolve the registry host "
                                  f"{_host(ref.registry)!r}") from None
            last = exc
    hint = "" if len(schemes) > 1 else (
        "; a plain-http registry must be on loopback or listed in CHONKLE_INSECURE_REGISTRIES")
    raise SourceError(f"{uri!r}: cannot reach registry {ref.registry} ({_first_line(last)}){hint}")


def _client(ref: OciReference, scheme: str) -> Any:
    import oras.provider
    import requests

    timeout = (net.connect_timeout(), net.read_timeout())

    class TimeoutSession(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", timeout)
            return super().request(*args, **kwargs)

    verify: bool | str = os.environ.get("SSL_CERT_FILE") or True
    client = oras.provider.Registry(hostname=ref.registry, insecure=scheme == "http",
                                    tls_verify=verify)
    client.session = TimeoutSession()
    client.session.verify = verify
    return client


def _request(client: Any, url: str, headers: dict | None = None, stream: bool = False) -> Any:
    """GET through oras (which handles registry auth), with chonkle's retry policy.

    oras's own do_request retries five times with sleeps of 3 s to 83 s, over two minutes for
    an unreachable registry; its undecorated version is called instead.
    """
    import requests

    do_request = getattr(type(client).do_request, "__wrapped__", type(client).do_request)
    attempts = net.retries() + 1
    for attempt in range(attempts):
        try:
            response = do_request(client, url, "GET", headers=dict(headers or {}), stream=stream)
        except requests.exceptions.SSLError:
            raise
        except requests.exceptions.RequestException:
            if attempt + 1 == attempts:
                raise
        else:
            if response.status_code < 500 or attempt + 1 == attempts:
                return response
        time.sleep(net.backoff(attempt))
    raise AssertionError("unreachable")


def _fetch(uri: str, ref: OciReference, scheme: str, sink: BinaryIO,
           progress: net.Progress | None) -> None:
    client = _client(ref, scheme)
    container = client.get_container(ref.target)
    response = _request(client, f"{client.prefix}://{container.manifest_url()}",
                        {"Accept": ", ".join(MANIFEST_TYPES)})
    if response.status_code == 404:
        raise SourceError(f"{uri!r}: no such artifact in registry {ref.registry}")
    if response.status_code != 200:
        raise SourceError(f"{uri!r}: registry answered HTTP {response.status_code} for the "
                          "manifest")
    raw = response.content
    if ref.digest and "sha256:" + hashlib.sha256(raw).hexdigest() != ref.digest:
        raise SourceError(f"{uri!r}: the registry's manifest does not match the digest in the "
                          "URI; refusing it")
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise SourceError(f"{uri!r}: the registry sent a manifest that is not JSON") from None
    layer = _wasm_layer(uri, manifest)
    blob_url = f"{client.prefix}://{container.get_blob_url(layer['digest'])}"
    with _request(client, blob_url, stream=True) as blob:
        if blob.status_code != 200:
            raise SourceError(f"{uri!r}: registry answered HTTP {blob.status_code} for layer "
                              f"{layer['digest']}")
        sink.seek(0)
        sink.truncate()
        net.copy_limited(blob.iter_content(chunk_size=65536), sink, uri, layer.get("size"),
                            progress)
    sink.seek(0)
    actual = "sha256:" + hashlib.sha256(sink.read()).hexdigest()
    if actual != layer["digest"]:
        raise SourceError(f"{uri!r}: layer content has digest {actual}, not the manifest's "
                          f"{layer['digest']}; refusing it")


def _wasm_layer(uri: str, manifest: dict) -> dict:
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not layers:
        raise SourceError(f"{uri!r}: the artifact has no layers")
    typed = [layer for layer in layers if layer.get("mediaType") == WASM_MEDIA_TYPE]
    named = [layer for layer in layers
             if str(layer.get("annotations", {}).get(_TITLE, "")).endswith(".wasm")]
    candidates = typed or named
    if len(candidates) == 1 and _DIGEST.match(str(candidates[0].get("digest", ""))):
        return candidates[0]
    described = ", ".join(
        f"{layer.get('annotations', {}).get(_TITLE, '?')} ({layer.get('mediaType')})"
        for layer in (candidates or layers))
    if not candidates:
        raise SourceError(f"{uri!r}: no layer has media type {WASM_MEDIA_TYPE} or a .wasm "
                          f"name (layers: {described})")
    raise SourceError(f"{uri!r}: more than one Wasm layer, cannot choose (layers: {described})")


def _first_line(exc: Exception | None) -> str:
    text = str(exc or "").strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
