"""Both caches against someone else who can write to the file system: real files, real
processes, no mocks.

The compiled-code cache holds native code, so the proof that a planted artifact is never
loaded is behavioural: the artifact planted under the target module's name is a validly
serialized module of a DIFFERENT Wasm module (an identity codec), so a fresh process that
loaded it would decode wrongly. A control shows that a correctly signed plant IS loaded, so
each "right" result below means the check refused it, not that planting failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numcodecs
import numpy as np
import pytest
from conftest import IDENTITY, smooth_raster, wat_module

from chonkle import Pipeline, SourceError
from chonkle.cli import main as cli_main
from chonkle.codecs import TiffPredictor2
from chonkle.engine.compiled_cache import MAGIC, compile_cached, seal
from chonkle.errors import ChonkleError
from chonkle.runtime import get_runtime
from chonkle.sources import fetch_module, shipped_module_path
from chonkle.sources.cache import ModuleCache, cache_dir

PREDICTOR = shipped_module_path("tiff_predictor_2").read_bytes()
PREDICTOR_SHA = hashlib.sha256(PREDICTOR).hexdigest()
EVIL = bytes(wat_module(IDENTITY))  # a different, valid codec: decodes to its input
EVIL_SHA = hashlib.sha256(EVIL).hexdigest()
ARRAY = smooth_raster((32, 48))
CHUNK = TiffPredictor2(2, 48).encode(ARRAY.astype("<u2").tobytes()).tobytes()
URI = "https://codecs.example.org/tiff_predictor_2.wasm"
OTHER_UID = 12345
NOBODY = 65534


def pipeline(uri: str | None = None) -> dict:
    step: dict = {"name": "tiff_predictor_2", "type": "wasm",
                  "configuration": {"bytes_per_sample": 2, "width": 48}}
    if uri:
        step["uri"] = uri
    return {"codecs": [{"name": "bytes", "type": "numcodecs",
                        "configuration": {"data_type": "uint16", "shape": [32, 48]}}, step]}


def fill(data: bytes = PREDICTOR):
    return lambda sink: sink.write(data)


def key_name(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:32]


def mode(path: Path) -> int:
    return path.lstat().st_mode & 0o7777


@pytest.fixture
def root(tmp_path: Path, monkeypatch) -> Path:
    """This test's cache root (not yet created), in CHONKLE_CACHE_DIR for subprocesses too."""
    folder = tmp_path / "shared" / "cache"
    monkeypatch.setenv("CHONKLE_CACHE_DIR", str(folder))
    monkeypatch.setenv("CHONKLE_KEY_DIR", str(tmp_path / "shared" / "keys"))
    for name in ("CHONKLE_OFFLINE", "CHONKLE_FORCE_DOWNLOAD", "CHONKLE_REQUIRE_DIGEST",
                 "CHONKLE_COMPILED_CACHE"):
        monkeypatch.delenv(name, raising=False)
    return folder


@contextlib.contextmanager
def as_user(uid: int) -> Iterator[None]:
    """Run the block with another effective user (root only): root ignores permissions."""
    os.setegid(uid)
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


# ---- the compiled-code cache: a fresh process decoding with the shipped tiff_predictor_2 ---

