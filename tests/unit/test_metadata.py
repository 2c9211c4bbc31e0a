"""Metadata field definitions, and the checks a device's metadata must pass."""

from __future__ import annotations

import math
from typing import Any

import pytest

from lineside.domain.errors import InvalidInput
from lineside.domain.metadata import (
    MAX_STRING_LENGTH,
    RESERVED_NAMES,
    FieldType,
    MetadataField,
    check_field_definitions,
    metadata_problems,
    parse_text_value,
    validate_metadata,
)

STRING = MetadataField("label", FieldType.STRING)
INTEGER = MetadataField("batch", FieldType.INTEGER)
NUMBER = MetadataField("voltage", FieldType.NUMBER)
BOOLEAN = MetadataField("sealed", FieldType.BOOLEAN)
ALL_TYPES = [STRING, INTEGER, NUMBER, BOOLEAN]


# Field definitions


@pytest.mark.parametrize("name", ["a", "_", "colour", "Batch_2", "_x9", "a" * 64])
def test_well_formed_field_names_are_accepted(name: str) -> None:
    check_field_definitions([MetadataField(name, FieldType.STRING)])


@pytest.mark.parametrize(
    "name", ["", "9lives", "has space", "dash-ed", "dot.ted", "ünïcode", "a" * 65, "trailing\n"]
)
def test_badly_formed_field_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="must start with a letter or underscore"):
        check_field_definitions([MetadataField(name, FieldType.STRING)])


@pytest.mark.parametrize("name", sorted(RESERVED_NAMES))
def test_reserved_field_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="reserved"):
        check_field_definitions([MetadataField(name, FieldType.STRING)])


def test_the_device_columns_are_reserved() -> None:
    assert {"serial_number", "mac", "id", "state"} <= RESERVED_NAMES


def test_a_field_defined_twice_is_refused_even_with_another_type() -> None:
    fields = [MetadataField("colour", FieldType.STRING), MetadataField("colour", FieldType.INTEGER)]
    with pytest.raises(InvalidInput, match="'colour' is defined twice"):
        check_field_definitions(fields)


def test_field_names_are_case_sensitive_so_two_cases_are_two_fields() -> None:
    check_field_definitions(
        [MetadataField("Colour", FieldType.STRING), MetadataField("colour", FieldType.STRING)]
    )


def test_a_field_describes_itself_as_a_plain_dict() -> None:
    assert MetadataField("batch", FieldType.INTEGER, required=True).as_dict() == {
        "name": "batch",
        "type": "integer",
        "required": True,
    }


# Typed values (JSON)


@pytest.mark.parametrize(
    ("definition", "value"),
    [
        (STRING, ""),
        (STRING, "x" * MAX_STRING_LENGTH),
        (INTEGER, 0),
        (INTEGER, -(2**40)),
        (NUMBER, 3),
        (NUMBER, 3.25),
        (NUMBER, -0.0),
        (BOOLEAN, True),
        (BOOLEAN, False),
    ],
    ids=repr,
)
def test_values_of_the_right_type_are_accepted(definition: MetadataField, value: Any) -> None:
    assert metadata_problems([definition], {definition.name: value}) == []
    assert validate_metadata([definition], {definition.name: value}) == {definition.name: value}


@pytest.mark.parametrize(
    ("definition", "value", "reason"),
    [
        (STRING, 5, "must be a string"),
        (STRING, True, "must be a string"),
        (STRING, "x" * (MAX_STRING_LENGTH + 1), f"must be at most {MAX_STRING_LENGTH} characters"),
        (INTEGER, True, "must be an integer"),
        (INTEGER, False, "must be an integer"),
        (INTEGER, 1.0, "must be an integer"),
        (INTEGER, "7", "must be an integer"),
        (NUMBER, True, "must be a number"),
        (NUMBER, "1.5", "must be a number"),
        (NUMBER, math.nan, "must be a number"),
        (NUMBER, math.inf, "must be a number"),
        (NUMBER, -math.inf, "must be a number"),
        (BOOLEAN, 1, "must be true or false"),
        (BOOLEAN, "true", "must be true or false"),
        (BOOLEAN, 0, "must be true or false"),
    ],
    ids=repr,
)
def test_values_of_the_wrong_type_are_refused_with_the_reason(
    definition: MetadataField, value: Any, reason: str
) -> None:
    assert metadata_problems([definition], {definition.name: value}) == [(definition.name, reason)]
    with pytest.raises(InvalidInput, match=f"metadata.{definition.name} {reason}"):
        validate_metadata([definition], {definition.name: value})


