"""Pipeline JSON -> validated, immutable step descriptions.

Everything a user can get wrong in a pipeline file is caught here, before any
module is fetched or compiled, with the step's position and name in the message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from chonkle.errors import SpecError

StepType = Literal["numcodecs", "wasm"]
STEP_TYPES: tuple[str, ...] = ("numcodecs", "wasm")
NUMCODECS_PREFIX = "numcodecs."


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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"pipeline file {str(path)!r} does not exist") from None
    except UnicodeDecodeError:
        raise SpecError(f"pipeline file {str(path)!r} is not UTF-8 text") from None
    except OSError as exc:
        raise SpecError(f"cannot read pipeline file {str(path)!r}: {exc.strerror}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"pipeline file {str(path)!r} is not valid JSON: {exc}") from exc
    return document, path.resolve().parent


def parse_pipeline(document: Any, *, base_dir: Path | None) -> PipelineSpec:
    """A pipeline from its JSON form: ``{"codecs": [step, ...]}`` or the list of steps."""
    return PipelineSpec(tuple(parse_step(i, s) for i, s in enumerate(step_list(document))),
                        base_dir)


def step_list(document: Any) -> list[Any]:
    """The steps of a pipeline document, which is ``{"codecs": [...]}`` or the list itself."""
    if isinstance(document, (list, tuple)):
        codecs = list(document)
        if not codecs:
            raise SpecError("the list of steps is empty: a pipeline needs at least one step")
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
    return codecs


def parse_step(index: int, raw: Any) -> StepSpec:
    where = f"step {index}"
    if not isinstance(raw, Mapping):
        raise SpecError(f"a step must be a JSON object, not {_json_type(raw)}", step=where)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError('missing "name" (a non-empty string naming the codec)', step=where)
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
