"""Real servers on loopback for the source tests, started and stopped by fixtures.

- an HTTPS server (certificate from a throwaway trustme CA) that serves modules and can also
  answer slowly, cut a body short, fail with 404/500, flake, redirect, or claim a huge body;
- an OCI registry: Debian's docker-registry (CNCF distribution), plain HTTP or TLS;
- a scripted HTTP(S) server whose answers a test sets per path (a redirect, a 401 with a
  hostile auth realm, a body dripped a byte at a time, a huge or malformed document), to play
  a hostile web server or registry;
- a file server that honours Range requests and counts the bytes it sends (remote TIFFs);
- an extra address on the loopback interface outside 127/8, which chonkle takes for a host
  that is not this machine (root only; CI runs as root).
"""

from __future__ import annotations

import contextlib
import http.server
import random
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trustme

REGISTRY_BINARY = shutil.which("docker-registry") or shutil.which("registry")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Authority:
    """A throwaway CA and a certificate for localhost / 127.0.0.1 signed by it."""

    def __init__(self, folder: Path) -> None:
        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("localhost", "127.0.0.1")
        self.ca_file = folder / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.cert_file = folder / "server.pem"
        self.key_file = folder / "server.key"
        self.cert.cert_chain_pems[0].write_to_path(str(self.cert_file))
        self.cert.private_key_pem.write_to_path(str(self.key_file))
        self.folder = folder

    def context(self, host: str) -> ssl.SSLContext:
        """A server TLS context with a certificate for localhost, 127.0.0.1 and `host`."""
        cert = self.ca.issue_cert("localhost", "127.0.0.1", host)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        return context


class HttpsServer:
    """Serves `files` at /f/<name>; other routes misbehave on purpose. Counts every request."""

    def __init__(self, authority: Authority, slow_seconds: float = 3.0) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: Counter[str] = Counter()
        self.slow_seconds = slow_seconds
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.hits[self.path] += 1
                kind, _, name = self.path.lstrip("/").partition("/")
                body = server.files.get(name)
                if kind == "f" and body is not None:
                    self._send(200, body)
                elif kind == "slow" and body is not None:
                    time.sleep(server.slow_seconds)
                    self._send(200, body)
                elif kind == "cut" and body is not None:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                elif kind == "flaky" and body is not None:
                    self._send(200, body) if server.hits[self.path] > 2 else self._send(503, b"")
                elif kind == "status":
                    self._send(int(name), b"nope")
                elif kind == "to-http":
                    self._redirect(f"http://127.0.0.1:{server.port}/f/{name}")
                elif kind == "to-https":
                    self._redirect(f"/f/{name}")
                elif kind == "huge":
                    self.send_response(200)
                    self.send_header("Content-Length", str(10**9))
                    self.end_headers()
                    self.close_connection = True
                else:
                    self._send(404, b"not found")

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(authority.cert_file, authority.key_file)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, route: str, name: str) -> str:
        return f"https://127.0.0.1:{self.port}/{route}/{name}"

    def __enter__(self) -> HttpsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()


class Registry:
    """docker-registry on 127.0.0.1, with or without TLS, storing under `folder`."""

    def __init__(self, folder: Path, authority: Authority | None = None) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.tls = authority is not None
        tls = (f"  tls:\n    certificate: {authority.cert_file}\n    key: {authority.key_file}\n"
               if authority else "")
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {folder / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n{tls}"
        )
        self.ca_file = authority.ca_file if authority else None
        if REGISTRY_BINARY is None:
            raise RuntimeError("docker-registry is not installed")
        self.process = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait()

    def _wait(self) -> None:
        url = f"{'https' if self.tls else 'http'}://{self.host}/v2/"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.process.stderr.read()!r}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, verify=self._verify(), timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError("docker-registry did not come up")

    def push(self, reference: str, files: list[tuple[Path, str | None]]) -> str:
        """Push files (path, media type) as one artifact; returns the manifest digest."""
        import oras.client

        client = oras.client.OrasClient(hostname=self.host, insecure=not self.tls,
                                        tls_verify=str(self.ca_file) if self.ca_file else True)
        target = f"{self.host}/{reference}"
        entries = [f"{path}:{media}" if media else str(path) for path, media in files]
        client.push(target=target, files=entries, disable_path_validation=True, quiet=True)
        repository, tag = reference.rsplit(":", 1)
        scheme = "https" if self.tls else "http"
        response = httpx.head(f"{scheme}://{self.host}/v2/{repository}/manifests/{tag}",
                              headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
                              verify=self._verify())
        return response.headers["Docker-Content-Digest"]

    def _verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else True

    def stop(self) -> None:
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        if self.process.poll() is None:
            self.process.kill()


