"""A Wasm module as a numcodecs codec (``chonkle.wasm``), so pipelines, Zarr arrays and Dask
graphs can hold it like any other codec.

The codec is its step: a name, a configuration and where the module comes from. That is all
it pickles and all ``get_config`` returns, so it travels to worker processes and into array
metadata; the module is fetched (from the cache, on a worker) and compiled where the codec is
used, on the engine chosen there (``runtime=`` if given, else ``CHONKLE_RUNTIME`` at first
use), not where it was created.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray

from chonkle.engine import config_schema, limits
from chonkle.engine.abi import CodecInterface, InstancePool, copy_out, module_pool
from chonkle.engine.registry import get_runtime, resolve_runtime_name
from chonkle.engine.wasm_binary import MalformedModule
from chonkle.errors import ChonkleError, CodecError, SpecError, WasmAbiError
from chonkle.spec import StepSpec, parse_step


class Binding(NamedTuple):
    """The codec compiled for one engine, under the limits read when it was bound."""

    runtime: str
    interface: CodecInterface
    pool: InstancePool
    limits: limits.Limits


class WasmCodec(Codec):
    """One Wasm step: bytes in give a uint8 array out. An ndarray in (the module sees its bytes
    in memory order, as numcodecs codecs do, so a Zarr v2 chunk of order F reads the same
    either way) gives an ndarray of the same dtype and shape out when the module returns as
    many bytes (a filter), else a uint8 array (a compressor, as a Zarr v2 ``compressor`` is
    handed the typed chunk).

    ``numcodecs.get_codec({"id": "chonkle.wasm", "name": ..., "uri": ..., "sha256": ...,
    "configuration": {...}})`` makes one (no ``uri``: the codec shipped in chonkle). The
    module is fetched and its declared configuration checked when the codec is made, so a
    wrong digest or a misspelled key is an error before any chunk; relative ``file:`` URIs
    are made absolute then, against ``base_dir`` or the current directory.
    """

    codec_id = "chonkle.wasm"

    def __init__(self, name: str, configuration: Mapping[str, Any] | None = None,
                 uri: str | None = None, sha256: str | None = None, *,
                 runtime: str | None = None, step_index: int = 0,
                 base_dir: str | Path | None = None) -> None:
        self._setup(name, configuration, uri, sha256, runtime, step_index, base_dir)
        self.module()

    def _setup(self, name: str, configuration: Mapping[str, Any] | None, uri: str | None,
               sha256: str | None, runtime: str | None, step_index: int,
               base_dir: str | Path | None) -> None:
        from chonkle.sources.file import absolute_file_uri

        raw: dict[str, Any] = {"name": name, "type": "wasm",
                               "configuration": {} if configuration is None else configuration}
        if uri is not None:
            raw["uri"] = absolute_file_uri(uri, None if base_dir is None else Path(base_dir))
        if sha256 is not None:
            raw["sha256"] = sha256
        self.step: StepSpec = parse_step(step_index, raw)
        try:
            self.config_json = json.dumps(self.step.configuration, separators=(",", ":"),
                                          ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise SpecError(f"configuration is not JSON-serializable: {exc}",
                            step=self.step.label) from None
        self._runtime = runtime
        self._wasm: bytes | None = None
        self._binding: Binding | None = None
        self._lock = threading.Lock()

    # -- what travels ------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"id": self.codec_id, "name": self.step.name,
                                  "configuration": dict(self.step.configuration)}
        if self.step.uri is not None:
            config["uri"] = self.step.uri
        if self.step.sha256 is not None:
            config["sha256"] = self.step.sha256
        return config

    def __getstate__(self) -> dict[str, Any]:
        """The step only: the module is fetched and compiled again where it is unpickled."""
        return {**self.get_config(), "runtime": self._runtime, "step_index": self.step.index}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("id", None)
        self._setup(state.pop("name"), state.pop("configuration", None), state.pop("uri", None),
                    state.pop("sha256", None), state.pop("runtime", None),
                    state.pop("step_index", 0), None)

    # -- the module and its engine -----------------------------------------------------------

    def module(self) -> bytes:
        """The module's bytes, fetched (and verified) once, its configuration checked."""
        if self._wasm is None:
            from chonkle.sources import fetch_module

            label = self.step.label
            try:
                wasm = fetch_module(self.step.uri, self.step.name, base_dir=None,
                                    sha256=self.step.sha256)
            except ChonkleError as exc:
                exc.step = exc.step or label
                raise
            try:
                schema = config_schema.declared(wasm)
            except MalformedModule as exc:
                raise WasmAbiError(f"not a valid Wasm module: {exc}", step=label) from None
            except config_schema.SchemaError as exc:
                raise WasmAbiError(f"invalid {config_schema.SECTION_NAME} section: {exc}",
                                   step=label) from None
            if schema is not None:
                try:
                    config_schema.validate(self.step.configuration, schema)
                except config_schema.ConfigInvalid as exc:
                    raise SpecError(f"configuration {exc}", step=label) from None
            self._wasm = wasm
        return self._wasm

    def bind(self) -> Binding:
        """Compile for this codec's engine (on first use; the same binding after that)."""
        binding = self._binding
        if binding is None:
            with self._lock:
                if self._binding is None:
                    engine = get_runtime(resolve_runtime_name(self._runtime))
                    bound_limits = limits.current()
                    interface, pool = module_pool(engine, self.module(), self.step.label,
                                                  bound_limits)
                    self._binding = Binding(engine.name, interface, pool, bound_limits)
                binding = self._binding
        return binding

    @property
    def runtime(self) -> str:
        """The engine this codec runs on (binding it if it is not yet)."""
        return self.bind().runtime

    @property
    def interface(self) -> CodecInterface:
        return self.bind().interface

    @property
    def _pool(self) -> InstancePool:
        return self.bind().pool

    def with_runtime(self, runtime: str | None) -> WasmCodec:
        """The same step on another engine (its compiled module is cached per engine)."""
        if runtime is None or runtime == self._runtime or (
                self._binding is not None and runtime == self._binding.runtime):
            return self
        other = WasmCodec.__new__(WasmCodec)
        other.__setstate__({**self.__getstate__(), "runtime": runtime})
        other._wasm = self._wasm
        other.bind()  # an engine that cannot load is an error now, not at the first chunk
        return other

    # -- encoding and decoding ---------------------------------------------------------------

    def encode(self, buf: Any) -> Any:
        return self._run("encode", buf)

    def decode(self, buf: Any, out: Any = None) -> Any:
        result = self._run("decode", buf)
        if out is None:
            return result
        target = ensure_contiguous_ndarray(out).view(np.uint8).reshape(-1)
        source = np.asarray(result).reshape(-1).view(np.uint8)
        if source.size != target.size:
            raise CodecError(f"decoded {source.size} bytes, but out= holds {target.size}",
                             step=self.step.label)
        target[...] = source
        return out

    def __repr__(self) -> str:
        runtime = self._binding.runtime if self._binding else self._runtime or "not bound yet"
        return f"WasmCodec({self.step.name!r}, runtime={runtime!r})"

    def _run(self, direction: str, buf: Any) -> np.ndarray:
        binding = self._binding or self.bind()
        if direction not in binding.interface.directions:
            raise WasmAbiError(f'module does not export "{direction}", so it cannot {direction}',
                               step=self.step.label)
        if isinstance(buf, np.ndarray) and buf.dtype != np.uint8:
            array = buf if buf.flags.f_contiguous else np.ascontiguousarray(buf)
            data = memoryview(array.reshape(-1, order="A").view(np.uint8))
            return binding.pool.run(direction, data, self.config_json,
                                    lambda out: self._as_array_like(out, array),
                                    self.step.label, binding.limits)
        return binding.pool.run(direction, _byte_view(buf), self.config_json, _copy_bytes,
                                self.step.label, binding.limits)

    def _as_array_like(self, output: memoryview, like: np.ndarray) -> np.ndarray:
        if len(output) != like.nbytes:  # a compressor's output: bytes
            return _copy_bytes(output)
        order = "C" if like.flags.c_contiguous else "F"
        return _copy_bytes(output).view(like.dtype).reshape(like.shape, order=order)


def _byte_view(buf: Any) -> memoryview:
    """A flat byte view of any buffer, without numcodecs' generic checks for the common types."""
    if isinstance(buf, (bytes, bytearray)):
        return memoryview(buf)
    if isinstance(buf, np.ndarray) and buf.dtype == np.uint8 and buf.flags.c_contiguous:
        return memoryview(buf.reshape(-1))
    return memoryview(ensure_contiguous_ndarray(buf).reshape(-1).view(np.uint8))


_copy_bytes = copy_out
