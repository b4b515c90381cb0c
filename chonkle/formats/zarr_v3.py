"""``chonkle.wasm``, a Zarr v3 codec for zarr-python 3: any Wasm codec as a bytes -> bytes step.

zarr-python finds it through the ``zarr.codecs`` entry point of the same name, so a store
whose ``zarr.json`` lists it opens wherever chonkle is installed, without importing chonkle::

    {"name": "chonkle.wasm",
     "configuration": {"name": "zstd", "configuration": {"level": 5},
                       "uri": "https://example.org/zstd.wasm", "sha256": "..."}}

(``uri`` left out: the codec of that name shipped in chonkle; ``sha256`` pins the module).
The module is fetched and its digest and configuration checked when the codec is made, that
is when zarr-python reads the metadata, so a wrong digest is a SourceError before any code
runs. It is compiled where it is first used, on that process's engine (CHONKLE_RUNTIME), and
pickles as its metadata, so Dask and multiprocessing ship it as they ship zarr's own codecs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import BytesBytesCodec

from chonkle.engine.wasm_codec import WasmCodec
from chonkle.errors import SpecError
from chonkle.formats.zarr_pipeline import evolve_shuffle, wasm_step

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer

CODEC_NAME = "chonkle.wasm"
# Shipped codecs whose output is as long as their input (delta: scaled by its types).
SIZE_PRESERVING = frozenset({"shuffle", "tiff_predictor_2", "tiff_predictor_3"})


@dataclass(frozen=True)
class ChonkleWasmCodec(BytesBytesCodec):
    """A Wasm codec in a Zarr v3 codec list: ``name``, its ``configuration``, and where the
    module comes from (``uri``, ``sha256``), as in a chonkle pipeline's ``wasm`` step."""

    name: str
    configuration: Mapping[str, Any] = field(default_factory=dict)
    uri: str | None = None
    sha256: str | None = None

    def __init__(self, *, name: str, configuration: Mapping[str, Any] | None = None,
                 uri: str | None = None, sha256: str | None = None) -> None:
        step = wasm_step({"name": name, "configuration": configuration or {}, "uri": uri,
                          "sha256": sha256}, "the chonkle.wasm codec", CODEC_NAME)
        codec = WasmCodec(step["name"], step["configuration"], step.get("uri"),
                          step.get("sha256"))  # fetched, digest and configuration checked
        object.__setattr__(self, "name", codec.step.name)
        object.__setattr__(self, "configuration", dict(codec.step.configuration))
        object.__setattr__(self, "uri", codec.step.uri)
        object.__setattr__(self, "sha256", codec.step.sha256)
        object.__setattr__(self, "_codec", codec)

    # -- metadata ------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChonkleWasmCodec:  # type: ignore[override]
        if not isinstance(data, Mapping) or data.get("name") != CODEC_NAME:
            raise SpecError(f'a {CODEC_NAME} codec is {{"name": "{CODEC_NAME}", '
                            f'"configuration": {{...}}}}, not {data!r:.80}')
        configuration = data.get("configuration")
        if not isinstance(configuration, Mapping):
            raise SpecError(f'a {CODEC_NAME} codec needs a "configuration" object naming the '
                            f"Wasm codec, not {configuration!r:.80}")
        unknown = sorted(set(configuration) - {"name", "configuration", "uri", "sha256"})
        if unknown:
            raise SpecError(f"unknown keys {unknown} in a {CODEC_NAME} codec's configuration "
                            "(it takes name, configuration, uri, sha256)")
        return cls(name=configuration.get("name"),  # type: ignore[arg-type]
                   configuration=configuration.get("configuration"),
                   uri=configuration.get("uri"), sha256=configuration.get("sha256"))

    def to_dict(self) -> dict[str, Any]:
        configuration: dict[str, Any] = {"name": self.name}
        if self.configuration:
            configuration["configuration"] = dict(self.configuration)
        if self.uri is not None:
            configuration["uri"] = self.uri
        if self.sha256 is not None:
            configuration["sha256"] = self.sha256
        return {"name": CODEC_NAME, "configuration": configuration}

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its metadata: the module is fetched (cached) and compiled where used."""
        return (type(self).from_dict, (self.to_dict(),))

    def evolve_from_array_spec(self, array_spec: ArraySpec) -> ChonkleWasmCodec:
        """The shipped shuffle without ``elementsize`` shuffles the array's items."""
        if self.uri is not None or self.name != "shuffle":
            return self
        evolved = evolve_shuffle(self.name, self.configuration, _itemsize(array_spec))
        return self if evolved == self.configuration else replace(self, configuration=evolved)

    # -- sizes -----------------------------------------------------------------------------

    @property
    def is_fixed_size(self) -> bool:  # type: ignore[override]
        return self._size_ratio() is not None

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        """Known for the shipped codecs that keep sizes (shuffle, delta, predictors)."""
        ratio = self._size_ratio()
        if ratio is None:
            raise NotImplementedError(f"{self.name}'s output size depends on the data")
        numerator, denominator = ratio
        return input_byte_length * numerator // denominator

    def _size_ratio(self) -> tuple[int, int] | None:
        if self.uri is not None:
            return None
        if self.name in SIZE_PRESERVING:
            return 1, 1
        if self.name == "delta":
            dtype = np.dtype(self.configuration["dtype"])
            astype = np.dtype(self.configuration.get("astype", dtype))
            return astype.itemsize, dtype.itemsize
        return None

    # -- encoding and decoding ------------------------------------------------------------

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer:
        decoded = self._codec.decode(chunk_bytes.as_numpy_array())  # type: ignore[attr-defined]
        return chunk_spec.prototype.buffer.from_array_like(decoded)

    def _encode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer | None:
        encoded = self._codec.encode(chunk_bytes.as_numpy_array())  # type: ignore[attr-defined]
        return chunk_spec.prototype.buffer.from_array_like(encoded)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer:
        # A thread: wasmtime runs Wasm without the GIL, so chunks decode in parallel.
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    async def _encode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_bytes, chunk_spec)


def _itemsize(array_spec: ArraySpec) -> int:
    dtype = array_spec.dtype
    native = dtype.to_native_dtype() if hasattr(dtype, "to_native_dtype") else np.dtype(dtype)
    return int(native.itemsize)
