"""Reading a batch of devices from CSV, and every reason a batch is refused."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lineside.domain.device_specs import (
    MAX_BATCH_SIZE,
    DeviceSpec,
    batch_problems,
    check_batch_size,
    first_problem_per_cell,
    normalize_mac,
    parse_csv,
    serial_number_problem,
    specs_from_serial_numbers,
)
from lineside.domain.errors import BatchRejected, InvalidInput, RowError
from lineside.domain.metadata import FieldType, MetadataField

FIELDS = [
    MetadataField("batch", FieldType.INTEGER, required=True),
    MetadataField("voltage", FieldType.NUMBER),
    MetadataField("sealed", FieldType.BOOLEAN),
    MetadataField("colour", FieldType.STRING),
]
SERIAL_REASON = "must be 1 to 128 printable ASCII characters without leading or trailing spaces"


def rejection(text: str, fields: list[MetadataField] = FIELDS) -> list[RowError]:
    with pytest.raises(BatchRejected) as raised:
        parse_csv(text, fields)
    return raised.value.errors


# The header


def test_a_header_naming_unknown_and_repeated_columns_and_lacking_the_serial_is_refused_with_all_three() -> (
    None
):
    errors = rejection("Batch,colour,colour\n7,red,blue\n")
    assert set(errors) == {
        RowError(1, "Batch", "is not a column this product knows (headers are case-sensitive)"),
        RowError(1, "colour", "appears twice in the header"),
        RowError(1, "serial_number", "the header must name this column"),
    }


@pytest.mark.parametrize("text", ["", "\n", " , \n", "\ufeff"], ids=repr)
def test_a_csv_without_a_header_row_is_refused(text: str) -> None:
    assert rejection(text) == [RowError(1, "", "the CSV needs a header row naming its columns")]


def test_header_cells_are_trimmed() -> None:
    specs, problems = parse_csv(" serial_number , batch \nSN1,3\n", FIELDS)
    assert problems == []
    assert specs == [DeviceSpec("SN1", metadata={"batch": 3}, row=2)]


def test_a_byte_order_mark_before_the_header_is_ignored() -> None:
    specs, problems = parse_csv("\ufeffserial_number,batch\r\nSN1,1\r\n", FIELDS)
    assert problems == []
    assert [spec.serial_number for spec in specs] == ["SN1"]


def test_unreadable_csv_is_refused_with_its_line() -> None:
    errors = rejection('serial_number,batch\nSN1,1\n"SN2"x,2\n')
    assert len(errors) == 1
    assert errors[0].row == 3
    assert errors[0].reason.startswith("is not valid CSV")


# Rows


def test_a_good_row_becomes_a_spec_with_typed_metadata_and_a_normal_mac() -> None:
    text = "serial_number,mac,batch,voltage,sealed,colour\nSN-1,AA-BB-CC-DD-EE-FF,12,3.3,yes,Blue\n"
    specs, problems = parse_csv(text, FIELDS)
    assert problems == []
    assert specs == [
        DeviceSpec(
            serial_number="SN-1",
            mac="aa:bb:cc:dd:ee:ff",
            metadata={"batch": 12, "voltage": 3.3, "sealed": True, "colour": "Blue"},
            row=2,
        )
    ]


def test_blank_cells_leave_metadata_out_and_blank_mac_is_none() -> None:
    specs, problems = parse_csv("serial_number,mac,batch,colour\nSN1,,5,\n", FIELDS)
    assert problems == []
    assert specs == [DeviceSpec("SN1", mac=None, metadata={"batch": 5}, row=2)]


def test_every_bad_cell_is_reported_with_its_row_counting_the_header_as_row_one() -> None:
    text = (
        "serial_number,mac,batch,voltage,sealed\n"
        "SN1,00:11:22:33:44:55,1,1.5,true\n"
        "SN2,not-a-mac,two,1.5,true\n"
        "SN3,00:11:22:33:44:57,3,nan,maybe\n"
    )
    specs, problems = parse_csv(text, FIELDS)
    assert [spec.row for spec in specs] == [2, 3, 4]
    assert sorted(problems, key=lambda p: (p.row, p.column)) == [
        RowError(3, "batch", "must be an integer"),
        RowError(3, "mac", "must be a 48-bit MAC address"),
        RowError(4, "sealed", "must be true or false"),
        RowError(4, "voltage", "must be a number"),
    ]


def test_blank_lines_are_skipped_but_still_count_as_rows() -> None:
    specs, problems = parse_csv("serial_number,batch\n\nSN1,1\n , \nSN2,x\n\n\n", FIELDS)
    assert [(spec.serial_number, spec.row) for spec in specs] == [("SN1", 3), ("SN2", 5)]
    assert problems == [RowError(5, "batch", "must be an integer")]


@pytest.mark.parametrize(("row", "count"), [("SN1", 1), ("SN1,1,extra", 3)])
def test_a_row_with_the_wrong_number_of_cells_is_reported_and_not_defined(row: str, count: int) -> None:
    specs, problems = parse_csv(f"serial_number,batch\n{row}\nSN2,2\n", FIELDS)
    assert problems == [RowError(2, "", f"has {count} cells, the header has 2")]
    assert [spec.serial_number for spec in specs] == ["SN2"]


def test_quoted_cells_may_hold_commas_quotes_and_newlines_and_rows_follow_records() -> None:
    text = 'serial_number,colour\n"SN,1","line one\nline two"\n"SN ""2""",plain\nSN3,x\n'
    specs, problems = parse_csv(text, FIELDS)
    assert problems == []
    assert [(spec.serial_number, spec.metadata.get("colour"), spec.row) for spec in specs] == [
        ("SN,1", "line one\nline two", 2),
        ('SN "2"', "plain", 3),
        ("SN3", "x", 4),
    ]


