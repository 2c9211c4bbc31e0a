"""Pieces of the device SDK and the demo that need no server: provisioning answers, the
demo's QR label reader."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from lineside.adapters.labels.qr import qr_png
from lineside.device import CredentialsType, ProvisioningFailed, UnexpectedAnswer
from lineside.device.provisioning import parse_answer
from lineside.entrypoints.cli.demo_qr import UnreadableLabel, read_qr_png

URL = "http://127.0.0.1:8080/claim/lsc_QWERTYUIOPASDFGHJKLZXCVBNM"


def test_an_access_token_answer_gives_the_device_id_and_token() -> None:
    answer = {
        "status": "SUCCESS",
        "credentialsType": "ACCESS_TOKEN",
        "credentialsValue": "lsd_x",
        "deviceId": "d1",
    }
    got = parse_answer(answer, CredentialsType.ACCESS_TOKEN)
    assert (got.device_id, got.token, got.mqtt_password) == ("d1", "lsd_x", None)
    assert "lsd_x" not in repr(got)


def test_an_mqtt_basic_answer_gives_the_password_for_the_client_id() -> None:
    value = {"clientId": "d2", "userName": "d2", "password": "lsm_y"}
    got = parse_answer(
        {"status": "SUCCESS", "credentialsType": "MQTT_BASIC", "credentialsValue": value},
        CredentialsType.MQTT_BASIC,
    )
    assert (got.device_id, got.token, got.mqtt_password) == ("d2", None, "lsm_y")


def test_an_x509_answer_keeps_the_certificate() -> None:
    answer = {
        "status": "SUCCESS",
        "credentialsType": "X509_CERTIFICATE",
        "credentialsValue": "PEM",
        "deviceId": "d3",
    }
    got = parse_answer(answer, CredentialsType.X509_CERTIFICATE)
    assert (got.device_id, got.certificate_pem, got.token) == ("d3", "PEM", None)


def test_a_failure_answer_raises_with_its_message() -> None:
    with pytest.raises(ProvisioningFailed) as failed:
        parse_answer({"status": "FAILURE", "errorMsg": "Unknown provision key"}, CredentialsType.ACCESS_TOKEN)
    assert failed.value.status == "FAILURE"
    assert "Unknown provision key" in failed.value.message


def test_a_success_without_a_device_id_is_unexpected() -> None:
    with pytest.raises(UnexpectedAnswer):
        parse_answer({"status": "SUCCESS", "credentialsValue": "lsd_x"}, CredentialsType.ACCESS_TOKEN)


def test_the_label_reader_reads_the_labels_lineside_writes() -> None:
    assert read_qr_png(qr_png(URL)) == URL


@pytest.mark.parametrize("mode", ["L", "1"])
def test_the_label_reader_reads_other_grayscale_pngs(mode: str) -> None:
    # Pillow's encoder uses adaptive filters (sub, up, average, Paeth) on 8-bit rows.
    gray = Image.open(io.BytesIO(qr_png(URL))).convert("L").resize((330, 330), Image.Resampling.NEAREST)
    image = gray.convert(mode, dither=Image.Dither.NONE)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    assert read_qr_png(out.getvalue()) == URL


def test_an_unreadable_label_says_why() -> None:
    with pytest.raises(UnreadableLabel, match="not a PNG"):
        read_qr_png(b"GIF89a")
    colour = io.BytesIO()
    Image.new("RGB", (40, 40)).save(colour, "PNG")
    with pytest.raises(UnreadableLabel, match="unsupported"):
        read_qr_png(colour.getvalue())
    blank = io.BytesIO()
    Image.new("L", (40, 40), 255).save(blank, "PNG")
    with pytest.raises(UnreadableLabel, match="no QR code"):
        read_qr_png(blank.getvalue())
