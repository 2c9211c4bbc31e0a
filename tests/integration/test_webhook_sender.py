"""The httpx sender against a real receiver: signed, pinned to the checked address, no
redirects, one deadline, and private targets refused at connect time too."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from lineside.adapters.webhooks import HttpxWebhookSender
from lineside.adapters.webhooks.addresses import IPAddress, checked
from lineside.domain.webhooks import WebhookTargetRefused, generate_signing_secret
from lineside.services.ports import SendResult, WebhookMessage
from tests.support.event_loops import run_coroutine
from tests.support.webhooks import Answer, Receiver

BODY = b'{"data":{},"timestamp":"2025-01-01T00:00:00.000000Z","type":"product.created"}'
SECRET = generate_signing_secret()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


def send(sender: HttpxWebhookSender, url: str) -> SendResult:
    return run_coroutine(sender.send(WebhookMessage(url, "msg_1", BODY, SECRET)))


def sender(*, allow_private: bool = True, timeout: float = 5.0, **kwargs: object) -> HttpxWebhookSender:
    return HttpxWebhookSender(
        allow_private=allow_private,
        timeout_seconds=timeout,
        clock=lambda: datetime.now(UTC),
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_webhook_arrives_signed_with_its_id_and_timestamp(receiver: Receiver) -> None:
    result = send(sender(), receiver.url())

    assert (result.status_code, result.error) == (200, None)
    [request] = receiver.received
    assert request.body == BODY
    assert request.headers["webhook-id"] == "msg_1"
    assert abs(int(request.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 60
    assert Webhook(SECRET).verify(request.body, request.headers)["type"] == "product.created"
    assert request.headers["user-agent"].startswith("Lineside-Webhooks/")


def test_the_connection_goes_to_the_checked_address_under_the_real_host_name(receiver: Receiver) -> None:
    def lookup(host: str, _port: int) -> list[IPAddress]:
        assert host == "hooks.example.test"
        return checked(host, [ipaddress.ip_address("127.0.0.1")], allow_private=True)

    result = send(sender(lookup=lookup), f"http://hooks.example.test:{receiver.port}/in")

    assert result.status_code == 200, result.error
    [request] = receiver.received
    assert request.headers["host"] == f"hooks.example.test:{receiver.port}"
    assert request.path == "/in"


def test_a_private_address_is_refused_at_connect_time_too(receiver: Receiver) -> None:
    result = send(sender(allow_private=False), receiver.url())

    assert result.status_code is None
    assert result.error is not None and "cannot receive webhooks" in result.error
    assert receiver.received == []


def test_a_host_that_turns_private_after_it_was_checked_is_refused(receiver: Receiver) -> None:
    answers = iter(["93.184.216.34", "127.0.0.1"])  # DNS rebinding: public, then loopback

    def lookup(host: str, _port: int) -> list[IPAddress]:
        return checked(host, [ipaddress.ip_address(next(answers))], allow_private=False)

    rebinding = sender(allow_private=False, lookup=lookup)
    url = f"http://rebind.example.test:{receiver.port}/"
    rebinding.check_target(url)
    result = send(rebinding, url)

    assert result.status_code is None and "127.0.0.1" in (result.error or "")
    assert receiver.received == []
    with pytest.raises(WebhookTargetRefused):
        sender(allow_private=False).check_target(receiver.url())


def test_a_redirect_comes_back_as_the_answer_and_is_not_followed() -> None:
    def behaviour(path: str, _seen: int) -> Answer:
        return Answer(307, {"location": "/target"}) if path == "/from" else Answer(200)

    with Receiver(behaviour) as receiver:
        result = send(sender(), receiver.url("/from"))
    assert result.status_code == 307
    assert result.error is not None and "not followed" in result.error
    assert [request.path for request in receiver.received] == ["/from"]


def test_a_receiver_slower_than_the_deadline_is_a_failed_attempt() -> None:
    release = threading.Event()
    with Receiver(lambda _path, _seen: Answer(200, hold=release)) as receiver:
        result = send(sender(timeout=0.3), receiver.url())
        release.set()
    assert result.status_code is None
    assert result.error == "No answer within 0.3 s."


def test_nothing_listening_is_a_failed_attempt_not_an_exception() -> None:
    with Receiver() as receiver:
        url = receiver.url()
    result = send(sender(), url)
    assert result.status_code is None
    assert result.error is not None and "ConnectError" in result.error
