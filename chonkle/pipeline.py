"""The runtime-agnostic pipeline engine: encode top to bottom, decode bottom to top.

A :class:`Pipeline` validates its spec, fetches and compiles its Wasm modules
once, and is then reused for every chunk. It never imports an engine: Wasm
steps reach one only through ``chonkle.engine``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
from numcodecs.abc import Codec

import chonkle.codecs  # noqa: F401  (registers chonkle's native codecs with numcodecs)
from chonkle import settings
from chonkle.engine.wasm_codec import WasmCodec
from chonkle.errors import ChonkleError, CodecError, SpecError
from chonkle.parallel import run_many
from chonkle.spec import (
    MAX_SPEC_BYTES,
    PipelineSpec,
    StepSpec,
    check_numcodecs_allowed,
    load_pipeline_spec,
    parse_pipeline,
    parse_step,
    read_pipeline_document,
)

PipelineSource = Path | str | Mapping[str, Any] | Sequence[Any]
"""A pipeline file path, ``{"codecs": [...]}``, or a list of step dicts and numcodecs codecs."""

# Pipelines built from JSON specs by decode/encode, keyed by the spec's canonical JSON.
MEMO_SIZE = 256


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
    def load(cls, source: Pipeline | PipelineSource, *, runtime: str | None = None,
             allow_codecs: Iterable[str] = ()) -> Pipeline:
        """Build a pipeline from any form chonkle accepts.

        ``source`` is a path to a pipeline JSON file (relative ``file:`` URIs resolve against
        its folder), a ``{"codecs": [...]}`` mapping, a list of step mappings, a list mixing
        step mappings and numcodecs ``Codec`` objects (as :func:`chonkle.get_codecs`
        returns), or a Pipeline. In mappings and lists, relative ``file:`` URIs resolve
        against the current directory.

        numcodecs steps may name the data codecs numcodecs and chonkle ship; ``allow_codecs``
        (and CHONKLE_ALLOW_CODECS) adds others, for pipelines you trust (``pickle`` runs
        code when it decodes).
        """
        if isinstance(source, Pipeline):
            return source.with_runtime(runtime) if runtime is not None else source
        allowed = _allowed(allow_codecs)
        if isinstance(source, (list, tuple)) and any(isinstance(s, Codec) for s in source):
            return _from_mixed_list(source, runtime, allowed)
        return _built(load_pipeline_spec(source), runtime, allowed)

    @classmethod
    def from_zarr(cls, source: str | os.PathLike[str] | Mapping[str, Any], *,
                  prefer: str = "wasm", runtime: str | None = None,
                  allow_codecs: Iterable[str] = ()) -> Pipeline:
        """The pipeline of one chunk of a Zarr v2 or v3 array (of one shard, if sharded).

        ``source`` is the array's folder, its ``.zarray`` or ``zarr.json``, or that file's
        parsed JSON. ``decode`` gives the chunk's array (chunk shape and dtype, C order).
        ``prefer="wasm"`` uses chonkle's Wasm codecs where it ships one, ``"native"``
        numcodecs. Fill values and chunk keys: ``chonkle.formats.zarr.open_zarr_array``.
        """
        from chonkle.formats.zarr import open_zarr_array  # formats sit above the pipeline

        return open_zarr_array(source, prefer=prefer,  # type: ignore[arg-type]
                               runtime=runtime, allow_codecs=allow_codecs).pipeline

    @property
    def runtime(self) -> str | None:
        """The engine the Wasm steps run on (None for a pipeline of native codecs only)."""
        return next((c.runtime for c in wasm_steps(self)), None)

    def with_runtime(self, runtime: str | None) -> Pipeline:
        """This pipeline with its Wasm steps (inner ones too: sharding) on another engine."""
        if all(c.runtime == runtime for c in wasm_steps(self)):
            return self
        codecs = [c.with_runtime(runtime) if hasattr(c, "with_runtime") else c
                  for c in self.codecs]
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

    def decode_many(self, chunks: Iterable[Any], workers: int | None = None, *,
                    progress: bool | None = None) -> list[np.ndarray]:
        """Decode every chunk, on every core: a list of arrays in input order.

        Threads where the engine runs Wasm without the GIL (wasmtime), worker processes where
        it cannot (wasmer). ``workers=None`` uses the cores available, ``1`` is serial. The
        first failure is raised with its chunk's index (``error.chunk``), and the work no
        worker has taken yet is cancelled. A progress bar shows on a terminal (``progress=``).
        """
        return run_many(self, "decode", list(chunks), workers, progress)

    def encode_many(self, arrays: Iterable[np.ndarray], workers: int | None = None, *,
                    progress: bool | None = None) -> list[bytes]:
        """Encode every array, on every core: a list of chunks in input order."""
        return run_many(self, "encode", list(arrays), workers, progress)

    def __repr__(self) -> str:
        return f"Pipeline({', '.join(self.labels)})"


def wasm_steps(codec: Any) -> Iterator[WasmCodec]:
    """Every Wasm codec a pipeline or codec runs, those inside other codecs (a Zarr shard's
    pipelines, a wrapped array codec) included: what says ``inner_codecs()`` is looked into."""
    if isinstance(codec, WasmCodec):
        yield codec
    elif isinstance(codec, Pipeline):
        for inner in codec.codecs:
            yield from wasm_steps(inner)
    else:
        for inner in getattr(codec, "inner_codecs", tuple)():
            yield from wasm_steps(inner)


def _run_step(method: Any, data: Any, direction: str, label: str) -> Any:
    try:
        return method(data)
    except ChonkleError as exc:
        exc.step = exc.step or label
        raise
    except Exception as exc:  # native codecs raise whatever their library raises
        raise CodecError(f"{direction} failed: {_describe(exc)}", step=label) from exc


def _describe(exc: Exception) -> str:
    """A native codec's exception as one line: ``Type: message``, without a type called just
    ``error`` (zlib's, for one), which says nothing the message does not."""
    message = " ".join(str(exc).split())
    name = type(exc).__name__
    if not message:
        return name
    return message if name.lower() == "error" or name in message else f"{name}: {message}"


def _allowed(allow_codecs: Iterable[str]) -> frozenset[str]:
    if isinstance(allow_codecs, str):
        raise SpecError("allow_codecs must be a list of codec names, not a string")
    return settings.allowed_codecs() | frozenset(allow_codecs)


def _build_codec(step: StepSpec, base_dir: Path | None, runtime: str | None,
                 allowed: frozenset[str]) -> Codec:
    if step.type == "wasm":
        codec = WasmCodec(step.name, step.configuration, step.uri, step.sha256, runtime=runtime,
                          step_index=step.index, base_dir=base_dir)
        codec.bind()  # the engine's errors belong to loading, not to the first chunk
        return codec
    check_numcodecs_allowed(step, allowed, _registered)
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


def _registered(name: str) -> bool:
    """Does numcodecs know a codec of this name (registered, or behind an entry point)?"""
    registry = numcodecs.registry
    if not registry.entries and hasattr(registry, "run_entrypoints"):
        registry.run_entrypoints()
    return name in registry.codec_registry or name in registry.entries


def _from_mixed_list(items: Sequence[Any], runtime: str | None,
                     allowed: frozenset[str]) -> Pipeline:
    """Steps given as numcodecs codecs stay as they are; step mappings are built."""
    codecs, labels = [], []
    for index, item in enumerate(items):
        if isinstance(item, Codec):
            codec = item.with_runtime(runtime) if isinstance(item, WasmCodec) else item
            codecs.append(codec)
            labels.append(codec.step.label if isinstance(codec, WasmCodec)
                          else f"step {index} ({codec.codec_id})")
        else:
            step = parse_step(index, item)
            codecs.append(_build_codec(step, None, runtime, allowed))
            labels.append(step.label)
    return Pipeline(codecs, labels)


def as_pipeline(codecs: Pipeline | PipelineSource, runtime: str | None = None,
                allow_codecs: Iterable[str] = ()) -> Pipeline:
    """What ``decode`` and ``encode`` accept, as a Pipeline.

    A spec given as JSON (a path, a mapping, a list of step mappings) is built once and
    remembered by its canonical JSON, so calling ``decode(chunk, spec)`` per chunk does not
    validate, fetch or compile again.
    """
    if isinstance(codecs, Pipeline):
        return codecs.with_runtime(runtime) if runtime is not None else codecs
    if isinstance(codecs, (str, os.PathLike)):
        document, base_dir = read_pipeline_document(codecs)
    elif isinstance(codecs, (Mapping, list, tuple)):
        document, base_dir = codecs, os.getcwd()
    else:
        raise SpecError("codecs must be a Pipeline, a list of step mappings or codecs (see "
                        "get_codecs), a pipeline file path or a pipeline mapping, not "
                        f"{type(codecs).__name__}")
    allowed = tuple(sorted(allow_codecs)) if allow_codecs else ()
    try:
        canonical = _canonical_json(document)
    except RecursionError:
        raise SpecError("the pipeline is nested deeper than any pipeline") from None
    except (TypeError, ValueError):  # codec objects, numpy scalars, ...: built each time
        if isinstance(document, (list, tuple)) and any(isinstance(c, Codec) for c in document):
            return _from_mixed_list(document, runtime, _allowed(allowed))
        return _built(parse_pipeline(document, base_dir=Path(base_dir)), runtime,
                      _allowed(allowed))
    if len(canonical) > MAX_SPEC_BYTES:
        raise SpecError(f"the pipeline is over {MAX_SPEC_BYTES} bytes as JSON; no real "
                        "pipeline is that large")
    return _memoized(canonical, str(base_dir), runtime, allowed, settings.build_fingerprint())


_canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False).encode


@functools.lru_cache(maxsize=MEMO_SIZE)
def _memoized(canonical: str, base_dir: str, runtime: str | None, allow_codecs: tuple[str, ...],
              fingerprint: tuple[object, ...]) -> Pipeline:
    """Built from the canonical JSON itself, so the cached pipeline is exactly the key's.

    The settings that decide how a spec is built (the default engine, whether it may be
    built at all) are part of the key, so turning on CHONKLE_REQUIRE_DIGEST is never
    bypassed by an earlier build.
    """
    document = json.loads(canonical)
    return _built(parse_pipeline(document, base_dir=Path(base_dir)), runtime,
                  _allowed(allow_codecs))


def _built(spec: PipelineSpec, runtime: str | None, allowed: frozenset[str]) -> Pipeline:
    codecs = [_build_codec(step, spec.base_dir, runtime, allowed) for step in spec.steps]
    return Pipeline(codecs, [step.label for step in spec.steps])


def clear_memo() -> None:
    """Forget every pipeline built by ``decode``/``encode`` (they are rebuilt on next use)."""
    _memoized.cache_clear()
