"""How a device's certificate names it (domain.factory_pki): the product reads its CN or the
first URI of its SAN; a missing or unprintable name is refused; a registered device's id is
the same for the same product and name, and only for them."""

from __future__ import annotations

import pytest

from lineside.domain.errors import CertificateRefused
from lineside.domain.factory_pki import registered_device_id, registration_name
from lineside.domain.models import RegistrationIdentity

CN, SAN = RegistrationIdentity.COMMON_NAME, RegistrationIdentity.SAN_URI
PRODUCT, OTHER = "01a24376-36f3-7c05-bb4b-c8cc71e1dc45", "01a24376-36f3-7c05-bb4b-c8cc71e1dc46"


def test_the_name_comes_from_where_the_product_says() -> None:
    assert registration_name(CN, "SN-1", ("urn:dev:2",)) == "SN-1"
    assert registration_name(SAN, "SN-1", ("urn:dev:2", "urn:dev:3")) == "urn:dev:2"


@pytest.mark.parametrize(
    ("identity", "common_name", "uris", "why"),
    [
        (CN, None, (), "no name"),
        (SAN, "SN-1", (), "no name"),
        (CN, "bell\x07", (), "printable"),
        (CN, "x" * 10_000, (), "printable"),
        (CN, " padded", (), "spaces"),
    ],
)
def test_a_missing_or_bad_name_is_refused(
    identity: RegistrationIdentity, common_name: str | None, uris: tuple[str, ...], why: str
) -> None:
    with pytest.raises(CertificateRefused, match=why):
        registration_name(identity, common_name, uris)


def test_a_registered_device_id_is_stable_per_product_and_name() -> None:
    assert registered_device_id(PRODUCT, "SN-1") == registered_device_id(PRODUCT, "SN-1")
    assert (
        len(
            {
                registered_device_id(PRODUCT, "SN-1"),
                registered_device_id(PRODUCT, "SN-2"),
                registered_device_id(OTHER, "SN-1"),
            }
        )
        == 3
    )
