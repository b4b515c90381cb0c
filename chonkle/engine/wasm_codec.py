"""A Wasm module as a numcodecs codec, so pipelines can mix the two freely."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray

from chonkle.engine import config_schema, limits
from chonkle.engine.abi import CodecInterface, module_pool
from chonkle.engine.registry import get_runtime
from chonkle.errors import CodecError, SpecError, WasmAbiError
from chonkle.spec import StepSpec


class WasmCodec(Codec):
    """One Wasm step of a pipeline, compiled for one engine.

    Bytes in give a uint8 array out; an ndarray in gives an ndarray of the same
    dtype and shape out (the module sees its C-order bytes).
    """

    codec_id = "chonkle.wasm"

    def __init__(self, step: StepSpec, wasm: bytes, runtime: str | None = None) -> None:
        self.step = step
        self.wasm = wasm
        try:
            self.config_json = json.dumps(
                step.configuration, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise SpecError(f"configuration is not JSON-serializable: {exc}",
                            step=step.label) from exc
        engine = get_runtime(runtime)
        self.runtime = engine.name
        self.limits = limits.current()
        self.interface: CodecInterface
        self.interface, self._pool = module_pool(engine, wasm, step.label, self.limits)
        if self.interface.config_schema is not None:
            try:
                config_schema.validate(step.configuration, self.interface.config_schema)
            except config_schema.ConfigInvalid as exc:
                raise SpecError(f"configuration {exc}", step=step.label) from None

    def with_runtime(self, runtime: str | None) -> WasmCodec:
        """The same step on another engine (its compiled module is cached per engine)."""
        if runtime is None or runtime == self.runtime:
            return self
        return WasmCodec(self.step, self.wasm, runtime)

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

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"id": self.codec_id, "name": self.step.name,
                                  "configuration": dict(self.step.configuration)}
        if self.step.uri is not None:
            config["uri"] = self.step.uri
        if self.step.sha256 is not None:
            config["sha256"] = self.step.sha256
        return config

    def __repr__(self) -> str:
        return f"WasmCodec({self.step.name!r}, runtime={self.runtime!r})"

    def _run(self, direction: str, buf: Any) -> np.ndarray:
        if direction not in self.interface.directions:
            raise WasmAbiError(f'module does not export "{direction}", so it cannot {direction}',
                               step=self.step.label)
        if isinstance(buf, np.ndarray) and buf.dtype != np.uint8:
            array = np.ascontiguousarray(buf)
            data = memoryview(array.reshape(-1).view(np.uint8))
            return self._pool.run(direction, data, self.config_json,
                                  lambda out: self._as_array_like(out, array), self.step.label,
                                  self.limits)
        return self._pool.run(direction, _byte_view(buf), self.config_json, _copy_bytes,
                              self.step.label, self.limits)

    def _as_array_like(self, output: memoryview, like: np.ndarray) -> np.ndarray:
        if len(output) != like.nbytes:
            raise CodecError(
                f"returned {len(output)} bytes for an input array of shape {list(like.shape)} "
                f"and dtype {like.dtype} ({like.nbytes} bytes); a Wasm step given an array "
                "must return an array of the same shape and dtype",
                step=self.step.label,
            )
        return _copy_bytes(output).view(like.dtype).reshape(like.shape)


def _byte_view(buf: Any) -> memoryview:
    """A flat byte view of any buffer, without numcodecs' generic checks for the common types."""
    if isinstance(buf, (bytes, bytearray)):
        return memoryview(buf)
    if isinstance(buf, np.ndarray) and buf.dtype == np.uint8 and buf.flags.c_contiguous:
        return memoryview(buf.reshape(-1))
    return memoryview(ensure_contiguous_ndarray(buf).reshape(-1).view(np.uint8))


def _copy_bytes(output: memoryview) -> np.ndarray:
    return np.frombuffer(output, dtype=np.uint8).copy()