@contextlib.contextmanager
def running_registry(folder: Path, authority: Authority | None = None) -> Iterator[Registry]:
    registry = Registry(folder, authority)
    try:
        yield registry
    finally:
        registry.stop()


# ---- a scripted server -----------------------------------------------------------------------

Answer = Callable[["http.server.BaseHTTPRequestHandler"], None]


@dataclass
class Reply:
    """Answer with `status`, `headers` and `body`; without Content-Length if not `length`
    (then the body ends when the connection closes)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    length: bool = True

    def __call__(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(self.status)
        for name, value in self.headers.items():
            handler.send_header(name, value)
        if self.length:
            handler.send_header("Content-Length", str(len(self.body)))
        else:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        handler.wfile.write(self.body)


@dataclass
class Drip:
    """Send a 200 answer with `body` one byte every `interval` seconds; from the status line
    on if `head`, else after the headers. A per-read timeout never fires."""

    body: bytes
    interval: float = 0.05
    head: bool = False

    def __call__(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(self.body)}\r\n\r\n".encode()
        if not self.head:
            handler.wfile.write(head)
        data = head + self.body if self.head else self.body
        with contextlib.suppress(OSError):  # the client hung up: good
            for index in range(len(data)):
                handler.wfile.write(data[index:index + 1])
                handler.wfile.flush()
                time.sleep(self.interval)
        handler.close_connection = True


def redirect(location: str) -> Reply:
    return Reply(302, headers={"Location": location})


def challenge(realm: str) -> Reply:
    """A registry's 401 asking for a Bearer token from `realm`."""
    return Reply(401, b"{}", {"WWW-Authenticate": f'Bearer realm="{realm}",service="test",'
                                                  'scope="repository:codecs:pull"'})


def with_token(token: str, realm: str, then: Answer) -> Answer:
    """`then` for a request bearing `token`, else a challenge to fetch it from `realm`."""
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        authorized = handler.headers.get("Authorization") == f"Bearer {token}"
        (then if authorized else challenge(realm))(handler)
    return answer