def test_a_serial_cell_is_taken_as_written_so_surrounding_spaces_are_a_problem_later() -> None:
    specs, problems = parse_csv("serial_number,batch\n SN1 ,1\n", FIELDS)
    assert problems == []
    assert specs[0].serial_number == " SN1 "
    assert batch_problems(specs, FIELDS, set()) == [RowError(2, "serial_number", SERIAL_REASON)]


# A whole batch


def test_serials_repeated_within_a_batch_name_the_first_row_they_appeared_in() -> None:
    specs = [
        DeviceSpec("A", metadata={"batch": 1}, row=2),
        DeviceSpec("B", metadata={"batch": 1}, row=3),
        DeviceSpec("A", metadata={"batch": 1}, row=4),
        DeviceSpec("A", metadata={"batch": 1}, row=5),
    ]
    assert batch_problems(specs, FIELDS, set()) == [
        RowError(4, "serial_number", "'A' repeats row 2"),
        RowError(5, "serial_number", "'A' repeats row 2"),
    ]


def test_serials_already_defined_for_the_product_are_reported_on_every_row() -> None:
    specs = [DeviceSpec("OLD", metadata={"batch": 1}, row=2), DeviceSpec("OLD", metadata={"batch": 1}, row=3)]
    assert batch_problems(specs, FIELDS, {"OLD"}) == [
        RowError(2, "serial_number", "'OLD' is already defined"),
        RowError(3, "serial_number", "'OLD' is already defined"),
    ]


def test_batch_problems_include_metadata_problems_of_each_row() -> None:
    specs = [DeviceSpec("A", metadata={}, row=2), DeviceSpec("", metadata={"batch": 1, "size": 3}, row=3)]
    assert batch_problems(specs, FIELDS, set()) == [
        RowError(2, "batch", "is required"),
        RowError(3, "serial_number", SERIAL_REASON),
        RowError(3, "size", "is not a field of this product"),
    ]


def test_a_good_batch_has_no_problems() -> None:
    specs = [DeviceSpec(f"SN{i}", metadata={"batch": i}, row=i + 2) for i in range(50)]
    assert batch_problems(specs, FIELDS, {"SN999"}) == []


def test_a_cell_that_failed_to_parse_is_not_also_reported_as_missing() -> None:
    specs, problems = parse_csv("serial_number,batch\nSN1,one\nSN2,\n", FIELDS)
    problems += batch_problems(specs, FIELDS, set())
    assert first_problem_per_cell(problems) == [
        RowError(2, "batch", "must be an integer"),
        RowError(3, "batch", "is required"),
    ]


