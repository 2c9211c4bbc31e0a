"""Guessing is bounded: claim codes per account and per client address (API and page alike),
sign-ins per account and per address, sign-ups per address; slots are taken atomically, and
the rightful owner behind a shared address still claims.

These run on an application of their own with small limits (the shared test deployment has
wide per-address limits, see ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from lineside.bootstrap import Application, bootstrap
from lineside.domain.secret_tokens import SecretKind, generate_secret
from lineside.settings import Settings
from tests.support.api import Tenant, assert_problem, new_tenant
from tests.support.people import (
    PASSWORD,
    Person,
    label_rows,
    new_person,
    static_batch,
    unique_address,
    unique_email,
)
from tests.support.server import http_client_for

ACCOUNT_LIMIT = 3
ADDRESS_LIMIT = 5
GRACE = 2
SIGN_UPS = 2
SIGN_INS = 3
SIGN_IN_ADDRESS = 6


def unknown_code() -> str:
    return generate_secret(SecretKind.CLAIM_CODE)


@pytest.fixture(scope="module")
def strict_app(settings: Settings) -> Iterator[Application]:
    """The same database and server key, with small limits."""
    limits = {
        "claim_attempts_per_window": ACCOUNT_LIMIT,
        "claim_address_attempts_per_window": ADDRESS_LIMIT,
        "claim_grace_per_window": GRACE,
        "sign_ups_per_address_per_window": SIGN_UPS,
        "sign_in_attempts_per_window": SIGN_INS,
        "sign_in_address_attempts_per_window": SIGN_IN_ADDRESS,
    }
    app = bootstrap(settings.model_copy(update=limits))
    yield app
    app.close()


@pytest.fixture(scope="module")
def strict_http(strict_app: Application) -> Iterator[httpx.Client]:
    with http_client_for(strict_app) as http:
        yield http


@pytest.fixture
def maker(strict_app: Application, strict_http: httpx.Client) -> Tenant:
    return new_tenant(strict_app, strict_http)


def one_label(tenant: Tenant) -> dict[str, str]:
    [label] = label_rows(tenant, static_batch(tenant, 1))
    return label


def people_at(http: httpx.Client, address: str, count: int) -> list[Person]:
    """``count`` accounts that will speak from ``address`` (made elsewhere: sign-ups per
    address are limited, and an attacker can make accounts on other networks)."""
    people = [new_person(http) for _ in range(count)]
    for person in people:
        person.address = address
    return people


def guess_until_refused(person: Person, most: int = 50) -> int:
    """How many wrong codes were looked up (404) before the first 429."""
    for looked_up in range(most):
        response = person.claim(unknown_code())
        if response.status_code == 429:
            assert_retry_after(response)
            return looked_up
        assert_problem(response, 404)
    raise AssertionError("never limited")


def assert_retry_after(response: httpx.Response) -> None:
    body = assert_problem(response, 429)
    assert "try again in" in body["detail"]
    assert 1 <= int(response.headers["Retry-After"]) <= 901


# -- claims ------------------------------------------------------------------------------


def test_an_account_that_guessed_wrong_too_often_is_refused_everywhere_with_retry_after(
    maker: Tenant,
) -> None:
    label = one_label(maker)
    [attacker] = people_at(maker.http, unique_address(), 1)

    assert guess_until_refused(attacker) == ACCOUNT_LIMIT
    attacker.address = unique_address()  # the account is limited wherever it comes from
    assert_retry_after(attacker.claim(unknown_code()))
    assert_retry_after(attacker.claim(label["claim_code"]))  # and it learns nothing more


def test_new_accounts_cannot_raise_the_number_of_codes_looked_up_from_one_address(maker: Tenant) -> None:
    address = unique_address()
    attackers = people_at(maker.http, address, 8)

    looked_up = sum(guess_until_refused(attacker) for attacker in attackers)

    assert looked_up == ADDRESS_LIMIT + GRACE


def test_concurrent_wrong_guesses_of_one_account_are_charged_atomically(maker: Tenant) -> None:
    [attacker] = people_at(maker.http, unique_address(), 1)

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: attacker.claim(unknown_code()).status_code, range(16)))

    assert statuses.count(404) == ACCOUNT_LIMIT
    assert statuses.count(429) == 16 - ACCOUNT_LIMIT


def test_the_rightful_owner_behind_an_address_strangers_spent_still_claims(maker: Tenant) -> None:
    label = one_label(maker)
    shared = unique_address()  # one NAT, one carrier gateway, one office
    for attacker in people_at(maker.http, shared, 2):
        guess_until_refused(attacker)
    [owner] = people_at(maker.http, shared, 1)

    claimed = owner.claim(label["claim_code"])

    assert claimed.status_code == 201, claimed.text
    assert claimed.json()["owner_organization_id"] == owner.organization_id


def test_right_codes_cost_nothing(maker: Tenant) -> None:
    mine, theirs = one_label(maker), one_label(maker)
    [person, other] = people_at(maker.http, unique_address(), 2)
    assert other.claim(theirs["claim_code"]).status_code == 201
    for _ in range(ADDRESS_LIMIT + 1):
        assert person.claim(mine["claim_code"]).status_code == 201
        assert_problem(person.claim(theirs["claim_code"]), 409)
    assert guess_until_refused(person) == ACCOUNT_LIMIT


def test_the_claim_page_is_limited_per_address_and_asks_to_sign_in(maker: Tenant) -> None:
    label = one_label(maker)
    address = unique_address()
    browser = {"X-Forwarded-For": address}

    statuses = [maker.http.get(f"/claim/{unknown_code()}", headers=browser).status_code for _ in range(10)]
    limited_right_code = maker.http.get(f"/claim/{label['claim_code']}", headers=browser)

    assert statuses == [404] * ADDRESS_LIMIT + [429] * (10 - ADDRESS_LIMIT)
    assert limited_right_code.status_code == 429
    assert int(limited_right_code.headers["Retry-After"]) >= 1
    assert label["serial_number"] not in limited_right_code.text  # nothing told about the code
    assert f'action="/claim/{label["claim_code"]}/signin"' in limited_right_code.text


def test_the_claim_page_and_the_api_share_one_budget_per_address(maker: Tenant) -> None:
    address = unique_address()
    for _ in range(ADDRESS_LIMIT):
        assert (
            maker.http.get(f"/claim/{unknown_code()}", headers={"X-Forwarded-For": address}).status_code
            == 404
        )
    [late, later] = people_at(maker.http, address, 2)

    assert guess_until_refused(late) == 1  # its first look of the window, from the grace
    assert guess_until_refused(later) == 1
    assert guess_until_refused(people_at(maker.http, address, 1)[0]) == 0  # the grace is spent


# -- people ------------------------------------------------------------------------------


def sign_up(http: httpx.Client, address: str) -> httpx.Response:
    return http.post(
        "/api/v1/users",
        json={"email": unique_email(), "password": PASSWORD},
        headers={"X-Forwarded-For": address},
    )


def sign_in(http: httpx.Client, email: str, password: str, address: str) -> httpx.Response:
    return http.post(
        "/api/v1/auth/token",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": address},
    )


def test_sign_ups_are_limited_per_address(strict_http: httpx.Client) -> None:
    address = unique_address()

    statuses = [sign_up(strict_http, address).status_code for _ in range(SIGN_UPS + 1)]

    assert statuses == [201] * SIGN_UPS + [429]
    assert_retry_after(sign_up(strict_http, address))
    assert sign_up(strict_http, unique_address()).status_code == 201


def test_wrong_passwords_are_limited_per_account_with_429_and_retry_after(strict_http: httpx.Client) -> None:
    [victim] = people_at(strict_http, unique_address(), 1)

    wrong = [sign_in(strict_http, victim.email, "wrong password!", unique_address()) for _ in range(SIGN_INS)]
    limited = sign_in(strict_http, victim.email, "wrong password!", unique_address())

    assert [response.status_code for response in wrong] == [401] * SIGN_INS
    assert_retry_after(limited)


def test_wrong_passwords_are_limited_per_address_across_accounts(strict_http: httpx.Client) -> None:
    address = unique_address()
    emails = [person.email for person in people_at(strict_http, unique_address(), 3)]

    statuses = [
        sign_in(strict_http, emails[n % 3], "wrong password!", address).status_code
        for n in range(SIGN_IN_ADDRESS + 1)
    ]

    assert statuses == [401] * SIGN_IN_ADDRESS + [429]


def test_right_passwords_do_not_count(strict_http: httpx.Client) -> None:
    [person] = people_at(strict_http, unique_address(), 1)
    for _ in range(SIGN_INS + 2):
        assert sign_in(strict_http, person.email, PASSWORD, person.address).status_code == 200


# -- whose address counts -----------------------------------------------------------------


@pytest.fixture(scope="module")
def unproxied_http(settings: Settings) -> Iterator[httpx.Client]:
    """Defaults: no trusted proxy. Sign-ups per address are small to make the address visible."""
    app = bootstrap(settings.model_copy(update={"trusted_proxies": "", "sign_ups_per_address_per_window": 2}))
    with http_client_for(app) as http:
        yield http
    app.close()


def test_forwarded_addresses_are_ignored_unless_the_proxy_is_trusted(unproxied_http: httpx.Client) -> None:
    # Each request claims an address of its own; without a trusted proxy all are the
    # loopback, whose budget of two (shared with other tests' loopback sign-ups) runs out.
    statuses = [sign_up(unproxied_http, unique_address()).status_code for _ in range(3)]

    assert 429 in statuses
    assert set(statuses) <= {201, 429}
