"""chonkle: decode and encode array chunks with pipelines of numcodecs and Wasm codecs.

Importing chonkle imports no Wasm engine; one is loaded the first time a
pipeline with a Wasm step is built.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numcodecs.abc import Codec

from chonkle import settings
from chonkle.engine.registry import get_runtime, installed_runtimes, runtime_statuses
from chonkle.errors import (
    ChonkleError,
    CodecError,
    LimitExceeded,
    RuntimeUnavailable,
    SourceError,
    SpecError,
    WasmAbiError,
    WasmTrap,
)
from chonkle.formats.tiff import open_tiff
from chonkle.formats.zarr import open_zarr_array
from chonkle.pipeline import Pipeline, PipelineSource, as_pipeline

__version__ = "0.1.0"

if _unknown := settings.unknown_settings():
    warnings.warn(f"chonkle does not know the setting(s) {', '.join(_unknown)}: a misspelled "
                  "name leaves its policy off (the settings are listed in chonkle's README)",
                  RuntimeWarning, stacklevel=2)

Codecs = Pipeline | Sequence[Codec] | PipelineSource


def get_codecs(pipeline: PipelineSource, *, runtime: str | None = None,
               allow_codecs: Iterable[str] = ()) -> list[Codec]:
    """The pipeline's codecs in file order, Wasm modules fetched and compiled.

    ``pipeline`` is a path to a pipeline JSON file, the parsed mapping, or a list of steps.
    The result is accepted wherever a pipeline is.
    """
    return Pipeline.load(pipeline, runtime=runtime, allow_codecs=allow_codecs).codecs


def decode(data: Any, codecs: Codecs, *, runtime: str | None = None,
           allow_codecs: Iterable[str] = ()) -> np.ndarray:
    """Decode one chunk: the pipeline's steps applied bottom to top.

    ``codecs`` is a Pipeline, a pipeline file path, ``{"codecs": [...]}``, or a list of step
    dicts and numcodecs codecs (such as ``get_codecs`` returns). A spec given as JSON is
    built once and remembered, so calling this per chunk is cheap.
    """
    return as_pipeline(codecs, runtime, allow_codecs).decode(data)


def encode(array: np.ndarray, codecs: Codecs, *, runtime: str | None = None,
           allow_codecs: Iterable[str] = ()) -> bytes:
    """Encode one chunk: the pipeline's steps applied top to bottom."""
    return as_pipeline(codecs, runtime, allow_codecs).encode(array)


__all__ = [
    "ChonkleError",
    "CodecError",
    "LimitExceeded",
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
    "open_tiff",
    "open_zarr_array",
    "runtime_statuses",
]
