"""Provisioning over MQTT, compatible with ThingsBoard's device SDK (see docs/mqtt-provisioning.md).

STUB: the provisioning helper replaces this module; the broker calls ``answer_provision_request``.
"""

from __future__ import annotations

from typing import Any

from lineside.services.context import ServiceContext


def answer_provision_request(ctx: ServiceContext, payload: bytes) -> dict[str, Any]:
    """The JSON answer to one ``/provision/request`` payload: never raises for bad input."""
    del ctx, payload
    return {"status": "FAILURE", "errorMsg": "Provisioning is not available yet."}
