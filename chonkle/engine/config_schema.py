"""A Wasm codec's declared configuration, checked when a pipeline is loaded.

A module may carry a custom section ``chonkle.config``: a JSON Schema (the small subset
below) for its ``configuration`` object. chonkle checks every step's configuration against
it before the first chunk, so a typo such as ``bytes_per_sampel`` is a ``SpecError`` naming
the key and the step, instead of a codec silently using a default. Every codec shipped with
chonkle declares one; for other modules it is optional (no section: the configuration is
handed over unchecked, as before).

Supported keywords: ``type`` (a name or a list of names: object, array, string, integer,
number, boolean, null), ``enum``, ``minimum``, ``maximum``, ``properties``, ``required``,
``additionalProperties`` (``false`` or a schema), ``items``, ``minItems``, ``maxItems``,
``description``. Anything else in a schema is refused, so a schema never silently means less
than its author thought.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from chonkle.engine.wasm_binary import custom_section

SECTION_NAME = "chonkle.config"
MAX_SCHEMA_BYTES = 64 * 1024
MAX_DEPTH = 16

KEYWORDS = frozenset({
    "type", "enum", "minimum", "maximum", "properties", "required", "additionalProperties",
    "items", "minItems", "maxItems", "description", "$schema", "title",
})
TYPE_NAMES = ("object", "array", "string", "integer", "number", "boolean", "null")


class SchemaError(ValueError):
    """The schema itself is malformed (the module's fault)."""


class ConfigInvalid(ValueError):
    """A configuration does not match the schema; the message names the key."""


def declared(wasm: bytes) -> dict[str, Any] | None:
    """The schema a module declares in its ``chonkle.config`` section, or None.

    Raises SchemaError for a malformed schema, MalformedModule for a malformed module.
    """
    return _declared(hashlib.sha256(wasm).digest(), wasm)


@functools.lru_cache(maxsize=64)
def _declared(digest: bytes, wasm: bytes) -> dict[str, Any] | None:
    payload = custom_section(wasm, SECTION_NAME)
    return None if payload is None else parse_schema(payload)


def parse_schema(payload: bytes) -> dict[str, Any]:
    """Decode and check a ``chonkle.config`` section."""
    if len(payload) > MAX_SCHEMA_BYTES:
        raise SchemaError(f"the {SECTION_NAME} section is over {MAX_SCHEMA_BYTES} bytes")
    try:
        schema = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SchemaError(f"the {SECTION_NAME} section is not JSON: {exc}") from None
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise SchemaError(f'the {SECTION_NAME} schema must be an object schema ("type": '
                          '"object")')
    _check_schema(schema, "configuration", 0)
    return schema


def _check_schema(schema: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise SchemaError(f"schema nested deeper than {MAX_DEPTH} levels at {where}")
    if not isinstance(schema, dict):
        raise SchemaError(f"schema for {where} is not an object")
    unknown = set(schema) - KEYWORDS
    if unknown:
        raise SchemaError(f"schema for {where} uses unsupported keywords {sorted(unknown)}")
    types = schema.get("type", [])
    for name in [types] if isinstance(types, str) else types:
        if name not in TYPE_NAMES:
            raise SchemaError(f"schema for {where} names unknown type {name!r}")
    if "enum" in schema and not isinstance(schema["enum"], list):
        raise SchemaError(f'"enum" for {where} is not a list')
    for key in ("properties",):
        for name, sub in schema.get(key, {}).items():
            _check_schema(sub, f"{where}.{name}", depth + 1)
    extra = schema.get("additionalProperties", True)
    if extra is not True and extra is not False:
        _check_schema(extra, f"{where}.*", depth + 1)
    if "items" in schema:
        _check_schema(schema["items"], f"{where}[]", depth + 1)
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise SchemaError(f'"required" for {where} is not a list of names')


def validate(value: Any, schema: Mapping[str, Any], where: str = "") -> None:
    """Raise :class:`ConfigInvalid` naming the first key that does not match."""
    label = f'"{where}"' if where else "itself"
    types = schema.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(value, name) for name in allowed):
            raise ConfigInvalid(f"{label} must be {' or '.join(_article(t) for t in allowed)}, "
                                f"not {_describe(value)}")
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        options = ", ".join(json.dumps(option) for option in schema["enum"][:20])
        more = ", ..." if len(schema["enum"]) > 20 else ""
        raise ConfigInvalid(f"{label} must be one of {options}{more}, not {json.dumps(value)}")
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            raise ConfigInvalid(f"{label} must be at least {schema['minimum']}, not {value}")
        if "maximum" in schema and value > schema["maximum"]:
            raise ConfigInvalid(f"{label} must be at most {schema['maximum']}, not {value}")
    if isinstance(value, Mapping):
        _validate_object(value, schema, where)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise ConfigInvalid(f"{label} needs at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise ConfigInvalid(f"{label} takes at most {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                validate(item, schema["items"], f"{where}[{i}]")


def _validate_object(value: Mapping[str, Any], schema: Mapping[str, Any], where: str) -> None:
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    if extra is False:  # first: a misspelled key is named as such, not as a missing one
        for key in value:
            if key not in properties:
                known = ", ".join(sorted(properties)) or "none"
                raise ConfigInvalid(f'has unknown key "{_join(where, key)}" (known keys: '
                                    f"{known})")
    for key in schema.get("required", []):
        if key not in value:
            raise ConfigInvalid(f'lacks the required key "{_join(where, key)}"')
    for key, item in value.items():
        if key in properties:
            validate(item, properties[key], _join(where, key))
        elif isinstance(extra, Mapping):
            validate(item, extra, _join(where, key))


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":  # 2.0 is not: codecs parse integers strictly
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, {"object": Mapping, "array": list, "string": str,
                              "boolean": bool, "null": type(None)}[name])


def _same(value: Any, option: Any) -> bool:
    """JSON equality: 1 == 1.0, but true != 1."""
    if isinstance(value, bool) or isinstance(option, bool):
        return type(value) is type(option) and value == option
    return value == option


def _article(type_name: str) -> str:
    return {"integer": "an integer", "array": "a list", "object": "an object",
            "null": "null"}.get(type_name, f"a {type_name}")


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {json.dumps(value)}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {json.dumps(value)}"
    return {dict: "an object", list: "a list", type(None): "null"}.get(type(value),
                                                                      type(value).__name__)
