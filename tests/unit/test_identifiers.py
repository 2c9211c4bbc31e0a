"""Identifiers: UUIDv7, sortable by the moment they were made."""

from __future__ import annotations

import itertools
import time
import uuid

from lineside.domain.identifiers import is_uuid, new_id


def _millis(identifier: str) -> int:
    return uuid.UUID(identifier).int >> 80


def test_a_new_id_is_a_canonical_uuid_of_version_7_and_the_rfc_variant() -> None:
    identifier = new_id()
    parsed = uuid.UUID(identifier)
    assert str(parsed) == identifier
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_the_leading_48_bits_are_the_unix_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    identifier = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= _millis(identifier) <= after


def test_ids_made_in_sequence_never_go_back_in_time() -> None:
    made = [new_id() for _ in range(5000)]
    stamps = [_millis(identifier) for identifier in made]
    assert stamps == sorted(stamps)


def test_ids_from_different_milliseconds_sort_in_creation_order_as_text() -> None:
    made = [new_id()]
    while len({_millis(identifier) for identifier in made}) < 5:
        made.append(new_id())
    # Within one millisecond the rest is random, so only compare across milliseconds.
    compared = 0
    for earlier, later in itertools.pairwise(made):
        if _millis(earlier) < _millis(later):
            assert earlier < later
            compared += 1
    assert compared >= 4


def test_ids_do_not_repeat() -> None:
    made = {new_id() for _ in range(20000)}
    assert len(made) == 20000


def test_ids_within_one_millisecond_differ_in_their_random_bits() -> None:
    made = [uuid.UUID(new_id()).int for _ in range(2000)]
    random_bits = {value & ((1 << 62) - 1) for value in made}
    assert len(random_bits) == len(made)


def test_is_uuid_tells_uuids_from_other_text() -> None:
    assert is_uuid(new_id())
    assert is_uuid(str(uuid.uuid4()))
    assert not is_uuid("not-a-uuid")
    assert not is_uuid("")
    assert not is_uuid("0190f0e2-0000-7000-8000-00000000000")  # one digit short


def test_ids_made_in_bulk_are_distinct_version_7_uuids() -> None:
    import uuid

    from lineside.domain.identifiers import new_ids

    ids = new_ids(2000)
    assert len(set(ids)) == 2000
    for text in ids[:200]:
        parsed = uuid.UUID(text)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
