"""Hostile modules: each limit, each WASI call, traps of every kind, bad exports, compile bombs.

Every module here ends in a ChonkleError subclass, on both engines where the engine can
enforce the limit (wasmer has no time limit); the process lives on, memory comes back, nothing
is left on disk, and the next call on a good module is correct.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import IDENTITY, WAT_PRELUDE, wasm_step, wat_module

import chonkle
from chonkle import (
    ChonkleError,
    CodecError,
    LimitExceeded,
    Pipeline,
    SpecError,
    WasmAbiError,
    WasmTrap,
)
from chonkle.engine.wasm_binary import append_custom_section

MiB = 2**20


def codec(body: str) -> str:
    """A decode export around `body`, which leaves an i64 result on the stack."""
    return f'(func (export "decode") (param i32 i32 i32 i32) (result i64) {body})'


def wasi(name: str, params: int, results: int = 1) -> str:
    signature = " ".join(["i32"] * params)
    result = "(result i32)" if results else ""
    return (f'(import "wasi_snapshot_preview1" "{name}" '
            f"(func ${name} (param {signature}) {result}))")


def probe(call: str) -> str:
    """Decode fails cleanly (CodecError) unless the WASI call succeeded: then it traps."""
    return codec(f"(if (i32.eqz {call}) (then unreachable)) (i64.const 0)")


PAGE_LOOP = """(loop $l
  (if (i32.ne (memory.grow (i32.const 16)) (i32.const -1))
    (then (i32.store (i32.sub (i32.shl (memory.size) (i32.const 16)) (i32.const 4))
                     (i32.const 7))
          (br $l))))"""

# name -> (body, imports, prelude or None for the standard one, expected error, engines)
BOTH = ("wasmtime", "wasmer")
TIMED = ("wasmtime",)  # engines that can stop a call that runs too long
HOSTILE: dict[str, tuple[str, str, str | None, type[ChonkleError], tuple[str, ...]]] = {
    # time
    "loop_in_decode": (codec("(loop $l (br $l)) (i64.const 0)"), "", None, LimitExceeded,
                       TIMED),
    "loop_in_start": ("(func $s (loop $l (br $l))) (start $s)" + IDENTITY, "", None,
                      LimitExceeded, TIMED),
    "loop_in_initialize": ('(func (export "_initialize") (loop $l (br $l)))' + IDENTITY, "",
                           None, LimitExceeded, TIMED),
    "loop_in_alloc": (codec("(i64.const 0)"), "",
                      '(memory (export "memory") 1) (func (export "alloc") (param i32) '
                      "(result i32) (loop $l (br $l)) (i32.const 8)) "
                      '(func (export "dealloc") (param i32 i32))', LimitExceeded, TIMED),
    # memory
    "grow_until_refused": (codec(PAGE_LOOP + "(i64.const 0)"), "", None, LimitExceeded, BOTH),
    "grow_then_trap": (codec(PAGE_LOOP + "unreachable"), "", None, LimitExceeded, BOTH),
    "initial_memory_over_the_cap": (IDENTITY, "", WAT_PRELUDE.replace(
        '(memory (export "memory") 1)', '(memory (export "memory") 8192)'), LimitExceeded,
        BOTH),
    "memory64": (codec("(i64.const 0)"), "", '(memory (export "memory") i64 1)'
                 '(func (export "alloc") (param i32) (result i32) (i32.const 8))'
                 '(func (export "dealloc") (param i32 i32))', WasmAbiError, BOTH),
    "two_memories": (IDENTITY + "(memory $second 1)", "", None, WasmAbiError, BOTH),
    "shared_memory": (codec("(i64.const 0)"), "", '(memory (export "memory") 1 2 shared)'
                      '(func (export "alloc") (param i32) (result i32) (i32.const 8))'
                      '(func (export "dealloc") (param i32 i32))', WasmAbiError, BOTH),
    # tables
    "table_grow_bomb": ("(table $t 1 funcref)" + codec(
        "(drop (table.grow $t (ref.null func) (i32.const 100000000))) (i64.const 0)"), "",
        None, CodecError, BOTH),
    "initial_table_over_the_cap": ("(table $t 200000 funcref)" + IDENTITY, "", None,
                                   LimitExceeded, BOTH),
    "two_tables": ("(table $a 1 funcref) (table $b 1 funcref)" + IDENTITY, "", None,
                   WasmAbiError, BOTH),
    # output
    "output_over_the_limit": (codec("(drop (memory.grow (i32.const 40))) "
                                    "(i64.const 0x0000040000200000)"), "", None, LimitExceeded,
                              BOTH),
    "limit_result": (codec("(i64.const 1)"), "", None, LimitExceeded, BOTH),
    "null_pointer_with_length": (codec("(i64.const 5)"), "", None, WasmAbiError, BOTH),
    # WASI
    "proc_exit": (codec("(call $proc_exit (i32.const 7)) (i64.const 0)"),
                  wasi("proc_exit", 1, 0), None, WasmTrap, BOTH),
    "poll_oneoff_sleeps_an_hour": (probe(
        "(call $poll_oneoff (i32.const 64) (i32.const 256) (i32.const 1) (i32.const 512))"),
        wasi("poll_oneoff", 4), None, CodecError, BOTH),
    "path_open_without_preopens": (probe(
        "(call $path_open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 4) "
        "(i32.const 0) (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 128))"),
        '(import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 '
        "i32 i64 i64 i32 i32) (result i32)))", None, CodecError, BOTH),
    "fd_prestat_get_finds_no_folder": (probe(
        "(call $fd_prestat_get (i32.const 3) (i32.const 64))"), wasi("fd_prestat_get", 2),
        None, CodecError, BOTH),
    "fd_read_from_stdin": (codec(
        "(i32.store (i32.const 16) (i32.const 64)) (i32.store (i32.const 20) (i32.const 16)) "
        "(drop (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 24))) "
        "(if (i32.load (i32.const 24)) (then unreachable)) (i64.const 0)"),
        wasi("fd_read", 4), None, CodecError, BOTH),
    "environment_is_empty": (codec(
        "(drop (call $environ_sizes_get (i32.const 16) (i32.const 20))) "
        "(if (i32.load (i32.const 16)) (then unreachable)) (i64.const 0)"),
        wasi("environ_sizes_get", 2), None, CodecError, BOTH),
    "sock_send_has_no_socket": (probe(
        "(call $sock_send (i32.const 3) (i32.const 16) (i32.const 1) (i32.const 0) "
        "(i32.const 24))"), wasi("sock_send", 5), None, CodecError, BOTH),
    "random_get_out_of_bounds": (probe(
        "(call $random_get (i32.const 65530) (i32.const 100))"), wasi("random_get", 2), None,
        CodecError, BOTH),
    "clock_time_get_out_of_bounds": (probe(
        "(call $clock_time_get (i32.const 0) (i64.const 0) (i32.const 65534))"),
        '(import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get '
        "(param i32 i64 i32) (result i32)))", None, CodecError, BOTH),
    # traps
    "unreachable": (codec("unreachable"), "", None, WasmTrap, BOTH),
    "out_of_bounds_load": (codec("(i64.load (i32.const -8))"), "", None, WasmTrap, BOTH),
    "divide_by_zero": (codec("(i64.div_u (i64.const 1) (i64.const 0))"), "", None, WasmTrap,
                       BOTH),
    "stack_overflow": ('(func $f (result i64) (call $f))' + codec("(call $f)"), "", None,
                       WasmTrap, BOTH),
    "null_indirect_call": ("(type $t (func (result i64))) (table 1 funcref)" + codec(
        "(call_indirect (type $t) (i32.const 0))"), "", None, WasmTrap, BOTH),
    "float_to_int_overflow": (codec("(i64.trunc_f64_s (f64.const 1e300))"), "", None,
                              WasmTrap, BOTH),
    "trap_in_start": ("(func $s unreachable) (start $s)" + IDENTITY, "", None, WasmTrap,
                      BOTH),
    "data_out_of_bounds": ('(data (i32.const 1000000) "x")' + IDENTITY, "", None, WasmTrap,
                           BOTH),
    # exports and imports
    "no_memory_export": (codec("(i64.const 0)"), "",
                         '(memory 1) (func (export "alloc") (param i32) (result i32) '
                         '(i32.const 8)) (func (export "dealloc") (param i32 i32))',
                         WasmAbiError, BOTH),
    "decode_takes_floats": ('(func (export "decode") (param f32 i32 i32 i32) (result i64) '
                            "(i64.const 0))", "", None, WasmAbiError, BOTH),
    "neither_direction": ('(func (export "transform") (param i32 i32 i32 i32) (result i64) '
                          "(i64.const 0))", "", None, WasmAbiError, BOTH),
    "alloc_outside_memory": (codec("(i64.const 0)"), "",
                             '(memory (export "memory") 1) (func (export "alloc") (param i32) '
                             "(result i32) (i32.const 65535)) "
                             '(func (export "dealloc") (param i32 i32))', WasmAbiError, BOTH),
    "alloc_returns_zero": (codec("(i64.const 0)"), "",
                           '(memory (export "memory") 1) (func (export "alloc") (param i32) '
                           "(result i32) (i32.const 0)) "
                           '(func (export "dealloc") (param i32 i32))', CodecError, BOTH),
    "wild_last_error": ('(func (export "last_error") (result i64) (i64.const -1))'
                        + codec("(i64.const 0)"), "", None, CodecError, BOTH),
    "imports_from_the_host": (IDENTITY, '(import "env" "system" (func (param i32)))', None,
                              WasmAbiError, BOTH),
    # compile bombs: each compiles quickly or is refused, and none is a usable codec
    "fifty_thousand_locals": ("(func (export \"decode\") (param i32 i32 i32 i32) (result i64) "
                              "(local " + "i64 " * 50_001 + ") (i64.const 0))", "", None,
                              CodecError, BOTH),
    "deep_nesting": ("(func $deep " + "(block " * 5_000 + ")" * 5_000 + ")", "", None,
                     WasmAbiError, BOTH),
    "huge_br_table": ("(func $jump (param i32) (block (br_table " + "0 " * 200_000
                      + "(local.get 0))))", "", None, CodecError, BOTH),
    "twenty_thousand_functions": (" ".join(f"(func $f{i} (result i32) (i32.const {i}))"
                                           for i in range(20_000)), "", None, WasmAbiError,
                                  BOTH),
}


@pytest.fixture
def limits(monkeypatch) -> None:
    """Small limits, so the bombs are quick: 64 MiB of memory, 1 MiB of output, 1 s."""
    monkeypatch.setenv("CHONKLE_MAX_MEMORY", "64MiB")
    monkeypatch.setenv("CHONKLE_MAX_OUTPUT", "1MiB")
    monkeypatch.setenv("CHONKLE_WASM_TIMEOUT", "1")


def run_hostile(path: Path, runtime: str) -> ChonkleError:
    with pytest.raises(ChonkleError) as info:
        Pipeline.load([wasm_step(path.as_uri(), "hostile")], runtime=runtime).decode(b"abc")
    return info.value


def test_the_corpus_is_large_enough() -> None:
    assert len(HOSTILE) >= 30


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_module(name: str, runtime: str, limits, tmp_path: Path, wasm_file) -> None:
    body, imports, prelude, expected, engines = HOSTILE[name]
    if runtime not in engines:
        pytest.skip(f"{runtime} cannot stop a call that runs too long (README: Security model)")
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(wat_module(body, prelude=prelude or WAT_PRELUDE, imports=imports))
    started = time.monotonic()
    error = run_hostile(path, runtime)
    assert isinstance(error, expected), f"{type(error).__name__}: {error}"
    assert str(error).startswith("step 0 (hostile): ")
    assert time.monotonic() - started < 20
    # the process lives, and the next call, on a good module, is correct
    good = Pipeline.load([wasm_step(wasm_file(IDENTITY))], runtime=runtime)
    assert good.decode(b"next").tobytes() == b"next"


def test_time_limit_and_start_functions(monkeypatch, wasm_file) -> None:
    """The deadline is set before instantiation: a start function that returns is fine under
    a time limit (it used to be interrupted at once), one that does not is stopped."""
    monkeypatch.setenv("CHONKLE_WASM_TIMEOUT", "2")
    good = wasm_file('(global $g (mut i32) (i32.const 0)) (func $s (global.set $g '
                     "(i32.const 1))) (start $s)" + IDENTITY)
    assert chonkle.decode(b"abc", [wasm_step(good)], runtime="wasmtime").tobytes() == b"abc"


def test_ctrl_c_stops_a_call_that_runs_forever(tmp_path: Path) -> None:
    """Ctrl-C during a Wasm call stops it at once, not at the time limit (30 s)."""
    import signal

    path = tmp_path / "loop.wasm"
    path.write_bytes(wat_module(HOSTILE["loop_in_decode"][0]))
    code = ("import chonkle, sys\n"
            "print('ready', flush=True)\n"
            "try:\n"
            f"    chonkle.decode(b'x', [{{'name': 'l', 'type': 'wasm', 'uri': {path.as_uri()!r}}}],"
            " runtime='wasmtime')\n"
            "except KeyboardInterrupt:\n"
            "    print('interrupted', flush=True)\n"
            "print(chonkle.decode(b'ok', [{'name': 'tiff_predictor_2', 'type': 'wasm', "
            "'configuration': {'bytes_per_sample': 1, 'width': 2}}]).tobytes())\n")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "ready\n"
        time.sleep(1.5)  # compiled and looping
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert time.monotonic() - started < 5, "Ctrl-C waited for the time limit"
    assert out.splitlines() == ["interrupted", "b'o\\xda'"], err


def test_wasi_cannot_reach_the_terminal_or_block(runtime: str, tmp_path: Path) -> None:
    """stdout and stderr writes go nowhere, and reading stdin (a pipe that never closes)
    returns at once; checked in a fresh process whose real descriptors are watched."""
    path = tmp_path / "talker.wasm"
    body = codec(
        "(i32.store (i32.const 16) (i32.const 64)) (i32.store (i32.const 20) (i32.const 6)) "
        "(drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24))) "
        "(drop (call $fd_write (i32.const 2) (i32.const 16) (i32.const 1) (i32.const 24))) "
        "(drop (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 24))) "
        "(i64.const 0)") + '(data (i32.const 64) "LEAK!\\n")'
    path.write_bytes(wat_module(body, imports=wasi("fd_write", 4) + wasi("fd_read", 4)))
    code = ("import chonkle, sys\n"
            "try:\n"
            f"    chonkle.decode(b'x', [{{'name': 't', 'type': 'wasm', 'uri': {path.as_uri()!r}}}],"
            f" runtime={runtime!r})\n"
            "except chonkle.CodecError:\n"
            "    print('clean failure')\n")
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(timeout=60)  # stdin stays open until then
    finally:
        process.kill()
    assert out == "clean failure\n" and "LEAK" not in err, err


def resident() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize(("name", "expected"), [("grow_until_refused", LimitExceeded),
                                                ("table_grow_bomb", CodecError)])
def test_memory_comes_back_after_a_bomb(runtime: str, monkeypatch, tmp_path: Path, name: str,
                                        expected: type[ChonkleError]) -> None:
    """A module touching every page up to the limit, or growing a table by 10^8 elements
    (0.8 GB of host memory a call, kept for good, before tables were capped): the process
    holds no more memory after three of them than before."""
    monkeypatch.setenv("CHONKLE_MAX_MEMORY", "256MiB")
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(wat_module(HOSTILE[name][0]))
    gc.collect()
    before = resident()
    for _ in range(3):
        error = run_hostile(path, runtime)
        assert isinstance(error, expected), error
        del error
        gc.collect()
    assert resident() - before < 96 * MiB


def test_wasmer_panics_are_traps(runtime: str, tmp_path: Path, wasm_file) -> None:
    """wasmer's WASI panics on calls it does not implement (a PanicException, which escapes
    ``except Exception``): chonkle reports a WasmTrap, and the next call works."""
    if runtime != "wasmer":
        pytest.skip("only wasmer panics (wasmtime reports the same call as an error result)")
    path = tmp_path / "panics.wasm"
    path.write_bytes(wat_module(codec("(drop (call $sock_shutdown (i32.const 3) (i32.const 0))) "
                                      "(i64.const 0)"), imports=wasi("sock_shutdown", 2)))
    error = run_hostile(path, "wasmer")
    assert isinstance(error, WasmTrap) and "wasmer panicked" in str(error)
    good = Pipeline.load([wasm_step(wasm_file(IDENTITY))], runtime="wasmer")
    assert good.decode(b"next").tobytes() == b"next"


def test_a_text_file_is_refused_without_quoting_it(runtime: str, tmp_path: Path) -> None:
    path = tmp_path / "passwd.wasm"
    path.write_text("root:x:0:0:secret-token:/root:/bin/bash\n(module)\n")
    error = run_hostile(path, runtime)
    assert isinstance(error, WasmAbiError) and "not a Wasm binary" in str(error)
    assert "secret" not in str(error) and "secret" not in repr(error.__cause__)


@pytest.mark.parametrize(("section", "message"), [
    (b"{not json", "is not JSON"),
    (b'{"type": "object", "properties": {"x": {"pattern": "(a+)+$"}}}',
     "unsupported keywords ['pattern']"),
    (b'{"type": "object"}' + b" " * (70 * 1024), "over 65536 bytes"),
])
def test_a_bad_configuration_schema_is_refused(runtime: str, tmp_path: Path, section: bytes,
                                               message: str) -> None:
    path = tmp_path / "schema.wasm"
    path.write_bytes(append_custom_section(wat_module(IDENTITY), "chonkle.config", section))
    error = run_hostile(path, runtime)
    assert isinstance(error, WasmAbiError) and message in str(error)


def test_nothing_is_left_on_disk(runtime: str, limits, tmp_path: Path,
                                 isolated_cache: Path) -> None:
    before = {p for p in isolated_cache.rglob("*") if p.is_file()}
    for name in ("grow_then_trap", "output_over_the_limit", "proc_exit", "unreachable"):
        path = tmp_path / f"{name}.wasm"
        body, imports, prelude, _, _ = HOSTILE[name]
        path.write_bytes(wat_module(body, prelude=prelude or WAT_PRELUDE, imports=imports))
        run_hostile(path, runtime)
    after = {p for p in isolated_cache.rglob("*") if p.is_file()}
    assert not [p for p in after - before if not p.name.endswith(".bin")], after - before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{n}.wasm" for n in ("grow_then_trap", "output_over_the_limit", "proc_exit",
                              "unreachable"))


# ---- hostile pipelines ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../../../tmp/x", "a/b", ".hidden", "-flag", "x y", "é",
                                  "zstd\x00", ""])
def test_step_names_cannot_be_paths(name: str, monkeypatch) -> None:
    monkeypatch.setenv("CHONKLE_REQUIRE_DIGEST", "1")
    with pytest.raises(SpecError, match='"name"'):
        Pipeline.load([{"name": name, "type": "wasm"}])


def test_pickle_is_refused_unless_allowed(monkeypatch, tmp_path: Path) -> None:
    import pickle

    class Boom:
        def __reduce__(self):
            return (Path(tmp_path / "pwned").touch, ())

    chunk = pickle.dumps([Boom()])
    steps = [{"name": "pickle", "type": "numcodecs"}]
    for call in (lambda: chonkle.decode(chunk, steps), lambda: Pipeline.load(steps),
                 lambda: chonkle.decode(chunk, {"codecs": steps})):
        with pytest.raises(SpecError, match="unpickles chunks, which runs arbitrary Python"):
            call()
    assert not (tmp_path / "pwned").exists()
    assert Pipeline.load(steps, allow_codecs=["pickle"]).codecs[0].codec_id == "pickle"
    monkeypatch.setenv("CHONKLE_ALLOW_CODECS", "pickle")
    assert Pipeline.load(steps).codecs[0].codec_id == "pickle"


def test_codecs_from_other_packages_need_to_be_allowed() -> None:
    import imagecodecs.numcodecs

    imagecodecs.numcodecs.register_codecs()
    steps = [{"name": "imagecodecs_lzw", "type": "numcodecs"}]
    with pytest.raises(SpecError, match="not one of the data codecs"):
        Pipeline.load(steps)
    assert Pipeline.load(steps, allow_codecs=["imagecodecs_lzw"]).codecs[0]


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


NESTED = nested(40)


@pytest.mark.parametrize("document", [
    {"codecs": [{"name": "zlib", "type": "numcodecs", "configuration": {"x": NESTED}}]},
    [{"name": "zlib", "type": "numcodecs"}] * 300,
    {"codecs": [{"name": "zlib", "type": "numcodecs", "configuration": {
        f"k{i}": "x" * 100 for i in range(20_000)}}]},
])
def test_oversized_pipelines_are_refused(document) -> None:
    for call in (lambda: Pipeline.load(document), lambda: chonkle.decode(b"", document)):
        with pytest.raises(SpecError, match=r"nested deeper|steps; chonkle takes|over|more than"):
            call()


def test_deeply_nested_json_files_are_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SpecError, match="nested deeper"):
        Pipeline.load(path)
    path.write_text('{"codecs": [' + " " * (2 * MiB) + "]}")
    with pytest.raises(SpecError, match="over 1048576 bytes"):
        Pipeline.load(path)


def without_custom_section(wasm: bytes, name: str) -> bytes:
    """`wasm` with its custom section `name` removed (so nothing checks the configuration)."""
    from chonkle.engine.wasm_binary import CUSTOM, _leb128, _Reader, sections

    out = bytearray(wasm[:8])
    for section in sections(wasm):
        if section.id == CUSTOM and _Reader(wasm, section.start, section.end).name() == name:
            continue
        payload = section.payload(wasm)
        out += bytes([section.id]) + _leb128(len(payload)) + payload
    return bytes(out)


@pytest.mark.parametrize("width", [2**64 + 5, 2**63, -(2**63) - 1, 10**30])
def test_configuration_integers_never_wrap_in_c(runtime: str, tmp_path: Path,
                                                width: int) -> None:
    """With its declared schema removed, the codec's own C parser still refuses huge numbers
    (2**64 + 5 used to read as 5)."""
    from chonkle.sources import shipped_module

    path = tmp_path / "predictor.wasm"
    path.write_bytes(without_custom_section(shipped_module("tiff_predictor_2"),
                                            "chonkle.config"))
    step = {"name": "tiff_predictor_2", "type": "wasm", "uri": path.as_uri(),
            "configuration": {"bytes_per_sample": 1, "width": width}}
    with pytest.raises(CodecError, match='"width" must be an integer from 1 to'):
        Pipeline.load([step], runtime=runtime).decode(b"\1" * 5)


def test_a_modules_message_reaches_the_terminal_without_control_characters(
        runtime: str, tmp_path: Path) -> None:
    body = ('(func (export "last_error") (result i64) (i64.const 0x0000002000000010))'
            '(data (i32.const 32) "red\\1b[31m\\0a\\07alert")' + codec("(i64.const 0)"))
    path = tmp_path / "noisy.wasm"
    path.write_bytes(wat_module(body))
    error = run_hostile(path, runtime)
    assert isinstance(error, CodecError) and "red [31m  alert" in str(error)
    assert not any(ord(c) < 32 for c in str(error))


@pytest.mark.parametrize("value", ["-0", "1e-400", "-5", "soon"])
def test_the_time_limit_is_off_only_for_a_plain_zero(monkeypatch, value: str) -> None:
    from chonkle import settings
    from chonkle.errors import SettingError

    monkeypatch.setenv("CHONKLE_WASM_TIMEOUT", value)
    with pytest.raises(SettingError, match="CHONKLE_WASM_TIMEOUT"):
        settings.wasm_timeout()
    monkeypatch.setenv("CHONKLE_WASM_TIMEOUT", "0")
    assert settings.wasm_timeout() is None


def test_a_misspelled_setting_is_warned_about() -> None:
    code = "import warnings; warnings.simplefilter('error'); import chonkle"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "CHONKLE_REQUIRE_DIGESTS": "1"})
    assert result.returncode != 0 and "CHONKLE_REQUIRE_DIGESTS" in result.stderr