class FreshProcess:
    """Decodes CHUNK in a new process (so nothing is compiled yet) and says whether the
    result is the right one."""

    CODE = ("import sys, numpy as np, chonkle;"
            "a = chonkle.decode(open(sys.argv[2], 'rb').read(), sys.argv[1], runtime=sys.argv[4]);"
            "print('right' if np.array_equal(a, np.load(sys.argv[3])) else 'WRONG')")

    def __init__(self, folder: Path, runtime: str, root: Path) -> None:
        self.runtime, self.root = runtime, root
        self.spec, self.chunk, self.expected = (folder / n for n in ("p.json", "c.bin", "e.npy"))
        self.spec.write_text(json.dumps(pipeline()))
        self.chunk.write_bytes(CHUNK)
        np.save(self.expected, ARRAY)

    def decode(self, umask: int = 0o022) -> str:
        result = subprocess.run(
            [sys.executable, "-c", self.CODE, self.spec, self.chunk, self.expected,
             self.runtime], capture_output=True, text=True, timeout=120, umask=umask)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def artifact(self) -> Path:
        """The artifact of the target module (after a first decode made it): named by the
        digest of the module as the engine compiles it."""
        found = list((self.root / "compiled").glob("*/*.bin"))
        assert len(found) == 1, found
        return found[0]

    def plant(self, make) -> bytes:
        """Replace the target's artifact with `make(key, digest, engine, version, payload)`
        where payload is the engine's serialized EVIL module."""
        engine = get_runtime(self.runtime)
        payload = engine.compile(EVIL).serialize()
        key_file = self.root.parent / "keys" / "compiled.key"
        key = key_file.read_bytes() if key_file.exists() else b""  # (made by the first decode)
        artifact = self.artifact()
        planted = make(key, artifact.stem, engine.name, engine.version, payload)
        artifact.write_bytes(planted)
        return planted


@pytest.fixture
def fresh(tmp_path: Path, runtime: str, root: Path) -> FreshProcess:
    return FreshProcess(tmp_path, runtime, root)


def test_only_artifacts_signed_with_the_users_key_are_loaded(fresh) -> None:
    assert fresh.decode() == "right"  # compiles, stores the artifact and makes the key
    artifact = fresh.artifact()
    assert artifact.read_bytes().startswith(MAGIC)

    fresh.plant(seal)  # the control: signed with the user's key, so it is trusted
    assert fresh.decode() == "WRONG"

    def plain_checksum_v1(key, digest, engine, version, payload):  # the old format
        return b"chonkle-compiled-v1\n" + hashlib.sha256(payload).digest() + payload

    def plain_checksum_v2(key, digest, engine, version, payload):
        return MAGIC + hashlib.sha256(payload).digest() + payload

    def another_key(key, digest, engine, version, payload):  # an attacker's own key
        return seal(b"\x01" * 32, digest, engine, version, payload)

    def signed_for_another_module(key, digest, engine, version, payload):
        return seal(key, EVIL_SHA, engine, version, payload)

    for forge in (plain_checksum_v1, plain_checksum_v2, another_key,
                  signed_for_another_module):
        planted = fresh.plant(forge)
        assert fresh.decode() == "right", forge.__name__
        rebuilt = artifact.read_bytes()
        assert rebuilt != planted and rebuilt.startswith(MAGIC), forge.__name__
    assert fresh.decode() == "right"


@pytest.mark.parametrize("how", ["owned by another user", "group-writable parent",
                                 "writable by all"])
@pytest.mark.parametrize("runtime", ["wasmtime"])  # the folder checks do not depend on it
def test_a_signed_artifact_in_an_untrusted_folder_is_never_loaded(fresh, root, how) -> None:
    if how == "owned by another user" and os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    assert fresh.decode() == "right"
    planted = fresh.plant(seal)
    assert fresh.decode() == "WRONG"  # the control: in a trusted folder it would be loaded
    if how == "owned by another user":
        os.chown(root, OTHER_UID, -1)
    elif how == "group-writable parent":
        root.parent.chmod(0o775)
    else:
        root.chmod(0o777)
    assert fresh.decode() == "right"
    assert fresh.artifact().read_bytes() == planted  # neither loaded nor rewritten


def test_the_compiled_cache_works_under_umask_002(fresh, tmp_path, root) -> None:
    assert fresh.decode(umask=0o002) == "right"
    artifact = fresh.artifact()  # stored: the folders it made passed the privacy check
    folder = tmp_path / "shared"
    for part in artifact.parent.relative_to(folder).parts:
        assert mode(folder) == 0o700, folder
        folder /= part
    assert mode(folder) == 0o700
    assert mode(artifact) == mode(root.parent / "keys" / "compiled.key") == 0o600
    before = artifact.stat()
    assert fresh.decode(umask=0o002) == "right"
    after = artifact.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # reused


