"""The compressors shipped as Wasm, zlib and zstd: chonkle's own zstd encoder against
numcodecs.Zstd and the reference `zstd` tool, output limits and decompression bombs, and
sizes near the 32-bit edges of linear memory.

Round trips run on both engines. Sizes are compared on the benchmark raster (the one
benchmarks/conftest.py builds). Tests of memory use instantiate the shipped module with
wasmtime directly, so they read linear memory however chonkle's instance pools change.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import zlib
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import wasmtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chonkle import CodecError, LimitExceeded, Pipeline, SpecError

PROPERTY = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
SHIPPED = Path(__file__).resolve().parent.parent / "chonkle" / "wasm"
MiB, GiB = 2**20, 2**30
ZSTD_MAGIC = (0xFD2FB528).to_bytes(4, "little")
LEVELS = [-131072, -5, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 19, 22]


def load(runtime: str, name: str, **config: object):
    """The shipped codec `name` in a fresh one-step pipeline (after any limit settings)."""
    step = {"name": name, "type": "wasm", "configuration": config}
    return Pipeline.load({"codecs": [step]}, runtime=runtime).codecs[0]


@functools.cache
def _cached(runtime: str, name: str, config_json: str):
    return load(runtime, name, **json.loads(config_json))


def codec(runtime: str, name: str, **config: object):
    """The same, compiled once per engine and configuration (default limits only)."""
    return _cached(runtime, name, json.dumps(config, sort_keys=True))


def run(c, direction: str, data: bytes) -> bytes:
    return getattr(c, direction)(data).tobytes()


def benchmark_raster(nbytes: int, width: int = 1024) -> bytes:
    """benchmarks/conftest.py's raster_of: a smooth uint16 band with sensor noise."""
    samples = nbytes // 2
    width = min(width, samples)
    rng = np.random.default_rng(0)
    y, x = np.indices((samples // width, width))
    surface = 2400 + 900 * np.sin(x / 41.0) * np.cos(y / 29.0) + 0.5 * x + 0.3 * y
    return np.clip(surface + rng.normal(0, 15, surface.shape), 0, 65535).astype(np.uint16).tobytes()


def sample(kind: str, n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    if kind == "constant":
        return bytes([seed % 256]) * n
    if kind == "raster":
        return benchmark_raster(2 * (n // 2 + 1), width=97)[:n]
    if kind == "text":
        words = [b"zarr ", b"chunk ", b"codec ", b"pipeline ", b"wasm ", b"\n", b"level ", b"9 "]
        return b"".join(words[i] for i in rng.integers(0, len(words), n))[:n]
    if kind == "runs":
        return np.repeat(rng.integers(0, 5, n // 37 + 1, dtype=np.uint8), 37).tobytes()[:n]
    # "mixed": stretches of the others, so blocks change character midway
    kinds = ["text", "random", "runs", "raster"]
    parts = [sample(k, n // 4, seed + i) for i, k in enumerate(kinds)]
    return b"".join(parts)[:n]


KINDS = ["random", "constant", "raster", "text", "runs", "mixed"]
# Sizes around the edges that matter: tiny, a literals header size step, the 128 KiB block.
SIZES = [0, 1, 2, 31, 32, 255, 256, 1023, 1024, 4095, 4096, 65535, 131071, 131072, 131073, 300_001]


def zstd_cli(data: bytes, *options: str) -> bytes:
    """The zstd tool on data from stdin (`-d` by default); skips when the tool is missing,
    unless CI requires it (CHONKLE_TEST_REQUIRE_ZSTD_CLI=1)."""
    tool = shutil.which("zstd")
    if tool is None:
        if os.environ.get("CHONKLE_TEST_REQUIRE_ZSTD_CLI") == "1":
            pytest.fail("CHONKLE_TEST_REQUIRE_ZSTD_CLI=1 but the zstd tool is not installed")
        pytest.skip("the zstd command-line tool is not installed (apt-get install zstd)")
    done = subprocess.run([tool, *(options or ("-d",)), "-q", "-c"], input=data,
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


# ---- zstd encoder: every frame decodes, with numcodecs, the zstd tool and chonkle -----------

@PROPERTY
@given(kind=st.sampled_from(KINDS), n=st.sampled_from(SIZES) | st.integers(0, 70_000),
       seed=st.integers(0, 2**16), level=st.sampled_from([*LEVELS, 0, 23, 10**6, -10**6]),
       checksum=st.booleans())
def test_zstd_round_trips(runtime, kind, n, seed, level, checksum) -> None:
    data = sample(kind, n, seed)
    zstd = codec(runtime, "zstd", level=level, checksum=checksum)
    encoded = run(zstd, "encode", data)
    assert encoded[:4] == ZSTD_MAGIC
    assert run(zstd, "decode", encoded) == data
    if data:  # numcodecs 0.13 cannot decode an empty frame, not even its own
        assert bytes(numcodecs.Zstd().decode(encoded)) == data


@pytest.mark.parametrize("level", LEVELS)
def test_zstd_frames_decode_with_numcodecs_and_the_zstd_tool(runtime: str, level: int) -> None:
    data = b"".join(sample(kind, 150_000, 7) for kind in KINDS)  # 900 kB: 7 blocks
    for checksum in (False, True):
        encoded = run(codec(runtime, "zstd", level=level, checksum=checksum), "encode", data)
        assert bytes(numcodecs.Zstd().decode(encoded)) == data
        assert zstd_cli(encoded) == data


def test_zstd_tool_decodes_edge_inputs(runtime: str) -> None:
    zstd = codec(runtime, "zstd", level=3, checksum=True)
    for data in (b"", b"x", bytes(200_000), sample("random", 140_000, 1), b"ab" * 70_000):
        assert zstd_cli(run(zstd, "encode", data)) == data


def test_zstd_decodes_streams_from_the_zstd_tool(runtime: str) -> None:
    """Frames written from stdin have no content size: the decoder grows its buffer."""
    data = benchmark_raster(MiB) + sample("text", 300_000, 9)
    for options in (("-1",), ("-3", "--no-check"), ("-19",), ("--fast=5",)):
        frame = zstd_cli(data, *options)
        assert frame[4] >> 6 == 0 and not frame[4] & 0x20  # no content size
        assert run(codec(runtime, "zstd"), "decode", frame) == data


def test_zstd_frame_header_is_libzstd_s(runtime: str) -> None:
    """Content size, window and checksum flag as libzstd writes them, at every level."""
    def header(frame: bytes) -> bytes:
        descriptor = frame[4]
        single, fcs = descriptor >> 5 & 1, descriptor >> 6
        return frame[:5 + (not single) + [single, 2, 4, 8][fcs]]

    raster = benchmark_raster(4 * MiB)
    for n in (1, 255, 256, 65791, 65792, 300_000, 524_289, 2 * MiB + 1, 4 * MiB):
        for level in (-5, 1, 2, 3, 4, 5, 9) + ((19,) if n < MiB else ()):
            checksum = (n + level) % 2 == 1
            zstd = codec(runtime, "zstd", level=level, checksum=checksum)
            ours = run(zstd, "encode", raster[:n])
            theirs = numcodecs.Zstd(level, checksum=checksum).encode(raster[:n])
            assert header(ours) == header(theirs), (n, level, checksum)


def test_zstd_checksum_is_checked(runtime: str) -> None:
    data = sample("text", 5000, 3)
    frame = bytearray(run(codec(runtime, "zstd", checksum=True), "encode", data))
    assert frame[4] & 4 and len(frame) == len(run(codec(runtime, "zstd"), "encode", data)) + 4
    assert zstd_cli(bytes(frame)) == data
    frame[-1] ^= 1
    with pytest.raises(CodecError, match="checksum"):
        codec(runtime, "zstd").decode(bytes(frame))


def test_zstd_edge_inputs(runtime: str) -> None:
    zstd = codec(runtime, "zstd")
    empty = run(zstd, "encode", b"")
    assert empty == numcodecs.Zstd().encode(b"")  # header, one empty last raw block
    assert run(zstd, "decode", empty) == b""
    one = run(zstd, "encode", b"\x00")
    assert run(zstd, "decode", one) == b"\x00" and len(one) <= 10
    noise = sample("random", 1_000_000, 5)
    stored = run(zstd, "encode", noise)  # raw blocks: 3 bytes of header per 128 KiB
    assert len(stored) <= len(noise) + 3 * 8 + 14
    assert bytes(numcodecs.Zstd().decode(stored)) == noise
    zeros = run(zstd, "encode", bytes(4 * MiB))  # RLE blocks
    assert len(zeros) <= 32 * 4 + 20 and run(zstd, "decode", zeros) == bytes(4 * MiB)
    pattern = b"chonkle!" * 500_000
    for level in (1, 3, 9):
        small = run(codec(runtime, "zstd", level=level), "encode", pattern)
        assert len(small) < 400 and bytes(numcodecs.Zstd().decode(small)) == pattern


def test_zstd_output_is_the_same_on_both_engines() -> None:
    pytest.importorskip("wasmer")
    data = benchmark_raster(MiB) + sample("text", 100_000, 2)
    for level in (-5, 1, 3, 6, 9):
        a, b = (run(codec(r, "zstd", level=level), "encode", data) for r in ("wasmtime", "wasmer"))
        assert a == b


def test_zstd_level_clamping_and_default(runtime: str) -> None:
    data = benchmark_raster(300_000)
    levels = (0, 3, 22, 99, -131072, -10**9)
    level = {n: run(codec(runtime, "zstd", level=n), "encode", data) for n in levels}
    assert run(codec(runtime, "zstd"), "encode", data) == level[0] == level[3]
    assert level[99] == level[22] and level[-10**9] == level[-131072]


# ---- zstd encoder: compressed size and the benchmark raster ---------------------------------

@pytest.mark.parametrize("nbytes", [256 * 2**10, 2 * MiB])
def test_zstd_compresses_like_numcodecs(nbytes: int) -> None:
    """Within 10% of libzstd at levels 1-9 (in practice within 5%)."""
    data = benchmark_raster(nbytes)
    for level in range(1, 10):
        ours = len(run(codec("wasmtime", "zstd", level=level), "encode", data))
        theirs = len(numcodecs.Zstd(level).encode(data))
        assert ours <= 1.10 * theirs, (level, ours, theirs)


def test_zstd_compresses_16_mib_like_numcodecs() -> None:
    data = benchmark_raster(16 * MiB)
    for level in (1, 3):
        ours = len(run(codec("wasmtime", "zstd", level=level), "encode", data))
        assert ours <= 1.10 * len(numcodecs.Zstd(level).encode(data)), level


def test_zstd_compresses_text_and_code_like_numcodecs() -> None:
    """Other data than rasters: this repository's sources and a Wasm module."""
    root = Path(__file__).resolve().parent.parent
    sources = sorted([*root.glob("chonkle/**/*.py"), *root.glob("wasm-src/*/*.c")])
    data = b"".join(p.read_bytes() for p in sources) + (SHIPPED / "zstd.wasm").read_bytes()
    for level in (1, 2, 3, 5, 7, 9):
        ours = len(run(codec("wasmtime", "zstd", level=level), "encode", data))
        assert ours <= 1.10 * len(numcodecs.Zstd(level).encode(data)), level


# ---- configuration --------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "config", "key"), [
    ("zstd", {"level": 2**31}, "level"),
    ("zstd", {"level": "3"}, "level"),
    ("zstd", {"checksum": 1}, "checksum"),
    ("zstd", {"levle": 3}, "levle"),
    ("zlib", {"level": 10}, "level"),
    ("zlib", {"level": -2}, "level"),
    ("zlib", {"level": 1.5}, "level"),
    ("zlib", {"checksum": True}, "checksum"),
])
def test_configurations_are_checked_on_load(runtime: str, name: str, config: dict,
                                            key: str) -> None:
    with pytest.raises(SpecError, match=key):
        load(runtime, name, **config)


def test_zlib_level_minus_one_is_zlib_s_default(runtime: str) -> None:
    data = benchmark_raster(200_000)
    assert run(codec(runtime, "zlib", level=-1), "encode", data) == run(
        codec(runtime, "zlib", level=6), "encode", data)
    assert zlib.decompress(run(codec(runtime, "zlib", level=-1), "encode", data)) == data


# ---- output limits and decompression bombs --------------------------------------------------

def rle_blocks(total: int, byte: bytes = b"x") -> bytes:
    """zstd blocks of `total` bytes of `byte` (RLE blocks of up to 128 KiB), the last marked."""
    blocks, left = [], total
    while True:
        size = min(left, 128 * 1024)
        left -= size
        header = size << 3 | 1 << 1 | (left == 0)
        blocks.append(header.to_bytes(3, "little") + byte)
        if left == 0:
            return b"".join(blocks)


def zstd_bomb(total: int, declare: bool) -> bytes:
    """A frame of RLE blocks; with its content size in the header, or with no size at all."""
    if declare:  # single segment, 8-byte content size
        return ZSTD_MAGIC + bytes([0xE0]) + total.to_bytes(8, "little") + rle_blocks(total)
    return ZSTD_MAGIC + bytes([0x00, 0x58]) + rle_blocks(total)  # 128 MiB window, no size


@functools.cache
def zlib_bomb(total: int) -> bytes:
    """A zlib stream of `total` zero bytes, 1032:1: one fixed-Huffman block of a literal 0
    and (length 258, distance 1) matches. Eight matches take 104 bits, 13 whole bytes, so
    the block is built from a repeated 13-byte pattern (zlib.compress would take seconds)."""
    def stream(matches: int, literals: int) -> bytes:
        bits: list[int] = []

        def code(value: int, n: int) -> None:  # Huffman codes go most significant bit first
            bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))

        bits.extend([1, 1, 0])  # the last block; type 1 (fixed codes), low bit first
        code(0b00110000, 8)  # literal 0
        for _ in range(matches):
            code(0b11000101, 8)  # length 258 (symbol 285)
            code(0, 5)  # distance 1
        for _ in range(literals):
            code(0b00110000, 8)
        code(0, 7)  # end of block
        bits.extend([0] * (-len(bits) % 8))
        return bytes(sum(b << i for i, b in enumerate(bits[k:k + 8]))
                     for k in range(0, len(bits), 8))

    matches, literals = divmod(total - 1, 258)
    groups, rest = divmod(matches, 8)
    if groups < 3:
        body = stream(matches, literals)
    else:
        two = stream(16 + rest, literals)
        assert stream(24 + rest, literals) == two[:2] + two[2:15] + two[2:]
        body = two[:2] + two[2:15] * (groups - 2) + two[2:]
    adler = (total % 65521) << 16 | 1  # of zeros: s1 stays 1, s2 counts them
    return b"\x78\x01" + body + adler.to_bytes(4, "big")


def test_the_zlib_bomb_is_a_zlib_stream() -> None:
    for total in (1, 258, 2064, 2065, 6193, 100_000, MiB + 1):
        assert zlib.decompress(zlib_bomb(total)) == bytes(total)


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    limit = 1 * MiB
    monkeypatch.setenv("CHONKLE_MAX_OUTPUT", str(limit))
    return limit


@pytest.mark.parametrize("bomb", ["zlib", "zstd sized", "zstd unsized"])
def test_bombs_stop_at_the_output_limit(runtime: str, small_limit: int, bomb: str) -> None:
    name = bomb.split()[0]
    c = load(runtime, name)
    data = (zlib_bomb(64 * MiB) if name == "zlib" else zstd_bomb(64 * MiB, bomb == "zstd sized"))
    with pytest.raises(LimitExceeded, match="CHONKLE_MAX_OUTPUT"):
        c.decode(data)
    native = numcodecs.Zlib() if name == "zlib" else numcodecs.Zstd()
    fine = native.encode(b"fine" * 100)
    assert run(c, "decode", fine) == b"fine" * 100  # and the next call works


@pytest.mark.parametrize("stream", ["zlib", "zstd sized", "zstd unsized"])
def test_outputs_of_exactly_the_limit_pass(runtime: str, small_limit: int, stream: str) -> None:
    name = stream.split()[0]
    c = load(runtime, name)
    make = (zlib_bomb if name == "zlib"
            else functools.partial(zstd_bomb, declare=stream == "zstd sized"))
    fill = b"\x00" if name == "zlib" else b"x"
    assert run(c, "decode", make(small_limit)) == fill * small_limit
    with pytest.raises(LimitExceeded):
        c.decode(make(small_limit + 1))


@pytest.mark.parametrize("name", ["zlib", "zstd"])
def test_encoders_stop_at_the_output_limit(runtime: str, small_limit: int, name: str) -> None:
    c = load(runtime, name, level=1)
    noise = sample("random", small_limit + 1000, 3)
    with pytest.raises(LimitExceeded):
        c.encode(noise)
    # larger than the limit, but its output is not: the worst case does not decide
    text = sample("text", 3 * small_limit, 4)
    encoded = run(c, "encode", text)
    assert len(encoded) < small_limit
    native = numcodecs.Zlib() if name == "zlib" else numcodecs.Zstd()
    assert bytes(native.decode(encoded)) == text


def test_a_frame_declaring_more_than_the_limit_is_refused_before_allocating(runtime: str) -> None:
    c = load(runtime, "zstd")
    for size in (GiB + 1, 2**31, 2**32 - 1, 2**32, 2**32 + 5, 2**63, 2**64 - 1):
        with pytest.raises(LimitExceeded, match=f"output of {size} bytes"):
            c.decode(zstd_bomb(0, True)[:5] + size.to_bytes(8, "little") + rle_blocks(1000))


def test_declared_sizes_are_summed_in_64_bits(runtime: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Two frames whose sizes wrap to a small total in 32 bits: refused, at the largest limit."""
    monkeypatch.setenv("CHONKLE_MAX_OUTPUT", str(4 * GiB - 64 * 1024))
    monkeypatch.setenv("CHONKLE_MAX_MEMORY", str(4 * GiB))
    c = load(runtime, "zstd")
    first = numcodecs.Zstd().encode(b"a" * 100)
    second = ZSTD_MAGIC + bytes([0xA0]) + (2**32 - 60).to_bytes(4, "little") + rle_blocks(1000)
    with pytest.raises(LimitExceeded, match=f"output of {2**32 + 40} bytes"):
        c.decode(first + second)
    assert run(c, "decode", first) == b"a" * 100


def test_window_sizes_up_to_2_to_the_41_decode(runtime: str) -> None:
    """Window_Size needs 64 bits (exponent 31: 2^41); blocks are bounded by min(window, 128 KiB)."""
    c = codec(runtime, "zstd")

    def frame(window_descriptor: int, block_type: int, size: int, body: bytes) -> bytes:
        header = size << 3 | block_type << 1 | 1
        return ZSTD_MAGIC + bytes([0x00, window_descriptor]) + header.to_bytes(3, "little") + body

    for descriptor in (0x18, 0x58, 0xF8, 0xFF):  # 8 KiB, 2 MiB, 2^41 and 2^41 + 7 * 2^38
        assert run(c, "decode", frame(descriptor, 0, 5000, b"w" * 5000)) == b"w" * 5000
    with pytest.raises(CodecError, match="block of 131073 bytes"):  # over 128 KiB, any window
        c.decode(frame(0xF8, 1, 128 * 1024 + 1, b"w"))
    with pytest.raises(CodecError, match="block of 1025 bytes"):  # over a 1 KiB window
        c.decode(frame(0x00, 1, 1025, b"w"))


# ---- memory: bombs allocate about the limit, and 1 GiB outputs ------------------------------

# What an instance holds before any call (its stack and static data), with room to spare.
BASE_MEMORY = 24 * MiB


class Direct:
    """The shipped module in a bare wasmtime instance: its linear memory can be read."""

    def __init__(self, name: str, limit: int) -> None:
        engine = wasmtime.Engine()
        self.store = wasmtime.Store(engine)
        self.store.set_wasi(wasmtime.WasiConfig())
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        module = wasmtime.Module.from_file(engine, str(SHIPPED / f"{name}.wasm"))
        self.exports = linker.instantiate(self.store, module).exports(self.store)
        self.exports["_initialize"](self.store)
        self.memory = self.exports["memory"]
        self.exports["set_output_limit"](self.store, limit)

    def decode(self, data: bytes) -> tuple[int, int, int]:
        """(output pointer, output length, linear memory after the call)."""
        s, e = self.store, self.exports
        pointer, config = e["alloc"](s, len(data)), e["alloc"](s, 2)
        self.memory.write(s, data, pointer)
        self.memory.write(s, b"{}", config)
        packed = e["decode"](s, pointer, len(data), config, 2) & (2**64 - 1)
        return packed >> 32, packed & 0xFFFFFFFF, self.memory.data_len(s)


@pytest.mark.parametrize("bomb", ["zlib", "zstd sized", "zstd unsized"])
def test_a_bomb_allocates_about_the_limit(bomb: str) -> None:
    """The peak linear memory of a bomb decode at the default 1 GiB limit: output buffers never
    grow past the limit, and grow in place, so memory stays about the limit (asserted: below
    1.5x the limit plus the input)."""
    name = bomb.split()[0]
    data = zlib_bomb(GiB + 2 * MiB) if name == "zlib" else zstd_bomb(2 * GiB, bomb == "zstd sized")
    module = Direct(name, GiB)
    pointer, length, memory = module.decode(data)
    assert (pointer, length) == (0, 1)  # the limit failure result
    assert memory < 1.5 * GiB + len(data)
    print(f"{bomb}: peak linear memory {memory / MiB:.0f} MiB (1024 MiB limit, "
          f"{len(data) / MiB:.1f} MiB input)")
    if bomb == "zstd sized":
        assert memory < BASE_MEMORY + len(data)  # refused from its header: nothing allocated
    else:
        assert memory < GiB + BASE_MEMORY + len(data)


@pytest.mark.parametrize("declare", [True, False])
def test_an_output_of_exactly_1_gib(declare: bool) -> None:
    """2^30 bytes decode at a 2^30 limit, in a buffer of about that size; one byte more is
    refused (a sized frame from its header, an unsized one when its buffer is full)."""
    module = Direct("zstd", GiB)
    data = zstd_bomb(GiB, declare)
    pointer, length, memory = module.decode(data)
    assert pointer != 0 and length == GiB
    assert memory < GiB + BASE_MEMORY + len(data)
    view = module.memory.get_buffer_ptr(module.store, pointer + length, pointer)
    assert bytes(view[:16]) == b"x" * 16 and bytes(view[length - 16:length]) == b"x" * 16
    assert Direct("zstd", GiB).decode(zstd_bomb(GiB + 1, declare))[:2] == (0, 1)


@pytest.mark.parametrize("declare", [True, False])
def test_outputs_past_2_gib_fail_cleanly(declare: bool) -> None:
    """At a 4 GiB limit, an output past 2^31 cannot be held (one buffer of wasi-libc's malloc
    tops out just under 2 GiB, and asking for more would trap): a clean "out of memory",
    never a trap and never a size wrapped into a small buffer."""
    module = Direct("zstd", 4 * GiB - 64 * 1024)
    total = 2**31 + 2**30
    data = zstd_bomb(total, declare) if declare else zstd_bomb(2**31 + 2**20, False)
    pointer, length, memory = module.decode(data)
    assert (pointer, length) == (0, 0)
    error = module.exports["last_error"](module.store) & (2**64 - 1)
    message = module.memory.read(module.store, error >> 32, (error >> 32) + (error & 0xFFFFFFFF))
    assert b"out of memory for" in bytes(message)
    if declare:
        assert f"{total} bytes".encode() in bytes(message)
        assert memory < BASE_MEMORY + len(data)
