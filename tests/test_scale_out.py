"""Many chunks at once: decode_many/encode_many on threads or processes, and pipelines and
codecs that pickle (specs and digests travel; modules are compiled where they are used)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import numcodecs
import numpy as np
import pytest
from conftest import run_on_a_terminal, smooth_raster
from numcodecs.abc import Codec

import chonkle
from chonkle import ChonkleError, CodecError, Pipeline, SpecError
from chonkle.engine.wasm_codec import WasmCodec
from chonkle.parallel import uses_threads

SHAPE = (64, 48)


def cog_steps(shape: tuple[int, int] = SHAPE) -> list[dict]:
    return [{"name": "bytes", "type": "numcodecs",
             "configuration": {"data_type": "uint16", "shape": list(shape)}},
            {"name": "tiff_predictor_2", "type": "wasm",
             "configuration": {"bytes_per_sample": 2, "width": shape[1]}},
            {"name": "zlib", "type": "wasm", "configuration": {"level": 6}}]


def tiles(count: int) -> list[np.ndarray]:
    return [smooth_raster(SHAPE, seed=i) for i in range(count)]


@pytest.mark.parametrize("workers", [1, 2, None])
def test_decode_many_keeps_the_input_order(runtime: str, workers: int | None) -> None:
    pipeline = Pipeline.load(cog_steps(), runtime=runtime)
    arrays = tiles(24)
    chunks = pipeline.encode_many(arrays, workers=workers)
    assert chunks == [pipeline.encode(a) for a in arrays]
    decoded = pipeline.decode_many(chunks, workers=workers)
    assert len(decoded) == len(arrays)
    for got, want in zip(decoded, arrays, strict=True):
        np.testing.assert_array_equal(got, want)
    assert pipeline.decode_many([], workers=workers) == []


@pytest.mark.parametrize("dtype", ["uint16", "bool", "complex64"])
@pytest.mark.parametrize("shape", [[0, 4], [3, 5]])
def test_decode_many_of_empty_and_unusual_chunks(runtime: str, dtype: str,
                                                 shape: list[int]) -> None:
    """Through the workers' shared files too (wasmer): arrays of no bytes, and dtypes a
    memoryview cannot describe as bytes directly."""
    pipeline = Pipeline.load([
        {"name": "bytes", "type": "numcodecs",
         "configuration": {"data_type": dtype, "shape": shape}},
        {"name": "zlib", "type": "wasm", "configuration": {"level": 1}}], runtime=runtime)
    arrays = [np.full(shape, i % 2, dtype) for i in range(6)]
    decoded = pipeline.decode_many(pipeline.encode_many(arrays, workers=2), workers=2)
    for got, want in zip(decoded, arrays, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_threads_or_processes_by_the_engines_capability(runtime: str) -> None:
    """Chosen by what the engine declares (parallel_threads), not by its name."""
    from chonkle.engine.registry import get_runtime

    engine = get_runtime(runtime)
    assert uses_threads(Pipeline.load(cog_steps(), runtime=runtime)) == bool(
        getattr(engine, "parallel_threads", False))
    assert uses_threads(Pipeline.load([cog_steps()[0]]))  # native steps only: threads


@pytest.mark.parametrize("workers", [1, 2])
def test_the_first_failure_names_its_chunk(runtime: str, workers: int) -> None:
    pipeline = Pipeline.load(cog_steps(), runtime=runtime)
    chunks = [pipeline.encode(a) for a in tiles(12)]
    chunks[7] = chunks[7][:40]  # truncated
    with pytest.raises(CodecError) as info:
        pipeline.decode_many(chunks, workers=workers)
    assert info.value.chunk == 7
    assert str(info.value).startswith("chunk 7, step 2 (zlib): decode failed")
    decoded = pipeline.decode_many(chunks[:7], workers=workers)  # and the next call works
    assert len(decoded) == 7


class SlowCounter(Codec):
    """A native step that counts its calls and takes a while (so work can be cancelled)."""

    codec_id = "test_slow_counter"
    calls = 0
    lock = threading.Lock()

    def encode(self, buf):
        return buf

    def decode(self, buf, out=None):
        with SlowCounter.lock:
            SlowCounter.calls += 1
        if bytes(buf[:4]) == b"FAIL":
            raise CodecError("this chunk is bad")
        time.sleep(0.02)
        return buf


def test_remaining_work_is_cancelled_after_a_failure() -> None:
    SlowCounter.calls = 0
    pipeline = Pipeline([SlowCounter()])
    chunks = [b"FAIL"] + [b"fine"] * 400
    started = time.monotonic()
    with pytest.raises(CodecError, match="chunk 0, step 0 \\(test_slow_counter\\)"):
        pipeline.decode_many(chunks, workers=2)
    assert SlowCounter.calls < 150, "work went on after the failure"
    assert time.monotonic() - started < 4


def test_processes_stop_at_the_first_failure_too(runtime: str) -> None:
    if runtime != "wasmer":
        pytest.skip("wasmer is the engine that uses worker processes")
    pipeline = Pipeline.load(cog_steps(), runtime=runtime)
    good = pipeline.encode(tiles(1)[0])
    chunks = [b"junk"] + [good] * 200
    with pytest.raises(CodecError) as info:
        pipeline.decode_many(chunks, workers=2)
    assert info.value.chunk == 0


@pytest.mark.parametrize("workers", [0, -1, 1.5, "2", True])
def test_workers_must_be_a_positive_integer(workers: object) -> None:
    with pytest.raises(SpecError, match="workers must be a positive integer or None"):
        Pipeline.load(cog_steps()).decode_many([b""], workers=workers)  # type: ignore[arg-type]


def test_progress_is_a_flag() -> None:
    with pytest.raises(SpecError, match="progress must be True, False or None, not 'yes'"):
        Pipeline.load(cog_steps()).decode_many([b""], progress="yes")  # type: ignore[arg-type]


def test_a_process_pool_starts_from_a_script_without_a_main_guard(tmp_path: Path) -> None:
    """Worker processes do not re-run the user's script (which has no __main__ guard)."""
    script = tmp_path / "script.py"
    script.write_text(
        "import numpy as np, chonkle\n"
        "print('started', flush=True)\n"
        f"steps = {cog_steps()!r}\n"
        "p = chonkle.Pipeline.load(steps, runtime='wasmer')\n"
        "a = np.arange(64 * 48, dtype='uint16').reshape(64, 48)\n"
        "out = p.decode_many([p.encode(a)] * 8, workers=2)\n"
        "print(all((o == a).all() for o in out))\n")
    if "wasmer" not in chonkle.installed_runtimes() or sys.version_info >= (3, 11):
        pytest.skip("wasmer (the engine that uses processes) loads on CPython <= 3.10")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=180)
    assert result.stdout.split() == ["started", "True"], result.stderr


