"""A Zarr array's metadata (``.zarray`` for v2, ``zarr.json`` for v3), read and checked.

Metadata comes with a store, from anywhere: every field is checked here, and anything
malformed is a :class:`SpecError` that names the file and the field, never a KeyError or
TypeError from deep inside. The codecs are only checked for their outline here; turning
them into a pipeline is :mod:`chonkle.formats.zarr_pipeline`'s job.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chonkle import settings
from chonkle.codecs.bytes_codec import ZARR_DATA_TYPES
from chonkle.errors import ChonkleError, LimitExceeded, SpecError
from chonkle.spec import parse_json_text

V2_FILE = ".zarray"
V3_FILE = "zarr.json"
V2_GROUP_FILE = ".zgroup"
MAX_METADATA_BYTES = 16 * 2**20  # attributes can be large; no real metadata is this large
MAX_DIMENSIONS = 32

# (name, configuration) of one codec, as a v3 codec list or a v2 filter/compressor gives it.
CodecDoc = tuple[str, Mapping[str, Any]]


@dataclass(frozen=True)
class ZarrMetadata:
    """One array's metadata, checked. ``dtype`` is what a decoded chunk holds (native byte
    order); ``stored_dtype`` (v2 only) is the dtype as stored, byte order included."""

    where: str
    """How messages name the metadata: its file, or "Zarr metadata" for a mapping."""
    folder: Path | None
    """The array's folder (where its chunk keys are), if read from a file."""
    zarr_format: int
    shape: tuple[int, ...]
    chunk_shape: tuple[int, ...]
    """The regular grid's chunk shape: for a sharded array, the shard's."""
    dtype: np.dtype
    fill_value: Any
    separator: str
    key_prefix: str | None
    """"c" for v3's default chunk keys (``c/0/0``), None for v2-style keys (``0.0``)."""
    codecs: tuple[CodecDoc, ...] = ()
    """v3: the ``codecs`` list."""
    stored_dtype: np.dtype | None = None
    order: str = "C"
    filters: tuple[CodecDoc, ...] = ()
    compressor: CodecDoc | None = None

    @property
    def grid(self) -> tuple[int, ...]:
        """How many chunks the array has along each dimension."""
        return tuple(math.ceil(s / c) for s, c in zip(self.shape, self.chunk_shape, strict=True))

    def chunk_key(self, index: Sequence[int]) -> str:
        parts = [str(int(i)) for i in index]
        if self.key_prefix is not None:
            return self.separator.join([self.key_prefix, *parts])
        return self.separator.join(parts) if parts else "0"

    def chunk_index(self, key: str) -> tuple[int, ...]:
        """The grid index a chunk key names (SpecError: not a key of this array's chunks)."""
        parts: list[str] | None = key.split(self.separator)
        if self.key_prefix is not None:
            parts = parts[1:] if parts[0] == self.key_prefix else None
        elif not self.shape:
            parts = [] if key == "0" else None
        if parts is None or len(parts) != len(self.shape) or not all(
                p.isascii() and p.isdigit() and p == str(int(p)) for p in parts):
            example = self.chunk_key([0] * len(self.shape))
            raise SpecError(f"{key!r} is not a chunk key of the array at {self.where} (its "
                            f"keys look like {example!r})")
        index = tuple(int(p) for p in parts)
        if any(i >= n for i, n in zip(index, self.grid, strict=True)):
            raise SpecError(f"chunk {key!r} is outside the array at {self.where}, which has "
                            f"{'x'.join(map(str, self.grid))} chunks")
        return index


def metadata_file(path: Path) -> Path | None:
    """The metadata file of the array at ``path`` (its folder or the file itself), if any."""
    if path.name in (V2_FILE, V3_FILE) and not path.is_dir() and os.path.lexists(path):
        return path  # whatever it is: reading it refuses anything but a regular file
    for name in (V3_FILE, V2_FILE):
        if os.path.lexists(path / name):
            return path / name
    return None


def read_metadata(source: str | os.PathLike[str] | Mapping[str, Any]) -> ZarrMetadata:
    """Metadata from an array's folder, its ``.zarray`` / ``zarr.json``, or the parsed JSON."""
    if isinstance(source, Mapping):
        return parse_metadata(source, "Zarr metadata", None)
    if not isinstance(source, (str, os.PathLike)):
        raise SpecError("Zarr metadata must be an array's folder, its .zarray or zarr.json "
                        f"file, or the parsed JSON, not {type(source).__name__}")
    path = Path(source)
    found = metadata_file(path)
    if found is None:
        if not path.exists():
            raise SpecError(f"{path} does not exist")
        why = (" (a group, not an array)" if (path / V2_GROUP_FILE).is_file() else "")
        raise SpecError(f"{path} holds no Zarr array metadata ({V3_FILE} or {V2_FILE}){why}")
    try:
        raw = read_regular_file(found, MAX_METADATA_BYTES, "Zarr metadata")
    except FileNotFoundError:
        raise SpecError(f"{found} does not exist") from None
    document = parse_json_text(raw, str(found), "Zarr metadata")
    return parse_metadata(document, str(found), found.parent)


