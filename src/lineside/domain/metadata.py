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


@dataclass(frozen=True)
class FieldChanges:
    """How a product's metadata fields change, field by field (matched by name)."""

    added: tuple[MetadataField, ...]
    removed: tuple[MetadataField, ...]
    changed: tuple[tuple[MetadataField, MetadataField], ...]  # (before, after) of one name

    @property
    def any(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def field_changes(before: list[MetadataField], after: list[MetadataField]) -> FieldChanges:
    old = {definition.name: definition for definition in before}
    new = {definition.name: definition for definition in after}
    return FieldChanges(
        added=tuple(definition for definition in after if definition.name not in old),
        removed=tuple(definition for definition in before if definition.name not in new),
        changed=tuple(
            (old[definition.name], definition)
            for definition in after
            if definition.name in old and old[definition.name] != definition
        ),
    )


def _change_refused(before: MetadataField | None, after: MetadataField) -> str | None:
    """Why existing devices forbid ``before`` (None: a new field) becoming ``after``."""
    if before is None:
        return f"a new field '{after.name}' must be optional" if after.required else None
    if before.type is not after.type:
        return f"field '{after.name}' keeps its type ({before.type.value}, not {after.type.value})"
    if after.required and not before.required:
        return f"field '{after.name}' cannot become required"
    return None


def fields_change_refused(
    before: list[MetadataField], after: list[MetadataField], devices: int
) -> str | None:
    """Why a product with ``devices`` devices cannot change its metadata fields from ``before``
    to ``after`` (None when it can). A device's metadata is checked when it is defined and then
    kept as it is, so while a product has devices, a field may be added when optional, removed
    (the values devices hold stay with them) or made optional; but a new required field, an
    optional field made required or a field of another type would make existing devices wrong
    for their own product. A product without devices may change anything."""
    if devices == 0:
        return None
    changes = field_changes(before, after)
    pairs: list[tuple[MetadataField | None, MetadataField]] = [(None, new) for new in changes.added]
    pairs += changes.changed
    reasons = [reason for old, new in pairs if (reason := _change_refused(old, new))]
    if not reasons:
        return None
    held = "1 device" if devices == 1 else f"{devices:,} devices"
    return (
        f"The product has {held}, whose metadata must stay valid: {'; '.join(reasons)}. "
        "Add a field as optional, or change the fields before any device is made."
    )