# ---- pickling -------------------------------------------------------------------------------

def test_pipelines_and_codecs_pickle(runtime: str) -> None:
    pipeline = Pipeline.load(cog_steps(), runtime=runtime)
    arrays = tiles(2)
    chunk = pipeline.encode(arrays[0])
    blob = pickle.dumps(pipeline)
    assert len(blob) < 4096  # specs and digests, not modules or compiled code
    restored = pickle.loads(blob)
    assert restored.labels == pipeline.labels
    np.testing.assert_array_equal(restored.decode(chunk), arrays[0])
    codec = pickle.loads(pickle.dumps(pipeline.codecs[1]))
    assert isinstance(codec, WasmCodec) and codec.get_config() == pipeline.codecs[1].get_config()


def test_a_wasm_codec_is_a_numcodecs_codec() -> None:
    config = {"id": "chonkle.wasm", "name": "tiff_predictor_2",
              "configuration": {"bytes_per_sample": 2, "width": 48}}
    codec = numcodecs.get_codec(config)
    assert isinstance(codec, WasmCodec) and codec.get_config() == config
    assert numcodecs.get_codec(codec.get_config()) == codec
    data = smooth_raster(SHAPE).tobytes()
    assert codec.decode(codec.encode(data)).tobytes() == data


def test_numcodecs_finds_the_wasm_codec_without_importing_chonkle() -> None:
    code = ("import sys, numcodecs\n"
            "c = numcodecs.get_codec({'id': 'chonkle.wasm', 'name': 'zstd'})\n"
            "print(type(c).__module__, 'wasmtime' not in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.split() == ["chonkle.engine.wasm_codec", "True"], result.stderr


def test_the_engine_is_chosen_where_the_codec_is_used(tmp_path: Path) -> None:
    """A codec pickled without runtime= follows CHONKLE_RUNTIME of the process using it."""
    if "wasmer" not in chonkle.installed_runtimes() or sys.version_info >= (3, 11):
        pytest.skip("needs both engines (CPython <= 3.10)")
    codec = numcodecs.get_codec({"id": "chonkle.wasm", "name": "zstd"})
    (tmp_path / "codec.pickle").write_bytes(pickle.dumps(codec))
    data = numcodecs.Zstd(3).encode(b"hello" * 100)
    (tmp_path / "chunk").write_bytes(data)
    code = ("import pickle, sys\n"
            "c = pickle.load(open(sys.argv[1], 'rb'))\n"
            "out = c.decode(open(sys.argv[2], 'rb').read()).tobytes()\n"
            "print(c.runtime, out == b'hello' * 100)\n")
    for engine in ("wasmer", "wasmtime"):
        result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "codec.pickle"),
                                 str(tmp_path / "chunk")], capture_output=True, text=True,
                                timeout=120, env={**os.environ, "CHONKLE_RUNTIME": engine})
        assert result.stdout.split() == [engine, "True"], result.stderr


