"""Fetching modules from OCI registries: oci://REGISTRY/REPO:TAG or oci://REGISTRY/REPO@sha256:HEX.

oras speaks the registry protocol (URLs, auth tokens); chonkle reads the manifest's raw bytes
itself, so a reference by digest is checked against the manifest it names, and streams the
chosen layer with the size limit, checking it against the layer digest the manifest gives.
The layer is the one whose media type is application/wasm, else the single *.wasm layer.

Registries are reached over https. Plain http is allowed only for loopback hosts and for
hosts listed in CHONKLE_INSECURE_REGISTRIES (comma-separated host:port), as container tools
do; those are tried over https first.

Everything the registry sends is hostile until checked: all of oras's traffic goes through a
RegistrySession (auth realms on the registry's host only, redirects on the same scheme, the
manifest and token replies capped at 4 MiB), one deadline covers the whole pull, and the
manifest's fields are checked for type before use.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from typing import Any, BinaryIO

from chonkle import settings
from chonkle.errors import ChonkleError, SourceError
from chonkle.sources import net
from chonkle.sources.guard import Download
from chonkle.sources.oci_session import RegistrySession

WASM_MEDIA_TYPE = "application/wasm"
MANIFEST_TYPES = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
]
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
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


# The distribution specification's grammar: a registry is a host (a name or a bracketed IPv6
# address) with an optional port, nothing else (no "user@"); repositories and tags are
# restricted so that they can only name what they say.
_REGISTRY = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
                       r"(:[0-9]{1,5})?")
_REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)"
                         r"[a-z0-9]+)*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_USAGE = "an OCI URI is oci://REGISTRY/REPOSITORY:TAG or oci://REGISTRY/REPOSITORY@sha256:DIGEST"


def parse_oci_uri(uri: str) -> OciReference:
    if not uri[:6].lower() == "oci://":
        raise SourceError(f"{uri!r}: {_USAGE}")
    registry, _, path = uri[6:].partition("/")
    if not registry or not path:
        raise SourceError(f"{uri!r}: {_USAGE}")
    if not _REGISTRY.fullmatch(registry):
        raise SourceError(f"{uri!r}: {registry!r} is not a registry host[:port]")
    digest = tag = None
    if "@" in path:
        path, digest = path.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise SourceError(f"{uri!r}: {digest!r} is not a sha256:<64 hex digits> digest")
    elif ":" in path.rsplit("/", 1)[-1]:
        path, tag = path.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise SourceError(f"{uri!r}: {tag!r} is not a tag")
    if not _REPOSITORY.fullmatch(path):
        raise SourceError(f"{uri!r}: {path!r} is not a repository name")
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
    try:
        with Download(uri, _host(ref.registry)) as download:
            _fetch_any_scheme(uri, ref, sink, progress, download)
    except ChonkleError:
        raise
    except Exception as exc:  # whatever oras, requests or a hostile answer raised: one line
        raise SourceError(f"{uri!r}: {net.describe(exc)}") from exc


def _fetch_any_scheme(uri: str, ref: OciReference, sink: BinaryIO,
                      progress: net.Progress | None, download: Download) -> None:
    import requests

    schemes = ["https", "http"] if insecure_allowed(ref.registry) else ["https"]
    last: Exception | None = None
    for scheme in schemes:
        try:
            _fetch(uri, ref, scheme, sink, progress, download)
            return
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            if net.unresolvable_host(exc):
                raise SourceError(f"{uri!r}: cannot resolve the registry host "
                                  f"{_host(ref.registry)!r}") from None
            download.check()
            last = exc  # try the next scheme
    hint = "" if len(schemes) > 1 else (
        "; a plain-http registry must be on loopback or listed in CHONKLE_INSECURE_REGISTRIES")
    raise SourceError(f"{uri!r}: cannot reach registry {ref.registry} ({net.describe(last)})"
                      f"{hint}")


def _client(uri: str, ref: OciReference, scheme: str, download: Download) -> Any:
    import oras.provider

    verify: bool | str = os.environ.get("SSL_CERT_FILE") or True
    client = oras.provider.Registry(hostname=ref.registry, insecure=scheme == "http",
                                    tls_verify=verify)
    session = RegistrySession(uri, download, f"{scheme}://{ref.registry}", verify)
    # oras's token auth keeps its own reference to the session it was created with: both
    # must be chonkle's, or realm requests would bypass every check.
    client.session = client.auth.session = session
    return client


def _request(uri: str, client: Any, download: Download, url: str, headers: dict | None = None,
             stream: bool = False) -> Any:
    """GET through oras (which answers the registry's auth challenge), with chonkle's retries.

    oras's own do_request retries five times with sleeps of 3 s to 83 s, over two minutes for
    an unreachable registry; its undecorated version is called instead.
    """
    import requests

    do_request = getattr(type(client).do_request, "__wrapped__", type(client).do_request)
    retryable = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                 requests.exceptions.ChunkedEncodingError)
    attempts = net.retries() + 1
    for attempt in range(attempts):
        try:
            response = do_request(client, url, "GET", headers=dict(headers or {}), stream=stream)
        except requests.exceptions.SSLError:
            raise
        except retryable:
            download.check()
            if attempt + 1 == attempts:
                raise
        except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as exc:
            # oras reading the registry's auth challenge or token reply, or requests a
            # Location: the registry's doing
            raise SourceError(f"{uri!r}: registry {client.hostname} gave an answer chonkle "
                              f"cannot use ({net.describe(exc)})") from None
        else:
            if response.status_code < 500 or attempt + 1 == attempts:
                return response
            response.close()
        download.sleep(net.backoff(attempt))
    raise AssertionError("unreachable")


def _fetch(uri: str, ref: OciReference, scheme: str, sink: BinaryIO,
           progress: net.Progress | None, download: Download) -> None:
    client = _client(uri, ref, scheme, download)
    with client.session:
        container = client.get_container(ref.target)
        response = _request(uri, client, download,
                            f"{client.prefix}://{container.manifest_url()}",
                            {"Accept": ", ".join(MANIFEST_TYPES)})
        if response.status_code == 404:
            raise SourceError(f"{uri!r}: no such artifact in registry {ref.registry}")
        if response.status_code != 200:
            raise SourceError(f"{uri!r}: registry answered HTTP {response.status_code} for the "
                              "manifest")
        raw = response.content  # at most MAX_DOCUMENT bytes (RegistrySession)
        if ref.digest and "sha256:" + hashlib.sha256(raw).hexdigest() != ref.digest:
            raise SourceError(f"{uri!r}: the registry's manifest does not match the digest in "
                              "the URI; refusing it")
        digest, size = _wasm_layer(uri, _parse_manifest(uri, raw))
        blob_url = f"{client.prefix}://{container.get_blob_url(digest)}"
        with _request(uri, client, download, blob_url, stream=True) as blob:
            if blob.status_code != 200:
                raise SourceError(f"{uri!r}: registry answered HTTP {blob.status_code} for "
                                  f"layer {digest}")
            sink.seek(0)
            sink.truncate()
            net.copy_limited(blob.iter_content(chunk_size=65536), sink, uri, size, progress,
                             download)
    sink.seek(0)
    actual = "sha256:" + hashlib.sha256(sink.read()).hexdigest()
    if actual != digest:
        raise SourceError(f"{uri!r}: layer content has digest {actual}, not the manifest's "
                          f"{digest}; refusing it")


def _parse_manifest(uri: str, raw: bytes) -> dict:
    try:
        manifest = json.loads(raw)
    except RecursionError:
        raise SourceError(f"{uri!r}: the registry's manifest nests too deeply to be one") from None
    except ValueError:
        raise SourceError(f"{uri!r}: the registry sent a manifest that is not JSON") from None
    if not isinstance(manifest, dict):
        raise SourceError(f"{uri!r}: the registry's manifest is not a JSON object")
    return manifest


def _wasm_layer(uri: str, manifest: dict) -> tuple[str, int | None]:
    """The digest and declared size of the one Wasm layer; any malformed field is refused."""
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not layers:
        raise SourceError(f"{uri!r}: the artifact has no layers")
    if not all(isinstance(layer, dict) for layer in layers):
        raise SourceError(f"{uri!r}: the manifest's layers are not all JSON objects")
    typed = [layer for layer in layers if layer.get("mediaType") == WASM_MEDIA_TYPE]
    named = [layer for layer in layers if _title(layer).endswith(".wasm")]
    candidates = typed or named
    if len(candidates) != 1:
        shown = candidates or layers
        described = ", ".join(f"{net.one_line(_title(layer) or '?', 60)} "
                              f"({net.one_line(layer.get('mediaType'), 60)})"
                              for layer in shown[:5]) + (", ..." if len(shown) > 5 else "")
        if not candidates:
            raise SourceError(f"{uri!r}: no layer has media type {WASM_MEDIA_TYPE} or a .wasm "
                              f"name (layers: {described})")
        raise SourceError(f"{uri!r}: more than one Wasm layer, cannot choose (layers: "
                          f"{described})")
    digest, size = candidates[0].get("digest"), candidates[0].get("size")
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise SourceError(f"{uri!r}: the Wasm layer's digest is not sha256:<64 hex digits>")
    if size is not None and (type(size) is not int or size < 0):
        raise SourceError(f"{uri!r}: the Wasm layer's size is not a byte count")
    return digest, size


def _title(layer: dict) -> str:
    annotations = layer.get("annotations")
    title = annotations.get(_TITLE) if isinstance(annotations, dict) else None
    return title if isinstance(title, str) else ""