def read_regular_file(path: Path, limit: int, what: str,
                      error: type[ChonkleError] = SpecError) -> bytes:
    """A regular file's bytes, at most ``limit`` (a FIFO or device is refused, not read).
    FileNotFoundError passes through: a chunk that is not stored is not an error."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) |
                     getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise error(f"cannot read {path} ({what}): {getattr(exc, 'strerror', exc)}") from None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise error(f"{path} is not a regular file ({what})")
        try:
            data = file.read(limit + 1)
        except OSError as exc:
            raise error(f"cannot read {path} ({what}): {exc.strerror}") from None
    if len(data) > limit:
        raise LimitExceeded(f"{path} ({what}) is over {limit} bytes")
    return data


def parse_metadata(document: Any, where: str, folder: Path | None) -> ZarrMetadata:
    if not isinstance(document, Mapping):
        raise SpecError(f"{where}: Zarr metadata must be a JSON object, not "
                        f"{type(document).__name__}")
    version = document.get("zarr_format")
    if version == 2:
        return _parse_v2(document, where, folder)
    if version == 3:
        return _parse_v3(document, where, folder)
    raise SpecError(f'{where}: "zarr_format" must be 2 or 3, not {version!r}')


# -- v2 --------------------------------------------------------------------------------------

def _parse_v2(doc: Mapping[str, Any], where: str, folder: Path | None) -> ZarrMetadata:
    shape = _shape(doc.get("shape"), "shape", where)
    chunks = _shape(doc.get("chunks"), "chunks", where, positive=True, like=shape)
    stored = _v2_dtype(doc.get("dtype"), where)
    dtype = stored.newbyteorder("=")
    _check_chunk_size(chunks, dtype, where)
    order = doc.get("order", "C")
    if order not in ("C", "F"):
        raise SpecError(f'{where}: "order" must be "C" or "F", not {order!r}')
    separator = doc.get("dimension_separator", ".")
    if separator is None:
        separator = "."
    if separator not in (".", "/"):
        raise SpecError(f'{where}: "dimension_separator" must be "." or "/", not {separator!r}')
    filters = doc.get("filters")
    if filters is None:
        filters = []
    if not isinstance(filters, list):
        raise SpecError(f'{where}: "filters" must be a list or null, not {_json(filters)}')
    compressor = doc.get("compressor")
    return ZarrMetadata(
        where, folder, 2, shape, chunks, dtype,
        parse_fill_value(doc.get("fill_value"), dtype, where), separator, None,
        stored_dtype=stored, order=order,
        filters=tuple(_v2_codec(f, f"filter {i}", where) for i, f in enumerate(filters)),
        compressor=None if compressor is None else _v2_codec(compressor, "compressor", where))


def _v2_dtype(value: Any, where: str) -> np.dtype:
    if not isinstance(value, str):
        raise SpecError(f'{where}: "dtype" {_short(value)} is not supported: chonkle decodes '
                        "arrays of bool, integers, floats and complex numbers (structured "
                        "dtypes are not)")
    try:
        dtype = np.dtype(value)
    except (TypeError, ValueError):
        raise SpecError(f'{where}: "dtype" {value!r} is not a numpy dtype') from None
    if dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None:
        raise SpecError(f'{where}: "dtype" {value!r} is not supported: chonkle decodes arrays '
                        "of bool, integers, floats and complex numbers")
    return dtype


def _v2_codec(value: Any, what: str, where: str) -> CodecDoc:
    if not isinstance(value, Mapping) or not isinstance(value.get("id"), str):
        raise SpecError(f'{where}: {what} must be a JSON object with an "id", not '
                        f"{_short(value)}")
    return value["id"], {k: v for k, v in value.items() if k != "id"}


# -- v3 --------------------------------------------------------------------------------------

def _parse_v3(doc: Mapping[str, Any], where: str, folder: Path | None) -> ZarrMetadata:
    node_type = doc.get("node_type")
    if node_type != "array":
        what = "a group, not an array" if node_type == "group" else f"node_type {node_type!r}"
        raise SpecError(f"{where}: {what}")
    shape = _shape(doc.get("shape"), "shape", where)
    grid_name, grid = named(doc.get("chunk_grid"), "chunk_grid", where)
    if grid_name != "regular":
        raise SpecError(f'{where}: chunk_grid {grid_name!r} is not supported (chonkle reads '
                        '"regular" grids)')
    chunks = _shape(grid.get("chunk_shape"), "chunk_grid chunk_shape", where, positive=True,
                    like=shape)
    data_type = doc.get("data_type")
    if not isinstance(data_type, str) or data_type not in ZARR_DATA_TYPES:
        raise SpecError(f'{where}: data_type {_short(data_type)} is not supported: chonkle '
                        f"decodes {', '.join(ZARR_DATA_TYPES)}")
    dtype = np.dtype(ZARR_DATA_TYPES[data_type])
    _check_chunk_size(chunks, dtype, where)
    if doc.get("storage_transformers"):
        raise SpecError(f"{where}: storage_transformers are not supported")
    key_name, key_config = named(doc.get("chunk_key_encoding", "default"),
                                 "chunk_key_encoding", where)
    if key_name not in ("default", "v2"):
        raise SpecError(f"{where}: chunk_key_encoding {key_name!r} is not supported "
                        '("default" and "v2" are)')
    separator = key_config.get("separator", "/" if key_name == "default" else ".")
    if separator not in (".", "/"):
        raise SpecError(f'{where}: the chunk key separator must be "." or "/", not '
                        f"{_short(separator)}")
    return ZarrMetadata(where, folder, 3, shape, chunks, dtype,
                        parse_fill_value(doc.get("fill_value"), dtype, where), separator,
                        "c" if key_name == "default" else None,
                        codecs=codec_list(doc.get("codecs"), "codecs", where))


def codec_list(value: Any, what: str, where: str) -> tuple[CodecDoc, ...]:
    """A v3 codec list: each a name, or ``{"name": ..., "configuration": {...}}``."""
    if not isinstance(value, list) or not value:
        raise SpecError(f'{where}: "{what}" must be a non-empty list of codecs, not '
                        f"{_short(value)}")
    if len(value) > 64:
        raise SpecError(f'{where}: "{what}" lists {len(value)} codecs; chonkle takes 64')
    return tuple(named(c, f"{what}[{i}]", where) for i, c in enumerate(value))


def named(value: Any, what: str, where: str) -> CodecDoc:
    """A v3 extension point: ``"name"`` or ``{"name": ..., "configuration": {...}}``."""
    if isinstance(value, str):
        return value, {}
    if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
        raise SpecError(f'{where}: {what} must be a name or a JSON object with a "name", not '
                        f"{_short(value)}")
    configuration = value.get("configuration", {})
    if not isinstance(configuration, Mapping):
        raise SpecError(f'{where}: {what} ({value["name"]}): "configuration" must be a JSON '
                        f"object, not {_short(configuration)}")
    return value["name"], configuration


# -- shared ----------------------------------------------------------------------------------

def _shape(value: Any, what: str, where: str, *, positive: bool = False,
           like: tuple[int, ...] | None = None) -> tuple[int, ...]:
    smallest = 1 if positive else 0
    if not isinstance(value, list) or len(value) > MAX_DIMENSIONS or not all(
            isinstance(n, int) and not isinstance(n, bool) and smallest <= n < 2**63
            for n in value):
        kind = "positive" if positive else "non-negative"
        raise SpecError(f'{where}: "{what}" must be a list of {kind} integers (at most '
                        f"{MAX_DIMENSIONS}), not {_short(value)}")
    if like is not None and len(value) != len(like):
        raise SpecError(f'{where}: "{what}" has {len(value)} dimensions, but the shape has '
                        f"{len(like)}")
    return tuple(value)


def _check_chunk_size(chunks: tuple[int, ...], dtype: np.dtype, where: str) -> None:
    """A chunk must fit what one codec call may produce: this bounds every allocation a
    chunk's metadata can cause (fill chunks, shards)."""
    nbytes = math.prod(chunks) * dtype.itemsize
    limit = settings.max_output()
    if nbytes > limit:
        raise LimitExceeded(f"{where}: one chunk is {nbytes} bytes, over the {limit}-byte "
                            f"output limit ({settings.MAX_OUTPUT})")


FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def parse_fill_value(value: Any, dtype: np.dtype, where: str) -> Any:
    """The fill value as a numpy scalar of ``dtype``, from its JSON form: null (the dtype's
    zero, as zarr-python 3 reads it), a number or boolean, ``"NaN"``, ``"Infinity"``,
    ``"-Infinity"``, a float's bytes in hex (``"0x7fc00000"``), or ``[real, imag]``."""
    if value is None:
        return dtype.type(0)
    try:
        if dtype.kind == "c":
            if not isinstance(value, list) or len(value) != 2:
                raise ValueError("a complex fill value is [real, imaginary]")
            part = np.dtype(f"f{dtype.itemsize // 2}")
            return dtype.type(complex(_float(value[0], part), _float(value[1], part)))
        if dtype.kind == "f":
            return dtype.type(_float(value, dtype))
        if dtype.kind == "b":
            if isinstance(value, bool) or value in (0, 1):
                return dtype.type(bool(value))
            raise ValueError("a bool fill value is true or false")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError("an integer fill value is a whole number")
        info = np.iinfo(dtype)
        if not info.min <= value <= info.max:
            raise ValueError(f"out of range for {dtype}")
        return dtype.type(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise SpecError(f'{where}: "fill_value" {_short(value)} is not a {dtype} value: '
                        f"{exc}") from None


def _float(value: Any, dtype: np.dtype) -> float:
    if isinstance(value, str):
        if value in FLOAT_WORDS:
            return FLOAT_WORDS[value]
        if value.startswith("0x") and len(value) == 2 + 2 * dtype.itemsize:
            return float(np.frombuffer(bytes.fromhex(value[2:]),
                                       dtype.newbyteorder(">"))[0])
        raise ValueError('a float fill value is a number, "NaN", "Infinity", "-Infinity" or '
                         "its bytes in hex")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("a float fill value is a number")
    return float(value)


def _json(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value),
                                                                       type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
