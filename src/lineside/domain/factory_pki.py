"""Factory PKI rules: how a device's certificate names it, the id a registered device gets,
and how long a CA's proof-of-possession challenge and its expiry warning last."""

from __future__ import annotations

import uuid
from datetime import timedelta

from lineside.domain.device_specs import serial_number_problem
from lineside.domain.errors import CertificateRefused
from lineside.domain.models import RegistrationIdentity

CHALLENGE_LIFETIME = timedelta(hours=24)  # to answer a CA's verification challenge
EXPIRY_WARNING = timedelta(days=30)  # a CA's expiry is announced this long before


def registration_name(
    identity: RegistrationIdentity, common_name: str | None, san_uris: tuple[str, ...]
) -> str:
    """The device's name (its serial number here) from its certificate, as the product's
    registration identity says; refused when missing or not a serial number."""
    if identity is RegistrationIdentity.SAN_URI:
        name, where = (san_uris[0] if san_uris else None), "a URI in its subjectAltName"
    else:
        name, where = common_name, "a subject CN"
    if not name:
        raise CertificateRefused(f"The device certificate has no name: the product reads {where}.")
    problem = serial_number_problem(name)
    if problem:
        raise CertificateRefused(f"The device certificate's name {problem}.")
    return name


def station_unit_name(
    product_id: str, common_name: str | None, serial_number: str | None, *, check_id: bool = True
) -> str:
    """The serial number of a unit an offline station made: its certificate's subject
    serialNumber, with CN = the id the station gave it (the id registration gives that serial,
    unless ``check_id`` is off: the caller found the CN in the station's token pool)."""
    if not serial_number or serial_number_problem(serial_number):
        raise CertificateRefused("A station's device certificate names its unit in the subject serialNumber.")
    if check_id and common_name != registered_device_id(product_id, serial_number):
        raise CertificateRefused(
            "The device certificate's CN is not the id the station gives that serial number."
        )
    return serial_number


def registered_device_id(product_id: str, name: str) -> str:
    """A device that registers by certificate gets this id, so the device (which knows its
    product and its own name) can compute the MQTT client id and topics it must use."""
    return str(uuid.uuid5(uuid.UUID(product_id), name))
