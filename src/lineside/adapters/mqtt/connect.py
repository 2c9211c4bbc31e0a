"""The first packet of a connection, read whole before amqtt parses it.

amqtt parses a CONNECT as MQTT 3.1.1 straight from the socket: an MQTT 5 CONNECT (which
carries properties) makes it wait for bytes that never come, so the client hangs. Reading
the packet whole first, within a deadline and a size limit, lets the broker answer an MQTT 5
client "unsupported protocol version" and close idle or oversized first packets.
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
_LEVEL_OFFSET = 6  # after the protocol name: 0x00 0x04 "MQTT"


async def first_packet(reader: ReaderAdapter, writer: WriterAdapter) -> BufferReader:
    """The connection's first packet as a buffer amqtt can parse; MQTTError when there is none,
    it is too big, or it is an MQTT 5 CONNECT (answered before the error)."""
    try:
        packet = await asyncio.wait_for(_read_packet(reader), CONNECT_DEADLINE_SECONDS)
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as error:
        await writer.close()
        raise MQTTError(f"no CONNECT received: {error.__class__.__name__}") from None
    if packet.body[:1] and packet.first_byte & 0xF0 == _CONNECT and _level(packet.body) == MQTT_5:
        writer.write(_UNSUPPORTED_VERSION_V5)
        await writer.drain()
        await writer.close()
        raise MQTTError("MQTT 5 CONNECT refused: this broker speaks MQTT 3.1.1")
    return BufferReader(packet.raw)


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