def test_compiled_code_is_cached_on_disk_and_rebuilt_when_damaged(fresh, root) -> None:
    assert fresh.decode() == "right"
    artifact = fresh.artifact()
    assert artifact.parent.name.startswith(fresh.runtime)
    good = artifact.read_bytes()
    artifact.write_bytes(good[:-100] + b"\0" * 100)  # corrupt the compiled code
    assert fresh.decode() == "right"
    assert artifact.read_bytes() == good  # rebuilt
    artifact.parent.chmod(0o777)  # writable by others: never trusted
    artifact.write_bytes(b"garbage")
    assert fresh.decode() == "right"
    assert artifact.read_bytes() == b"garbage"  # neither loaded nor rewritten


def test_the_key_file_is_never_followed_and_must_be_private(root, tmp_path, runtime) -> None:
    engine = get_runtime(runtime)
    victim = tmp_path / "victim"
    victim.write_bytes(b"v" * 32)
    keys = root.parent / "keys"
    keys.mkdir(parents=True, mode=0o700)
    (keys / "compiled.key").symlink_to(victim)
    compile_cached(engine, EVIL, EVIL_SHA)
    key = keys / "compiled.key"
    assert victim.read_bytes() == b"v" * 32
    assert not key.is_symlink() and mode(key) == 0o600 and len(key.read_bytes()) == 32
    first = key.read_bytes()
    key.chmod(0o644)  # readable by others: no longer a secret
    compile_cached(engine, EVIL, EVIL_SHA)
    assert mode(key) == 0o600 and key.read_bytes() != first


def test_compiled_cache_failures_never_fail_a_decode(root, runtime) -> None:
    engine = get_runtime(runtime)
    root.mkdir(parents=True, mode=0o700)
    (root / "compiled").write_text("a file where a folder should be")
    assert compile_cached(engine, EVIL, EVIL_SHA) is not None
    (root / "compiled").unlink()
    compile_cached(engine, EVIL, EVIL_SHA)
    assert len(list((root / "compiled").glob(f"*/{EVIL_SHA}.bin"))) == 1
    shutil.rmtree(root)
    root.write_text("a file where the cache should be")
    assert compile_cached(engine, EVIL, EVIL_SHA) is not None


# ---- the download cache --------------------------------------------------------------------

def test_an_index_digest_never_names_a_path(root, tmp_path, monkeypatch) -> None:
    cache = ModuleCache()
    cache.download(URI, fill())
    victim = tmp_path / "victim"  # blobs/sha256/../../../victim from the root
    victim.write_bytes(b"precious")
    index = root / "uris" / f"{key_name(URI)}.json"
    for digest in ("../../../victim", "../../../victim".ljust(64, "0"), PREDICTOR_SHA.upper(),
                   None, 7):
        index.write_text(json.dumps({"uri": URI, "sha256": digest, "size": 1, "fetched": 0}))
        assert cache.lookup(URI) is None
        assert victim.read_bytes() == b"precious"
        assert cache.entries() == []
    monkeypatch.setenv("CHONKLE_OFFLINE", "1")
    with pytest.raises(SourceError, match="is not in the cache"):
        fetch_module(URI, "p2", base_dir=None)
    assert victim.read_bytes() == b"precious"
    assert cache.download(URI, fill()) == (PREDICTOR, PREDICTOR_SHA)  # and it heals


