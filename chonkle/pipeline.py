"""The runtime-agnostic pipeline engine: encode top to bottom, decode bottom to top.

A :class:`Pipeline` validates its spec, fetches and compiles its Wasm modules
once, and is then reused for every chunk. It never imports an engine: Wasm
steps reach one only through ``chonkle.runtime``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
from numcodecs.abc import Codec

import chonkle.codecs  # noqa: F401  (registers chonkle's native codecs with numcodecs)
from chonkle.engine.wasm_codec import WasmCodec
from chonkle.errors import ChonkleError, CodecError, SpecError
from chonkle.sources import fetch_module
from chonkle.spec import StepSpec, load_pipeline_spec

PipelineSource = Path | str | Mapping[str, Any]


class Pipeline:
    """A compiled codec pipeline, reusable across chunks and threads."""

    def __init__(self, codecs: Sequence[Codec], labels: Sequence[str] | None = None) -> None:
        self.codecs: list[Codec] = list(codecs)
        self.labels: list[str] = list(labels) if labels is not None else [
            codec.step.label if isinstance(codec, WasmCodec)
            else f"step {i} ({codec.codec_id})"
            for i, codec in enumerate(self.codecs)
        ]

    @classmethod
    def load(cls, source: PipelineSource, *, runtime: str | None = None) -> Pipeline:
        """Build a pipeline from a JSON file path or a parsed pipeline mapping."""
        spec = load_pipeline_spec(source)
        codecs = [_build_codec(step, spec.base_dir, runtime) for step in spec.steps]
        return cls(codecs, [step.label for step in spec.steps])

    @property
    def runtime(self) -> str | None:
        """The engine the Wasm steps run on (None for a pipeline of native codecs only)."""
        return next((c.runtime for c in self.codecs if isinstance(c, WasmCodec)), None)

    def with_runtime(self, runtime: str | None) -> Pipeline:
        """This pipeline with its Wasm steps on another engine."""
        codecs = [c.with_runtime(runtime) if isinstance(c, WasmCodec) else c for c in self.codecs]
        return Pipeline(codecs, self.labels)

    def encode(self, array: np.ndarray) -> bytes:
        data: Any = array
        for codec, label in zip(self.codecs, self.labels, strict=True):
            data = _run_step(codec.encode, data, "encode", label)
        if isinstance(data, np.ndarray):
            return data.tobytes()
        return bytes(data)

    def decode(self, data: Any) -> np.ndarray:
        for codec, label in zip(reversed(self.codecs), reversed(self.labels), strict=True):
            data = _run_step(codec.decode, data, "decode", label)
        if isinstance(data, np.ndarray):
            return data
        return np.frombuffer(data, dtype=np.uint8).copy()

    def __repr__(self) -> str:
        return f"Pipeline({', '.join(self.labels)})"


def _run_step(method: Any, data: Any, direction: str, label: str) -> Any:
    try:
        return method(data)
    except ChonkleError as exc:
        exc.step = exc.step or label
        raise
    except Exception as exc:  # native codecs raise whatever their library raises
        raise CodecError(f"{direction} failed: {type(exc).__name__}: {exc}", step=label) from exc


def _build_codec(step: StepSpec, base_dir: Path | None, runtime: str | None) -> Codec:
    if step.type == "wasm":
        try:
            wasm = fetch_module(step.uri, step.name, base_dir=base_dir, sha256=step.sha256)
        except ChonkleError as exc:
            exc.step = exc.step or step.label
            raise
        return WasmCodec(step, wasm, runtime)
    try:
        return numcodecs.get_codec({**step.configuration, "id": step.name})
    except ChonkleError as exc:
        exc.step = exc.step or step.label
        raise
    except ValueError as exc:
        if step.name not in numcodecs.registry.codec_registry:
            raise SpecError(f"unknown numcodecs codec {step.name!r}", step=step.label) from exc
        raise SpecError(f"invalid configuration: {exc}", step=step.label) from exc
    except TypeError as exc:
        raise SpecError(f"invalid configuration: {exc}", step=step.label) from exc


def as_pipeline(codecs: Pipeline | Sequence[Codec] | PipelineSource,
                runtime: str | None = None) -> Pipeline:
    """Accept what the public functions accept: a Pipeline, a codec list, a path or a mapping."""
    if isinstance(codecs, Pipeline):
        pipeline = codecs
    elif isinstance(codecs, (str, Path, Mapping)):
        return Pipeline.load(codecs, runtime=runtime)
    elif isinstance(codecs, Sequence) and all(isinstance(c, Codec) for c in codecs):
        pipeline = Pipeline(codecs)
    else:
        raise SpecError("codecs must be a Pipeline, a list of codecs (see get_codecs), "
                        f"a pipeline file path or a pipeline mapping, not {type(codecs).__name__}")
    if runtime is not None and pipeline.runtime not in (None, runtime):
        pipeline = pipeline.with_runtime(runtime)
    return pipeline
