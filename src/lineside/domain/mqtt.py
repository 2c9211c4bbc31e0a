"""Who may use which MQTT topic: the one rule set behind the embedded broker and every
production broker's authorisation hook.

A device owns ``devices/{its id}/...`` and nothing else; the ``provision`` user may only
publish provisioning requests and hear answers on the provisioning response topic::

    devices/{id}/telemetry     device -> cloud   measurements
    devices/{id}/state         device -> cloud   reported state
    devices/{id}/commands/...  cloud  -> device  commands
    devices/{id}/firmware      cloud  -> device  firmware notices (a release deployed to its group)
    /provision/request         provision -> cloud    ThingsBoard-compatible provisioning
    /provision/response        cloud -> provision    (delivered to the requesting connection only)
"""

from __future__ import annotations

from enum import StrEnum

DEVICE_TOPIC_ROOT = "devices"
PROVISION_USERNAME = "provision"
PROVISION_REQUEST_TOPIC = "/provision/request"
PROVISION_RESPONSE_TOPIC = "/provision/response"
FIRMWARE_NOTICE_SUFFIX = "firmware"

_WILDCARDS = ("+", "#")


class TopicAccess(StrEnum):
    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"


def device_topic(device_id: str, *parts: str) -> str:
    """``devices/{device_id}/part/part``."""
    return "/".join((DEVICE_TOPIC_ROOT, device_id, *parts))


def firmware_notice_topic(device_id: str) -> str:
    return device_topic(device_id, FIRMWARE_NOTICE_SUFFIX)


def device_may(device_id: str, topic: str, access: TopicAccess) -> bool:
    """Whether a device may publish to ``topic`` or subscribe to the filter ``topic``.

    Only below its own prefix: ``devices/{id}/`` must be spelt out, so ``devices/+/x`` or
    ``#`` (which would reach other devices) are refused, while ``devices/{id}/#`` is fine for
    a subscription. A publish never carries a wildcard.
    """
    levels = topic.split("/")
    if len(levels) < 3 or levels[0] != DEVICE_TOPIC_ROOT or levels[1] != device_id:
        return False
    rest = levels[2:]
    if any(level == "" for level in rest):
        return False
    if access is TopicAccess.PUBLISH:
        return not any(wildcard in level for level in rest for wildcard in _WILDCARDS)
    return _valid_filter(rest)


def provisioner_may(topic: str, access: TopicAccess) -> bool:
    """The ``provision`` user publishes requests and subscribes to answers, nothing else."""
    if access is TopicAccess.PUBLISH:
        return topic == PROVISION_REQUEST_TOPIC
    return topic == PROVISION_RESPONSE_TOPIC


def _valid_filter(levels: list[str]) -> bool:
    for index, level in enumerate(levels):
        if level == "#":
            return index == len(levels) - 1
        if level != "+" and any(wildcard in level for wildcard in _WILDCARDS):
            return False
    return True
