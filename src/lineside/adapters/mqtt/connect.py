"""The first packet of a connection, read whole before amqtt parses it.

amqtt parses a CONNECT as MQTT 3.1.1 straight from the socket: an MQTT 5 CONNECT (which
carries properties) makes it wait for bytes that never come, so the client hangs. Reading
the packet whole first, within a deadline and a size limit, lets the broker answer an MQTT 5
client "unsupported protocol version" (reason 0x84), an MQTT 3.1 client (protocol name
``MQIsdp``, level 3) CONNACK 1 "unacceptable protocol version" as MQTT 3.1 itself says, and
close idle or oversized first packets.
"""

from __future__ import annotations

import asyncio

from amqtt.adapters import BufferReader, ReaderAdapter, WriterAdapter
from amqtt.errors import MQTTError

CONNECT_DEADLINE_SECONDS = 10.0
MAX_CONNECT_BYTES = 256 * 1024
MQTT_5 = 5
_CONNECT = 0x10
# MQTT 5 CONNACK: no session present, reason 0x84 "unsupported protocol version", no properties
_UNSUPPORTED_VERSION_V5 = bytes([0x20, 0x03, 0x00, 0x84, 0x00])
# MQTT 3.1 (and 3.1.1) CONNACK: return code 1, "unacceptable protocol version"
_UNACCEPTABLE_VERSION_V3 = bytes([0x20, 0x02, 0x00, 0x01])
_LEVEL_OFFSET = 6  # after the protocol name: 0x00 0x04 "MQTT"
_MQTT_3_1_NAME = b"\x00\x06MQIsdp"


class UnsupportedProtocol(MQTTError):
    """A CONNECT of a protocol version this broker does not speak (answered before raised)."""


async def first_packet(reader: ReaderAdapter, writer: WriterAdapter) -> BufferReader:
    """The connection's first packet as a buffer amqtt can parse; MQTTError when there is none
    or it is too big; UnsupportedProtocol for an MQTT 5 or 3.1 CONNECT (answered first)."""
    try:
        packet = await asyncio.wait_for(_read_packet(reader), CONNECT_DEADLINE_SECONDS)
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as error:
        await writer.close()
        raise MQTTError(f"no CONNECT received: {error.__class__.__name__}") from None
    if packet.body[:1] and packet.first_byte & 0xF0 == _CONNECT:
        if _level(packet.body) == MQTT_5 and packet.body[2:6] == b"MQTT":
            await _refuse(writer, _UNSUPPORTED_VERSION_V5)
            raise UnsupportedProtocol("MQTT 5 CONNECT refused: this broker speaks MQTT 3.1.1")
        if packet.body.startswith(_MQTT_3_1_NAME):
            await _refuse(writer, _UNACCEPTABLE_VERSION_V3)
            raise UnsupportedProtocol("MQTT 3.1 CONNECT refused: this broker speaks MQTT 3.1.1")
    return BufferReader(packet.raw)


async def _refuse(writer: WriterAdapter, connack: bytes) -> None:
    writer.write(connack)
    await writer.drain()
    await writer.close()


class _Packet:
    def __init__(self, header: bytes, body: bytes) -> None:
        self.first_byte = header[0]
        self.body = body
        self.raw = header + body


async def _read_packet(reader: ReaderAdapter) -> _Packet:
    header = bytearray(await reader.read(1))
    length, multiplier = 0, 1
    for _ in range(4):
        byte = (await reader.read(1))[0]
        header.append(byte)
        length += (byte & 0x7F) * multiplier
        if not byte & 0x80:
            break
        multiplier *= 128
    else:
        raise MQTTError("malformed remaining length in the first packet")
    if length > MAX_CONNECT_BYTES:
        raise MQTTError(f"first packet of {length} bytes refused")
    body = await reader.read(length) if length else b""
    return _Packet(bytes(header), body)


def _level(body: bytes) -> int | None:
    return body[_LEVEL_OFFSET] if len(body) > _LEVEL_OFFSET else None