def test_first_problem_per_cell_keeps_row_order_and_the_first_reason_of_each_cell() -> None:
    problems = [
        RowError(5, "a", "first"),
        RowError(2, "b", "first"),
        RowError(5, "a", "second"),
        RowError(2, "c", "first"),
        RowError(2, "b", "second"),
    ]
    assert first_problem_per_cell(problems) == [
        RowError(2, "b", "first"),
        RowError(2, "c", "first"),
        RowError(5, "a", "first"),
    ]


def test_a_bare_list_of_serials_is_numbered_by_line() -> None:
    assert specs_from_serial_numbers(["A", "B"]) == [DeviceSpec("A", row=1), DeviceSpec("B", row=2)]


@pytest.mark.parametrize("count", [1, 1000, MAX_BATCH_SIZE])
def test_batches_from_one_to_the_limit_are_allowed(count: int) -> None:
    check_batch_size(count)


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no devices"):
        check_batch_size(0)


def test_a_batch_over_the_limit_is_refused_with_both_numbers() -> None:
    with pytest.raises(InvalidInput, match=r"at most 200,000 devices; this one has 200,001"):
        check_batch_size(MAX_BATCH_SIZE + 1)


def test_an_oversized_csv_is_refused_at_the_first_row_past_the_limit_without_reading_the_rest() -> None:
    rows = "".join(f"SN-{n}\n" for n in range(MAX_BATCH_SIZE + 1))
    # Past the limit the file stops being CSV at all: a parser that read it would say so.
    text = "serial_number\n" + rows + '"never closed\n' + "SN-x\n" * 1000

    with pytest.raises(InvalidInput, match=r"at most 200,000 devices; this one has more \(row 200,002"):
        parse_csv(text, [])


def test_a_csv_of_exactly_the_limit_is_read_whole() -> None:
    text = "serial_number\n" + "".join(f"SN-{n}\n" for n in range(MAX_BATCH_SIZE))

    specs, problems = parse_csv(text, [])

    assert len(specs) == MAX_BATCH_SIZE
    assert problems == []


# MAC addresses


@pytest.mark.parametrize(
    "text",
    [
        "aa:bb:cc:dd:ee:ff",
        "AA:BB:CC:DD:EE:FF",
        "AA-BB-CC-DD-EE-FF",
        "aabb.ccdd.eeff",
        "aabbccddeeff",
        "  Aa:bB:cc:DD:ee:FF\n",
    ],
)
def test_common_mac_spellings_become_lowercase_colon_pairs(text: str) -> None:
    assert normalize_mac(text) == "aa:bb:cc:dd:ee:ff"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "aa:bb:cc:dd:ee",
        "aa:bb:cc:dd:ee:ff:00",
        "gg:bb:cc:dd:ee:ff",
        "aa bb cc dd ee ff",
        "0x aabbccddeeff",
    ],
)
def test_anything_but_48_bits_of_hex_is_not_a_mac(text: str) -> None:
    assert normalize_mac(text) is None


# Serial numbers


@pytest.mark.parametrize(
    "serial", ["A", "0", "SN 0001", "~!#$%&'()*+,-./:;<=>?@[]^_`{|}", "X" * 128, 'quote"inside']
)
def test_printable_ascii_serials_up_to_128_characters_are_good(serial: str) -> None:
    assert serial_number_problem(serial) is None


@pytest.mark.parametrize(
    "serial",
    ["", " ", " SN1", "SN1 ", "SN1\n", "SN1\t", "SN\x001", "SN\u00e91", "X" * 129, "SN\x7f"],
    ids=repr,
)
def test_empty_long_padded_control_or_non_ascii_serials_are_refused(serial: str) -> None:
    assert serial_number_problem(serial) == SERIAL_REASON


# A property: whatever the csv module writes, parse_csv reads back.

VALID_SERIAL = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=128
).filter(lambda s: s == s.strip(" "))


@hypothesis_settings(database=None, max_examples=200, deadline=None)
@given(serials=st.lists(VALID_SERIAL, min_size=1, max_size=30, unique=True))
def test_any_distinct_valid_serials_written_by_the_csv_module_round_trip(serials: list[str]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["serial_number"])
    writer.writerows([serial] for serial in serials)

    specs, problems = parse_csv(buffer.getvalue(), [])

    assert problems == []
    assert [spec.serial_number for spec in specs] == serials
    assert [spec.row for spec in specs] == list(range(2, len(serials) + 2))
    assert batch_problems(specs, [], set()) == []
