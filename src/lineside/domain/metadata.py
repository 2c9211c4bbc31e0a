"""Metadata field definitions of a product and validation of a device's metadata.

Values arrive either typed (JSON) or as text (CSV cells); both paths end in the same
checks so a CSV import and an API call accept exactly the same devices.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lineside.domain.errors import InvalidInput
from lineside.domain.text import has_control_characters

FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
MAX_STRING_LENGTH = 1024
RESERVED_NAMES = frozenset({"id", "serial_number", "mac", "state", "product_id"})
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class FieldType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"


@dataclass(frozen=True)
class MetadataField:
    name: str
    type: FieldType
    required: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type.value, "required": self.required}


def check_field_definitions(fields: list[MetadataField]) -> None:
    seen: set[str] = set()
    for definition in fields:
        if not FIELD_NAME.match(definition.name):
            raise InvalidInput(
                f"Metadata field name '{definition.name}' must start with a letter or "
                "underscore and hold only letters, digits and underscores (at most 64)."
            )
        if definition.name in RESERVED_NAMES:
            raise InvalidInput(f"Metadata field name '{definition.name}' is reserved.")
        if definition.name in seen:
            raise InvalidInput(f"Metadata field '{definition.name}' is defined twice.")
        seen.add(definition.name)


def _check_value(definition: MetadataField, value: Any) -> str | None:
    """The reason ``value`` does not fit ``definition``, or None when it does."""
    kind = definition.type
    if kind is FieldType.STRING:
        if not isinstance(value, str):
            return "must be a string"
        if len(value) > MAX_STRING_LENGTH:
            return f"must be at most {MAX_STRING_LENGTH} characters"
        if has_control_characters(value, allow_newlines=True):
            return "must not contain control characters"
        return None
    if kind is FieldType.BOOLEAN:
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(value, bool):
        return f"must be {'an integer' if kind is FieldType.INTEGER else 'a number'}"
    if kind is FieldType.INTEGER:
        return None if isinstance(value, int) else "must be an integer"
    if isinstance(value, int):
        return None
    return None if isinstance(value, float) and math.isfinite(value) else "must be a number"


def metadata_problems(fields: list[MetadataField], metadata: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every (field, reason) that makes ``metadata`` invalid for a product with ``fields``."""
    by_name = {definition.name: definition for definition in fields}
    problems = [(name, "is not a field of this product") for name in metadata if name not in by_name]
    for definition in fields:
        value = metadata.get(definition.name)
        if value is None:
            if definition.required:
                problems.append((definition.name, "is required"))
            continue
        reason = _check_value(definition, value)
        if reason:
            problems.append((definition.name, reason))
    return problems


def validate_metadata(fields: list[MetadataField], metadata: Mapping[str, Any]) -> dict[str, Any]:
    problems = metadata_problems(fields, metadata)
    if problems:
        raise InvalidInput("; ".join(f"metadata.{name} {reason}" for name, reason in problems))
    return {name: value for name, value in metadata.items() if value is not None}


def parse_text_value(definition: MetadataField, text: str) -> tuple[Any, str | None]:
    """Turn a CSV cell into a typed value: (value, None) or (None, reason)."""
    text = text.strip()
    if text == "":
        return None, None
    kind = definition.type
    if kind is FieldType.STRING:
        return text, None
    if kind is FieldType.BOOLEAN:
        lowered = text.lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE, None
        return None, "must be true or false"
    reason = f"must be {'an integer' if kind is FieldType.INTEGER else 'a number'}"
    try:
        number = int(text) if kind is FieldType.INTEGER else float(text)
    except ValueError:
        return None, reason
    return (number, None) if math.isfinite(number) else (None, reason)