class _QuietServer(http.server.ThreadingHTTPServer):
    """Clients hanging up mid-answer (as chonkle does on purpose) are no news."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class ScriptedServer:
    """HTTP (or HTTPS with `authority`) on `host`, answering `routes[path]` (query ignored),
    404 elsewhere. Counts requests per path."""

    def __init__(self, host: str = "127.0.0.1", authority: Authority | None = None) -> None:
        self.routes: dict[str, Answer] = {}
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                server.hits[path] += 1
                server.routes.get(path, Reply(404, b"not found"))(self)

        self.httpd = _QuietServer((host, 0), Handler)
        if authority is not None:
            self.httpd.socket = authority.context(host).wrap_socket(self.httpd.socket,
                                                                    server_side=True)
        self.scheme = "https" if authority else "http"
        self.host = host
        self.port = self.httpd.server_address[1]
        self.authority = f"{host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.authority}{path}"

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def oci_manifest(module: bytes, media_type: str = "application/wasm") -> bytes:
    """An OCI image manifest with `module` as its one layer."""
    import hashlib
    import json

    return json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                   "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest()},
        "layers": [{"mediaType": media_type, "size": len(module),
                    "digest": "sha256:" + hashlib.sha256(module).hexdigest()}],
    }).encode()


def blob_path(repository: str, module: bytes) -> str:
    import hashlib

    return f"/v2/{repository}/blobs/sha256:{hashlib.sha256(module).hexdigest()}"


# ---- an address that is not this machine, to chonkle ----------------------------------------

@contextlib.contextmanager
def public_address() -> Iterator[str]:
    """A random address from 198.18.0.0/15 (reserved for benchmarks) added to `lo` for the
    duration: reachable here, yet neither loopback nor link-local, so chonkle treats a server
    on it as a host elsewhere. Raises PermissionError where `ip addr add` is not allowed."""
    for _ in range(20):
        octets = (random.randrange(18, 20), random.randrange(256), random.randrange(1, 255))
        address = "198.{}.{}.{}".format(*octets)
        added = subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"],
                               capture_output=True, text=True)
        if added.returncode == 0:
            break
        if "File exists" not in added.stderr:
            raise PermissionError(f"cannot add an address to lo: {added.stderr.strip()}")
    else:
        raise RuntimeError("no free address in 198.18.0.0/15")
    try:
        yield address
    finally:
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], capture_output=True)


# ---- a file server that honours Range, for remote TIFFs ----------------------------------------

_RANGE = re.compile(r"bytes=([0-9]+)-([0-9]*)")


class RangeServer:
    """HTTPS (or HTTP without `authority`) on 127.0.0.1 serving `files` at /<name>, honouring
    single ``Range: bytes=a-b`` requests as a static file server or object store does (206 and
    Content-Range, 416 past the end), with an ETag. Counts requests and body bytes sent per
    name, and keeps every Range asked for.

    ``modes[name]`` makes one file misbehave: ``"ignore-range"`` (200 and the whole file),
    ``"flaky"`` (503 for the first two requests), ``"cut"`` (announce the range, send half,
    hang up), ``"slow"`` (wait `slow_seconds` before answering), ``"changing"`` (a new ETag on
    every answer), ``"to-http"`` (redirect to plain http on this host), ``"gzip"`` (claim a
    compressed body).
    """

    def __init__(self, authority: Authority | None = None, slow_seconds: float = 3.0) -> None:
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.requests: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.ranges: list[tuple[str, str | None]] = []
        self.slow_seconds = slow_seconds
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                name = self.path.lstrip("/").split("?", 1)[0]
                asked = self.headers.get("Range")
                with server._lock:
                    server.requests[name] += 1
                    server.ranges.append((name, asked))
                    count = server.requests[name]
                body = server.files.get(name)
                mode = server.modes.get(name, "")
                if body is None:
                    return self._answer(name, 404, b"not found")
                if mode == "slow":
                    time.sleep(server.slow_seconds)
                if mode == "flaky" and count <= 2:
                    return self._answer(name, 503, b"try again")
                if mode == "to-http":
                    self.send_response(302)
                    self.send_header("Location", f"http://127.0.0.1:{server.port}/{name}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                etag = f'"v{count}"' if mode == "changing" else '"v1"'
                match = _RANGE.fullmatch((asked or "").strip())
                if mode == "ignore-range" or match is None:
                    return self._answer(name, 200, body, {"ETag": etag})
                first = int(match.group(1))
                last = min(int(match.group(2) or len(body) - 1), len(body) - 1)
                if first >= len(body) or first > last:
                    return self._answer(name, 416, b"", {"Content-Range": f"bytes */{len(body)}"})
                headers = {"Content-Range": f"bytes {first}-{last}/{len(body)}", "ETag": etag}
                if mode == "gzip":
                    headers["Content-Encoding"] = "gzip"
                part = body[first:last + 1]
                if mode == "cut":
                    self.send_response(206)
                    for key, value in {**headers, "Content-Length": str(len(part))}.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self._write(name, part[: len(part) // 2])
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                return self._answer(name, 206, part, headers)

            def _answer(self, name: str, status: int, body: bytes,
                        headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self._write(name, body)

            def _write(self, name: str, data: bytes) -> None:
                # counted before it is written: the client may have read it all, and the test
                # checked the count, before a write returns
                with server._lock:
                    server.sent[name] += len(data)
                with contextlib.suppress(OSError):
                    self.wfile.write(data)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        if authority is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(authority.cert_file, authority.key_file)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if authority else "http"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{name}"

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.sent.clear()
            self.ranges.clear()

    def __enter__(self) -> RangeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
