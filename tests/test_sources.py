"""Module delivery against real servers on loopback: HTTPS (private CA) and an OCI registry.

Every failure must be a ChonkleError naming the step and the URI, and leave nothing in the
cache: no blob, no index entry, no partial file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import run_on_a_terminal, smooth_raster
from servers import (
    REGISTRY_BINARY,
    Answer,
    Authority,
    Drip,
    HttpsServer,
    Reply,
    ScriptedServer,
    blob_path,
    challenge,
    oci_manifest,
    public_address,
    redirect,
    running_registry,
    with_token,
)

import chonkle
from chonkle import ChonkleError, LimitExceeded, Pipeline, SourceError
from chonkle.codecs import TiffPredictor2
from chonkle.sources import fetch_module, shipped_module_path
from chonkle.sources.cache import ModuleCache
from chonkle.sources.guard import is_internal
from chonkle.sources.net import redirect_target
from chonkle.sources.oci import insecure_allowed

PREDICTOR = shipped_module_path("tiff_predictor_2").read_bytes()
PREDICTOR_SHA = hashlib.sha256(PREDICTOR).hexdigest()
ARRAY = smooth_raster((32, 48))
CHUNK = TiffPredictor2(2, 48).encode(ARRAY.astype("<u2").tobytes()).tobytes()
# CI sets CHONKLE_TEST_REQUIRE_REGISTRY=1: there a missing registry binary fails the run.
REGISTRY_REQUIRED = os.environ.get("CHONKLE_TEST_REQUIRE_REGISTRY") == "1"
needs_registry = pytest.mark.skipif(REGISTRY_BINARY is None and not REGISTRY_REQUIRED,
                                    reason="Debian's docker-registry is not installed "
                                           "(apt-get install docker-registry)")


def pipeline_for(uri: str, sha256: str | None = None) -> dict:
    step = {"name": "tiff_predictor_2", "type": "wasm", "uri": uri,
            "configuration": {"bytes_per_sample": 2, "width": 48}}
    if sha256:
        step["sha256"] = sha256
    return {"codecs": [{"name": "bytes", "type": "numcodecs",
                        "configuration": {"data_type": "uint16", "shape": [32, 48]}}, step]}


def decodes(spec: dict, runtime: str | None = None) -> bool:
    return np.array_equal(Pipeline.load(spec, runtime=runtime).decode(CHUNK), ARRAY)


@pytest.fixture(scope="module")
def authority(tmp_path_factory) -> Authority:
    return Authority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path: Path, monkeypatch, authority: Authority) -> ModuleCache:
    """An empty cache per test, the test CA trusted, short timeouts and few retries."""
    monkeypatch.setenv("CHONKLE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SSL_CERT_FILE", str(authority.ca_file))
    monkeypatch.setenv("CHONKLE_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("CHONKLE_HTTP_RETRIES", "1")
    for name in ("CHONKLE_OFFLINE", "CHONKLE_FORCE_DOWNLOAD", "CHONKLE_REQUIRE_DIGEST"):
        monkeypatch.delenv(name, raising=False)
    return ModuleCache(tmp_path / "cache")


def assert_nothing_cached(cache: ModuleCache) -> None:
    assert cache.entries() == []
    assert not list((cache.root / "blobs").rglob("*.*")) and not any(
        p.is_file() for p in (cache.root / "blobs").rglob("*"))
    assert not any((cache.root / "tmp").glob("*"))


@pytest.fixture(scope="module")
def https(authority: Authority):
    with HttpsServer(authority) as server:
        yield server


def serve(server: HttpsServer, data: bytes = PREDICTOR) -> str:
    name = f"{uuid.uuid4().hex}.wasm"
    server.files[name] = data
    return name


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    if REGISTRY_BINARY is None:
        if REGISTRY_REQUIRED:
            pytest.fail("CHONKLE_TEST_REQUIRE_REGISTRY=1 but docker-registry is not installed")
        pytest.skip("Debian's docker-registry is not installed (apt-get install docker-registry)")
    with running_registry(tmp_path_factory.mktemp("registry")) as running:
        module = shipped_module_path("tiff_predictor_2")
        running.digest = running.push("codecs/tiff_predictor_2:1.0",
                                      [(module, "application/wasm")])
        yield running


# ---- the "Done when" paths -----------------------------------------------------------------

def test_https_pipeline_cold_then_server_stopped_then_offline(authority, runtime, monkeypatch,
                                                              fresh_cache) -> None:
    with HttpsServer(authority) as server:
        name = serve(server)
        spec = pipeline_for(server.url("f", name))
        assert decodes(spec, runtime)
        assert server.hits[f"/f/{name}"] == 1
        assert decodes(spec, runtime)  # second load: from the cache
        assert server.hits[f"/f/{name}"] == 1
    assert decodes(spec, runtime)  # server stopped
    monkeypatch.setenv("CHONKLE_OFFLINE", "1")
    assert decodes(spec, runtime)
    assert [e.sha256 for e in fresh_cache.entries()] == [PREDICTOR_SHA]


@needs_registry
def test_oci_pipeline_cold_then_registry_stopped_then_offline(tmp_path, runtime,
                                                              monkeypatch) -> None:
    with running_registry(tmp_path / "registry") as registry:
        registry.push("codecs/p2:1.0", [(shipped_module_path("tiff_predictor_2"),
                                         "application/wasm")])
        spec = pipeline_for(f"oci://{registry.host}/codecs/p2:1.0")
        assert decodes(spec, runtime)
    assert decodes(spec, runtime)  # registry stopped
    monkeypatch.setenv("CHONKLE_OFFLINE", "1")
    assert decodes(spec, runtime)


def test_offline_with_an_empty_cache_names_the_uri(https, monkeypatch, fresh_cache) -> None:
    monkeypatch.setenv("CHONKLE_OFFLINE", "1")
    uri = https.url("f", serve(https))
    with pytest.raises(SourceError, match="CHONKLE_OFFLINE=1 forbids downloading") as info:
        Pipeline.load(pipeline_for(uri))
    assert str(info.value).startswith(f"step 1 (tiff_predictor_2): '{uri}' is not in the cache")
    assert_nothing_cached(fresh_cache)


@pytest.mark.parametrize("source", ["file", "https", "oci", "cache"])
def test_a_wrong_sha256_is_refused_for_every_source(source, https, tmp_path, fresh_cache,
                                                    request) -> None:
    wrong = hashlib.sha256(b"another module").hexdigest()
    if source == "file":
        path = tmp_path / "p2.wasm"
        path.write_bytes(PREDICTOR)
        uri = path.as_uri()
    elif source == "oci":
        registry = request.getfixturevalue("registry")
        uri = f"oci://{registry.host}/codecs/tiff_predictor_2:1.0"
    else:
        uri = https.url("f", serve(https))
    if source == "cache":
        assert decodes(pipeline_for(uri))  # cached unpinned first
        before = fresh_cache.entries()
    with pytest.raises(SourceError, match=f"pins {wrong}; refusing to run it") as info:
        Pipeline.load(pipeline_for(uri, wrong))
    assert "step 1 (tiff_predictor_2)" in str(info.value) and uri in str(info.value)
    if source == "cache":
        assert fresh_cache.entries() == before
        assert not any((fresh_cache.root / "tmp").glob("*"))
    else:
        assert_nothing_cached(fresh_cache)
    assert decodes(pipeline_for(uri, PREDICTOR_SHA))  # the right pin works


def test_pinned_modules_come_from_the_cache_by_digest(https, monkeypatch) -> None:
    assert decodes(pipeline_for(https.url("f", serve(https)), PREDICTOR_SHA))
    monkeypatch.setenv("CHONKLE_OFFLINE", "1")  # another URI, same bytes: no download needed
    assert decodes(pipeline_for("https://mirror.invalid/p2.wasm", PREDICTOR_SHA))


def test_require_digest_refuses_unpinned_steps(https, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CHONKLE_REQUIRE_DIGEST", "1")
    uri = https.url("f", serve(https))
    with pytest.raises(SourceError, match='CHONKLE_REQUIRE_DIGEST=1 and the step pins no "sha256"'):
        Pipeline.load(pipeline_for(uri))
    assert decodes(pipeline_for(uri, PREDICTOR_SHA))
    path = tmp_path / "p2.wasm"
    path.write_bytes(PREDICTOR)
    with pytest.raises(SourceError, match="CHONKLE_REQUIRE_DIGEST"):
        Pipeline.load(pipeline_for(path.as_uri()))


def test_force_download_and_corrupted_entries(https, monkeypatch, fresh_cache) -> None:
    name = serve(https)
    spec = pipeline_for(https.url("f", name))
    assert decodes(spec)
    monkeypatch.setenv("CHONKLE_FORCE_DOWNLOAD", "1")
    assert decodes(spec)
    assert https.hits[f"/f/{name}"] == 2
    monkeypatch.delenv("CHONKLE_FORCE_DOWNLOAD")
    blob = fresh_cache.root / "blobs" / "sha256" / PREDICTOR_SHA
    blob.write_bytes(PREDICTOR[:1000])  # truncated on disk
    assert decodes(spec)  # detected by its hash, fetched again
    assert https.hits[f"/f/{name}"] == 3
    assert blob.read_bytes() == PREDICTOR


# ---- HTTPS failures -------------------------------------------------------------------------

@pytest.mark.parametrize(("route", "error", "message"), [
    ("slow", SourceError, "timed out"),
    ("cut", SourceError, "the server broke off the transfer"),
    ("status/404", SourceError, "HTTP 404"),
    ("status/500", SourceError, r"HTTP 500 Internal Server Error \(gave up after 2 attempts\)"),
    ("to-http", SourceError, "chonkle follows redirects to https:// only"),
    ("huge", LimitExceeded, "over the .* module limit"),
])
def test_https_failures_are_clear_and_leave_nothing(https, fresh_cache, route, error,
                                                     message) -> None:
    uri = https.url(*route.split("/")) if "/" in route else https.url(route, serve(https))
    with pytest.raises(error, match=message) as info:
        Pipeline.load(pipeline_for(uri))
    assert str(info.value).startswith(f"step 1 (tiff_predictor_2): '{uri}'")
    assert_nothing_cached(fresh_cache)


def test_https_retries_and_safe_redirects(https, monkeypatch) -> None:
    monkeypatch.setenv("CHONKLE_HTTP_RETRIES", "2")
    name = serve(https)
    assert decodes(pipeline_for(https.url("flaky", name)))  # 503, 503, then 200
    assert https.hits[f"/flaky/{name}"] == 3
    assert decodes(pipeline_for(https.url("to-https", serve(https))))


def test_untrusted_certificate(https, monkeypatch, fresh_cache) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    uri = https.url("f", serve(https))
    with pytest.raises(SourceError, match=r"certificate not trusted.*set SSL_CERT_FILE"):
        Pipeline.load(pipeline_for(uri))
    assert_nothing_cached(fresh_cache)


# ---- OCI ------------------------------------------------------------------------------------

@needs_registry
def test_oci_by_digest_and_a_wrong_digest(registry, fresh_cache) -> None:
    assert decodes(pipeline_for(f"oci://{registry.host}/codecs/tiff_predictor_2@{registry.digest}"))
    wrong = "sha256:" + "0" * 64
    uri = f"oci://{registry.host}/codecs/tiff_predictor_2@{wrong}"
    with pytest.raises(SourceError, match="no such artifact") as info:
        Pipeline.load(pipeline_for(uri))
    assert uri in str(info.value) and "step 1" in str(info.value)


@needs_registry
def test_oci_through_tls_with_a_private_ca(tmp_path, authority) -> None:
    with running_registry(tmp_path / "tls-registry", authority) as registry:
        registry.push("codecs/p2:1.0", [(shipped_module_path("tiff_predictor_2"),
                                         "application/wasm")])
        assert decodes(pipeline_for(f"oci://{registry.host}/codecs/p2:1.0"))


@needs_registry
def test_oci_layer_choice(registry, tmp_path, fresh_cache) -> None:
    named = tmp_path / "codec.wasm"
    named.write_bytes(PREDICTOR)
    other = tmp_path / "README.txt"
    other.write_text("not a codec")
    second = tmp_path / "second.wasm"
    second.write_bytes(PREDICTOR)
    registry.push("layers/by-name:1", [(named, None), (other, "text/plain")])
    assert decodes(pipeline_for(f"oci://{registry.host}/layers/by-name:1"))
    registry.push("layers/none:1", [(other, "text/plain")])
    with pytest.raises(SourceError, match=r"no layer has media type application/wasm .*README"):
        Pipeline.load(pipeline_for(f"oci://{registry.host}/layers/none:1"))
    registry.push("layers/two:1", [(named, "application/wasm"), (second, "application/wasm")])
    with pytest.raises(SourceError, match=r"more than one Wasm layer.*codec\.wasm.*second\.wasm"):
        Pipeline.load(pipeline_for(f"oci://{registry.host}/layers/two:1"))
    with pytest.raises(SourceError, match="no such artifact"):
        Pipeline.load(pipeline_for(f"oci://{registry.host}/layers/missing:1"))


def test_unreachable_registry(fresh_cache) -> None:
    uri = "oci://127.0.0.1:9/codecs/p2:1.0"  # nothing listens on the discard port
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"cannot reach registry 127\.0\.0\.1:9") as info:
        Pipeline.load(pipeline_for(uri))
    assert time.monotonic() - started < 15  # chonkle's retries, not oras's minutes of sleeps
    assert "step 1 (tiff_predictor_2)" in str(info.value)
    assert_nothing_cached(fresh_cache)


def test_plain_http_only_for_loopback_and_listed_registries(monkeypatch) -> None:
    monkeypatch.delenv("CHONKLE_INSECURE_REGISTRIES", raising=False)
    for host in ("127.0.0.1:5000", "localhost:5000", "[::1]:5000", "127.0.0.2"):
        assert insecure_allowed(host), host
    assert not insecure_allowed("registry.example.org")
    assert not insecure_allowed("10.0.0.5:5000")
    monkeypatch.setenv("CHONKLE_INSECURE_REGISTRIES", "10.0.0.5:5000, build-cache:80")
    assert insecure_allowed("10.0.0.5:5000") and insecure_allowed("build-cache:80")
    assert not insecure_allowed("10.0.0.6:5000")


# ---- hostile sources: every wait has a deadline, every size a cap ---------------------------

def refused(uri: str, error: type[ChonkleError] | tuple[type[ChonkleError], ...] = SourceError,
            match: str | None = None, base_dir: Path | None = None) -> ChonkleError:
    """Fetching `uri` fails with `error`: one line naming the URI, nothing else escaping."""
    with pytest.raises(error, match=match) as info:
        fetch_module(uri, "p2", base_dir=base_dir)
    message = str(info.value)
    assert uri in message and "\n" not in message, message
    return info.value


def finishes(action, seconds: float = 10.0) -> None:
    """Run `action` in a thread; it must be done within `seconds` (a hang fails, not blocks)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            action()
            outcome.append(None)
        except BaseException as exc:  # handed back to the test thread
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if outcome[0] is not None:
        raise outcome[0]


