"""chonkle: decode and encode array chunks with pipelines of numcodecs and Wasm codecs.

Importing chonkle imports no Wasm engine; one is loaded the first time a
pipeline with a Wasm step is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numcodecs.abc import Codec

from chonkle.engine.registry import get_runtime, installed_runtimes, runtime_statuses
from chonkle.errors import (
    ChonkleError,
    CodecError,
    RuntimeUnavailable,
    SourceError,
    SpecError,
    WasmAbiError,
    WasmTrap,
)
from chonkle.pipeline import Pipeline, PipelineSource, as_pipeline

__version__ = "0.1.0"

Codecs = Pipeline | Sequence[Codec] | PipelineSource


def get_codecs(pipeline: PipelineSource, *, runtime: str | None = None) -> list[Codec]:
    """The pipeline's codecs in file order, Wasm modules fetched and compiled.

    ``pipeline`` is a path to a pipeline JSON file or the parsed mapping.
    """
    return Pipeline.load(pipeline, runtime=runtime).codecs


def decode(data: Any, codecs: Codecs, *, runtime: str | None = None) -> np.ndarray:
    """Decode one chunk: the pipeline's steps applied bottom to top."""
    return as_pipeline(codecs, runtime).decode(data)


def encode(array: np.ndarray, codecs: Codecs, *, runtime: str | None = None) -> bytes:
    """Encode one chunk: the pipeline's steps applied top to bottom."""
    return as_pipeline(codecs, runtime).encode(array)


__all__ = [
    "ChonkleError",
    "CodecError",
    "Pipeline",
    "RuntimeUnavailable",
    "SourceError",
    "SpecError",
    "WasmAbiError",
    "WasmTrap",
    "decode",
    "encode",
    "get_codecs",
    "get_runtime",
    "installed_runtimes",
    "runtime_statuses",
]