def test_a_wrong_digest_is_refused_when_the_codec_is_made(tmp_path: Path) -> None:
    with pytest.raises(chonkle.SourceError, match="refusing to run it"):
        numcodecs.get_codec({"id": "chonkle.wasm", "name": "zstd", "sha256": "0" * 64})


def test_errors_pickle_with_their_step_and_chunk() -> None:
    error = CodecError("decode failed", step="step 2 (zlib)", chunk=3)
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is CodecError and str(restored) == str(error)
    assert isinstance(restored, ChonkleError) and restored.chunk == 3


def test_decode_many_shows_progress_on_a_terminal_only() -> None:
    code = ("import numpy as np, chonkle\n"
            f"p = chonkle.Pipeline.load({cog_steps()!r})\n"
            "c = p.encode(np.zeros((64, 48), 'uint16'))\n"
            "p.decode_many([c] * 200, workers=2)\n")
    piped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120)
    assert piped.returncode == 0 and piped.stderr == ""
    status, shown = run_on_a_terminal([sys.executable, "-c", code])
    assert status == 0
    assert b"decode chunks:" in shown and b"/200 [" in shown


def test_pools_do_not_multiply(runtime: str) -> None:
    """One pool per process, grown when a call asks for more workers, not one per size."""
    from chonkle import parallel, processes

    pipeline = Pipeline.load(cog_steps(), runtime=runtime)
    chunk = pipeline.encode(tiles(1)[0])
    for workers in (2, 3, 4, 2, 3):
        assert len(pipeline.decode_many([chunk] * workers, workers=workers)) == workers
    # A replaced pool's threads finish on their own (shutdown without waiting): give them time.
    deadline = time.monotonic() + 10
    while True:
        named = [t for t in threading.enumerate() if t.name.startswith("chonkle_")]
        if len(named) <= max(4, parallel.available_cores()) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(named) <= max(4, parallel.available_cores())
    if not uses_threads(pipeline):
        assert processes.POOL.size <= max(4, os.cpu_count() or 1)


def test_a_call_survives_another_growing_the_pool(runtime: str) -> None:
    """A second call asking for more workers replaces the pool while a first call is using
    it: the first call's batches, queued on the old pool or still to be handed out, finish."""
    from chonkle import parallel, processes

    pipeline = Pipeline.load(cog_steps(), runtime=runtime)
    chunks = [pipeline.encode(a) for a in tiles(8)] * 400
    pool = parallel.THREADS if uses_threads(pipeline) else processes.POOL
    outcome: dict[str, object] = {}

    def first() -> None:
        try:
            outcome["arrays"] = pipeline.decode_many(chunks, workers=2)
        except BaseException as exc:  # reported by the assertion below
            outcome["error"] = exc

    thread = threading.Thread(target=first)
    thread.start()
    deadline = time.monotonic() + 60
    while not pool._calls and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert pool._calls, "the first call was over before the pool could grow"
    assert len(pipeline.decode_many(chunks[:3], workers=max(pool.size, 2) + 1)) == 3
    thread.join(120)
    assert "error" not in outcome, repr(outcome.get("error"))
    decoded = outcome["arrays"]
    assert isinstance(decoded, list) and len(decoded) == len(chunks)
    for got, want in zip(decoded, [pipeline.decode(c) for c in chunks[:8]] * 400, strict=True):
        np.testing.assert_array_equal(got, want)
    assert not pool._calls  # the replaced pool was let go once its last call ended


