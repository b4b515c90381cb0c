"""Fuzz targets: the pipeline parser and every shipped decoder, as users reach them.

Each target takes bytes and must end in a result or a ChonkleError; anything else (another
exception, a crash, a hang, memory running out) is a finding. ``run.py`` drives them with
atheris (coverage-guided for chonkle's Python; inside Wasm, libFuzzer's mutations without
coverage); ``tests/test_fuzz_corpus.py`` replays the kept corpus in every test run.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"

# The shipped decoders, each with a configuration that accepts many input lengths.
DECODERS: dict[str, dict] = {
    "tiff_predictor_2": {"bytes_per_sample": 2, "width": 4},
    "tiff_predictor_3": {"bytes_per_sample": 4, "width": 2},
    "shuffle": {"elementsize": 4},
    "delta": {"dtype": "<i2"},
    "packbits": {},
    "lzw": {},
    "zlib": {},
    "zstd": {},
}


def spec_target(data: bytes) -> None:
    """A pipeline file's bytes, parsed and built (numcodecs steps and shipped Wasm codecs)."""
    from chonkle import ChonkleError, Pipeline
    from chonkle.spec import parse_pipeline_text

    try:
        document = parse_pipeline_text(data, "fuzzed pipeline")
        Pipeline.load(document, runtime="wasmtime")
    except ChonkleError:
        pass


@functools.cache
def _decoder(name: str):
    from chonkle import Pipeline

    return Pipeline.load([{"name": name, "type": "wasm", "configuration": DECODERS[name]}],
                         runtime="wasmtime")


def decoder_target(name: str) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        from chonkle import ChonkleError

        with contextlib.suppress(ChonkleError):
            _decoder(name).decode(data)

    return target


TARGETS: dict[str, Callable[[bytes], None]] = {
    "spec": spec_target,
    **{f"decode_{name}": decoder_target(name) for name in DECODERS},
}


def seeds() -> dict[str, list[bytes]]:
    """Valid inputs for every target, made by the reference encoders: the starting corpus."""
    import numcodecs
    import numpy as np
    from imagecodecs import lzw_encode, packbits_encode

    rng = np.random.default_rng(7)
    raster = (np.cumsum(rng.integers(-3, 4, 512)) + 1000).astype("<u2").tobytes()
    pipelines = [
        {"codecs": [{"name": "bytes", "type": "numcodecs",
                     "configuration": {"data_type": "uint16", "shape": [16, 16]}},
                    {"name": "tiff_predictor_2", "type": "wasm",
                     "configuration": {"bytes_per_sample": 2, "width": 16}},
                    {"name": "zlib", "type": "numcodecs", "configuration": {"level": 9}}]},
        [{"name": "zstd", "type": "wasm"}, {"name": "numcodecs.crc32", "type": "numcodecs"}],
        [{"name": "delta", "type": "wasm", "configuration": {"dtype": "<i4", "astype": "<i2"}}],
    ]
    return {
        "spec": [json.dumps(p).encode() for p in pipelines],
        "decode_tiff_predictor_2": [raster[:64], raster],
        "decode_tiff_predictor_3": [np.linspace(0, 1, 64, dtype="<f4").tobytes()],
        "decode_shuffle": [numcodecs.Shuffle(4).encode(raster)],
        "decode_delta": [numcodecs.Delta("<i2").encode(np.frombuffer(raster, "<i2")).tobytes()],
        "decode_packbits": [packbits_encode(raster), packbits_encode(b"\0" * 300)],
        "decode_lzw": [lzw_encode(raster), lzw_encode(b"abc" * 200)],
        "decode_zlib": [numcodecs.Zlib(1).encode(raster), numcodecs.Zlib(9).encode(b"x" * 999)],
        "decode_zstd": [numcodecs.Zstd(1).encode(raster), numcodecs.Zstd(19).encode(raster),
                        numcodecs.Zstd(3).encode(b"")],
    }
