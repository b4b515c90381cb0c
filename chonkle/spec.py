"""Pipeline JSON -> validated, immutable step descriptions.

Everything a user can get wrong in a pipeline file is caught here, before any
module is fetched or compiled, with the step's position and name in the message.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from chonkle.errors import SpecError

StepType = Literal["numcodecs", "wasm"]
STEP_TYPES: tuple[str, ...] = ("numcodecs", "wasm")
NUMCODECS_PREFIX = "numcodecs."
STEP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")

# A pipeline comes with a data set, from anywhere: it is held to sizes no real one needs.
MAX_SPEC_BYTES = 1 * 2**20
MAX_DEPTH = 32
MAX_STEPS = 256

# The numcodecs codecs a pipeline may name: the data codecs numcodecs and chonkle ship.
# Left out: pickle (unpickling a chunk runs arbitrary Python), and every codec registered by
# another package (its code is not vetted here). CHONKLE_ALLOW_CODECS or allow_codecs= adds
# names for pipelines you trust.
DATA_CODECS = frozenset({
    "adler32", "astype", "base64", "bitround", "blosc", "bz2", "categorize", "crc32",
    "crc32c", "delta", "fixedscaleoffset", "fletcher32", "gzip", "jenkins_lookup3", "json2",
    "lz4", "lzma", "msgpack2", "packbits", "pcodec", "quantize", "shuffle", "vlen-array",
    "vlen-bytes", "vlen-utf8", "zfpy", "zlib", "zstd",
    "bytes", "tiff_predictor_2", "tiff_predictor_3",  # chonkle's own
})


@dataclass(frozen=True)
class StepSpec:
    """One codec of a pipeline, in the order the pipeline file lists it (encode order)."""

    index: int
    name: str
    type: StepType
    configuration: Mapping[str, Any] = field(default_factory=dict)
    uri: str | None = None
    sha256: str | None = None

    @property
    def label(self) -> str:
        """How messages name this step: its index in the ``codecs`` list and its name."""
        return f"step {self.index} ({self.name})"


@dataclass(frozen=True)
class PipelineSpec:
    steps: tuple[StepSpec, ...]
    base_dir: Path | None
    """Folder that relative ``file:`` URIs resolve against (the pipeline file's folder)."""


def load_pipeline_spec(source: Path | str | Mapping[str, Any] | Sequence[Any]) -> PipelineSpec:
    """Parse a pipeline from a path to a JSON file, a parsed ``{"codecs": [...]}`` mapping,
    or a list of step mappings (relative ``file:`` URIs in the last two resolve against the
    current directory)."""
    if isinstance(source, (Mapping, list, tuple)):
        return parse_pipeline(source, base_dir=None)
    if not isinstance(source, (str, PathLike)):
        raise SpecError("a pipeline must be a path to a JSON file, a mapping with \"codecs\" "
                        f"or a list of steps, not {type(source).__name__}")
    document, base_dir = read_pipeline_document(source)
    return parse_pipeline(document, base_dir=base_dir)


def read_pipeline_document(source: str | PathLike[str]) -> tuple[Any, Path]:
    """The parsed JSON of a pipeline file, and the folder its relative URIs resolve against."""
    path = Path(source)
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(f"pipeline file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise SpecError(f"cannot read pipeline file {str(path)!r}: {exc.strerror}") from exc
    return parse_pipeline_text(raw, f"pipeline file {str(path)!r}"), path.resolve().parent


def parse_pipeline_text(raw: bytes, where: str) -> Any:
    """A pipeline document from JSON text, refused (SpecError) when oversized or malformed."""
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"{where} is over {MAX_SPEC_BYTES} bytes; no real pipeline is that "
                        "large")
    return parse_json_text(raw, where, "pipeline")


def parse_json_text(raw: bytes, where: str, kind: str) -> Any:
    """A JSON document describing a `kind` (a pipeline, Zarr metadata), every way it can be
    malformed a SpecError naming `where`."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SpecError(f"{where} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{where} is not valid JSON: {exc}") from None
    except RecursionError:
        raise SpecError(f"{where} is nested deeper than any {kind}") from None
    except ValueError as exc:  # an integer of thousands of digits, for one
        raise SpecError(f"{where} holds a value no {kind} has: {exc}") from None


def parse_pipeline(document: Any, *, base_dir: Path | None) -> PipelineSpec:
    """A pipeline from its JSON form: ``{"codecs": [step, ...]}`` or the list of steps."""
    check_size(document)
    return PipelineSpec(tuple(parse_step(i, s) for i, s in enumerate(step_list(document))),
                        base_dir)


def check_size(document: Any) -> None:
    """Refuse a document nested deeper, or larger, than any real pipeline (SpecError).

    Walked without recursion, so a hostile document cannot exhaust the stack here.
    """
    pending: list[tuple[Any, int]] = [(document, 1)]
    size = 0  # about the bytes of its JSON: 8 per value, plus the text of every string
    while pending:
        value, depth = pending.pop()
        size += 8
        if depth > MAX_DEPTH:
            raise SpecError(f"the pipeline is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, Mapping):
            size += sum(len(key) for key in value if isinstance(key, str))
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, (list, tuple)):
            pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            size += len(value)
        if size > MAX_SPEC_BYTES:
            raise SpecError(f"the pipeline is over {MAX_SPEC_BYTES} bytes; no real pipeline "
                            "is that large")


def step_list(document: Any) -> list[Any]:
    """The steps of a pipeline document, which is ``{"codecs": [...]}`` or the list itself."""
    if isinstance(document, (list, tuple)):
        codecs = list(document)
        if not codecs:
            raise SpecError("the list of steps is empty: a pipeline needs at least one step")
        if len(codecs) > MAX_STEPS:
            raise SpecError(f"the pipeline has {len(codecs)} steps; chonkle takes at most "
                            f"{MAX_STEPS}")
        return codecs
    if not isinstance(document, Mapping):
        raise SpecError('a pipeline must be a JSON object with "codecs" or a list of steps, '
                        f"not {_json_type(document)}")
    if "codecs" not in document:
        raise SpecError('a pipeline needs a "codecs" key listing its codec steps')
    codecs = document["codecs"]
    if not isinstance(codecs, list):
        raise SpecError(f'"codecs" must be a list of steps, not {_json_type(codecs)}')
    if not codecs:
        raise SpecError('"codecs" is empty: a pipeline needs at least one step')
    if len(codecs) > MAX_STEPS:
        raise SpecError(f"the pipeline has {len(codecs)} steps; chonkle takes at most "
                        f"{MAX_STEPS}")
    return codecs


def parse_step(index: int, raw: Any) -> StepSpec:
    where = f"step {index}"
    if not isinstance(raw, Mapping):
        raise SpecError(f"a step must be a JSON object, not {_json_type(raw)}", step=where)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError('missing "name" (a non-empty string naming the codec)', step=where)
    if not STEP_NAME.fullmatch(name) or len(name) > 128:
        raise SpecError(f'"name" {name[:80]!r} is not a codec name (letters, digits, "_", "." '
                        'and "-", not starting with "." or "-")', step=where)
    where = f"step {index} ({name})"
    step_type = raw.get("type")
    if step_type is None:
        raise SpecError(f'missing "type" (one of {", ".join(STEP_TYPES)})', step=where)
    if step_type not in STEP_TYPES:
        raise SpecError(
            f'unknown "type" {step_type!r} (expected one of {", ".join(STEP_TYPES)})', step=where
        )
    configuration = raw.get("configuration", {})
    if not isinstance(configuration, Mapping):
        raise SpecError(
            f'"configuration" must be a JSON object, not {_json_type(configuration)}', step=where
        )
    unknown = set(raw) - {"name", "type", "configuration", "uri", "sha256"}
    if unknown:
        raise SpecError(f"unknown keys {sorted(unknown)}", step=where)
    uri = raw.get("uri")
    sha256 = raw.get("sha256")
    if step_type == "numcodecs":
        if uri is not None or sha256 is not None:
            raise SpecError('"uri" and "sha256" belong to wasm steps only', step=where)
        if name.startswith(NUMCODECS_PREFIX):
            name = name[len(NUMCODECS_PREFIX):]
    else:
        if uri is not None and (not isinstance(uri, str) or not uri):
            raise SpecError('"uri" must be a non-empty string', step=where)
        if sha256 is not None and not _is_sha256_hex(sha256):
            raise SpecError('"sha256" must be 64 hexadecimal digits', step=where)
    return StepSpec(index, name, step_type, dict(configuration), uri,
                    sha256.lower() if isinstance(sha256, str) else None)


def _is_sha256_hex(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(
        c in "0123456789abcdefABCDEF" for c in value
    )


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def rebase_file_uris(document: Any, from_dir: Path, to_dir: Path) -> Any:
    """A copy of a pipeline document whose relative ``file:`` URIs, written for a file in
    `from_dir`, still name the same modules from a file in `to_dir`."""
    from chonkle.sources.file import file_uri_path, is_relative_file_uri

    def rebase(step: Any) -> Any:
        uri = step.get("uri") if isinstance(step, Mapping) else None
        if not isinstance(uri, str) or not is_relative_file_uri(uri):
            return step
        target = file_uri_path(uri, from_dir)
        try:
            relative = Path(os.path.relpath(target, to_dir)).as_posix()
        except ValueError:  # another drive (Windows): only an absolute URI works
            return {**step, "uri": target.as_uri()}
        return {**step, "uri": f"file:{relative}"}

    steps = [rebase(step) for step in step_list(document)]
    return steps if isinstance(document, (list, tuple)) else {**document, "codecs": steps}


def check_numcodecs_allowed(step: StepSpec, allowed: frozenset[str],
                            known: Callable[[str], bool]) -> None:
    """A numcodecs step must name a data codec, or one the user allowed (SpecError)."""
    if step.name in DATA_CODECS or step.name in allowed:
        return
    if not known(step.name):
        raise SpecError(f"unknown numcodecs codec {step.name!r}", step=step.label)
    why = ("it unpickles chunks, which runs arbitrary Python" if step.name == "pickle"
           else "it is not one of the data codecs numcodecs and chonkle ship")
    raise SpecError(f"numcodecs codec {step.name!r} is not allowed: {why}; if you trust this "
                    f"pipeline, allow it with CHONKLE_ALLOW_CODECS={step.name} or "
                    f"allow_codecs=[{step.name!r}]", step=step.label)