def test_ctrl_c_stops_the_threads_at_once(tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text(
        "import time, chonkle\n"
        "from numcodecs.abc import Codec\n"
        "class Slow(Codec):\n"
        "    codec_id = 'slow'\n"
        "    def encode(self, buf): return buf\n"
        "    def decode(self, buf, out=None):\n"
        "        time.sleep(0.01); return buf\n"
        "p = chonkle.Pipeline([Slow()])\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    p.decode_many([b'x'] * 3000, workers=2)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n")
    import signal

    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "ready\n"
        time.sleep(0.5)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    assert out == "interrupted\n"
    assert time.monotonic() - started < 3, "the threads went on decoding after Ctrl-C"


def test_ctrl_c_on_the_terminal_does_not_break_the_worker_pool(tmp_path: Path) -> None:
    """SIGINT to the whole process group (Ctrl-C on a terminal) reaches idle workers too:
    they ignore it, so the next call still has its pool."""
    if "wasmer" not in chonkle.installed_runtimes() or sys.version_info >= (3, 11):
        pytest.skip("wasmer (the engine that uses processes) loads on CPython <= 3.10")
    script = tmp_path / "group.py"
    script.write_text(
        "import os, signal, numpy as np, chonkle\n"
        f"p = chonkle.Pipeline.load({cog_steps()!r}, runtime='wasmer')\n"
        "a = np.arange(64 * 48, dtype='uint16').reshape(64, 48)\n"
        "c = p.encode(a)\n"
        "p.decode_many([c] * 8, workers=2)\n"
        "try:\n"
        "    os.killpg(os.getpgid(0), signal.SIGINT)\n"
        "    import time; time.sleep(1)\n"
        "except KeyboardInterrupt:\n"
        "    pass\n"
        "out = p.decode_many([c] * 8, workers=2)\n"
        "print(all((o == a).all() for o in out))\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=180, start_new_session=True)
    assert result.stdout.strip() == "True", result.stderr
    assert "Traceback" not in result.stderr


def test_without_room_for_shared_files_chunks_travel_pickled(monkeypatch, runtime) -> None:
    from chonkle import processes

    monkeypatch.setattr(processes, "_shared_folder", lambda needed: None)
    pipeline = Pipeline.load(cog_steps(), runtime=runtime)
    arrays = tiles(6)
    decoded = processes.run(pipeline, "decode", [pipeline.encode(a) for a in arrays], 2,
                            [(0, 3), (3, 6)], lambda submit, in_flight: [
                                *submit(0, 3).result(), *submit(3, 6).result()])
    for got, want in zip(decoded, arrays, strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_pipeline_that_cannot_travel_is_a_spec_error() -> None:
    if "wasmer" not in chonkle.installed_runtimes() or sys.version_info >= (3, 11):
        pytest.skip("wasmer (the engine that uses processes) loads on CPython <= 3.10")

    class Local(Codec):  # defined in a function: pickle cannot name it
        codec_id = "local"

        def encode(self, buf):
            return buf

        def decode(self, buf, out=None):
            return buf

    steps = cog_steps()
    pipeline = Pipeline.load(steps, runtime="wasmer")
    mixed = Pipeline([*pipeline.codecs, Local()])
    with pytest.raises(SpecError, match="cannot be sent to worker processes"):
        mixed.decode_many([b"x", b"y"], workers=2)


def test_a_worker_batch_reads_and_writes_its_files(monkeypatch) -> None:
    """The worker's side of a shared-file batch, run here: chunks read into the reused buffer
    (or, past its size, a buffer of the batch's own), arrays written at their offsets, and a
    short input file an error."""
    from chonkle import processes

    monkeypatch.setattr(processes, "SCRATCH_KEPT", 1)  # every batch: a buffer of its own
    monkeypatch.setattr(processes, "_scratch", np.empty(0, np.uint8))
    monkeypatch.setattr(processes, "_pipelines", {})
    pipeline = Pipeline.load(cog_steps())
    blob = pickle.dumps(pipeline)
    arrays = tiles(5)
    chunks = [pipeline.encode(a) for a in arrays]
    with processes._SharedFiles.for_items(chunks, processes.decoded_layout(pipeline)) as shared:
        first, second = shared.task(0, 2), shared.task(2, 5)
        processes._batch_shared("key", blob, first)
        monkeypatch.setattr(processes, "SCRATCH_KEPT", 2**30)  # now kept, then reused
        processes._batch_shared("key", blob, second)
        processes._batch_shared("key", blob, second)
        assert processes._scratch.size == sum(len(c) for c in chunks[2:])
        for got, want in zip(shared.results(), arrays, strict=True):
            np.testing.assert_array_equal(got, want)
        Path(second[0]).write_bytes(b"short")
        with pytest.raises(CodecError, match="input file ended after 5 of"):
            processes._batch_shared("key", blob, second)