def test_a_lock_file_link_never_touches_its_target(root, tmp_path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    locks = root / "locks"
    locks.mkdir(parents=True, mode=0o700)
    lock = locks / f"{key_name(URI)}.lock"
    lock.symlink_to(victim)
    assert ModuleCache().download(URI, fill()) == (PREDICTOR, PREDICTOR_SHA)
    assert victim.read_bytes() == b"precious"
    assert lock.is_file() and not lock.is_symlink()
    lock.write_bytes(b"held")  # a lock file is opened, never truncated
    ModuleCache().download(URI, fill(), reuse=False)
    assert lock.read_bytes() == b"held"


@pytest.mark.parametrize("how", ["writable by all", "group-writable parent",
                                 "owned by another user", "a link inside"])
def test_an_untrusted_cache_folder_is_a_source_error(root, how) -> None:
    cache = ModuleCache()
    cache.download(URI, fill())  # trusted while it is private
    if how == "writable by all":
        root.chmod(0o777)
        culprit, reason, fix = root, "is writable by others (mode 777)", f"chmod 700 {root}"
    elif how == "group-writable parent":
        root.parent.chmod(0o775)
        culprit, reason, fix = (root.parent, "is writable by others (mode 775)",
                                f"chmod go-w {root.parent}")
    elif how == "owned by another user":
        if os.geteuid() != 0:
            pytest.skip("giving a folder to another user needs root")
        os.chown(root, OTHER_UID, -1)
        culprit, reason, fix = root, f"is owned by uid {OTHER_UID}", "use a folder of your own"
    else:
        (root / "blobs").rename(root / "elsewhere")
        (root / "blobs").symlink_to(root / "elsewhere")
        culprit, reason, fix = root / "blobs", "is a symbolic link", f"rm {root / 'blobs'}"
    calls = [lambda: cache.blob(PREDICTOR_SHA), lambda: cache.lookup(URI),
             lambda: cache.download(URI, fill()), lambda: Pipeline.load(pipeline(URI))]
    for call in calls:
        with pytest.raises(SourceError) as info:
            call()
        message = str(info.value)
        assert f"the module cache {root} is not safe to use: {culprit} {reason}" in message
        assert f"fix: {fix}" in message and "or set CHONKLE_CACHE_DIR" in message
    assert "step 1 (tiff_predictor_2)" in message  # Pipeline.load names the step


def test_a_file_where_a_folder_should_be_is_a_chonkle_error(root, capsys) -> None:
    root.mkdir(parents=True, mode=0o700)
    (root / "blobs").write_text("oops")
    cache = ModuleCache()
    for call in (lambda: cache.download(URI, fill()), lambda: cache.blob(PREDICTOR_SHA)):
        with pytest.raises(SourceError, match=re.escape(f"{root / 'blobs'}: Not a directory")):
            call()
    (root / "uris").mkdir(mode=0o700)
    (root / "uris" / f"{key_name(URI)}.json").mkdir()  # a folder where a file should be
    assert cache.lookup(URI) is None  # damage in the index: deleted, a miss
    (root / "uris").rmdir()
    (root / "uris").write_text("oops")
    assert cli_main(["cache", "list"]) == 1
    assert capsys.readouterr().err.startswith(f"chonkle: error: the module cache {root} "
                                              "cannot be used")
    assert cli_main(["cache", "clear"]) == 0  # what repairs it
    assert cache.download(URI, fill()) == (PREDICTOR, PREDICTOR_SHA)
    shutil.rmtree(root)
    root.write_text("a file where the cache should be")
    with pytest.raises(SourceError, match=re.escape(f"{root}: Not a directory")):
        cache.download(URI, fill())


def test_a_read_only_cache_folder_is_a_chonkle_error_until_fixed(tmp_path) -> None:
    if os.geteuid() == 0:  # root writes anywhere: be somebody else, in a folder they own
        base = Path(tempfile.mkdtemp(prefix="chonkle-test-", dir="/tmp"))
        os.chown(base, NOBODY, NOBODY)
        user = as_user(NOBODY)
    else:
        base, user = tmp_path, contextlib.nullcontext()
    try:
        with user:
            root = base / "cache"
            root.mkdir(mode=0o700)
            root.chmod(0o500)
            cache = ModuleCache(root)
            with pytest.raises(ChonkleError, match=re.escape(f"{root}/locks: Permission denied")):
                cache.download(URI, fill())
            assert cache.blob(PREDICTOR_SHA) is None  # reading an empty cache still works
            root.chmod(0o700)
            assert cache.download(URI, fill()) == (PREDICTOR, PREDICTOR_SHA)
            assert cache.blob(PREDICTOR_SHA) == PREDICTOR
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_default_cache_is_private_and_per_user(tmp_path, monkeypatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("CHONKLE_CACHE_DIR")
    if sys.platform.startswith("linux"):
        assert cache_dir() == home / ".cache" / "chonkle"
    root = cache_dir()
    previous = os.umask(0o002)  # a umask that leaves new folders group-writable
    try:
        assert ModuleCache().download(URI, fill()) == (PREDICTOR, PREDICTOR_SHA)
    finally:
        os.umask(previous)
    for folder in (root.parent, root, root / "blobs", root / "blobs" / "sha256",
                   root / "uris", root / "locks", root / "tmp"):
        assert mode(folder) == 0o700, folder
    assert mode(root / "blobs" / "sha256" / PREDICTOR_SHA) == 0o600
    assert mode(root / "uris" / f"{key_name(URI)}.json") == 0o600
    assert ModuleCache().lookup(URI) == (PREDICTOR, PREDICTOR_SHA)


def test_clear_deletes_only_inside_the_root_and_follows_no_link(root, tmp_path,
                                                               capsys) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"precious")
    cache = ModuleCache()
    cache.download(URI, fill())
    (root / "tmp" / "escape").symlink_to(outside)
    (root / "uris" / "link.json").symlink_to(outside / "victim")
    shutil.rmtree(root / "locks")
    (root / "locks").symlink_to(outside)
    (root / "compiled" / "deep" / "er").mkdir(parents=True)
    (root / "compiled" / "deep" / "er" / "escape").symlink_to(outside)
    (root / "mine.txt").write_text("not the cache's")
    assert cli_main(["cache", "clear"]) == 0
    assert f"removed 1 module(s) and all compiled code from {root}" in capsys.readouterr().out
    assert (outside / "victim").read_bytes() == b"precious"
    assert sorted(p.name for p in root.iterdir()) == ["mine.txt"]
    assert cache.entries() == [] and cache.blob(PREDICTOR_SHA) is None


def test_blobs_are_verified_on_every_read(root) -> None:
    cache = ModuleCache()
    cache.download(URI, fill())
    blob = root / "blobs" / "sha256" / PREDICTOR_SHA
    blob.write_bytes(numcodecs.Zlib().encode(PREDICTOR))  # other bytes under its name
    assert cache.blob(PREDICTOR_SHA) is None and not blob.exists()
    cache.download(URI, fill())
    blob.unlink()
    blob.symlink_to(shipped_module_path("tiff_predictor_2"))  # the right bytes, by a link
    assert cache.blob(PREDICTOR_SHA) is None and not blob.is_symlink()
    assert shipped_module_path("tiff_predictor_2").read_bytes() == PREDICTOR


def test_a_key_inside_the_cache_vouches_for_nothing(fresh, root) -> None:
    """The key is kept outside the cache (CHONKLE_KEY_DIR, else the per-user config folder):
    a cache copied or restored from elsewhere, with a key of its own beside its artifacts,
    cannot get them loaded."""
    assert fresh.decode() == "right"
    planted_key = b"k" * 32
    (root / "compiled.key").write_bytes(planted_key)  # where older chonkle kept it
    (root / "compiled.key").chmod(0o600)
    fresh.plant(lambda key, *rest: seal(planted_key, *rest))
    assert fresh.decode() == "right"  # the planted artifact was not loaded, but rebuilt
    assert (root.parent / "keys" / "compiled.key").read_bytes() != planted_key


def test_a_hostile_index_or_tree_cannot_stop_clear(root, capsys) -> None:
    """An index entry of deeply nested JSON, and a folder tree thousands of levels deep:
    `chonkle cache clear`, the repair tool, still empties the cache."""
    ModuleCache()  # made on first use below
    fetch_module(shipped_module_path("zstd").as_uri(), "zstd", base_dir=None)
    uris = root / "uris"
    uris.mkdir(parents=True, exist_ok=True, mode=0o700)
    (uris / ("0" * 32 + ".json")).write_text("[" * 200_000)
    deep = root / "tmp"
    deep.mkdir(exist_ok=True, mode=0o700)
    os.chdir(deep)
    try:
        for _ in range(3000):  # relative steps: the full path would be too long
            os.mkdir("d", 0o700)
            os.chdir("d")
    finally:
        os.chdir(root.parent.parent)
    assert ModuleCache().entries() == []
    assert cli_main(["cache", "clear"]) == 0
    assert not (root / "tmp").exists() and not (root / "uris").exists()