def test_file_reads_only_regular_files(tmp_path) -> None:
    fifo = tmp_path / "codec.wasm"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    (tmp_path / "to-zero.wasm").symlink_to("/dev/zero")
    (tmp_path / "folder.wasm").mkdir()
    for uri in (fifo.as_uri(), "file:///dev/zero", "file:to-zero.wasm", "file:///dev/null"):
        finishes(lambda uri=uri: refused(uri, match="not a regular file", base_dir=tmp_path))
    refused("file:folder.wasm", match="is a directory", base_dir=tmp_path)
    refused("file:missing.wasm", match="does not exist", base_dir=tmp_path)
    refused("file:///tmp/nul%00byte.wasm", match="cannot read it")
    (tmp_path / "link.wasm").symlink_to(tmp_path / "real.wasm")
    (tmp_path / "real.wasm").write_bytes(PREDICTOR)
    assert fetch_module("file:link.wasm", "p2", base_dir=tmp_path) == PREDICTOR


def test_file_size_limit(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CHONKLE_MAX_MODULE_SIZE", "1000")
    (tmp_path / "exact.wasm").write_bytes(b"x" * 1000)
    assert fetch_module("file:exact.wasm", "p2", base_dir=tmp_path) == b"x" * 1000
    (tmp_path / "over.wasm").write_bytes(b"x" * 1001)
    refused("file:over.wasm", LimitExceeded, r"over the 1000-byte module limit "
            r"\(CHONKLE_MAX_MODULE_SIZE\)", base_dir=tmp_path)
    with open(tmp_path / "sparse.wasm", "wb") as sparse:
        sparse.truncate(64 * 2**30)  # 64 GiB of nothing: refused without reading it
    finishes(lambda: refused("file:sparse.wasm", LimitExceeded, base_dir=tmp_path), 5)


def test_file_limit_holds_when_the_size_lies(monkeypatch) -> None:
    """procfs files report size 0 whatever they hold: the reading itself is capped."""
    monkeypatch.setenv("CHONKLE_MAX_MODULE_SIZE", "100")
    refused("file:///proc/self/maps", LimitExceeded, "100-byte module limit")


@pytest.fixture(scope="module")
def public() -> Iterator[str]:
    """A host that, to chonkle, is not this machine: an extra address on lo outside 127/8."""
    if os.geteuid() != 0:
        pytest.skip("adding an address to lo needs root (CI runs as root)")
    with public_address() as address:
        yield address


@pytest.fixture
def short_deadline(monkeypatch) -> float:
    monkeypatch.setenv("CHONKLE_HTTP_DEADLINE", "1")
    return 1.0


def overdue(uri: str) -> float:
    """Fetching `uri` runs into the deadline (and does not hang); returns how long it took."""
    started = time.monotonic()
    finishes(lambda: refused(uri, LimitExceeded,
                             r"did not finish within its 1 s deadline "
                             r"\(CHONKLE_HTTP_DEADLINE\)"), 5)
    return time.monotonic() - started


@pytest.mark.parametrize("head", [False, True], ids=["body", "headers"])
def test_https_dripping_server_meets_the_deadline(authority, short_deadline, fresh_cache,
                                                  head) -> None:
    with ScriptedServer(authority=authority) as server:
        server.routes["/p2.wasm"] = Drip(PREDICTOR, interval=0.05, head=head)
        assert overdue(server.url("/p2.wasm")) < 2.5  # a byte every 50 ms: no read timeout
    assert_nothing_cached(fresh_cache)


def test_https_deadline_covers_retries(authority, short_deadline, monkeypatch) -> None:
    monkeypatch.setenv("CHONKLE_HTTP_RETRIES", "50")
    with ScriptedServer(authority=authority) as server:
        server.routes["/p2.wasm"] = Reply(503)
        assert overdue(server.url("/p2.wasm")) < 2.0
        assert server.hits["/p2.wasm"] >= 3  # retried with backoff until the deadline


def test_https_compressed_body_is_refused(authority) -> None:
    with ScriptedServer(authority=authority) as server:
        server.routes["/p2.wasm"] = Reply(200, gzip.compress(PREDICTOR),
                                          {"Content-Encoding": "gzip"})
        refused(server.url("/p2.wasm"), match=r"compressed body \(Content-Encoding: gzip\)")


def test_redirects_from_elsewhere_never_reach_this_machine(public, authority, https) -> None:
    name = serve(https)
    local = {
        "loopback": f"https://127.0.0.1:{https.port}/f/{name}",
        "localhost": f"https://localhost:{https.port}/f/{name}",  # a name resolving to loopback
        "v6": f"https://[::1]:{https.port}/f/{name}",
        "mapped": f"https://[::ffff:127.0.0.1]:{https.port}/f/{name}",
        "unspecified": f"https://0.0.0.0:{https.port}/f/{name}",
        "link-local": "https://169.254.169.254/latest/meta-data/",
    }
    with ScriptedServer(public, authority) as server:
        for kind, target in local.items():
            server.routes[f"/{kind}"] = redirect(target)
            refused(server.url(f"/{kind}"), match="refusing to connect to .*a loopback or "
                                                  "link-local address")
        assert https.hits[f"/f/{name}"] == 0
        server.routes["/to-http"] = redirect(f"http://{server.authority}/p2.wasm")
        refused(server.url("/to-http"), match="redirects to https:// only")
        server.routes["/p2.wasm"] = Reply(200, PREDICTOR)
        server.routes["/moved"] = redirect("/p2.wasm")
        assert fetch_module(server.url("/moved"), "p2", base_dir=None) == PREDICTOR


def test_redirect_targets() -> None:
    uri = "https://a.example/p2.wasm"
    assert redirect_target(uri, uri, "/b.wasm") == "https://a.example/b.wasm"
    assert redirect_target(uri, "http://reg:5000/v2/x", "https://s3.example/b") == \
        "https://s3.example/b"  # an upgrade to https is fine
    for location, message in [("http://a.example/b.wasm", "redirects to https:// only"),
                              ("file:///etc/passwd", "redirects to https:// only"),
                              ("https://[::1", "malformed"), ("https://a:99999/", "malformed"),
                              ("", "without a Location")]:
        with pytest.raises(SourceError, match=message):
            redirect_target(uri, uri, location)
    with pytest.raises(SourceError, match=r"redirects to http:// or https:// only"):
        redirect_target(uri, "http://reg:5000/v2/x", "ftp://reg/x")


def test_is_internal() -> None:
    for address in ("127.0.0.1", "127.9.8.7", "::1", "::ffff:127.0.0.1", "169.254.169.254",
                    "fe80::1", "fe80::1%lo", "0.0.0.0", "::", "not-an-address"):
        assert is_internal(address), address
    for address in ("198.18.0.1", "10.0.0.1", "192.168.1.1", "8.8.8.8", "2001:db8::1"):
        assert not is_internal(address), address


# ---- hostile registries (a scripted server playing one) -------------------------------------

MANIFEST = oci_manifest(PREDICTOR)


def artifact(server: ScriptedServer, manifest: Answer | None = None, blob: Answer | None = None,
             repository: str = "codecs/p2") -> str:
    """Script `server` as a registry holding PREDICTOR; returns its oci:// URI."""
    server.routes[f"/v2/{repository}/manifests/1"] = manifest or Reply(200, MANIFEST)
    server.routes[blob_path(repository, PREDICTOR)] = blob or Reply(200, PREDICTOR)
    return f"oci://{server.authority}/{repository}:1"


def test_oci_token_auth_on_the_registry_host(public, authority) -> None:
    with ScriptedServer(public, authority) as registry, \
            ScriptedServer(public, authority) as tokens, \
            ScriptedServer(public, authority) as storage:
        tokens.routes["/token"] = Reply(200, b'{"token": "t0k"}')
        storage.routes["/blob"] = Reply(200, PREDICTOR)  # a registry's storage, elsewhere
        uri = artifact(registry, with_token("t0k", tokens.url("/token"), Reply(200, MANIFEST)),
                       redirect(storage.url("/blob")))
        assert fetch_module(uri, "p2", base_dir=None) == PREDICTOR
        assert tokens.hits["/token"] == 1 and storage.hits["/blob"] == 1
    with ScriptedServer() as registry:  # a loopback registry may use any loopback realm
        registry.routes["/token"] = Reply(200, b'{"access_token": "t0k"}')
        realm = f"http://localhost:{registry.port}/token"
        uri = artifact(registry, with_token("t0k", realm, Reply(200, MANIFEST)))
        assert fetch_module(uri, "p2", base_dir=None) == PREDICTOR


def test_oci_hostile_realms_are_never_contacted(public, authority) -> None:
    with ScriptedServer() as loopback, ScriptedServer(public, authority) as elsewhere, \
            ScriptedServer(public, authority) as registry:
        hostile = {  # for a registry elsewhere
            "loopback": f"http://127.0.0.1:{loopback.port}/token",
            "other-host": "https://tokens.example.com/token",
            "plain-http": f"http://{elsewhere.authority}/token",
        }
        for kind, realm in hostile.items():
            uri = artifact(registry, challenge(realm), repository=f"codecs/{kind}")
            refused(uri, match="auth realm .* is not https on the registry's own host")
        with ScriptedServer() as local_registry:
            for realm in (f"https://{elsewhere.authority}/token",
                          "http://169.254.169.254/latest/meta-data/"):
                refused(artifact(local_registry, challenge(realm)), match="auth realm")
        assert loopback.hits["/token"] == elsewhere.hits["/token"] == 0


def test_oci_blob_redirect_onto_this_machine_is_refused(public, authority) -> None:
    with ScriptedServer(authority=authority) as loopback, \
            ScriptedServer(public, authority) as registry:
        loopback.routes["/blob"] = Reply(200, PREDICTOR)
        uri = artifact(registry, blob=redirect(f"https://127.0.0.1:{loopback.port}/blob"))
        refused(uri, match="refusing to connect to 127.0.0.1")
        assert loopback.hits["/blob"] == 0


@pytest.mark.parametrize("where", ["manifest", "blob", "token"])
def test_oci_dripping_registry_meets_the_deadline(where, short_deadline, fresh_cache) -> None:
    with ScriptedServer() as registry:
        slow = Drip(b" " * 100 + (b'{"token": "t"}' if where == "token" else MANIFEST))
        registry.routes["/token"] = slow if where == "token" else Reply(200, b'{"token": "t"}')
        manifest = slow if where == "manifest" else Reply(200, MANIFEST)
        uri = artifact(registry, with_token("t", registry.url("/token"), manifest),
                       Drip(PREDICTOR) if where == "blob" else None)
        assert overdue(uri) < 2.5
    assert_nothing_cached(fresh_cache)


@pytest.mark.parametrize("length", [True, False], ids=["declared", "undeclared"])
def test_oci_documents_are_capped(length) -> None:
    huge = b'{"layers": [], "padding": "' + b"x" * (5 * 2**20) + b'"}'
    with ScriptedServer() as registry:
        refused(artifact(registry, Reply(200, huge, length=length)), LimitExceeded,
                r"more than 4194304 bytes \(the limit for a manifest or token reply\)")
        registry.routes["/token"] = Reply(200, huge, length=length)
        uri = artifact(registry, with_token("t", registry.url("/token"), Reply(200, MANIFEST)),
                       repository="codecs/auth")
        refused(uri, LimitExceeded, "4194304 bytes")
        assert fetch_module(artifact(registry), "p2", base_dir=None) == PREDICTOR  # still fine


LAYER = {"mediaType": "application/wasm", "size": len(PREDICTOR),
         "digest": "sha256:" + PREDICTOR_SHA}
HOSTILE_MANIFESTS = {
    "not JSON": b"{",
    "not UTF-8": b'{"layers": "\xff"}',
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "a list": b"[]",
    "layers not a list": json.dumps({"layers": {"0": LAYER}}).encode(),
    "a layer not an object": json.dumps({"layers": [LAYER, 5]}).encode(),
    "annotations not an object": json.dumps({"layers": [{**LAYER, "mediaType": "x",
                                                         "annotations": ["a.wasm"]}]}).encode(),
    "title not a string": json.dumps({"layers": [{**LAYER, "mediaType": "x", "annotations": {
        "org.opencontainers.image.title": 7}}]}).encode(),
    "digest not a string": json.dumps({"layers": [{**LAYER, "digest": 5}]}).encode(),
    "digest with a newline": json.dumps({"layers": [{**LAYER, "digest": LAYER["digest"] + "\n"}]
                                         }).encode(),
    "size a string": json.dumps({"layers": [{**LAYER, "size": "many"}]}).encode(),
    "size negative": json.dumps({"layers": [{**LAYER, "size": -1}]}).encode(),
    "size huge": json.dumps({"layers": [{**LAYER, "size": 10**30}]}).encode(),
    "many layers with long names": json.dumps({"layers": [
        {"mediaType": "text/plain\n" * 50, "digest": LAYER["digest"]}] * 1000}).encode(),
}
HOSTILE_TOKENS = {
    "not JSON": b"token",
    "a list": b"[]",
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "a header injection": b'{"token": "a\\r\\nX-Evil: 1"}',
    "an object as token": b'{"token": {"a": 1}}',
}


def test_oci_hostile_documents_are_clean_errors() -> None:
    with ScriptedServer() as registry:
        for index, body in enumerate(HOSTILE_MANIFESTS.values()):
            refused(artifact(registry, Reply(200, body), repository=f"m/{index}"),
                    (SourceError, LimitExceeded))
        for index, body in enumerate(HOSTILE_TOKENS.values()):
            registry.routes[f"/token{index}"] = Reply(200, body)
            uri = artifact(registry, with_token("t", registry.url(f"/token{index}"),
                                                Reply(200, MANIFEST)), repository=f"t/{index}")
            refused(uri)
        for index, answer in enumerate([challenge(""), Reply(401), Reply(302),
                                        redirect("https://[::1"), redirect("ftp://x/y")]):
            refused(artifact(registry, answer, repository=f"r/{index}"))
        assert fetch_module(artifact(registry), "p2", base_dir=None) == PREDICTOR  # next: fine


# ---- concurrency ----------------------------------------------------------------------------

def test_processes_decoding_at_once_download_once(https, fresh_cache) -> None:
    name = serve(https)
    uri = https.url("f", name)
    code = ("import chonkle, numpy as np, sys; sys.path.insert(0, sys.argv[1]);"
            "from test_sources import pipeline_for, CHUNK, ARRAY;"
            "print(np.array_equal(chonkle.decode(CHUNK, pipeline_for(sys.argv[2])), ARRAY))")
    here = str(Path(__file__).parent)
    processes = [subprocess.Popen([sys.executable, "-c", code, here, uri], env=os.environ.copy(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
    results = [p.communicate(timeout=120) for p in processes]
    assert [out.strip() for out, _ in results] == ["True"] * 4, [err for _, err in results]
    assert https.hits[f"/f/{name}"] == 1
    assert not any((fresh_cache.root / "tmp").glob("*"))


def test_threads_fetching_at_once_download_once(https) -> None:
    name = serve(https)
    uri = https.url("f", name)
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(
        fetch_module(uri, "p2", base_dir=None))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [PREDICTOR] * 8
    assert https.hits[f"/f/{name}"] == 1


# ---- the cache commands (the caches themselves: test_caches.py) -----------------------------

def test_cache_commands(https, tmp_path, fresh_cache) -> None:
    uri = https.url("f", serve(https))
    spec_path = tmp_path / "pipeline.json"
    spec_path.write_text(__import__("json").dumps(pipeline_for(uri)))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "chonkle.cli", "cache", *args],
                              capture_output=True, text=True, timeout=120)

    fetched = cli("fetch", str(spec_path))
    assert fetched.returncode == 0, fetched.stderr
    size = f"{len(PREDICTOR) / 1024:.1f} KiB"
    assert f"step 1 (tiff_predictor_2): {uri} ({size}, sha256 {PREDICTOR_SHA})" in fetched.stdout
    listed = cli("list")
    assert "1 module(s)" in listed.stdout
    assert uri in listed.stdout and PREDICTOR_SHA in listed.stdout
    cleared = cli("clear")
    assert "removed 1 module(s)" in cleared.stdout
    assert "0 module(s)" in cli("list").stdout
    assert chonkle.decode(CHUNK, pipeline_for(uri)).shape == (32, 48)  # and it refills


def test_cache_fetch_shows_progress_on_a_terminal(https, tmp_path) -> None:
    """stderr on a real pseudo-terminal gets a progress bar; piped stderr does not."""
    uri = https.url("f", serve(https))
    spec_path = tmp_path / "pipeline.json"
    spec_path.write_text(__import__("json").dumps(pipeline_for(uri)))
    command = [sys.executable, "-m", "chonkle.cli", "cache", "fetch", str(spec_path)]
    status, shown = run_on_a_terminal(command, stdout=subprocess.PIPE)
    assert status == 0
    assert (uri[-40:].encode() in shown and b"kB" in shown) or b"KiB" in shown, shown
    piped = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and piped.stderr == ""


@pytest.mark.parametrize(("uri", "message"), [
    ("oci://no-such-host.invalid/codecs/zstd:1",
     "cannot resolve the registry host 'no-such-host.invalid'"),
    ("https://no-such-host.invalid/zstd.wasm", "cannot resolve the host 'no-such-host.invalid'"),
])
def test_a_host_that_cannot_be_resolved_is_one_short_line(tmp_path, uri, message) -> None:
    spec_path = tmp_path / "pipeline.json"
    spec_path.write_text(__import__("json").dumps([{"name": "zstd", "type": "wasm",
                                                    "uri": uri}]))
    result = subprocess.run([sys.executable, "-m", "chonkle.cli", "cache", "fetch",
                             str(spec_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr == f"chonkle: error: step 0 (zstd): {uri!r}: {message}\n"


@pytest.mark.parametrize(("uri", "message"), [
    ("oci://127.0.0.1:1@192.0.2.2/codecs/zstd:1", "is not a registry host"),
    ("oci://[::1]@192.0.2.2:5000/codecs/zstd:1", "is not a registry host"),
    ("oci://user@registry.example/codecs/zstd:1", "is not a registry host"),
    ("oci:registry.example/codecs/zstd:1", "an OCI URI is oci://"),
    ("oci://registry.example/codecs/zstd:1#frag", "is not a tag"),
    ("oci://registry.example/codecs/Zstd?x=1:1", "is not a repository name"),
])
def test_oci_uris_name_only_a_registry_a_repository_and_a_tag(uri, message) -> None:
    """A registry written as "loopback@elsewhere" used to pass the loopback rules while the
    connection went elsewhere (requests reads what precedes @ as a user name)."""
    with pytest.raises(SourceError, match=message):
        fetch_module(uri, "zstd", base_dir=None)


@pytest.mark.parametrize("uri", ["https://[x/y.wasm", "oci://[/a:1", "file://[x/y.wasm"])
def test_a_uri_urllib_cannot_parse_is_a_source_error(uri) -> None:
    with pytest.raises(SourceError, match="is not a URI"):
        chonkle.decode(b"", [{"name": "x", "type": "wasm", "uri": uri}])


def test_a_local_files_digest_is_not_told(tmp_path) -> None:
    """A hostile pipeline naming a file and a wrong sha256 learns nothing about the file."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"the user's secret")
    step = {"name": "x", "type": "wasm", "uri": secret.as_uri(), "sha256": "0" * 64}
    with pytest.raises(SourceError) as info:
        chonkle.decode(b"", [step])
    assert hashlib.sha256(b"the user's secret").hexdigest() not in str(info.value)
    assert "does not match the sha256 the pipeline pins" in str(info.value)


def test_cloud_metadata_over_ipv6_counts_as_internal() -> None:
    from chonkle.sources.guard import is_internal

    assert is_internal("fd00:ec2::254") and is_internal("169.254.169.254")
    assert is_internal("::ffff:127.0.0.1") and not is_internal("192.0.2.7")
