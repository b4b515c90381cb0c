"""Host-side behaviour of the contract beyond plain calls: WASI, reactors, memory growth."""

from __future__ import annotations

import numpy as np
from conftest import IDENTITY, wasm_step

from chonkle import Pipeline, WasmAbiError

# A reactor that imports WASI: decode fails unless _initialize ran exactly once.
REACTOR = """
  (global $initialized (mut i32) (i32.const 0))
  (func (export "_initialize")
    (global.set $initialized (i32.add (global.get $initialized) (i32.const 1))))
  (func $copy (param $in i32) (param $len i32) (param $cfg i32) (param $cfg_len i32) (result i64)
    (local $out i32)
    (if (i32.ne (global.get $initialized) (i32.const 1)) (then (return (i64.const 0))))
    (local.set $out (call $alloc (i32.add (local.get $len) (i32.const 1))))
    (memory.copy (local.get $out) (local.get $in) (local.get $len))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
  (export "decode" (func $copy))
"""
WASI_IMPORTS = """
  (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func (param i32 i32) (result i32)))
"""


def test_wasi_reactor_is_initialized_once_per_instance(runtime: str, wasm_file) -> None:
    pipeline = Pipeline.load({"codecs": [wasm_step(wasm_file(REACTOR, imports=WASI_IMPORTS))]},
                             runtime=runtime)
    for _ in range(3):
        assert pipeline.decode(b"hello").tobytes() == b"hello"


# Echoes the configuration it was given, after growing memory by 40 pages (2.5 MiB), so
# the output lies beyond the memory the host saw before the call.
ECHO_CONFIG_AFTER_GROW = """
  (func (export "decode") (param $in i32) (param $len i32) (param $cfg i32) (param $cfg_len i32)
        (result i64)
    (local $out i32)
    (local.set $out (i32.shl (memory.grow (i32.const 40)) (i32.const 16)))
    (memory.copy (local.get $out) (local.get $cfg) (local.get $cfg_len))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
            (i64.extend_i32_u (local.get $cfg_len))))
"""


def test_output_in_memory_grown_during_the_call(runtime: str, wasm_file) -> None:
    config = {"width": 1024, "label": "ünïcode", "nested": {"a": [1, 2.5, None]}}
    pipeline = Pipeline.load(
        {"codecs": [wasm_step(wasm_file(ECHO_CONFIG_AFTER_GROW), **config)]}, runtime=runtime)
    for _ in range(3):
        echoed = pipeline.decode(b"x").tobytes()
        assert echoed == '{"width":1024,"label":"ünïcode","nested":{"a":[1,2.5,null]}}'.encode()


def test_large_input_grows_memory_on_alloc(runtime: str, wasm_file) -> None:
    pipeline = Pipeline.load({"codecs": [wasm_step(wasm_file(IDENTITY))]}, runtime=runtime)
    data = np.random.default_rng(1).integers(0, 255, 5 * 2**20, dtype=np.uint8)
    np.testing.assert_array_equal(pipeline.decode(data), data)


# Writes "LEAK!\n" to fd 1 and fd 2 through WASI, then behaves as the identity codec.
PRINTING = IDENTITY.replace("(local $out i32)", """(local $out i32)
    (i32.store (i32.const 16) (i32.const 32)) (i32.store (i32.const 20) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
    (drop (call $fd_write (i32.const 2) (i32.const 16) (i32.const 1) (i32.const 24)))""") + (
    '(data (i32.const 32) "LEAK!\\n")')
FD_WRITE = ('(import "wasi_snapshot_preview1" "fd_write" '
            "(func $fd_write (param i32 i32 i32 i32) (result i32)))")


def test_codec_cannot_write_to_the_terminal(runtime: str, wasm_file, capfd) -> None:
    pipeline = Pipeline.load({"codecs": [wasm_step(wasm_file(PRINTING, imports=FD_WRITE))]},
                             runtime=runtime)
    assert pipeline.decode(b"abc").tobytes() == b"abc"
    captured = capfd.readouterr()  # the real file descriptors, not sys.stdout
    assert "LEAK" not in captured.out and "LEAK" not in captured.err


def test_errors_can_be_dropped_on_another_thread(runtime: str, wasm_file) -> None:
    """An error's traceback holds the frames of the call; nothing in them may be an object
    bound to the calling thread (wasmer's memory buffers panic when dropped elsewhere)."""
    import gc
    import sys
    import threading

    wild = '(func (export "decode") (param i32 i32 i32 i32) (result i64) (i64.const -1))'
    pipeline = Pipeline.load({"codecs": [wasm_step(wasm_file(wild))]}, runtime=runtime)
    caught: list[BaseException] = []
    try:
        pipeline.decode(b"abc")
    except WasmAbiError as exc:
        caught.append(exc)
    assert caught
    unraisable: list[object] = []
    previous, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        def drop() -> None:
            try:
                caught.clear()
                gc.collect()
            except BaseException as exc:  # wasmer's panic is a BaseException
                unraisable.append(exc)

        thread = threading.Thread(target=drop)
        thread.start()
        thread.join()
    finally:
        sys.unraisablehook = previous
    assert unraisable == []
