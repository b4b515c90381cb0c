"""Module delivery against real servers on loopback: HTTPS (private CA) and an OCI registry.

Every failure must be a ChonkleError naming the step and the URI, and leave nothing in the
cache: no blob, no index entry, no partial file.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import smooth_raster
from servers import REGISTRY_BINARY, Authority, HttpsServer, running_registry

import chonkle
from chonkle import Pipeline, SourceError
from chonkle.codecs import TiffPredictor2
from chonkle.sources import fetch_module, shipped_module_path
from chonkle.sources.cache import ModuleCache
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

@pytest.mark.parametrize(("route", "message"), [
    ("slow", "timed out"),
    ("cut", "the server broke off the transfer"),
    ("status/404", "HTTP 404"),
    ("status/500", r"HTTP 500 Internal Server Error \(gave up after 2 attempts\)"),
    ("to-http", "chonkle follows redirects to https:// only"),
    ("huge", "over the .* module limit"),
])
def test_https_failures_are_clear_and_leave_nothing(https, fresh_cache, route, message) -> None:
    uri = https.url(*route.split("/")) if "/" in route else https.url(route, serve(https))
    with pytest.raises(SourceError, match=message) as info:
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


# ---- compiled-code cache and the cache commands ---------------------------------------------

def fresh_process_decode(spec_path: Path, runtime: str) -> subprocess.CompletedProcess:
    code = ("import chonkle, sys; from pathlib import Path;"
            "print(chonkle.decode(Path(sys.argv[2]).read_bytes(), Path(sys.argv[1]),"
            " runtime=sys.argv[3]).sum())")
    return subprocess.run([sys.executable, "-c", code, str(spec_path), str(spec_path) + ".bin",
                           runtime], capture_output=True, text=True, timeout=120)


def test_compiled_code_is_cached_on_disk_and_rebuilt_when_damaged(tmp_path, runtime,
                                                                  fresh_cache) -> None:
    spec_path = tmp_path / "pipeline.json"
    spec_path.write_text(__import__("json").dumps({"codecs": [
        {"name": "zstd", "type": "wasm"}]}))
    Path(str(spec_path) + ".bin").write_bytes(__import__("numcodecs").Zstd().encode(bytes(100)))
    assert fresh_process_decode(spec_path, runtime).stdout.strip() == "0"
    artifacts = list((fresh_cache.root / "compiled").rglob("*.bin"))
    assert len(artifacts) == 1 and artifacts[0].parent.name.startswith(runtime)
    good = artifacts[0].read_bytes()
    artifacts[0].write_bytes(good[:-100] + b"\0" * 100)  # corrupt the compiled code
    result = fresh_process_decode(spec_path, runtime)
    assert result.stdout.strip() == "0", result.stderr
    assert artifacts[0].read_bytes() == good  # rebuilt
    artifacts[0].parent.chmod(0o777)  # writable by others: never trusted
    artifacts[0].write_bytes(b"garbage")
    assert fresh_process_decode(spec_path, runtime).stdout.strip() == "0"
    assert artifacts[0].read_bytes() == b"garbage"  # neither loaded nor rewritten


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
    import pty

    uri = https.url("f", serve(https))
    spec_path = tmp_path / "pipeline.json"
    spec_path.write_text(__import__("json").dumps(pipeline_for(uri)))
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "chonkle.cli", "cache", "fetch",
                                str(spec_path)], stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closes when the process exits
            break
        if not chunk:
            break
        shown += chunk
    assert process.wait(timeout=60) == 0
    os.close(leader)
    size = f"{len(PREDICTOR) / 1024:.1f} KiB".encode()
    assert b"[" + b"#" * 30 + b"] " + size + b" / " + size in shown


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