def test_a_required_field_that_is_missing_or_null_is_reported() -> None:
    required = MetadataField("batch", FieldType.INTEGER, required=True)
    assert metadata_problems([required], {}) == [("batch", "is required")]
    assert metadata_problems([required], {"batch": None}) == [("batch", "is required")]


def test_an_optional_field_may_be_missing_or_null_and_null_is_dropped() -> None:
    assert metadata_problems(ALL_TYPES, {}) == []
    assert validate_metadata(ALL_TYPES, {"label": None, "batch": 4}) == {"batch": 4}


def test_a_field_the_product_does_not_define_is_refused() -> None:
    assert metadata_problems([STRING], {"colour": "red"}) == [("colour", "is not a field of this product")]


def test_every_problem_is_reported_at_once() -> None:
    required = MetadataField("batch", FieldType.INTEGER, required=True)
    problems = metadata_problems([required, NUMBER, BOOLEAN], {"extra": 1, "voltage": "high", "sealed": 1})
    assert sorted(problems) == [
        ("batch", "is required"),
        ("extra", "is not a field of this product"),
        ("sealed", "must be true or false"),
        ("voltage", "must be a number"),
    ]
    with pytest.raises(InvalidInput) as raised:
        validate_metadata([required, NUMBER, BOOLEAN], {"extra": 1, "voltage": "high", "sealed": 1})
    assert raised.value.detail.count(";") == 3


# Text values (CSV cells)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        (" Yes ", True),
        ("1", True),
        ("false", False),
        ("False", False),
        ("no", False),
        ("NO", False),
        ("0", False),
    ],
)
def test_boolean_cells_read_the_usual_spellings(text: str, expected: bool) -> None:
    assert parse_text_value(BOOLEAN, text) == (expected, None)


@pytest.mark.parametrize("text", ["y", "n", "on", "off", "2", "truthy", "-1"])
def test_other_boolean_cells_are_refused(text: str) -> None:
    assert parse_text_value(BOOLEAN, text) == (None, "must be true or false")


@pytest.mark.parametrize(("text", "expected"), [("42", 42), ("-7", -7), (" 0 ", 0), ("+3", 3)])
def test_integer_cells_become_ints(text: str, expected: int) -> None:
    value, reason = parse_text_value(INTEGER, text)
    assert reason is None
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize("text", ["4.0", "1e3", "seven", "0x10", "nan", "inf"])
def test_non_integer_cells_are_refused_for_an_integer_field(text: str) -> None:
    assert parse_text_value(INTEGER, text) == (None, "must be an integer")


@pytest.mark.parametrize(("text", "expected"), [("3.3", 3.3), ("-1e-3", -0.001), ("5", 5.0), (" 2.5 ", 2.5)])
def test_number_cells_become_floats(text: str, expected: float) -> None:
    value, reason = parse_text_value(NUMBER, text)
    assert reason is None
    assert value == expected
    assert type(value) is float


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "three", "1,5"])
def test_non_finite_or_unreadable_number_cells_are_refused(text: str) -> None:
    assert parse_text_value(NUMBER, text) == (None, "must be a number")


@pytest.mark.parametrize("definition", ALL_TYPES, ids=lambda d: d.type.value)
@pytest.mark.parametrize("text", ["", "   ", "\t"])
def test_a_blank_cell_means_no_value_whatever_the_type(definition: MetadataField, text: str) -> None:
    assert parse_text_value(definition, text) == (None, None)


def test_string_cells_are_trimmed_and_kept_as_text() -> None:
    assert parse_text_value(STRING, "  Blue 7 ") == ("Blue 7", None)
    assert parse_text_value(STRING, "007") == ("007", None)


@pytest.mark.parametrize(
    ("definition", "text"), [(INTEGER, "12"), (NUMBER, "0.5"), (BOOLEAN, "yes"), (STRING, "x")], ids=repr
)
def test_a_parsed_cell_passes_the_same_checks_as_a_json_value(definition: MetadataField, text: str) -> None:
    value, reason = parse_text_value(definition, text)
    assert reason is None
    assert metadata_problems([definition], {definition.name: value}) == []
