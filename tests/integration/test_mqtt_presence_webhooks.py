"""An activation on first connection reaches the maker's webhook through the outbox.

On a database of its own (see tests.support.webhooks), with the real worker on a thread and
a real HTTP receiver on the loopback.
"""

from __future__ import annotations

import httpx
from standardwebhooks import Webhook

from lineside.bootstrap import Application
from lineside.entrypoints.worker import BackgroundWorker
from lineside.services.presence import PresenceRecorder
from tests.support.api import new_tenant, unique
from tests.support.webhooks import (
    API,
    Receiver,
    create_endpoint,
    deliveries,
    wait_until,
)


def test_an_endpoint_subscribed_to_activations_gets_the_mqtt_activation(
    hooks_app: Application, hooks_client: httpx.Client
) -> None:
    tenant = new_tenant(hooks_app, hooks_client)
    product = tenant.created(f"{API}/products", {"name": unique("product")})
    device = tenant.created(f"{API}/devices", {"product_id": product["id"], "serial_number": unique("SN")})
    with Receiver() as receiver:
        endpoint = create_endpoint(tenant, receiver.url(), ["device.activated"])
        recorder = PresenceRecorder()
        recorder.connected(device["id"])
        assert recorder.flush(hooks_app.services).activated == 1

        worker = BackgroundWorker(hooks_app.services, poll_seconds=0.02)
        worker.start()
        try:
            [request] = wait_until(lambda: receiver.answered(200), "the device.activated webhook")
        finally:
            worker.stop()

    body = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert body["type"] == "device.activated"
    assert (body["data"]["subject_id"], body["data"]["actor"], body["data"]["to"]) == (
        device["id"],
        "mqtt",
        "activated",
    )
    [delivered] = deliveries(tenant, endpoint["id"])
    assert delivered["status"] == "succeeded"
