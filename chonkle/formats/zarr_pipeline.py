"""Zarr codecs -> the pipeline of one chunk.

| Zarr (v3 name / v2 id)                        | prefer="wasm"          | prefer="native"     |
| --------------------------------------------- | ---------------------- | ------------------- |
| v2 dtype + order (C, F)                       | V2Layout               | V2Layout            |
| ``transpose``                                 | Transpose              | Transpose           |
| ``bytes``                                     | chonkle ``bytes``      | chonkle ``bytes``   |
| ``sharding_indexed``                          | Sharding (recursive)   | Sharding            |
| ``zstd``, ``numcodecs.zstd``, v2 ``zstd``     | Wasm ``zstd``          | numcodecs Zstd      |
| ``numcodecs.zlib``, v2 ``zlib``               | Wasm ``zlib``          | numcodecs Zlib      |
| ``numcodecs.shuffle``, v2 ``shuffle``         | Wasm ``shuffle``       | numcodecs Shuffle   |
| ``numcodecs.delta``, v2 ``delta``             | Wasm ``delta``         | numcodecs Delta     |
| ``gzip`` (gzip framing; Wasm zlib reads zlib) | numcodecs GZip         | numcodecs GZip      |
| ``blosc``, ``crc32c``                         | numcodecs              | numcodecs           |
| other ``numcodecs.*`` / v2 ids                | numcodecs              | numcodecs           |
| ``chonkle.wasm``                              | its Wasm module        | its Wasm module     |

A Wasm codec is used only when the Zarr configuration uses no key it lacks, so a numcodecs
option chonkle's module does not have is never dropped. numcodecs codecs pass chonkle's
allow-list (``pickle`` is refused unless allowed), as in any pipeline; every error names the
metadata file and the codec (``codec 2 (zstd)``, ``filter 0 (delta)``, ``compressor (zstd)``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numcodecs
import numpy as np
from numcodecs.abc import Codec

from chonkle.codecs.bytes_codec import ZARR_DATA_TYPES
from chonkle.errors import ChonkleError, SpecError
from chonkle.formats.zarr_codecs import ArraySpec, ArrayStep, Transpose, V2Layout
from chonkle.formats.zarr_metadata import CodecDoc, ZarrMetadata, codec_list
from chonkle.formats.zarr_sharding import Sharding
from chonkle.pipeline import Pipeline

Prefer = Literal["wasm", "native"]

# Codecs chonkle ships as Wasm under the same name as numcodecs, with the keys they take.
WASM_EQUIVALENTS: dict[str, frozenset[str]] = {
    "zstd": frozenset({"level", "checksum"}),
    "zlib": frozenset({"level"}),
    "shuffle": frozenset({"elementsize"}),
    "delta": frozenset({"dtype", "astype"}),
}
# numcodecs codecs zarr-python 3 wraps as array -> array or array -> bytes codecs; every other
# numcodecs.* codec is bytes -> bytes.
NUMCODECS_ARRAY_ARRAY = frozenset({"delta", "bitround", "fixedscaleoffset", "quantize",
                                   "packbits", "astype"})
NUMCODECS_ARRAY_BYTES = frozenset({"pcodec", "zfpy"})
NUMCODECS_PREFIX = "numcodecs."
V3_CODECS = {"transpose": "array", "bytes": "array-bytes", "sharding_indexed": "array-bytes",
             "zstd": "bytes", "gzip": "bytes", "blosc": "bytes", "crc32c": "bytes",
             "chonkle.wasm": "bytes"}
WASM_CODEC_KEYS = frozenset({"name", "uri", "sha256", "configuration"})
BLOSC_SHUFFLES = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
CHECKSUM_SIZE = 4
MAX_SHARD_NESTING = 3
DATA_TYPE_NAMES = {np.dtype(code): name for name, code in ZARR_DATA_TYPES.items()}


def build_pipeline(meta: ZarrMetadata, *, prefer: Prefer = "wasm", runtime: str | None = None,
                   allow_codecs: Iterable[str] = ()) -> Pipeline:
    """The pipeline of one chunk (one shard, for a sharded array): decode gives the chunk as
    an array of ``meta.chunk_shape`` and ``meta.dtype``, C-ordered."""
    if prefer not in ("wasm", "native"):
        raise SpecError(f"prefer must be 'wasm' or 'native', not {prefer!r}")
    if isinstance(allow_codecs, str):
        raise SpecError("allow_codecs must be a list of codec names, not a string")
    builder = _Builder(meta.where, prefer, runtime, tuple(allow_codecs))
    if meta.zarr_format == 2:
        return builder.v2(meta)
    missing = sorted(set(_unbuildable_v3(meta.codecs, meta.where, 0)))
    if missing:
        raise SpecError(f"{meta.where}: chonkle cannot build the codec(s) "
                        f"{', '.join(map(repr, missing))}; it builds {', '.join(V3_CODECS)} and "
                        "numcodecs.* codecs")
    return builder.chain(meta.codecs, meta.chunk_shape, meta.dtype, meta.fill_value, 0)


def wasm_step(configuration: Mapping[str, Any], where: str, label: str) -> dict[str, Any]:
    """A ``chonkle.wasm`` codec's configuration (``name``, ``uri``, ``sha256``,
    ``configuration``) as a pipeline step."""
    unknown = sorted(set(configuration) - WASM_CODEC_KEYS)
    if unknown:
        raise SpecError(f"{where}: unknown keys {unknown} in a chonkle.wasm codec (it takes "
                        f"{', '.join(sorted(WASM_CODEC_KEYS))})", step=label)
    name, inner = configuration.get("name"), configuration.get("configuration", {})
    if not isinstance(name, str):
        raise SpecError(f'{where}: a chonkle.wasm codec needs "name", the Wasm codec\'s name',
                        step=label)
    if not isinstance(inner, Mapping):
        raise SpecError(f'{where}: a chonkle.wasm codec\'s "configuration" must be a JSON '
                        "object", step=label)
    step = {"name": name, "type": "wasm", "configuration": dict(inner)}
    step.update({k: configuration[k] for k in ("uri", "sha256")
                 if configuration.get(k) is not None})
    return step


def evolve_shuffle(name: str, configuration: Mapping[str, Any],
                   itemsize: int) -> dict[str, Any]:
    """A shuffle without ``elementsize`` shuffles the array's items (as zarr-python fills it
    in for numcodecs.shuffle); every other configuration is kept as it is."""
    if name == "shuffle" and "elementsize" not in configuration:
        return {**configuration, "elementsize": itemsize}
    return dict(configuration)


def numcodecs_knows(name: str) -> bool:
    """Does numcodecs have a codec of this id (registered, or behind an entry point)?"""
    registry = numcodecs.registry
    if not getattr(registry, "entries", None) and hasattr(registry, "run_entrypoints"):
        registry.run_entrypoints()
    return name in registry.codec_registry or name in getattr(registry, "entries", {})


def _unbuildable_v3(codecs: Sequence[CodecDoc], where: str, depth: int) -> Iterable[str]:
    for name, config in codecs:
        if name.startswith(NUMCODECS_PREFIX):
            if not numcodecs_knows(name[len(NUMCODECS_PREFIX):]):
                yield name
        elif name not in V3_CODECS:
            yield name
        elif name == "sharding_indexed" and depth < MAX_SHARD_NESTING:
            for key in ("codecs", "index_codecs"):
                if key in config:
                    yield from _unbuildable_v3(codec_list(config[key], f"sharding_indexed "
                                                          f"{key}", where), where, depth + 1)


def _located(exc: ChonkleError, where: str, label: str) -> ChonkleError:
    """The same error, naming the metadata file and the Zarr codec instead of a step index."""
    message = exc.message if exc.message.startswith(where) else f"{where}: {exc.message}"
    return type(exc)(message, step=label)


@dataclass(frozen=True)
class _Builder:
    where: str
    prefer: Prefer
    runtime: str | None
    allow: tuple[str, ...]

    def fail(self, message: str, label: str | None = None) -> SpecError:
        return SpecError(f"{self.where}: {message}", step=label)

    def step(self, raw: dict[str, Any], label: str) -> Codec:
        """A numcodecs or Wasm step, built as any pipeline's (allow-list, module checks)."""
        try:
            return Pipeline.load([raw], runtime=self.runtime, allow_codecs=self.allow).codecs[0]
        except ChonkleError as exc:
            raise _located(exc, self.where, label) from None

    def numcodecs(self, codec_id: str, config: Mapping[str, Any], label: str) -> Codec:
        keys = WASM_EQUIVALENTS.get(codec_id)
        if self.prefer == "wasm" and keys is not None and set(config) <= keys:
            return self.step({"name": codec_id, "type": "wasm",
                              "configuration": dict(config)}, label)
        return self.step({"name": codec_id, "type": "numcodecs",
                          "configuration": dict(config)}, label)

    # -- v2 --------------------------------------------------------------------------------

    def v2(self, meta: ZarrMetadata) -> Pipeline:
        assert meta.stored_dtype is not None
        named = [(f"filter {i} ({_describe(name, config)})", name, config)
                 for i, (name, config) in enumerate(meta.filters)]
        if meta.compressor is not None:
            named.append((f"compressor ({_describe(*meta.compressor)})", *meta.compressor))
        missing = [name for _, name, _ in named
                   if name != "chonkle.wasm" and not numcodecs_knows(name)]
        if missing:
            raise self.fail(f"chonkle cannot build the codec(s) {', '.join(map(repr, missing))}: "
                            "numcodecs has no codec of that id")
        codecs: list[Codec] = [V2Layout(meta.stored_dtype, meta.chunk_shape, meta.order)]
        labels = [f"layout ({meta.stored_dtype.str}, order {meta.order})"]
        for label, name, config in named:
            if name == "chonkle.wasm":
                codecs.append(self.step(wasm_step(config, self.where, label), label))
            else:
                codecs.append(self.numcodecs(name, config, label))
            labels.append(label)
        return Pipeline(codecs, labels)

    # -- v3 --------------------------------------------------------------------------------

    def chain(self, codecs: Sequence[CodecDoc], shape: tuple[int, ...], dtype: np.dtype,
              fill_value: Any, depth: int) -> Pipeline:
        """A v3 codec list, for chunks of ``shape`` and ``dtype``: array -> array codecs,
        one array -> bytes codec, then bytes -> bytes codecs."""
        built: list[Codec] = []
        labels: list[str] = []
        spec: ArraySpec | None = (shape, dtype)
        last_dtype = dtype
        for i, (name, config) in enumerate(codecs):
            label = f"codec {i} ({_describe(name, config)})"
            kind = _kind(name)
            if spec is None and kind != "bytes":
                raise self.fail(f"{kind} codec {name!r} after the array -> bytes codec", label)
            if spec is not None and kind == "bytes":
                raise self.fail(f"bytes -> bytes codec {name!r} before an array -> bytes codec "
                                "(such as bytes)", label)
            if spec is not None:
                last_dtype = spec[1]
                codec, spec = self.array_codec(name, config, spec, fill_value, label, depth)
            else:
                codec = self.bytes_codec(name, config, last_dtype, label)
            built.append(codec)
            labels.append(label)
        if spec is not None:
            raise self.fail("the codecs have no array -> bytes codec (such as bytes)")
        return Pipeline(built, labels)

    def array_codec(self, name: str, config: Mapping[str, Any], spec: ArraySpec,
                    fill_value: Any, label: str, depth: int) -> tuple[Codec, ArraySpec | None]:
        """An array -> array codec and the spec it gives, or an array -> bytes codec and
        None."""
        shape, dtype = spec
        if name == "transpose":
            order = self.permutation(config.get("order"), len(shape), label)
            transpose = Transpose(order, shape)
            return transpose, (transpose.encoded_shape, dtype)
        if name == "bytes":
            endian = config.get("endian", "little")
            configuration = {"data_type": DATA_TYPE_NAMES[dtype.newbyteorder("=")],
                             "endian": endian, "shape": list(shape)}
            return self.step({"name": "bytes", "type": "numcodecs",
                              "configuration": configuration}, label), None
        if name == "sharding_indexed":
            return self.sharding(config, spec, fill_value, label, depth), None
        base = name[len(NUMCODECS_PREFIX):]
        config = self.numcodecs_defaults(base, config, dtype)
        inner = self.numcodecs(base, config, label)
        if base in NUMCODECS_ARRAY_BYTES:
            return ArrayStep(inner, spec, None), None
        encoded = self.resolved(base, config, spec, label)
        return ArrayStep(inner, spec, encoded), encoded

    def bytes_codec(self, name: str, config: Mapping[str, Any], dtype: np.dtype,
                    label: str) -> Codec:
        if name == "chonkle.wasm":
            step = wasm_step(config, self.where, label)
            if "uri" not in step:  # the shipped shuffle: its items are the array's
                step["configuration"] = evolve_shuffle(step["name"], step["configuration"],
                                                       dtype.itemsize)
            return self.step(step, label)
        if name == "blosc":
            shuffle = config.get("shuffle", "noshuffle")
            if not isinstance(shuffle, str) or shuffle not in BLOSC_SHUFFLES:
                raise self.fail(f"blosc shuffle must be one of {', '.join(BLOSC_SHUFFLES)}, not "
                                f"{shuffle!r}", label)
            options = {k: config[k] for k in ("cname", "clevel", "blocksize") if k in config}
            return self.numcodecs("blosc", {**options, "shuffle": BLOSC_SHUFFLES[shuffle]}, label)
        if name in ("zstd", "gzip", "crc32c"):
            return self.numcodecs(name, config, label)
        base = name[len(NUMCODECS_PREFIX):]
        return self.numcodecs(base, evolve_shuffle(base, config, dtype.itemsize), label)

    def numcodecs_defaults(self, base: str, config: Mapping[str, Any],
                           dtype: np.dtype) -> dict[str, Any]:
        """What zarr-python fills in from the array for numcodecs' array codecs."""
        key = {"fixedscaleoffset": "dtype", "quantize": "dtype", "astype": "decode_dtype",
               "delta": "dtype"}.get(base)
        if key is not None and config.get(key) is None:
            return {**config, key: dtype.str}
        return dict(config)

    def resolved(self, base: str, config: Mapping[str, Any], spec: ArraySpec,
                 label: str) -> ArraySpec:
        """The shape and data type an array -> array numcodecs codec gives."""
        shape = spec[0]
        if base == "packbits":
            return (1 + math.ceil(math.prod(shape) / 8),), np.dtype("uint8")
        key = {"delta": "astype", "fixedscaleoffset": "astype", "astype": "encode_dtype"}.get(base)
        if key is None or config.get(key) is None:
            return spec
        try:
            encoded = np.dtype(config[key]).newbyteorder("=")
        except (TypeError, ValueError):
            raise self.fail(f"{key} {config[key]!r} is not a numpy dtype", label) from None
        if encoded not in DATA_TYPE_NAMES:
            raise self.fail(f"{key} {config[key]!r} is not a data type chonkle decodes", label)
        return shape, encoded

    def permutation(self, order: Any, ndim: int, label: str) -> tuple[int, ...]:
        if order == "C":
            return tuple(range(ndim))
        if order == "F":
            return tuple(reversed(range(ndim)))
        if (not isinstance(order, list) or
                sorted(o for o in order if isinstance(o, int) and not isinstance(o, bool)) !=
                list(range(ndim))):
            raise self.fail(f"transpose order must be a permutation of 0..{ndim - 1}, not "
                            f"{order!r}", label)
        return tuple(order)

    def sharding(self, config: Mapping[str, Any], spec: ArraySpec, fill_value: Any,
                 label: str, depth: int) -> Sharding:
        shard_shape, dtype = spec
        if depth >= MAX_SHARD_NESTING:
            raise self.fail(f"sharding is nested deeper than {MAX_SHARD_NESTING} levels", label)
        chunk_shape = config.get("chunk_shape")
        if (not isinstance(chunk_shape, list) or len(chunk_shape) != len(shard_shape) or
                not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 and s % c == 0
                        for c, s in zip(chunk_shape, shard_shape, strict=False))):
            raise self.fail(f"the inner chunk_shape {chunk_shape!r} must divide the shard shape "
                            f"{list(shard_shape)}", label)
        location = config.get("index_location", "end")
        if location not in ("start", "end"):
            raise self.fail(f'index_location must be "start" or "end", not {location!r}', label)
        inner_codecs = codec_list(config.get("codecs"), f"{label} codecs", self.where)
        index_codecs = codec_list(config.get("index_codecs"), f"{label} index_codecs",
                                  self.where)
        per_shard = tuple(s // c for s, c in zip(shard_shape, chunk_shape, strict=True))
        inner = self.chain(inner_codecs, tuple(chunk_shape), dtype, fill_value, depth + 1)
        index_spec = (*per_shard, 2)
        index = self.chain(index_codecs, index_spec, np.dtype("uint64"), 0, depth + 1)
        size = self.index_size(index_codecs, math.prod(index_spec) * 8, label)
        return Sharding(inner, index, shard_shape, chunk_shape, dtype, fill_value, location,
                        size)

    def index_size(self, codecs: Sequence[CodecDoc], nbytes: int, label: str) -> int:
        """The encoded index's size: its codecs must have fixed sizes, as the spec says."""
        for name, _ in codecs:
            if name == "crc32c":
                nbytes += CHECKSUM_SIZE
            elif name not in ("bytes", "transpose"):
                raise self.fail(f"shard index codec {name!r} has no fixed size (chonkle reads "
                                "indexes encoded with bytes, transpose and crc32c)", label)
        return nbytes


def _kind(name: str) -> str:
    if name.startswith(NUMCODECS_PREFIX):
        base = name[len(NUMCODECS_PREFIX):]
        if base in NUMCODECS_ARRAY_ARRAY:
            return "array"
        return "array-bytes" if base in NUMCODECS_ARRAY_BYTES else "bytes"
    return V3_CODECS[name]


def _describe(name: str, config: Mapping[str, Any]) -> str:
    """A codec as messages name it: ``zstd``, or ``chonkle.wasm zstd`` for a Wasm codec."""
    inner = config.get("name") if name == "chonkle.wasm" else None
    return f"{name} {inner}" if isinstance(inner, str) else name
